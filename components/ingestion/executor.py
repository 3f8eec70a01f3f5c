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
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import keys
from components.ingestion import history, report, rows, splits
from pipeline.errors import DataValidationError, IngestionError
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2


def _input_pattern(exec_properties: dict[str, Any]) -> str:
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    return os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                        input_config.splits[0].pattern)


class ExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads CSV / Parquet / TFRecord, types columns by the schema, splits by time or hash."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema: schema_pb2.Schema | None = None

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        schema_uri = artifact_utils.get_single_uri(input_dict[keys.SCHEMA_KEY])
        self._schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(schema_uri))
        super().Do(input_dict, output_dict, exec_properties)

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # Abstract in BaseExampleGenExecutor; its only caller is the base
        # GenerateExamplesByBeam, which this class overrides, so it is never called.
        raise NotImplementedError("GenerateExamplesByBeam is overridden")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: dict[str, Any]) -> dict[str, beam.PCollection]:
        pattern = _input_pattern(exec_properties)
        input_format = exec_properties[keys.INPUT_FORMAT_KEY]
        logging.info("Reading %s input %s", input_format, pattern)
        if input_format == "tfrecord":
            if not tf.io.gfile.glob(pattern):
                raise IngestionError(f"no input files match {pattern}")
            examples = (pipeline
                        | "ReadTFRecord" >> beam.io.ReadFromTFRecord(pattern)
                        | "ParseExample" >> beam.Map(tf.train.Example.FromString))
        else:
            reader = rows.ReadCsvRows if input_format == "csv" else rows.ReadParquetRows
            examples = (pipeline
                        | "ReadRows" >> reader(pattern)  # pylint: disable=no-value-for-parameter
                        | "RowsToExamples" >> rows.RowsToExamples(self._schema))  # pylint: disable=no-value-for-parameter
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
            cutoff = exec_properties.get(keys.CUTOFF_TIMESTAMP_KEY)
            train, evaluation = examples | "TimeSplit" >> splits.TimeSplit(  # pylint: disable=no-value-for-parameter
                exec_properties[keys.TIME_FEATURE_KEY],
                float(exec_properties[keys.CUTOFF_QUANTILE_KEY]),
                None if cutoff in (None, -1) else int(cutoff))
        else:
            train, evaluation = examples | "HashSplit" >> splits.HashSplit(  # pylint: disable=no-value-for-parameter
                int(exec_properties[keys.EVAL_PERCENT_KEY]))
        return {keys.TRAIN_SPLIT: train, keys.EVAL_SPLIT: evaluation}


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
        out_uri = artifact_utils.get_single_uri(output_dict[keys.REPORT_KEY])
        io_utils.write_string_file(os.path.join(out_uri, keys.VALIDATION_REPORT_FILE),
                                   json.dumps(found.to_dict(), indent=2))
        if not found.ok:
            raise DataValidationError(found.describe())
        logging.info("Validation passed for %s: %s", dataset, found.describe())


def _read_anomalies(anomalies: types.Artifact, split: str) -> anomalies_pb2.Anomalies:
    path = os.path.join(artifact_utils.get_split_uri([anomalies], split),
                        example_validator_executor.DEFAULT_FILE_NAME)
    if not tf.io.gfile.exists(path):
        raise DataValidationError(f"{path} is missing; ExampleValidator did not validate "
                                  f"split '{split}'")
    return anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
