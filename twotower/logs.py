"""Routing every log record to one file (the CLI's run log, and child processes writing to
the same file), and progress lines of long phases inside components to the console."""
from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Optional, TextIO

from absl import logging as absl_logging


def to_file(path: str, formatter: Optional[logging.Formatter]) -> None:
    """Replaces the root logger's handlers with one appending INFO records to `path`.

    TensorFlow's logger has its own stderr handler; its records go to the file instead.
    """
    absl_logging.set_verbosity(absl_logging.INFO)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.propagate = True
    root.setLevel(logging.INFO)
    handler = logging.FileHandler(path)
    handler.setFormatter(formatter)
    root.addHandler(handler)


PROGRESS_LOGGER = "twotower.progress"
PROGRESS_SECONDS = 30.0


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (a test may swap it)."""

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """StreamHandler's constructor sets a stream; this handler always takes sys.stderr."""


def progress_to_console() -> None:
    """Also prints the records of PROGRESS_LOGGER (a long phase's progress inside a
    component, e.g. evaluation) on stderr, indented under the component's line."""
    if not prints_progress():
        handler = _ConsoleHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("        %(message)s"))
        logger = logging.getLogger(PROGRESS_LOGGER)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)


def progress(message: str, *args: object) -> None:
    """Logs one progress line to PROGRESS_LOGGER (the run log; the console too once
    progress_to_console was called)."""
    logging.getLogger(PROGRESS_LOGGER).info(message, *args)


def prints_progress() -> bool:
    """Whether progress lines reach the console (progress_to_console was called)."""
    return any(isinstance(handler, _ConsoleHandler)
               for handler in logging.getLogger(PROGRESS_LOGGER).handlers)


class Meter:
    """Logs `what: done of ~total (rate/s, ~N s left)` to PROGRESS_LOGGER at most every
    `every` seconds, so a phase longer than that is never silent."""

    def __init__(self, what: str, total: Optional[int], every: float = PROGRESS_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.every, self.clock = what, total, every, clock
        self.started = self.last = clock()

    def update(self, done: int) -> None:
        """Reports `done` units so far if `every` seconds passed since the last report."""
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        of = f" of ~{self.total:,}" if self.total else ""
        left = (f", ~{(self.total - done) / rate:.0f} s left"
                if self.total and self.total > done and rate > 0 else "")
        progress("%s: %s%s (%.0f/s%s)", self.what, f"{done:,}", of, rate, left)
