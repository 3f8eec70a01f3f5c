"""benchmarks.common: running a measured command."""
import signal
import sys

import psutil
import pytest

from benchmarks import common

# Starts a grandchild that would outlive its parent, writes its pid, then waits.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""


class _Interrupted(Exception):
    pass


def _interrupt(signum, frame):
    raise _Interrupted


def test_an_interrupted_measured_run_leaves_no_process_behind(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    previous = signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, 3.0)
    try:
        with pytest.raises(_Interrupted):
            common.run_measured([sys.executable, "-c", _PARENT, str(pid_file)],
                                tmp_path / "run.log")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    grandchild = int(pid_file.read_text())
    gone = (not psutil.pid_exists(grandchild)
            or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE)
    assert gone


def test_a_finished_run_reports_its_time_and_memory(tmp_path):
    measured = common.run_measured([sys.executable, "-c", "print('hi')"], tmp_path / "run.log")
    assert measured["wall_s"] >= 0 and measured["peak_rss_mb"] >= 0
    assert (tmp_path / "run.log").read_text().strip() == "hi"


def test_a_failed_run_names_its_log(tmp_path):
    with pytest.raises(RuntimeError, match="run.log"):
        common.run_measured([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "run.log")
