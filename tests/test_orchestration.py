"""Airflow DAG structure, Kubeflow v2 spec compilation, URI paths, orchestration config."""
import dataclasses
import datetime
import json
import pathlib
import shutil

import pytest
import yaml
from google.protobuf import json_format

from pipeline import cli
from twotower import config as config_lib
from twotower import paths
from pipeline import pipeline as pipeline_lib
from twotower.errors import ConfigError
from pipeline.runners import airflow_dag, kubeflow_v2

REPO = pathlib.Path(__file__).resolve().parents[1]
GCS = ("data.interactions=gs://bucket/data/interactions/", "data.items=gs://bucket/data/items.csv",
       "orchestration.pipeline_root=gs://bucket/root", "serving.base_path=gs://bucket/serving",
       "orchestration.image=europe-docker.pkg.dev/p/r/twotower:1.2",
       "orchestration.beam_pipeline_args=[--runner=DataflowRunner, --region=europe-west1]")
# Every node and the nodes it must wait for (by data, not by listing order).
UPSTREAM = {
    "InteractionsExampleGen": {"InteractionsSchema"},
    "InteractionsStatisticsGen": {"InteractionsExampleGen", "InteractionsSchema"},
    "InteractionsValidationGate": {"InteractionsExampleValidator", "InteractionsStatisticsGen"},
    "NegativePoolBuilder": {"InteractionsExampleGen", "ItemsExampleGen",
                            "InteractionsValidationGate", "ItemsValidationGate"},
    "Trainer": {"InteractionsExampleGen", "ItemsExampleGen", "NegativePoolBuilder"},
    "IndexBuilder": {"InteractionsExampleGen", "Trainer"},
    "Pusher": {"IndexBuilder", "ModelValidator"},
    "StockPusher": {"IndexBuilder", "ModelValidator"},
}


def _config(*overrides):
    return config_lib.load(str(REPO / "configs" / "movielens.yaml"), tuple(overrides))


def test_airflow_dag_has_every_node_in_order_with_schedule_and_retries(tmp_path):
    config = _config(f"orchestration.pipeline_root={tmp_path / 'root'}",
                     "orchestration.schedule=30 2 * * 1", "orchestration.retries=3",
                     "orchestration.start_date=2026-03-01")
    dag = airflow_dag.create_dag(config)
    assert dag.dag_id == "twotower-movielens"
    tasks = {task.task_id: task for task in dag.tasks}
    assert len(tasks) == len(pipeline_lib.create_pipeline(config).components) == 17
    for task_id, upstream in UPSTREAM.items():
        assert upstream <= set(tasks[task_id].upstream_task_ids), task_id
    assert "ModelValidator" in tasks["Pusher"].upstream_task_ids
    assert all(task.retries == 3 for task in tasks.values())
    assert dag.timetable.summary == "30 2 * * 1"
    assert dag.start_date.isoformat() == "2026-03-01T00:00:00+00:00"
    assert not dag.catchup and dag.max_active_runs == 1


def test_schedule_none_means_manual_runs_only():
    assert airflow_dag.dag_settings(_config("orchestration.schedule=none"))["schedule"] is None


def test_task_timeout_is_every_tasks_execution_timeout():
    assert "execution_timeout" not in airflow_dag.dag_settings(_config())["default_args"]
    settings = airflow_dag.dag_settings(_config("orchestration.task_timeout_minutes=1.5"))
    assert settings["default_args"]["execution_timeout"] == datetime.timedelta(seconds=90)
    with pytest.raises(ConfigError, match="orchestration.task_timeout_minutes"):
        _config("orchestration.task_timeout_minutes=-1")


def test_compiled_dag_file_reads_its_config_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config("orchestration.pipeline_root=relative/root")
    dag_file, config_file = airflow_dag.write_dag_file(config, str(tmp_path / "dags"))
    assert pathlib.Path(dag_file).name == "twotower_movielens_dag.py"
    saved = config_lib.load(config_file)
    assert saved.orchestration.pipeline_root == str(tmp_path / "relative" / "root")
    assert saved.data.interactions == str(tmp_path / "data" / "movielens" / "interactions.csv")
    assert saved.data.schema_dir == config_lib.DEFAULT_SCHEMA_DIR
    assert dataclasses.replace(saved, data=config.data, orchestration=config.orchestration,
                               serving=config.serving) == config
    source = pathlib.Path(dag_file).read_text()
    compile(source, dag_file, "exec")  # valid Python
    # Airflow's safe mode only parses files containing both words.
    assert "airflow" in source and "dag" in source


