"""Runs one function in a fresh Python process and waits for it.

A local run (LocalDagRunner, an Airflow worker) executes every component in one Python
process, and two kinds of memory are not given back before that process exits: the
DirectRunner's buffers between stages (the NegativePoolBuilder's driver peaked at 3.8 GB at
1M items and kept 0.8 GB) and what TensorFlow allocated for training (at 1M ids the Trainer
left ~4 GB resident after clearing its session), so every later component ran on top of
them. A spawned child returns all of it when it exits (orchestration.separate_processes).
Its log records go to the parent's log file; its exception is raised in the parent.
"""
from __future__ import annotations

import concurrent.futures
from concurrent.futures import process as futures_process
import logging
import multiprocessing
from typing import Any, Callable, Optional

from absl import logging as absl_logging

from pipeline import logs
from pipeline.errors import TwoTowerError


class ChildDiedError(TwoTowerError):
    """The child process ended without a result (killed, or crashed)."""


def _log_file() -> Optional[tuple[str, Optional[logging.Formatter]]]:
    """(path, formatter) of the root logger's latest file handler, if it has one."""
    files = [handler for handler in logging.getLogger().handlers
             if isinstance(handler, logging.FileHandler)]
    return (files[-1].baseFilename, files[-1].formatter) if files else None


def _log_to(target: Optional[tuple[str, Optional[logging.Formatter]]]) -> None:
    """Child initializer: INFO records and warnings appended to the parent's log file."""
    if target is None:
        return
    path, formatter = target
    logs.to_file(path, formatter)
    logging.captureWarnings(True)


def run(what: str, function: Callable[..., Any], *args: Any) -> Any:
    """Calls function(*args) in a spawned process and returns its result (in this process
    when it is daemonic and so may not start children).

    Args:
      what: What the child does, for messages ("training").
      function: A module-level function (pickled by reference); args and the result must
        pickle too.

    Raises:
      ChildDiedError: if the child dies without answering.
      Whatever function raised, re-raised here.
    """
    if multiprocessing.current_process().daemon:
        absl_logging.warning("Running %s in this process: a daemonic process (e.g. a Celery "
                             "prefork worker) cannot start children", what)
        return function(*args)
    context = multiprocessing.get_context("spawn")
    absl_logging.info("Running %s in a child process", what)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=_log_to,
                                                initargs=(_log_file(),)) as pool:
        try:
            return pool.submit(function, *args).result()
        except futures_process.BrokenProcessPool as error:
            raise ChildDiedError(
                f"the child process running {what} ended abruptly: killed (out of memory is "
                "the usual cause; the kernel log says, e.g. `dmesg | grep -i oom`), or it "
                "could not start (a script that runs the pipeline must do so under `if "
                "__name__ == \"__main__\":`, since the child imports the script again). Set "
                "orchestration.separate_processes=false to run it in the pipeline's process "
                "and see its own error") from error
