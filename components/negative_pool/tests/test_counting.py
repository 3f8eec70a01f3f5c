"""Batch reading and bundle-level id counting."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from components.negative_pool import counting
from components.negative_pool.tests.test_pool import TRAIN


def test_sum_counts_adds_by_value():
    parts = [pc.value_counts(pa.array([b"a", b"b", b"a"])), pc.value_counts(pa.array([b"b", b"c"]))]
    assert sorted(counting.sum_counts(parts)) == [(b"a", 2), (b"b", 2), (b"c", 1)]


def test_read_file_batches(tmp_path):
    path = str(tmp_path / "f.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(5):
            writer.write(f"r{i}".encode())
    assert list(counting.read_file_batches(path, 2)) == [[b"r0", b"r1"], [b"r2", b"r3"], [b"r4"]]


def test_count_ids_with_missing_rows_and_mid_bundle_flushes(monkeypatch):
    monkeypatch.setattr(counting, "FLUSH_AT", 1)
    with TestPipeline() as p:
        counts, missing = (p | beam.Create([TRAIN[:2], TRAIN[2:4], TRAIN[4:]])
                           | counting.CountIds("item_id"))  # pylint: disable=no-value-for-parameter
        assert_that(counts, equal_to([(b"a", 3), (b"b", 1), (b"x", 1)]), label="counts")
        assert_that(missing | beam.CombineGlobally(sum), equal_to([1]), label="missing")


def test_key_by_id_drops_rows_without_the_id():
    with TestPipeline() as p:
        keyed = p | beam.Create([TRAIN]) | counting.KeyById("item_id")  # pylint: disable=no-value-for-parameter
        assert_that(keyed | beam.Keys(), equal_to([b"a", b"a", b"a", b"b", b"x"]))
