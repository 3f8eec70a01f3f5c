"""Shared benchmark plumbing: the report format (docs/benchmarks.md) and process-tree memory
sampling."""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Iterator, Optional, Sequence

import psutil

REPORTS_DIR = pathlib.Path("reports")


def machine() -> dict[str, Any]:
    """Cores, CPU model and memory of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu,
            "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1)}


def git_commit() -> str:
    """HEAD's commit, with "+dirty" when the work tree has uncommitted changes outside
    reports/ (a report rewritten by an earlier benchmark of the same run is output, not
    code)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                       ":!reports") else "")


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nothing listens on now (held open together while
    picked, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def write_report(name: str, config: dict[str, Any], rows: Sequence[dict[str, Any]],
                 notes: str, out: Optional[pathlib.Path] = None,
                 git: Optional[str] = None,
                 extra: Optional[dict[str, Any]] = None) -> pathlib.Path:
    """Writes reports/<name>.json in docs/benchmarks.md's shape and returns its path; `git` is the
    commit the run started from (default: HEAD now); `extra` adds top-level keys."""
    path = out or REPORTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": name,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "git": git or git_commit(), "machine": machine(), "config": config, "rows": list(rows),
              "notes": notes, **(extra or {})}
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


class TreeMemory:
    """Samples the resident memory of a process and all its descendants in a thread.

    Attributes:
      peak_total_mb: Largest sum of RSS over the tree at one sample.
      peak_process_mb: Largest RSS of a single process in the tree.
      samples: (epoch seconds, summed RSS in MB) of every sample, for peaks per time span.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self._root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_total_mb = 0.0
        self.peak_process_mb = 0.0
        self.samples: list[tuple[float, float]] = []

    def _sample(self) -> None:
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        sizes = []
        for process in processes:
            try:
                sizes.append(process.memory_info().rss / 2 ** 20)
            except psutil.NoSuchProcess:
                continue
        if sizes:
            self.samples.append((time.time(), sum(sizes)))
            self.peak_total_mb = max(self.peak_total_mb, sum(sizes))
            self.peak_process_mb = max(self.peak_process_mb, max(sizes))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self._interval)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(command: Sequence[str], log: pathlib.Path,
                 samples: Optional[list[tuple[float, float]]] = None,
                 code: Optional[pathlib.Path] = None) -> dict[str, float]:
    """Runs a command, returning its wall time and peak memory of its process tree.

    Args:
      command: The command line.
      log: Receives its stdout and stderr.
      samples: If given, receives the memory samples (see TreeMemory.samples).
      code: Run with this folder's copy of the code first on the import path (its working
        directory too), e.g. `code_at`'s older revision.

    Raises:
      RuntimeError: if the command fails (its log is named in the message). Whatever stops
        the wait (Ctrl-C, a signal's handler) stops the command's whole process tree first,
        so an interrupted benchmark leaves no run behind.
    """
    started = time.time()
    with open(log, "w") as out:
        env = None if code is None else {**os.environ, "PYTHONPATH": str(code)}
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT,
                                   cwd=code, env=env)
        with TreeMemory(process.pid) as memory:
            try:
                code = process.wait()
            except BaseException:
                stop_tree(process.pid)
                raise
    if samples is not None:
        samples.extend(memory.samples)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {code}; see {log}")
    return {"wall_s": round(time.time() - started, 1),
            "peak_rss_mb": round(memory.peak_total_mb), "peak_process_rss_mb":
            round(memory.peak_process_mb)}


def code_at(revision: str, folder: pathlib.Path) -> tuple[str, pathlib.Path]:
    """The repository's files at `revision` unpacked into `folder` (git archive), to measure
    an older implementation beside the current one in the same run.

    Returns:
      (the revision's full commit hash, the folder).

    Raises:
      ValueError: if this is not a git clone or the revision is unknown.
    """
    resolved = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
                              capture_output=True, text=True, check=False)
    if resolved.returncode != 0:
        raise ValueError(f"cannot measure revision {revision!r}: {resolved.stderr.strip()} "
                         "(run the bench in a git clone with that commit)")
    commit = resolved.stdout.strip()
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise ValueError(f"git archive {commit} failed")
    return commit, folder


def direct_runner_args(workers: int) -> list[str]:
    """DirectRunner arguments for `workers` worker processes (1: all in one process)."""
    return (["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
            if workers > 1 else ["--direct_running_mode=in_memory", "--direct_num_workers=1"])


def stop_tree(pid: int, grace_s: float = 10.0) -> None:
    """Terminates a process and all its descendants, killing what is left after grace_s."""
    try:
        root = psutil.Process(pid)
        tree = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=grace_s)


@contextlib.contextmanager
def scratch_folder(folder: pathlib.Path, keep: bool, label: str,
                   hint: str = "") -> Iterator[pathlib.Path]:
    """Removes a benchmark's scratch folder when the block ends, unless `keep`; a failure
    keeps it (the runs' logs are there) and says where, followed by `hint`."""
    try:
        yield folder
    except BaseException:
        print(f"[{label}] failed; its scratch folder (each run's log) is kept: {folder}"
              f"{hint}", file=sys.stderr)
        raise
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
