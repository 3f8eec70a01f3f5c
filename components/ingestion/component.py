"""Ingestion components: a schema-typed ExampleGen with time/hash splits, and a ValidationGate.

Usage (see pipeline/pipeline.py):

    schema = ImportSchemaGen(schema_file="schemas/movielens/interactions.pbtxt")
    gen = SchemaExampleGen(input_base="data/movielens", pattern="interactions.csv",
                           schema=schema.outputs["schema"], split_method="time",
                           time_feature="timestamp", cutoff_quantile=0.8)
    stats = StatisticsGen(examples=gen.outputs["examples"], schema=schema.outputs["schema"])
    anomalies = ExampleValidator(statistics=stats.outputs["statistics"],
                                 schema=schema.outputs["schema"])
    gate = ValidationGate(statistics=stats.outputs["statistics"],
                          anomalies=anomalies.outputs["anomalies"], dataset_name="interactions")

Outputs:
  SchemaExampleGen: `examples` (Examples) with splits `train`/`eval`, or `catalog` when
    split_method is "none".
  ValidationGate: `report` (DataValidationReport) holding `report.json`; the gate fails the
    run with a readable list of problems when there are anomalies or an empty split, so no
    component that consumes the report runs.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from tfx import types
from tfx.components.example_gen import component as example_gen_component
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.dsl.components.base import base_beam_component, base_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from twotower import keys
from components.ingestion import driver, executor, spans
from twotower import event_times
from twotower.config import DataConfig

INPUT_FORMATS = ("csv", "parquet", "tfrecord")
SPLIT_METHODS = (keys.SPLIT_TIME, keys.SPLIT_HASH, keys.SPLIT_NONE)
NO_CUTOFF = -1
DEFAULTS = DataConfig()


class DataValidationReport(types.Artifact):
    """The ValidationGate's verdict: example counts and problems per split (`report.json`)."""

    TYPE_NAME = "twotower.DataValidationReport"  # KFP v2 schema title form


class SchemaExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's spec plus the schema input and the split parameters."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        keys.INPUT_FORMAT_KEY: ExecutionParameter(type=str),
        keys.SPLIT_METHOD_KEY: ExecutionParameter(type=str),
        keys.TIME_FEATURE_KEY: ExecutionParameter(type=str),
        keys.TIME_FORMAT_KEY: ExecutionParameter(type=str),
        keys.CUTOFF_QUANTILE_KEY: ExecutionParameter(type=float),
        keys.CUTOFF_TIMESTAMP_KEY: ExecutionParameter(type=int),
        keys.EVAL_PERCENT_KEY: ExecutionParameter(type=int),
        keys.HISTORY_FEATURE_KEY: ExecutionParameter(type=str),
        keys.HISTORY_LENGTH_KEY: ExecutionParameter(type=int),
        keys.USER_FEATURE_KEY: ExecutionParameter(type=str),
        keys.ITEM_FEATURE_KEY: ExecutionParameter(type=str),
        keys.SPAN_KEY: ExecutionParameter(type=str),
        keys.SPAN_PATTERN_KEY: ExecutionParameter(type=str),
        keys.SPAN_WAIT_MINUTES_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {keys.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class SchemaExampleGen(example_gen_component.FileBasedExampleGen):
    """Reads CSV/Parquet/TFRecord files into Examples typed by a curated schema, then splits."""

    SPEC_CLASS = SchemaExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.ExampleGenExecutor)
    DRIVER_CLASS = driver.SpanDriver

    def __init__(self, input_base: str, pattern: str, schema: types.BaseChannel,
                 input_format: str = DEFAULTS.input_format,
                 split_method: str = DEFAULTS.split,
                 time_feature: str = "",
                 time_format: str = event_times.SECONDS,
                 cutoff_quantile: float = DEFAULTS.cutoff_quantile,
                 cutoff_timestamp: Optional[int] = DEFAULTS.cutoff_timestamp,
                 eval_percent: int = DEFAULTS.eval_percent, history_feature: str = "",
                 history_length: int = 0, user_feature: str = "",
                 item_feature: str = "", span: Any = spans.LATEST,
                 span_wait_minutes: int = 0) -> None:
        """Builds the component; checks argument combinations now, not mid-run.

        Defaults are twotower.config.DataConfig's.

        Args:
          input_base: Folder (local or gs://) holding the input files.
          pattern: File glob relative to input_base.
          schema: Channel of the curated Schema used to type the columns.
          input_format: "csv", "parquet" or "tfrecord" (tf.Example records).
          split_method: "time", "hash", or "none" (one split named "catalog").
          time_feature: The event-time column, for the time split and the history (the
            contract's event_time column).
          time_format: How the files write it (twotower/event_times.py); rows are read as
            integer seconds. TFRecord input must hold integer seconds already.
          cutoff_quantile: Quantile of event times used as the cutoff, in (0, 1).
          cutoff_timestamp: Explicit cutoff; overrides the quantile.
          eval_percent: Share of rows in eval for the hash split, 1-99.
          history_feature: When set, add this feature to every row: the user's last
            `history_length` items before the event (history.py); needs the time, user and
            item features.
          history_length: Items in a history.
          user_feature: The user id (for the history).
          item_feature: The item id (for the history).
          span: For a pattern with `{SPAN}` or `{YYYY}{MM}{DD}`: the span to ingest,
            `latest`, a span number or a date YYYY-MM-DD (spans.py); a str
            RuntimeParameter on Kubeflow, `{{ ds }}` under Airflow.
          span_wait_minutes: How long to wait for that span's files.

        Raises:
          ValueError: naming the bad argument and the allowed values.
        """
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        if split_method not in SPLIT_METHODS:
            raise ValueError(f"split_method must be one of {SPLIT_METHODS}, got {split_method!r}")
        if not 0.0 < cutoff_quantile < 1.0:
            raise ValueError(f"cutoff_quantile must be in (0, 1), got {cutoff_quantile}")
        if cutoff_timestamp is not None and cutoff_timestamp < 0:
            raise ValueError(f"cutoff_timestamp must be >= 0 or None, got {cutoff_timestamp}")
        if not 1 <= eval_percent <= 99:
            raise ValueError(f"eval_percent must be in [1, 99], got {eval_percent}")
        if split_method == keys.SPLIT_TIME and not time_feature:
            raise ValueError("split_method='time' needs a time_feature")
        bad_format = event_times.check_format(time_format)
        if bad_format:
            raise ValueError(f"time_format: {bad_format}")
        if isinstance(span, str) and span != spans.AIRFLOW_LOGICAL_DATE:
            spans.span_number(span, pattern)
        if span_wait_minutes < 0:
            raise ValueError(f"span_wait_minutes must be >= 0, got {span_wait_minutes}")
        if history_feature and not (time_feature and user_feature and item_feature
                                    and history_length >= 1):
            raise ValueError("history_feature needs time_feature, user_feature, item_feature "
                             "and history_length >= 1")
        input_config = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="single_split", pattern=pattern)])
        if split_method == keys.SPLIT_NONE:
            output_config = example_gen_pb2.Output()
            input_config.splits[0].name = keys.CATALOG_SPLIT
        else:
            output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=keys.TRAIN_SPLIT,
                                                      hash_buckets=100 - eval_percent),
                    example_gen_pb2.SplitConfig.Split(name=keys.EVAL_SPLIT,
                                                      hash_buckets=eval_percent)]))
        spec = SchemaExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=None,
            range_config=None,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            schema=schema,
            input_format=input_format,
            split_method=split_method,
            time_feature=time_feature, time_format=time_format,
            cutoff_quantile=cutoff_quantile,
            cutoff_timestamp=NO_CUTOFF if cutoff_timestamp is None else cutoff_timestamp,
            eval_percent=eval_percent, history_feature=history_feature,
            history_length=history_length, user_feature=user_feature, item_feature=item_feature,
            span_request=span, span_pattern=pattern, span_wait_minutes=span_wait_minutes,
            examples=types.Channel(type=standard_artifacts.Examples))
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)


