"""SchemaExampleGen's executor end to end on a small CSV: the quantile time split's cutoff is
computed in its own pass (no side input holding the data), the splits are written in a
random order that is the same on every run, and the scratch is removed."""
import os
import shutil

import numpy as np

import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from twotower import keys
from components.ingestion import executor
from twotower import config as config_lib
from pipeline.data import synthetic


def _times(folder):
    found = []
    for name in sorted(tf.io.gfile.listdir(folder)):
        for record in tf.data.TFRecordDataset(os.path.join(folder, name),
                                              compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            found.append(example.features.feature["timestamp"].int64_list.value[0])
    return found


def test_time_split_by_quantile_from_its_own_pass(tmp_path):
    data = tmp_path / "data"
    synthetic.generate(synthetic.SyntheticSpec(users=40, items=30, interactions=500, seed=3),
                       data, progress=False)
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    os.makedirs(schema.uri)
    shutil.copy(os.path.join(config_lib.DEFAULT_SCHEMA_DIR, "interactions.pbtxt"),
                os.path.join(schema.uri, "schema.pbtxt"))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="single_split", pattern="interactions.csv")])
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=80),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=20)]))
    properties = {
        standard_component_specs.INPUT_BASE_KEY: str(data),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        keys.INPUT_FORMAT_KEY: "csv", keys.SPLIT_METHOD_KEY: keys.SPLIT_TIME,
        keys.TIME_FEATURE_KEY: "timestamp", keys.CUTOFF_QUANTILE_KEY: 0.8,
        keys.CUTOFF_TIMESTAMP_KEY: -1, keys.EVAL_PERCENT_KEY: 20}
    executor.ExampleGenExecutor().Do({keys.SCHEMA_KEY: [schema]},
                                     {keys.EXAMPLES_KEY: [examples]}, properties)
    again = standard_artifacts.Examples()
    again.uri = str(tmp_path / "again")
    executor.ExampleGenExecutor().Do({keys.SCHEMA_KEY: [schema]},
                                     {keys.EXAMPLES_KEY: [again]}, properties)
    train = _times(os.path.join(examples.uri, "Split-train"))
    assert _times(os.path.join(again.uri, "Split-train")) == train
    # The input is sorted by time; the split is not (position and time uncorrelated).
    assert abs(np.corrcoef(np.arange(len(train)), train)[0, 1]) < 0.2
    evaluation = _times(os.path.join(examples.uri, "Split-eval"))
    assert len(train) + len(evaluation) == 500
    assert max(train) < min(evaluation)  # every train event before every eval event
    # 500 distinct times t_0 < ... < t_499: the 0.8 quantile is t_399 (rank 0.8 x 499 = 399.2,
    # the nearest of Beam's evenly spaced quantiles), and eval starts at the cutoff.
    assert len(train) == 399
    assert not os.path.exists(os.path.join(examples.uri, executor.SCRATCH))