def test_kubeflow_spec_loads_with_kfp_and_has_every_component(tmp_path):
    from kfp import components  # pylint: disable=import-outside-toplevel
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=import-outside-toplevel
    out = tmp_path / "spec.json"
    assert cli.main(["compile", "kubeflow", "--config", str(REPO / "configs" / "movielens.yaml"),
                     *[arg for o in GCS for arg in ("--set", o)], "--out", str(out)]) == 0
    spec = json.loads(out.read_text())
    job = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
    assert job.runtime_config.gcs_output_directory == "gs://bucket/root"
    loaded = components.load_component_from_text(yaml.safe_dump(spec["pipelineSpec"]))
    pipeline_spec = loaded.pipeline_spec
    tasks = pipeline_spec.root.dag.tasks
    assert loaded.name == "twotower-movielens"
    for task_id, upstream in UPSTREAM.items():
        assert upstream <= set(tasks[task_id].dependent_tasks), task_id
    assert {"InteractionsSchema", "ItemsSchema", "ModelValidator"} <= set(tasks)
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    assert len(containers) == 16  # every node but the resolver, which KFP runs itself
    assert {c["image"] for c in containers} == {"europe-docker.pkg.dev/p/r/twotower:1.2"}
    pool = next(c for name, c in
                ((n, e.get("container")) for n, e in executors.items())
                if name.startswith("NegativePoolBuilder"))
    assert "--runner=DataflowRunner" in pool["args"]
    text = out.read_text()
    assert f"{kubeflow_v2.CONTAINER_REPO}/schemas/movielens/interactions.pbtxt" in text
    assert "gs://bucket/data/interactions" in text and "gs://bucket/serving/twotower" in text


