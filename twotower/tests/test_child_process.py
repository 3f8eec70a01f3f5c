"""child_process.run: result, exceptions and log records come back from a spawned child,
and the child (with the processes it started) never outlives its parent."""
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from twotower import child_process
from twotower.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pid_plus(value):
    logging.getLogger("child").info("hello from %d", os.getpid())
    return os.getpid(), value + 1


def _refuse(message):
    raise ConfigError(message)


def _killed():
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def log_file(tmp_path):
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "run.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    yield tmp_path / "run.log"
    root.removeHandler(handler)
    handler.close()


def test_result_and_log_records_come_back(log_file):
    pid, value = child_process.run("adding", _pid_plus, 41)
    assert value == 42 and pid != os.getpid()
    assert f"INFO child hello from {pid}" in log_file.read_text()


def test_the_childs_error_is_raised_here():
    with pytest.raises(ConfigError, match="lower training.batch_size"):
        child_process.run("refusing", _refuse, "lower training.batch_size")


def test_a_killed_child_is_a_clear_error():
    with pytest.raises(child_process.ChildDiedError,
                       match="running dying ended abruptly.*separate_processes=false"):
        child_process.run("dying", _killed)


def _run_in_daemon(queue):
    queue.put((os.getpid(), child_process.run("adding", _pid_plus, 1)))


def test_a_daemonic_process_runs_the_function_itself():
    """A daemonic process may not start children (Celery prefork workers are daemonic)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    daemon = context.Process(target=_run_in_daemon, args=(queue,), daemon=True)
    daemon.start()
    parent, (pid, value) = queue.get(timeout=120)
    daemon.join(timeout=60)
    assert (pid, value) == (parent, 2)


def test_a_script_without_a_main_guard_is_told_so(tmp_path):
    """The spawned child imports the parent's script again; unguarded, the script starts
    another child while the first one bootstraps, which Python refuses."""
    script = tmp_path / "unguarded.py"
    script.write_text("import os\nfrom twotower import child_process\n"
                      "child_process.run('adding', os.getpid)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, check=False,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode != 0
    assert 'could not start (a script that runs the pipeline must do so under `if __name__ ' \
           '== "__main__":`' in result.stderr


def _gone(pid):
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _all_gone(pids, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _start_worker_and_wait(path, then_die=False):
    """Child: starts a process (as the DirectRunner starts Beam workers), writes both pids
    to `path`, then waits (or kills itself)."""
    worker = subprocess.Popen(["sleep", "600"])  # pylint: disable=consider-using-with
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {worker.pid}")
    os.rename(path + ".tmp", path)
    if then_die:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def _pids(path, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    with open(path) as f:
        return [int(pid) for pid in f.read().split()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_the_child_and_its_workers_die_with_the_parent(tmp_path, signum):
    """What a scheduler's timeout (SIGTERM) or `kill -9` of the run does: nothing of the
    run is left (it used to train on as an orphan, then block on its dead parent's pipe)."""
    script = tmp_path / "parent.py"
    script.write_text("import sys\nfrom twotower import child_process\n"
                      "from twotower.tests.test_child_process import _start_worker_and_wait\n"
                      "if __name__ == '__main__':\n"
                      "    child_process.run('waiting', _start_worker_and_wait, sys.argv[1])\n")
    path = str(tmp_path / "pids")
    parent = subprocess.Popen([sys.executable, str(script), path],  # pylint: disable=consider-using-with
                              env={**os.environ, "PYTHONPATH": REPO})
    try:
        child, worker = _pids(path)
        assert psutil.Process(worker).ppid() == child and not _gone(child)
        parent.send_signal(signum)
        assert parent.wait(timeout=30) == -signum
        assert _all_gone([child, worker]), [psutil.Process(p).status() for p in (child, worker)
                                            if not _gone(p)]
    finally:
        parent.kill()


def test_an_interrupted_parent_stops_the_child_before_it_re_raises(tmp_path):
    """Ctrl-C in a terminal: SIGINT reaches the parent only (the child leads its own process
    group); the parent kills the child's group instead of waiting for it. The signal is
    sent to a thread other than the main one, as the kernel may deliver a process's SIGINT:
    the main thread must still notice it while it waits. Python's own SIGINT handler is set
    as in a terminal: a suite started in the background (`make test &` from a script)
    inherits SIGINT ignored, and then no Ctrl-C reaches Python at all."""
    path = str(tmp_path / "pids")
    pids = []

    def interrupt():
        pids.extend(_pids(path))
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            child_process.run("waiting", _start_worker_and_wait, path)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 120
    assert len(pids) == 2 and _all_gone(pids)


def test_a_child_that_dies_leaves_none_of_its_workers(tmp_path):
    path = str(tmp_path / "pids")
    with pytest.raises(child_process.ChildDiedError):
        child_process.run("dying", _start_worker_and_wait, path, True)
    child, worker = _pids(path)
    assert _all_gone([child, worker])
