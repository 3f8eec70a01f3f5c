"""Executors of the ingestion components: schema-typed ExampleGen and the validation gate."""
from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import keys
from components.ingestion import drift, history, report, rows, spans, splits, window
from pipeline.errors import DataValidationError, IngestionError
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2


def _input_pattern(exec_properties: dict[str, Any]) -> str:
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    return os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                        input_config.splits[0].pattern)


CUTOFF_SCRATCH = ".cutoff"  # under the output artifact, removed before the split is written


class ExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads CSV / Parquet / TFRecord, types columns by the schema, splits by time or hash.

    A quantile time split reads the input twice: once for the cutoff (its own Beam
    pipeline), once to split with it, so no runner has to hold the data meanwhile.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema: schema_pb2.Schema | None = None
        self._scratch = ""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        schema_uri = artifact_utils.get_single_uri(input_dict[keys.SCHEMA_KEY])
        self._schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(schema_uri))
        self._scratch = os.path.join(artifact_utils.get_single_uri(
            output_dict[keys.EXAMPLES_KEY]), CUTOFF_SCRATCH)
        _ingest_requested_span(output_dict, exec_properties)
        source = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                              exec_properties.get(keys.SPAN_PATTERN_KEY) or "")
        for artifact in output_dict[keys.EXAMPLES_KEY]:
            artifact.set_string_custom_property(keys.SPAN_SOURCE_PROPERTY, source)
        super().Do(input_dict, output_dict, exec_properties)

    def _read(self, pipeline: beam.Pipeline, pattern: str, input_format: str,
              prefix: str = "") -> beam.PCollection:
        """tf.Examples from the input files, typed by the schema."""
        if input_format == "tfrecord":
            if not tf.io.gfile.glob(pattern):
                raise IngestionError(f"no input files match {pattern}")
            return (pipeline
                    | f"{prefix}ReadTFRecord" >> beam.io.ReadFromTFRecord(pattern)
                    | f"{prefix}ParseExample" >> beam.Map(tf.train.Example.FromString))
        reader = rows.ReadCsvRows if input_format == "csv" else rows.ReadParquetRows
        return (pipeline
                | f"{prefix}ReadRows" >> reader(pattern)  # pylint: disable=no-value-for-parameter
                | f"{prefix}RowsToExamples" >> rows.RowsToExamples(self._schema))  # pylint: disable=no-value-for-parameter

    def _quantile_cutoff(self, pattern: str, input_format: str, time_feature: str,
                         quantile: float) -> int:
        """The time split's cutoff, computed in a Beam pass of its own (splits.py says
        why); 0 for an input without rows (both splits are then empty)."""
        with self._make_beam_pipeline() as pipeline:
            _ = (self._read(pipeline, pattern, input_format, "Cutoff")
                 | "QuantileCutoff" >> splits.QuantileCutoff(time_feature, quantile)  # pylint: disable=no-value-for-parameter
                 | "WriteCutoff" >> beam.io.WriteToText(
                     os.path.join(self._scratch, "cutoff"), num_shards=1,
                     shard_name_template=""))
        path = os.path.join(self._scratch, "cutoff")
        text = io_utils.read_string_file(path).strip() if fileio.exists(path) else ""
        fileio.rmtree(self._scratch)
        return int(text) if text else 0

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # Abstract in BaseExampleGenExecutor; its only caller is the base
        # GenerateExamplesByBeam, which this class overrides, so it is never called.
        raise NotImplementedError("GenerateExamplesByBeam is overridden")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: dict[str, Any]) -> dict[str, beam.PCollection]:
        pattern = _input_pattern(exec_properties)
        input_format = exec_properties[keys.INPUT_FORMAT_KEY]
        logging.info("Reading %s input %s", input_format, pattern)
        examples = self._read(pipeline, pattern, input_format)
        history_feature = exec_properties.get(keys.HISTORY_FEATURE_KEY)
        if history_feature:
            examples = examples | "AddHistory" >> history.AddHistory(  # pylint: disable=no-value-for-parameter
                exec_properties[keys.USER_FEATURE_KEY], exec_properties[keys.ITEM_FEATURE_KEY],
                exec_properties[keys.TIME_FEATURE_KEY], history_feature,
                int(exec_properties[keys.HISTORY_LENGTH_KEY]))
        method = exec_properties[keys.SPLIT_METHOD_KEY]
        if method == keys.SPLIT_NONE:
            return {keys.CATALOG_SPLIT: examples}
        if method == keys.SPLIT_TIME:
            time_feature = exec_properties[keys.TIME_FEATURE_KEY]
            quantile = float(exec_properties[keys.CUTOFF_QUANTILE_KEY])
            cutoff = exec_properties.get(keys.CUTOFF_TIMESTAMP_KEY)
            if cutoff in (None, -1):
                cutoff = self._quantile_cutoff(pattern, input_format, time_feature, quantile)
            train, evaluation = examples | "TimeSplit" >> splits.TimeSplit(  # pylint: disable=no-value-for-parameter
                time_feature, quantile, int(cutoff))
        else:
            train, evaluation = examples | "HashSplit" >> splits.HashSplit(  # pylint: disable=no-value-for-parameter
                int(exec_properties[keys.EVAL_PERCENT_KEY]))
        return {keys.TRAIN_SPLIT: train, keys.EVAL_SPLIT: evaluation}