class SpanStatisticsGen(StatisticsGen):
    """TFX's StatisticsGen whose statistics carry their Examples' span (StatisticsExecutor)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.StatisticsExecutor)


class ValidationGateSpec(types.ComponentSpec):
    """Inputs: statistics and anomalies of one data set. Output: the report."""

    PARAMETERS = {keys.DATASET_NAME_KEY: ExecutionParameter(type=str),
                  keys.DRIFT_THRESHOLDS_KEY: ExecutionParameter(type=str)}
    INPUTS = {
        keys.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        keys.ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        keys.BASELINE_STATISTICS_KEY: ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {keys.REPORT_KEY: ChannelParameter(type=DataValidationReport)}


class ValidationGate(base_component.BaseComponent):
    """Fails the run, with a readable report, on anomalies or empty splits."""

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.ValidationGateExecutor)

    def __init__(self, statistics: types.BaseChannel, anomalies: types.BaseChannel,
                 dataset_name: str, baseline_statistics: Optional[types.BaseChannel] = None,
                 drift_thresholds: Optional[Mapping[str, float]] = None) -> None:
        """Builds the gate.

        Args:
          statistics: This run's statistics (its report carries their span).
          anomalies: ExampleValidator's anomalies of those statistics.
          dataset_name: Names the data set in the report.
          baseline_statistics: The previous validated span's statistics (a resolver's
            output; empty on the first span); with drift_thresholds, the drift gate.
          drift_thresholds: Feature -> largest allowed drift distance (drift.py).
        """
        if not dataset_name:
            raise ValueError("dataset_name must name the data set (e.g. 'interactions')")
        if drift_thresholds and baseline_statistics is None:
            raise ValueError("drift_thresholds need baseline_statistics to compare with")
        spec = ValidationGateSpec(statistics=statistics, anomalies=anomalies,
                                  baseline_statistics=baseline_statistics,
                                  dataset_name=dataset_name,
                                  drift_thresholds=json.dumps(dict(drift_thresholds or {}),
                                                              sort_keys=True),
                                  report=types.Channel(type=DataValidationReport))
        super().__init__(spec=spec)
