"""Runs one function in a fresh Python process and waits for it.

A local run (LocalDagRunner, an Airflow worker) executes every component in one Python
process, and two kinds of memory are not given back before that process exits: the
DirectRunner's buffers between stages (the NegativePoolBuilder's driver peaked at 3.8 GB at
1M items and kept 0.8 GB) and what TensorFlow allocated for training (at 1M ids the Trainer
left ~4 GB resident after clearing its session), so every later component ran on top of
them. A spawned child returns all of it when it exits (orchestration.separate_processes).
Its log records go to the parent's log file; its exception is raised in the parent.

A child never outlives its run. It leads a process group of its own, so the processes it
starts (the DirectRunner's Beam workers) can be stopped with it, and a thread in it watches
the parent: when the parent dies, however (SIGTERM from a scheduler's timeout, SIGKILL, the
OOM killer), the child kills its descendants and itself within PARENT_POLL_SECONDS. A parent
interrupted while it waits (Ctrl-C; the child's own group does not receive the terminal's
SIGINT) kills the child's group before it re-raises; a child that dies leaves no worker of its
group behind either.
"""
from __future__ import annotations

import concurrent.futures
from concurrent.futures import process as futures_process
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Callable, Optional

from absl import logging as absl_logging
import psutil

from twotower import logs
from twotower.errors import TwoTowerError


# How often a child checks that its parent is alive.
PARENT_POLL_SECONDS = 0.5


class ChildDiedError(TwoTowerError):
    """The child process ended without a result (killed, or crashed)."""


def _log_file() -> Optional[tuple[str, Optional[logging.Formatter]]]:
    """(path, formatter) of the root logger's latest file handler, if it has one."""
    files = [handler for handler in logging.getLogger().handlers
             if isinstance(handler, logging.FileHandler)]
    return (files[-1].baseFilename, files[-1].formatter) if files else None


def _exit_with_parent(parent: int) -> None:
    """Child thread: once the parent has died, kills this process's descendants, then this
    process."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            process.kill()
    os.kill(os.getpid(), signal.SIGKILL)


def _start_child(target: Optional[tuple[str, Optional[logging.Formatter]]],
                 parent: int, progress: bool = False) -> None:
    """Child initializer: a process group of its own, the parent watched, INFO records and
    warnings appended to the parent's log file, progress lines on the console as the
    parent prints them."""
    os.setpgrp()
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch",
                     daemon=True).start()
    if progress:
        logs.progress_to_console()
    if target is None:
        return
    path, formatter = target
    logs.to_file(path, formatter)
    logging.captureWarnings(True)


def _kill_groups(children: set[multiprocessing.process.BaseProcess]) -> None:
    """Kills each child's process group (it leads one), or the child alone if it has not
    made its group yet."""
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            if child.is_alive():  # not reaped, so its pid is still its own
                child.kill()


# How often the wait for a child wakes up: Ctrl-C (SIGINT to the process) may land on one of
# the executor's threads, and Python then runs its handler in the main thread only when that
# thread next runs, which a wait without a timeout would put off until the child ends.
WAKE_S = 0.5


def _wait(future: concurrent.futures.Future) -> Any:
    """future.result(), waking every WAKE_S so a pending KeyboardInterrupt is raised here."""
    while True:
        try:
            return future.result(timeout=WAKE_S)
        except concurrent.futures.TimeoutError:
            continue


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
    before = set(multiprocessing.active_children())
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context,
                                                initializer=_start_child,
                                                initargs=(_log_file(), os.getpid(),
                                                          logs.prints_progress())) as pool:
        future = pool.submit(function, *args)  # starts the child
        children = set(multiprocessing.active_children()) - before
        try:
            return _wait(future)
        except futures_process.BrokenProcessPool as error:
            _kill_groups(children)  # the workers it started, if it died before them
            raise ChildDiedError(
                f"the child process running {what} ended abruptly: killed (out of memory is "
                "the usual cause; the kernel log says, e.g. `dmesg | grep -i oom`), or it "
                "could not start (a script that runs the pipeline must do so under `if "
                "__name__ == \"__main__\":`, since the child imports the script again). Set "
                "orchestration.separate_processes=false to run it in the pipeline's process "
                "and see its own error") from error
        except BaseException:
            if not future.done():  # interrupted while waiting (Ctrl-C): stop the child too
                _kill_groups(children)
            raise