def _ingest_requested_span(output_dict: dict[str, list[types.Artifact]],
                           exec_properties: dict[str, Any]) -> None:
    """Ingests the span asked for when the driver resolved another one.

    SpanDriver resolves spans.span before this runs; Kubeflow v2's own ExampleGen driver
    knows nothing of it and resolves the latest span. Then the pattern and the output's
    span are set here from the unresolved pattern kept in span_pattern.
    """
    pattern = exec_properties.get(keys.SPAN_PATTERN_KEY) or ""
    request = exec_properties.get(keys.SPAN_KEY) or spans.LATEST
    if not spans.has_placeholders(pattern) or request == spans.LATEST:
        return
    number = spans.span_number(request, pattern)
    if number == exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME):
        return
    found, resolved = spans.resolve(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                                    pattern, number,
                                    float(exec_properties.get(keys.SPAN_WAIT_MINUTES_KEY) or 0))
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    input_config.splits[0].pattern = resolved
    exec_properties[standard_component_specs.INPUT_CONFIG_KEY] = proto_utils.proto_to_json(
        input_config)
    exec_properties[example_gen_utils.SPAN_PROPERTY_NAME] = found
    for artifact in output_dict[keys.EXAMPLES_KEY]:
        artifact.span = found


class StatisticsExecutor(statistics_gen_executor.Executor):
    """TFX's StatisticsGen executor, whose statistics carry their Examples' span.

    ExampleGen records a span as a custom property, while TFX's StatisticsGen copies the
    (unset) span property, so its statistics all say span 0; drift baselines and windows
    (window.py) need the real one, and the input the span came from.
    """

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
        statistics = artifact_utils.get_single_instance(output_dict[keys.STATISTICS_KEY])
        statistics.span = window.span_of(examples)
        window.copy_source(examples, statistics)


class ValidationGateExecutor(base_executor.BaseExecutor):
    """Stops the run when ExampleValidator found anomalies or a split is empty."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        dataset = exec_properties[keys.DATASET_NAME_KEY]
        statistics = artifact_utils.get_single_instance(input_dict[keys.STATISTICS_KEY])
        anomalies = artifact_utils.get_single_instance(input_dict[keys.ANOMALIES_KEY])
        split_names = artifact_utils.decode_split_names(statistics.split_names)
        found = report.DatasetReport(dataset=dataset)
        for split in split_names:
            stats = stats_artifact_utils.load_statistics(statistics, split).proto()
            found.add_split(split, stats, _read_anomalies(anomalies, split))
        _check_drift(found, statistics, input_dict.get(keys.BASELINE_STATISTICS_KEY) or [],
                     json.loads(exec_properties.get(keys.DRIFT_THRESHOLDS_KEY) or "{}"))
        report_artifact = artifact_utils.get_single_instance(output_dict[keys.REPORT_KEY])
        report_artifact.set_int_custom_property(keys.SPAN_PROPERTY, int(statistics.span or 0))
        window.copy_source(statistics, report_artifact)
        out_uri = report_artifact.uri
        io_utils.write_string_file(os.path.join(out_uri, keys.VALIDATION_REPORT_FILE),
                                   json.dumps(found.to_dict(), indent=2))
        if not found.ok:
            raise DataValidationError(found.describe())
        logging.info("Validation passed for %s: %s", dataset, found.describe())


def _check_drift(found: report.DatasetReport, statistics: types.Artifact,
                 baselines: list[types.Artifact], thresholds: dict[str, float]) -> None:
    """Adds the drift of the train split against the previous validated span's, if any."""
    if not baselines or not thresholds:
        return
    baseline = baselines[0]
    split = keys.TRAIN_SPLIT if keys.TRAIN_SPLIT in artifact_utils.decode_split_names(
        statistics.split_names) else keys.CATALOG_SPLIT
    current = stats_artifact_utils.load_statistics(statistics, split).proto()
    previous = stats_artifact_utils.load_statistics(baseline, split).proto()
    found.add_drift(split, drift.measure(current, previous, thresholds), f"span {baseline.span}")


def _read_anomalies(anomalies: types.Artifact, split: str) -> anomalies_pb2.Anomalies:
    path = os.path.join(artifact_utils.get_split_uri([anomalies], split),
                        example_validator_executor.DEFAULT_FILE_NAME)
    if not tf.io.gfile.exists(path):
        raise DataValidationError(f"{path} is missing; ExampleValidator did not validate "
                                  f"split '{split}'")
    return anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
