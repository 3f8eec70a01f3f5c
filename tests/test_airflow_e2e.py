"""The pipeline under Apache Airflow: `twotower compile airflow`, then `airflow dags test`
(Airflow's own task runner, SQLite metadata DB) on the earliest 3,000 MovieLens ratings:
first a run whose Trainer task passes its execution timeout, then a run that pushes."""
import json
import os
import pathlib
import subprocess
import sys
import time

import psutil
import pytest

from twotower import versions

pytestmark = pytest.mark.e2e
BIN = pathlib.Path(sys.executable).parent
DAG_ID = "twotower-airflow-e2e"
RUN_DATE = "2026-01-02"
TIMED_OUT_DATE = "2026-01-01"


def _run(command, env, cwd, check=True):
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=1200, check=False)
    assert not check or result.returncode == 0, (command, result.stdout[-3000:],
                                                 result.stderr[-5000:])
    return result.stdout


def _children_of_runs():
    """Processes started by child_process.run (multiprocessing children) on this machine."""
    found = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("spawn_main" in part for part in process.info["cmdline"] or ()):
            found.add(process.info["pid"])
    return found


def _states(env, home, run_date):
    out = _run([BIN / "airflow", "tasks", "states-for-dag-run", DAG_ID,
                f"manual__{run_date}T00:00:00+00:00", "--output", "json"], env, home)
    rows = json.loads(next(line for line in out.splitlines() if line.startswith("[")))
    return {row["task_id"]: row["state"] for row in rows}


def test_airflow_dags_test_runs_every_task_and_pushes(tmp_path):
    home = tmp_path / "airflow"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "TF_USE_LEGACY_KERAS": "1",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
    data = tmp_path / "movielens"
    _run([BIN / "twotower", "data", "movielens", "--sample", "3000", "--out", data], env, tmp_path)
    serving = tmp_path / "serving"

    def compile_dag(*settings):
        return _run([BIN / "twotower", "compile", "airflow", "--config",
                     pathlib.Path(__file__).parents[1] / "configs" / "movielens.yaml",
                     "--set", f"data.interactions={data / 'interactions.csv'}",
                     "--set", f"data.items={data / 'items.csv'}",
                     "--set", f"orchestration.pipeline_name={DAG_ID}",
                     "--set", "orchestration.pipeline_root=root",  # relative: made absolute
                     "--set", f"serving.base_path={serving}", "--set", "orchestration.retries=0",
                     *settings, "--out", home / "dags"], env, tmp_path)

    # Training far longer than the tasks' 1-minute execution timeout: the Trainer task fails
    # and its training child process goes with it; nothing is pushed.
    compile_dag("--set", "training.epochs=5000", "--set",
                "orchestration.task_timeout_minutes=1")
    _run([BIN / "airflow", "db", "migrate"], env, home)
    before = _children_of_runs()
    _run([BIN / "airflow", "dags", "test", DAG_ID, TIMED_OUT_DATE], env, home, check=False)
    states = _states(env, home, TIMED_OUT_DATE)
    assert states["Trainer"] == "failed" and states["Pusher"] != "success", states
    deadline = time.monotonic() + 10
    while _children_of_runs() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children_of_runs() - before
    assert not (serving / "twotower").exists() or not versions.versions(str(serving / "twotower"))

    # One epoch on 3,000 ratings does not beat MostPop (0.30 against 0.34 at recall@100); this
    # test is about the DAG, components/model_validator/tests pin the MostPop check.
    out = compile_dag("--set", "training.epochs=1", "--set", "validation.min_lift_over_mostpop=-1")
    assert f"DAG id {DAG_ID}" in out
    _run([BIN / "airflow", "dags", "test", DAG_ID, RUN_DATE], env, home)
    states = _states(env, home, RUN_DATE)
    assert len(states) == 17 and set(states.values()) == {"success"}, states
    assert (tmp_path / "root" / "metadata.sqlite").is_file()
    for name in ("twotower", "twotower-stock"):
        assert len(versions.versions(str(serving / name))) == 1
