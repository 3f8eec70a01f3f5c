"""Who is the chief from TF_CONFIG alone, what the executor does on a non-chief replica, and
the Vertex AI custom job the compiled Trainer asks for."""
from __future__ import annotations

import json

import pytest
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components.trainer import distribution, executor, vertex
from twotower.config import OrchestrationConfig

CLUSTER = {"worker": ["a:1", "b:2"]}
WITH_CHIEF = {"chief": ["c:0"], "worker": ["a:1", "b:2"]}


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": WITH_CHIEF, "task": {"type": "chief", "index": 0}}, True),
    ({"cluster": WITH_CHIEF, "task": {"type": "worker", "index": 0}}, False),
])
def test_chief_by_environment(monkeypatch, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert distribution.chief_by_environment() is chief


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, fn_args):
        self.calls.append(fn_args)


def _executor(monkeypatch, run_fn, tf_config):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    # One udf_utils module serves both executors (ours and TFX's, which the chief runs).
    monkeypatch.setattr(executor.udf_utils, "get_fn", lambda properties, name: run_fn)
    fn_args = FnArgs(serving_model_dir="/nonexistent/serving", model_run_dir="/nonexistent/run")
    monkeypatch.setattr(executor.TrainerExecutor, "_GetFnArgs", lambda *args: fn_args)
    return executor.TrainerExecutor(), fn_args


def test_a_worker_replica_trains_without_waiting_for_an_export(monkeypatch):
    run_fn = _Recorder()
    trainer, fn_args = _executor(monkeypatch, run_fn,
                                 {"cluster": WITH_CHIEF, "task": {"type": "worker", "index": 1}})
    trainer.Do({}, {}, {})
    assert run_fn.calls == [fn_args]


def test_the_chief_still_fails_when_run_fn_exported_nothing(monkeypatch):
    run_fn = _Recorder()
    trainer, _ = _executor(monkeypatch, run_fn,
                           {"cluster": WITH_CHIEF, "task": {"type": "chief", "index": 0}})
    with pytest.raises(RuntimeError, match="run_fn failed to generate model"):
        trainer.Do({}, {}, {})
    assert len(run_fn.calls) == 1


def test_vertex_job_has_one_chief_pool_and_the_other_workers_on_the_image():
    config = vertex.job_config(OrchestrationConfig(
        trainer_workers=4, vertex_project="proj", vertex_region="europe-west4",
        trainer_machine_type="n2-standard-16", image="gcr.io/p/twotower:1"))
    assert config[vertex_constants.ENABLE_VERTEX_KEY] is True
    assert config[vertex_constants.VERTEX_REGION_KEY] == "europe-west4"
    job = config[vertex_executor.TRAINING_ARGS_KEY]
    assert job["project"] == "proj"
    pools = job["job_spec"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 3]
    assert {pool["container_spec"]["image_uri"] for pool in pools} == {"gcr.io/p/twotower:1"}
    assert {pool["machine_spec"]["machine_type"] for pool in pools} == {"n2-standard-16"}
    assert vertex.VertexTrainerExecutor()._GetExecutorClass() is executor.TrainerExecutor  # pylint: disable=protected-access
