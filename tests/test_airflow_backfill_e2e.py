"""Airflow backfill over data in spans: `airflow dags backfill` of two logical dates over
two daily span folders (the earliest 2,000 MovieLens ratings split in two), with real
Airflow (DebugExecutor: the backfill job runs each task in its own process, no scheduler).

Each run ingests its own date's span only; earlier spans' Examples come from ML Metadata into
the Trainer's window; each blessed model is pushed as a new version, and `twotower serve`,
started after the first date, moves to the newest. (The DebugExecutor runs every task of the
backfill in one process, which is what caught TFX writing rendered templates back into its
components: see airflow_dag.create_dag.)
"""
import os
import pathlib
import subprocess
import sys
import time

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
import pytest

from benchmarks import server_process
from twotower import versions

pytestmark = pytest.mark.e2e
BIN = pathlib.Path(sys.executable).parent
REPO = pathlib.Path(__file__).resolve().parents[1]
DAG_ID = "twotower-backfill-e2e"
DATES = ("2026-01-01", "2026-01-02")


def _run(command, env, cwd):
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=1800, check=False)
    (pathlib.Path(cwd) / "last_command.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-5000:])
    return result.stdout


def _store(path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    return mlmd.MetadataStore(config)


def _component_executions(store, component_id):
    """(execution, input artifact ids by key, output artifact ids) of one component's runs."""
    found = []
    for execution in store.get_executions():
        if execution.properties["component_id"].string_value != component_id:
            continue
        if execution.last_known_state != metadata_store_pb2.Execution.COMPLETE:
            continue
        events = store.get_events_by_execution_ids([execution.id])
        inputs, outputs = {}, []
        for event in events:
            if event.type == metadata_store_pb2.Event.INPUT:
                inputs.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
            elif event.type == metadata_store_pb2.Event.OUTPUT:
                outputs.append(event.artifact_id)
        found.append((execution, inputs, outputs))
    return sorted(found, key=lambda row: row[0].id)


def test_backfill_ingests_one_span_per_date_and_pushes_each_version(tmp_path):
    home = tmp_path / "airflow"
    env = {**os.environ, "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "TF_USE_LEGACY_KERAS": "1",
           "AIRFLOW__CORE__EXECUTOR": "DebugExecutor",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
    data = tmp_path / "movielens"
    _run([BIN / "twotower", "data", "movielens", "--sample", "2000", "--out", data], env,
         tmp_path)
    _run([BIN / "twotower", "data", "split-spans", "--interactions", data / "interactions.csv",
          "--spans", "2", "--copy", data / "items.csv", "--out", tmp_path / "numbered"], env,
         tmp_path)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for k, date in enumerate(DATES, start=1):  # the two spans arrive on two days
        (tmp_path / "numbered" / f"span-{k}").rename(incoming / date)
    serving = tmp_path / "serving"
    root = tmp_path / "root"
    _run([BIN / "twotower", "compile", "airflow", "--config", REPO / "configs" / "movielens.yaml",
          "--set", f"data.interactions={incoming}/{{YYYY}}-{{MM}}-{{DD}}/interactions.csv",
          "--set", f"data.items={tmp_path / 'numbered' / 'items.csv'}",
          "--set", "spans.window_spans=3", "--set", "spans.drift_thresholds={genres: 1.0}",
          "--set", f"orchestration.pipeline_name={DAG_ID}",
          "--set", f"orchestration.pipeline_root={root}", "--set", "orchestration.schedule='@daily'",
          "--set", f"orchestration.start_date={DATES[0]}", "--set", "orchestration.retries=0",
          "--set", f"serving.base_path={serving}", "--set", "training.epochs=1",
          "--set", "training.batch_size=128", "--set", "validation.max_relative_regression=1.0",
          # One epoch on a few weeks of ratings does not beat MostPop; this test is about the
          # spans, not the gate (components/model_validator/tests pin the MostPop check).
          "--set", "validation.min_lift_over_mostpop=-1",
          "--out", home / "dags"], env, tmp_path)
    _run([BIN / "airflow", "db", "migrate"], env, home)
    _run([BIN / "airflow", "dags", "backfill", "--start-date", DATES[0], "--end-date", DATES[0],
          DAG_ID], env, home)
    server = server_process.ServerProcess(str(serving / "twotower"), None)
    try:
        first = server.served_version()
        _run([BIN / "airflow", "dags", "backfill", "--start-date", DATES[1], "--end-date",
              DATES[-1], DAG_ID], env, home)
        newest = versions.versions(str(serving / "twotower"))[-1]
        deadline = time.time() + 120
        while server.served_version() != newest and time.time() < deadline:
            time.sleep(1)
        assert first < newest and server.served_version() == newest
        assert server.failed_versions() == []
    finally:
        server.stop()

    store = _store(root / "metadata.sqlite")
    artifacts = {a.id: a for a in store.get_artifacts()}

    def span(artifact_id):
        return artifacts[artifact_id].custom_properties["span"].int_value
    day = 20454  # 2026-01-01 as TFX's span: days since 1970-01-01
    ingests = _component_executions(store, "InteractionsExampleGen")
    assert [[span(a) for a in outputs] for _, _, outputs in ingests] == [
        [day], [day + 1]]  # one span per run, in date order
    trainers = _component_executions(store, "Trainer")
    assert len(trainers) == 2
    windows = [sorted(span(a) for a in inputs["examples"]) for _, inputs, _ in trainers]
    assert windows == [[day], [day, day + 1]]
    # The second run's window: the Examples both runs ingested, the first one's not made anew.
    assert {outputs[0] for _, _, outputs in ingests} == set(trainers[1][1]["examples"])
    assert "base_model" not in trainers[0][1]
    assert "base_model" in trainers[1][1]  # warm-started from the first run's model
    for name in ("twotower", "twotower-stock"):
        assert len(versions.versions(str(serving / name))) == 2
