"""Console progress for pipeline runs; the full log goes to a file.

TFX logs "Component X is running." / "A cached execution N is used." /
"Component X is finished." for every node; `ProgressHandler` turns those records into one
line per component with its time, and leaves every other record to the log file.
"""
from __future__ import annotations

import datetime
import logging
import re
import sys
import time
from typing import Optional, TextIO

from twotower import logs

_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_FINISHED = re.compile(r"^Component (\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+ (.*)$")


class ProgressHandler(logging.Handler):
    """Prints `[i/N] Component ... done in 3.2s` (or `cached`) lines to a stream."""

    def __init__(self, total: int, stream: Optional[TextIO] = None) -> None:
        super().__init__(level=logging.INFO)
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self._current: Optional[str] = None
        self._started = 0.0
        self._cached = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        running = _RUNNING.match(message)
        if running:
            self._current, self._started, self._cached = running.group(1), time.time(), False
            self._write(f"[{self.done + 1:>2}/{self.total}] {self._current} ...")
            return
        if _CACHED.match(message):
            self._cached = True
            return
        finished = _FINISHED.match(message)
        if finished:
            self.done += 1
            outcome = "cached" if self._cached else f"done in {time.time() - self._started:.1f}s"
            self._write(f"[{self.done:>2}/{self.total}] {finished.group(1)} {outcome}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def configure(total_components: int, log_file: str, verbose: bool = False) -> ProgressHandler:
    """Routes all log records to `log_file` and progress lines to stderr.

    Args:
      total_components: Number of nodes in the pipeline.
      log_file: Path of the full INFO log.
      verbose: Also print every log record to stderr; otherwise failures reach the user
        through the CLI's error message and the log file.
    """
    logs.to_file(log_file, logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    progress = ProgressHandler(total_components)
    root.addHandler(progress)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.CRITICAL)
    root.addHandler(console)
    if not verbose:  # verbose prints every record already
        logs.progress_to_console()
    return progress


def component_spans(log_lines: list[str]) -> dict[str, tuple[float, float]]:
    """When each component ran, from a run's log file (written with LOG_FORMAT).

    Args:
      log_lines: The lines of the log.

    Returns:
      component id -> (start, end) as epoch seconds (local time of the log), for every
      component that finished, in the order they started.
    """
    started: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for line in log_lines:
        match = _LOG_LINE.match(line.rstrip("\n"))
        if not match:
            continue
        when = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        running, finished = _RUNNING.match(match.group(2)), _FINISHED.match(match.group(2))
        if running:
            started[running.group(1)] = when
        elif finished and finished.group(1) in started:
            spans[finished.group(1)] = (started[finished.group(1)], when)
    return dict(sorted(spans.items(), key=lambda item: item[1][0]))
