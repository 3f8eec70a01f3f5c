"""The pipeline under Apache Airflow: `twotower compile airflow`, then `airflow dags test`
(Airflow's own task runner, SQLite metadata DB) on the earliest 3,000 MovieLens ratings."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from components.pusher import versions

pytestmark = pytest.mark.e2e
BIN = pathlib.Path(sys.executable).parent
DAG_ID = "twotower-airflow-e2e"
RUN_DATE = "2026-01-02"


def _run(command, env, cwd):
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=1200, check=False)
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-5000:])
    return result.stdout


def test_airflow_dags_test_runs_every_task_and_pushes(tmp_path):
    home = tmp_path / "airflow"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "TF_USE_LEGACY_KERAS": "1",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
    data = tmp_path / "movielens"
    _run([BIN / "twotower", "data", "movielens", "--sample", "3000", "--out", data], env, tmp_path)
    serving = tmp_path / "serving"
    out = _run([BIN / "twotower", "compile", "airflow", "--config",
                pathlib.Path(__file__).parents[1] / "configs" / "movielens.yaml",
                "--set", f"data.interactions={data / 'interactions.csv'}",
                "--set", f"data.items={data / 'items.csv'}",
                "--set", f"orchestration.pipeline_name={DAG_ID}",
                "--set", "orchestration.pipeline_root=root",  # relative: made absolute
                "--set", f"serving.base_path={serving}", "--set", "training.epochs=1",
                "--set", "orchestration.retries=0", "--out", home / "dags"], env, tmp_path)
    assert f"DAG id {DAG_ID}" in out
    _run([BIN / "airflow", "db", "migrate"], env, home)
    _run([BIN / "airflow", "dags", "test", DAG_ID, RUN_DATE], env, home)
    states_out = _run([BIN / "airflow", "tasks", "states-for-dag-run", DAG_ID,
                       f"manual__{RUN_DATE}T00:00:00+00:00", "--output", "json"], env, home)
    states = json.loads(next(line for line in states_out.splitlines() if line.startswith("[")))
    assert len(states) == 17
    assert {s["task_id"]: s["state"] for s in states} == {s["task_id"]: "success" for s in states}
    assert (tmp_path / "root" / "metadata.sqlite").is_file()
    for name in ("twotower", "twotower-stock"):
        assert len(versions.versions(str(serving / name))) == 1
