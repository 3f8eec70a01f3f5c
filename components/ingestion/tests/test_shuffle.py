"""The external shuffle of ExampleGen's splits: every record once, a random order that does
not depend on how bundles wrote, bounded buckets."""
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.ingestion import shuffle


def _example(i):
    example = tf.train.Example()
    example.features.feature["timestamp"].int64_list.value.append(i)
    return example


def _read_file(folder, name):
    return [record.numpy() for record in tf.data.TFRecordDataset(
        os.path.join(folder, name), compression_type="GZIP")]


def _read(folder):
    return [record for name in sorted(os.listdir(folder)) for record in _read_file(folder, name)]


def _time(record):
    return tf.train.Example.FromString(record).features.feature["timestamp"].int64_list.value[0]


def _shuffle(tmp_path, name, batches, buckets):
    """Writes examples 0..n-1 (time order) as `batches` (each a Create, so several bundles)
    into buckets, then shuffles them; returns the output records in file order."""
    folder, output = str(tmp_path / name / "buckets"), str(tmp_path / name / "out")
    with beam.Pipeline() as pipeline:
        parts = [pipeline | f"Create{i}" >> beam.Create([_example(t) for t in batch])
                 for i, batch in enumerate(batches)]
        _ = parts | beam.Flatten() | shuffle.WriteBuckets(folder, buckets)  # pylint: disable=no-value-for-parameter
    # What a failed bundle attempt leaves behind: a bucket file no manifest line names.
    with tf.io.TFRecordWriter(os.path.join(folder, "bucket-00000-failedattempt.tfrecord")) as w:
        w.write(_example(-1).SerializeToString())
    with beam.Pipeline() as pipeline:
        shuffle.shuffle_splits(pipeline, [(folder, output)], buckets)
    return folder, output, _read(output)


def test_each_record_once_in_an_order_unrelated_to_time_and_to_bundles(tmp_path):
    n = 2000
    _, output, records = _shuffle(tmp_path, "a", [range(0, 700), range(700, n)], 4)
    times = [_time(record) for record in records]
    assert sorted(times) == list(range(n))  # each once, the failed attempt's record never
    # A random order: position and time uncorrelated (|r| ~ 1/sqrt(n) = 0.02).
    assert abs(np.corrcoef(np.arange(n), times)[0, 1]) < 0.1
    # Each output shard holds exactly its bucket's records.
    for name in sorted(os.listdir(output)):
        bucket = int(name.split("-")[1])
        shard = _read_file(output, name)
        assert shard and all(shuffle.bucket_of(record, 4) == bucket for record in shard)
    # Other bundles (three Creates instead of two) write other bucket files, same output.
    _, _, again = _shuffle(tmp_path, "b", [range(0, 100), range(100, 1500), range(1500, n)], 4)
    assert again == records


def test_bucket_count_grows_with_the_input_and_is_bounded():
    assert shuffle.bucket_count(0) == 1
    assert shuffle.bucket_count(shuffle.BUCKET_INPUT_BYTES) == 1
    assert shuffle.bucket_count(shuffle.BUCKET_INPUT_BYTES + 1) == 2
    assert shuffle.bucket_count(10 ** 15) == shuffle.MAX_BUCKETS


def test_an_empty_split_gets_one_empty_file(tmp_path):
    output = str(tmp_path / "Split-eval")
    with beam.Pipeline() as pipeline:
        shuffle.shuffle_splits(pipeline, [(str(tmp_path / "no-buckets"), output)], 3)
    shuffle.ensure_a_file(output)
    assert os.listdir(output) == ["data_tfrecord-00000-of-00001.gz"]
    assert _read(output) == []