def test_kubeflow_spec_runs_the_trainer_as_a_vertex_job_of_several_replicas(tmp_path):
    out = tmp_path / "spec.json"
    overrides = (*GCS, "orchestration.trainer_workers=3", "orchestration.vertex_project=proj")
    assert cli.main(["compile", "kubeflow", "--config", str(REPO / "configs" / "movielens.yaml"),
                     *[arg for o in overrides for arg in ("--set", o)], "--out", str(out)]) == 0
    spec = json.loads(out.read_text())
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    trainer = next(e["container"] for name, e in executors.items() if name.startswith("Trainer"))
    assert "components.trainer.vertex.VertexTrainerExecutor" in trainer["args"]
    custom = json.loads(spec["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"][
        "parameters"]["custom_config"]["runtimeValue"]["constant"])
    pools = custom["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 2]
    assert {pool["container_spec"]["image_uri"] for pool in pools} == {
        "europe-docker.pkg.dev/p/r/twotower:1.2"}
    assert custom["ai_platform_training_args"]["project"] == "proj"
    assert custom["config"]["training"]["epochs"] == _config().training.epochs
    # Without the override the Trainer runs in its own pod, as before.
    assert cli.main(["compile", "kubeflow", "--config", str(REPO / "configs" / "movielens.yaml"),
                     *[arg for o in GCS for arg in ("--set", o)], "--out", str(out)]) == 0
    assert "VertexTrainerExecutor" not in out.read_text()


def test_local_runs_refuse_a_trainer_cluster_and_vertex_needs_a_project():
    with pytest.raises(ConfigError, match=r"orchestration.trainer_workers: got 2; local and "
                                          r"Airflow runs train in one process"):
        pipeline_lib.create_pipeline(_config("orchestration.trainer_workers=2",
                                             "orchestration.vertex_project=p"))
    with pytest.raises(ConfigError, match="orchestration.vertex_project: got ''; expected a "
                                          "Google Cloud project"):
        _config("orchestration.trainer_workers=2")


def test_kubeflow_refuses_relative_paths():
    with pytest.raises(ConfigError, match="data.interactions: got 'data/movielens/interactions"
                                          ".csv'; Kubeflow pods cannot read relative local "
                                          "paths: use a URI such as gs://"):
        kubeflow_v2.container_config(_config())
    with pytest.raises(ConfigError, match="orchestration.pipeline_root: got 'runs/movielens'"):
        kubeflow_v2.container_config(_config(*GCS[:2], "serving.base_path=/mnt/models",
                                             "orchestration.pipeline_root=runs/movielens"))


def test_dockerfile_installs_where_the_spec_reads_schemas():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"WORKDIR {kubeflow_v2.CONTAINER_REPO}" in dockerfile
    assert "-c constraints.txt" in dockerfile and "TF_USE_LEGACY_KERAS=1" in dockerfile
    assert "COPY schemas" in dockerfile


def test_uri_folders_and_patterns_need_no_filesystem():
    assert pipeline_lib._split_pattern("gs://b/data/") == ("gs://b/data", "*")  # pylint: disable=protected-access
    assert pipeline_lib._split_pattern("gs://b/data/*.csv") == ("gs://b/data", "*.csv")  # pylint: disable=protected-access
    assert paths.absolute("gs://b/x") == "gs://b/x"


@pytest.mark.parametrize("override, message", [
    ("orchestration.schedule=every day", "orchestration.schedule: got 'every day'"),
    ("orchestration.start_date=2026-13-01", "orchestration.start_date: got '2026-13-01'"),
    ("orchestration.pipeline_name=my pipeline", "orchestration.pipeline_name: got 'my pipeline'"),
])
def test_orchestration_config_errors_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        _config(override)


def _compiled_beam_args(pipeline, node_id):
    from tfx.dsl.compiler import compiler  # pylint: disable=import-outside-toplevel
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2  # pylint: disable=import-outside-toplevel
    ir = compiler.Compiler().compile(pipeline)
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    spec = executable_spec_pb2.BeamExecutableSpec()
    deployment.executor_specs[node_id].Unpack(spec)
    return [arg.value.string_value for arg in spec.beam_pipeline_args_placeholders]


def test_a_component_gets_its_own_beam_args_after_the_pipelines(tmp_path):
    one_process = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    config = _config(f"orchestration.pipeline_root={tmp_path / 'root'}",
                     "orchestration.beam_pipeline_args=[--direct_running_mode=multi_processing,"
                     " --direct_num_workers=2]",
                     "orchestration.component_beam_pipeline_args={NegativePoolBuilder: "
                     "[--direct_running_mode=in_memory, --direct_num_workers=1]}")
    pipeline = pipeline_lib.create_pipeline(config)
    pool = _compiled_beam_args(pipeline, "NegativePoolBuilder")
    assert pool[:2] == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert pool[-2:] == one_process  # later flags win in Beam's argument parsing
    assert not set(one_process) & set(_compiled_beam_args(pipeline, "InteractionsStatisticsGen"))


def test_beam_args_for_a_component_that_is_not_a_beam_one_name_those_that_are(tmp_path):
    config = _config(f"orchestration.pipeline_root={tmp_path / 'root'}",
                     "orchestration.component_beam_pipeline_args={Trainer: [--x=1]}")
    with pytest.raises(ConfigError, match="'Trainer' is not a Beam-based component.*"
                                          "NegativePoolBuilder"):
        pipeline_lib.create_pipeline(config)


@pytest.mark.parametrize("override", ["index.repeat_weight=0.5", "index.history_policy=exclude"])
def test_history_settings_without_a_history_feature_name_the_fix(tmp_path, override):
    config = _config(f"orchestration.pipeline_root={tmp_path / 'root'}", override)
    with pytest.raises(ConfigError, match="declares no feature of kind history: declare one"):
        pipeline_lib.create_pipeline(config)


def test_an_anonymous_contract_needs_the_query_features(tmp_path):
    folder = tmp_path / "contract"
    shutil.copytree(config_lib.DEFAULT_SCHEMA_DIR, folder)
    declared = (folder / "features.yaml").read_text().replace(
        "user_id: {role: user_id}", "user_id: {role: ignored}")
    (folder / "features.yaml").write_text("users: anonymous\n" + declared)
    config = _config(f"orchestration.pipeline_root={tmp_path / 'root'}",
                     f"data.schema_dir={folder}", "model.use_features=false")
    with pytest.raises(ConfigError, match="anonymous users, so the query tower reads only its "
                                          "query features, but model.use_features is false"):
        pipeline_lib.create_pipeline(config)


def _node_properties(config, node_id):
    node = next(node for node in pipeline_lib.create_pipeline(config).components
                if node.id == node_id)
    return json.dumps(node.exec_properties, sort_keys=True, default=str)


def test_editing_serving_index_or_a_gate_leaves_the_trainers_properties_unchanged():
    """The Trainer's properties are TFX's cache key: they carry only what it reads."""
    base = _node_properties(_config(), "Trainer")
    others = _config("serving.grpc_port=9000", "serving.max_batch_size=64", "index.k=50",
                     "validation.min_recall=0.5", "orchestration.retries=7",
                     "pool.max_unknown_item_share=0.2", "data.eval_percent=30")
    assert _node_properties(others, "Trainer") == base
    for read in ("training.learning_rate=0.0123", "validation.max_eval_interactions=500",
                 "model.temperature=0.123", "orchestration.separate_processes=false"):
        assert _node_properties(_config(read), "Trainer") != base, read


def test_the_pool_builder_takes_the_pool_section_field_by_field():
    config = _config("pool.sampler=popularity", "pool.alpha=0.5", "pool.seed=3")
    properties = json.loads(_node_properties(config, "NegativePoolBuilder"))
    assert {name: properties[name] for name in ("sampler", "alpha", "seed")} == {
        "sampler": "popularity", "alpha": 0.5, "seed": 3}
    assert properties["max_unknown_item_share"] == config.pool.max_unknown_item_share
