"""`twotower bench cli`: how long the `twotower` command takes to start.

Each command runs as the user runs it (the installed console script, a fresh interpreter)
`--repeats` times; a row per command holds the median and the slowest wall time, and whether
the process imported TensorFlow (checked in a separate run with `-X importtime`). `--help`
of every command and `twotower config` do no work, so their time is the start-up itself.
Writes reports/cli.json (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import subprocess
import sys
import time
from typing import Optional, Sequence

from benchmarks import common
from twotower.errors import TwoTowerError

COMMANDS = (("--help",), ("run", "--help"), ("serve", "--help"), ("query", "--help"),
            ("schema", "init", "--help"), ("data", "synthetic", "--help"), ("config",),
            ("compile", "--help"), ("tune-temperature", "--help"), ("bench", "--help"),
            ("bench", "quality", "--help"), ("bench", "pool", "--help"),
            ("bench", "serving", "--help"), ("bench", "scale", "--help"),
            ("bench", "increments", "--help"), ("bench", "span_quality", "--help"),
            ("bench", "index", "--help"), ("bench", "multi_worker", "--help"))


def executable() -> list[str]:
    """The installed `twotower` script beside this interpreter, else `python -m pipeline.cli`."""
    script = pathlib.Path(sys.executable).with_name("twotower")
    found = str(script) if script.exists() else shutil.which("twotower")
    return [found] if found else [sys.executable, "-m", "pipeline.cli"]


def imports_tensorflow(argv: Sequence[str]) -> bool:
    """Whether `twotower argv` imports TensorFlow (Python's own import log)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline.cli", *argv],
                            capture_output=True, text=True, check=False)
    return any(line.rstrip().endswith("| tensorflow") for line in result.stderr.splitlines())


def time_command(argv: Sequence[str], repeats: int) -> dict[str, object]:
    """One report row: median and slowest seconds of `repeats` runs of `twotower argv`.

    Raises:
      RuntimeError: if the command fails.
    """
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(executable() + list(argv), capture_output=True, text=True,
                                check=False)
        seconds.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise RuntimeError(f"twotower {' '.join(argv)} failed: {result.stderr[-500:]}")
    return {"name": " ".join(argv), "repeats": repeats,
            "median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3),
            "imports_tensorflow": imports_tensorflow(argv)}


def run(commands: Sequence[Sequence[str]], repeats: int,
        out: Optional[pathlib.Path] = None) -> pathlib.Path:
    """Times every command and writes the report."""
    rows = []
    for argv in commands:
        rows.append(time_command(argv, repeats))
        print(f"[cli] {rows[-1]}", flush=True)
    slowest = max(rows, key=lambda row: row["max_s"])
    notes = (f"Slowest: `twotower {slowest['name']}` at {slowest['max_s']} s (max of "
             f"{repeats}); {sum(bool(row['imports_tensorflow']) for row in rows)} of "
             f"{len(rows)} commands import TensorFlow.")
    return common.write_report("cli", {"repeats": repeats, "commands": len(rows)}, rows,
                               notes, out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="runs per command")
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/cli.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if args.repeats < 1:
        raise TwoTowerError(f"--repeats: got {args.repeats}; expected at least 1")
    print(f"wrote {run(COMMANDS, args.repeats, args.out)}")
