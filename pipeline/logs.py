"""Routing every log record to one file (the CLI's run log, and child processes writing to
the same file)."""
from __future__ import annotations

import logging
from typing import Optional

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
