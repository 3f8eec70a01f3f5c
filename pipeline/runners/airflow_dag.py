"""The pipeline as an Apache Airflow DAG, built by TFX's AirflowDagRunner.

One task per pipeline node, ordered by the pipeline's channels; each task runs its TFX
component in the Airflow worker with the same pipeline root, ML Metadata (SQLite at
orchestration.metadata_path) and Beam arguments as `twotower run`, so cached components
are shared between local and scheduled runs. With date-named spans each DAG run ingests its
logical date's span, so `airflow dags backfill` catches up one span per date, in order.
`twotower compile airflow --out DIR` writes a DAG file that builds this DAG from the config
saved beside it.
"""
from __future__ import annotations

import datetime
import os
from typing import Any

from components.ingestion import spans
from twotower import config as config_lib
from twotower import paths
from twotower.config import PipelineConfig
from twotower.errors import TwoTowerError
from pipeline.pipeline import create_pipeline, sqlite_metadata

RETRY_DELAY = datetime.timedelta(minutes=5)


def dag_settings(config: PipelineConfig) -> dict[str, Any]:
    """Keyword arguments of airflow.models.DAG from orchestration.* (schedule, start date,
    retries, task timeout); one run at a time and no catch-up of missed schedules."""
    orchestration = config.orchestration
    start = datetime.datetime.fromisoformat(orchestration.start_date).replace(
        tzinfo=datetime.timezone.utc)
    default_args: dict[str, Any] = {"owner": "twotower", "retries": orchestration.retries,
                                    "retry_delay": RETRY_DELAY}
    if orchestration.task_timeout_minutes:
        default_args["execution_timeout"] = datetime.timedelta(
            minutes=orchestration.task_timeout_minutes)
    return {"schedule": None if orchestration.schedule == "none" else orchestration.schedule,
            "start_date": start, "catchup": False, "max_active_runs": 1,
            "default_args": default_args,
            "tags": ["twotower"],
            "description": f"twotower retrieval pipeline {orchestration.pipeline_name}"}


def _unique_output_names(driver_class: type) -> type:
    """The driver, naming output artifacts `<component id>:<output key>:<run id>`.

    TFX's legacy driver (the one AirflowDagRunner's launchers use) names them
    `<output key>:<run id>`, and ML Metadata keeps artifact names unique per type: our two
    ingestion branches (interactions, items) each have an ImportSchemaGen, StatisticsGen,
    ExampleValidator ... with the same output keys, so the second one of a run would fail.
    """
    class Driver(driver_class):  # type: ignore[misc, valid-type]
        def _prepare_output_artifacts(self, input_artifacts, output_dict, exec_properties,
                                      execution_id, pipeline_info, component_info):
            outputs = super()._prepare_output_artifacts(
                input_artifacts, output_dict, exec_properties, execution_id, pipeline_info,
                component_info)
            for key, artifacts in outputs.items():
                for artifact in artifacts:
                    artifact.name = (f"{component_info.component_id}:{key}:"
                                     f"{pipeline_info.run_id}")
            return outputs
    Driver.__name__ = f"UniquelyNamed{driver_class.__name__}"
    return Driver


def _launcher_class() -> type:
    from tfx.orchestration.launcher import in_process_component_launcher  # pylint: disable=import-outside-toplevel

    class Launcher(in_process_component_launcher.InProcessComponentLauncher):
        """TFX's in-process launcher with _unique_output_names drivers."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._driver_class = _unique_output_names(self._driver_class)
    return Launcher


def create_dag(config: PipelineConfig) -> Any:
    """The Airflow DAG (dag_id = orchestration.pipeline_name).

    Raises:
      TwoTowerError: if Apache Airflow is not installed (names the install command).
    """
    try:
        from tfx.orchestration.airflow import airflow_dag_runner  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise TwoTowerError("Apache Airflow is not installed: pip install -c constraints.txt "
                            "-e '.[airflow]'") from e
    runner = airflow_dag_runner.AirflowDagRunner(airflow_dag_runner.AirflowPipelineConfig(
        airflow_dag_config=dag_settings(config), supported_launcher_classes=[_launcher_class()]))
    dag = runner.run(create_pipeline(config, sqlite_metadata(config), span=dag_span(config)))
    for task in dag.tasks:
        # TFX hands each task its component's own exec_properties dict as the templated
        # op_kwargs and writes the rendered values back into the component, so a process
        # running several DAG runs (backfill with the DebugExecutor) would keep the first
        # run's `{{ ds }}`; a copy keeps the template for every run.
        properties = task.op_kwargs.get("exec_properties")
        if properties is not None:
            task.op_kwargs = {**task.op_kwargs, "exec_properties": dict(properties)}
    return dag


def dag_span(config: PipelineConfig) -> str:
    """The span a DAG run ingests: its logical date (`{{ ds }}`, rendered by Airflow in the
    task's arguments) for date patterns unless spans.span names one; else spans.span."""
    if config.spans.span == spans.LATEST and spans.is_date_pattern(config.data.interactions):
        return spans.AIRFLOW_LOGICAL_DATE
    return config.spans.span


DAG_FILE = '''"""Airflow DAG "{dag_id}": the twotower pipeline, written by `twotower compile airflow`.

Airflow imports this file from its dags folder and builds the DAG from {config_file}
beside it: the effective config at compile time, relative paths made absolute. Edit that
YAML (or recompile) to change the pipeline. Needs twotower installed with its airflow extra
(pip install -c constraints.txt -e '.[airflow]') in the scheduler's and workers' Python.
"""
import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from twotower import config as config_lib  # noqa: E402  pylint: disable=wrong-import-position
from pipeline.runners import airflow_dag  # noqa: E402  pylint: disable=wrong-import-position

DAG = airflow_dag.create_dag(
    config_lib.load(str(pathlib.Path(__file__).with_name("{config_file}"))))
'''


def write_dag_file(config: PipelineConfig, out_dir: str) -> tuple[str, str]:
    """Writes `<pipeline_name>_dag.py` and `<pipeline_name>.yaml` into out_dir (Airflow's
    dags folder); returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    name = config.orchestration.pipeline_name
    config_file = os.path.join(out_dir, f"{name}.yaml")
    with open(config_file, "w", encoding="utf-8") as f:
        f.write(config_lib.to_yaml(paths.with_absolute_paths(config)))
    dag_file = os.path.join(out_dir, f"{name.replace('-', '_').replace('.', '_')}_dag.py")
    with open(dag_file, "w", encoding="utf-8") as f:
        f.write(DAG_FILE.format(dag_id=name, config_file=os.path.basename(config_file)))
    return dag_file, config_file
