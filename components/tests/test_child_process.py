"""child_process.run: result, exceptions and log records come back from a spawned child."""
import logging
import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

from components import child_process
from pipeline.errors import ConfigError

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
    script.write_text("import os\nfrom components import child_process\n"
                      "child_process.run('adding', os.getpid)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, check=False,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode != 0
    assert 'could not start (a script that runs the pipeline must do so under `if __name__ ' \
           '== "__main__":`' in result.stderr
