"""Executors of the ingestion components: schema-typed ExampleGen and the validation gate."""
from __future__ import annotations

import json
import os
from typing import Any, Optional

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

from twotower import keys
from components.ingestion import (drift, history, report, rows, shuffle, spans, splits,
                                  window)
from twotower import event_times
from twotower.errors import DataValidationError, IngestionError
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2


def _input_pattern(exec_properties: dict[str, Any]) -> str:
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    return os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                        input_config.splits[0].pattern)


SCRATCH = ".scratch"  # under the output artifact: pass 1's results and the shuffle buckets
KINDS_FILE = "kinds.json"
CUTOFF_FILE = "cutoff"


class ExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads CSV / Parquet / TFRecord, types columns by the schema, splits by time or hash.

    Three Beam pipelines, none of which makes a runner hold the data:
      1. the column kinds (rows.py) and a quantile time split's cutoff (splits.py), which
         as side inputs of the next pass would make the runner buffer every row;
      2. typing, the split, and each split's records into hash buckets (shuffle.py);
      3. each bucket shuffled into an output shard (shuffle.py), instead of TFX's
         Reshuffle, which the DirectRunner holds in memory.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema: schema_pb2.Schema | None = None
        self._scratch = ""
        self._examples: list[types.Artifact] = []
        self._buckets = 1
        self._written: list[str] = []
        self._time: Optional[rows.EventTime] = None

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        schema_uri = artifact_utils.get_single_uri(input_dict[keys.SCHEMA_KEY])
        self._schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(schema_uri))
        self._examples = output_dict[keys.EXAMPLES_KEY]
        self._scratch = os.path.join(artifact_utils.get_single_uri(self._examples), SCRATCH)
        self._written = []
        time_feature = exec_properties.get(keys.TIME_FEATURE_KEY)
        self._time = rows.EventTime(
            time_feature, exec_properties.get(keys.TIME_FORMAT_KEY) or event_times.SECONDS
        ) if time_feature else None
        _ingest_requested_span(output_dict, exec_properties)
        source = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                              exec_properties.get(keys.SPAN_PATTERN_KEY) or "")
        for artifact in output_dict[keys.EXAMPLES_KEY]:
            artifact.set_string_custom_property(keys.SPAN_SOURCE_PROPERTY, source)
        super().Do(input_dict, output_dict, exec_properties)
        splits_to_shuffle = [(self._bucket_folder(name), artifact_utils.get_split_uri(
            self._examples, name)) for name in self._written]
        logging.info("Shuffling %d split(s) in %d bucket(s) each", len(splits_to_shuffle),
                     self._buckets)
        with self._make_beam_pipeline() as pipeline:
            shuffle.shuffle_splits(pipeline, splits_to_shuffle, self._buckets)
        for _, output_dir in splits_to_shuffle:
            shuffle.ensure_a_file(output_dir)
        fileio.rmtree(self._scratch)

    def _bucket_folder(self, split: str) -> str:
        return os.path.join(self._scratch, "buckets", split)

    def _read_rows(self, pipeline: beam.Pipeline, pattern: str, input_format: str,
                   prefix: str = "") -> beam.PCollection:
        """Raw rows of CSV or Parquet input, the event time (if any) as integer seconds."""
        reader = rows.ReadCsvRows if input_format == "csv" else rows.ReadParquetRows
        return pipeline | f"{prefix}ReadRows" >> reader(pattern, self._time)  # pylint: disable=no-value-for-parameter

    def _read(self, pipeline: beam.Pipeline, pattern: str, input_format: str,
              kinds: Optional[dict[str, int]]) -> beam.PCollection:
        """tf.Examples from the input files, typed by `kinds` (pass 1; unused for
        TFRecord input)."""
        if input_format == "tfrecord":
            if not tf.io.gfile.glob(pattern):
                raise IngestionError(f"no input files match {pattern}")
            return (pipeline
                    | "ReadTFRecord" >> beam.io.ReadFromTFRecord(pattern)
                    | "ParseExample" >> beam.Map(tf.train.Example.FromString))
        return (self._read_rows(pipeline, pattern, input_format)
                | "RowsToExamples" >> rows.RowsToExamples(kinds or {}))  # pylint: disable=no-value-for-parameter

    def _first_pass(self, pattern: str, input_format: str, time_feature: Optional[str],
                    quantile: float) -> tuple[Optional[dict[str, int]], Optional[int]]:
        """Pass 1: (column kinds, None for TFRecord input; the time split's cutoff at
        `quantile` of time_feature, None without time_feature, 0 for an input without
        rows: both splits are then empty)."""
        tfrecord = input_format == "tfrecord"
        if tfrecord and time_feature is None:
            return None, None
        kinds_path = os.path.join(self._scratch, KINDS_FILE)
        cutoff_path = os.path.join(self._scratch, CUTOFF_FILE)
        with self._make_beam_pipeline() as pipeline:
            if tfrecord:
                times = (self._read(pipeline, pattern, input_format, None)
                         | "QuantileCutoff" >> splits.QuantileCutoff(time_feature, quantile))  # pylint: disable=no-value-for-parameter
            else:
                raw = self._read_rows(pipeline, pattern, input_format, "Kinds")
                _ = (raw
                     | "TargetKinds" >> rows.TargetKinds(self._schema)  # pylint: disable=no-value-for-parameter
                     | "KindsToJson" >> beam.Map(json.dumps)
                     | "WriteKinds" >> beam.io.WriteToText(kinds_path, num_shards=1,
                                                           shard_name_template=""))
                times = None if time_feature is None else (
                    raw | "RowQuantileCutoff" >> splits.RowQuantileCutoff(time_feature, quantile))  # pylint: disable=no-value-for-parameter
            if times is not None:
                _ = times | "WriteCutoff" >> beam.io.WriteToText(
                    cutoff_path, num_shards=1, shard_name_template="")
        kinds = None if tfrecord else json.loads(_text(kinds_path) or "{}")
        cutoff = None if time_feature is None else int(_text(cutoff_path) or 0)
        return kinds, cutoff

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # Abstract in BaseExampleGenExecutor; its only caller is the base
        # GenerateExamplesByBeam, which this class overrides, so it is never called.
        raise NotImplementedError("GenerateExamplesByBeam is overridden")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: dict[str, Any]) -> dict[str, beam.PCollection]:
        """Passes 1 and 2 (class docstring). Returns no splits: the base Do would write
        them through TFX's WriteSplit and its Reshuffle; they go to shuffle buckets here and
        Do shuffles them into the output after the pipeline ran."""
        pattern = _input_pattern(exec_properties)
        input_format = exec_properties[keys.INPUT_FORMAT_KEY]
        method = exec_properties[keys.SPLIT_METHOD_KEY]
        time_feature = exec_properties.get(keys.TIME_FEATURE_KEY)
        quantile = float(exec_properties.get(keys.CUTOFF_QUANTILE_KEY) or 0)
        cutoff = exec_properties.get(keys.CUTOFF_TIMESTAMP_KEY)
        needs_cutoff = method == keys.SPLIT_TIME and cutoff in (None, -1)
        kinds, computed = self._first_pass(pattern, input_format,
                                           time_feature if needs_cutoff else None, quantile)
        if needs_cutoff:
            cutoff = computed
        logging.info("Reading %s input %s", input_format, pattern)
        examples = self._read(pipeline, pattern, input_format, kinds)
        history_feature = exec_properties.get(keys.HISTORY_FEATURE_KEY)
        if history_feature:
            examples = examples | "AddHistory" >> history.AddHistory(  # pylint: disable=no-value-for-parameter
                exec_properties[keys.USER_FEATURE_KEY], exec_properties[keys.ITEM_FEATURE_KEY],
                time_feature, history_feature, int(exec_properties[keys.HISTORY_LENGTH_KEY]))
        if method == keys.SPLIT_NONE:
            outputs = {keys.CATALOG_SPLIT: examples}
        elif method == keys.SPLIT_TIME:
            train, evaluation = examples | "TimeSplit" >> splits.TimeSplit(  # pylint: disable=no-value-for-parameter
                time_feature, quantile, int(cutoff))
            outputs = {keys.TRAIN_SPLIT: train, keys.EVAL_SPLIT: evaluation}
        else:
            train, evaluation = examples | "HashSplit" >> splits.HashSplit(  # pylint: disable=no-value-for-parameter
                int(exec_properties[keys.EVAL_PERCENT_KEY]))
            outputs = {keys.TRAIN_SPLIT: train, keys.EVAL_SPLIT: evaluation}
        self._buckets = shuffle.bucket_count(_input_bytes(pattern))
        for name, split in outputs.items():
            _ = split | f"Buckets[{name}]" >> shuffle.WriteBuckets(  # pylint: disable=no-value-for-parameter
                self._bucket_folder(name), self._buckets)
        self._written = list(outputs)
        return {}


def _text(path: str) -> str:
    """A scratch file's stripped text; "" when a pass wrote none (no rows)."""
    return io_utils.read_string_file(path).strip() if fileio.exists(path) else ""


def _input_bytes(pattern: str) -> int:
    """Total size of the files matching `pattern`."""
    return sum(tf.io.gfile.stat(path).length for path in tf.io.gfile.glob(pattern))


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
