"""Batch reading, bundle-level id counting and sharding by id."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from components.negative_pool import counting
from components.negative_pool.tests.test_pool import TRAIN


def _pairs(table):
    return sorted(zip(table.column(counting.ID).to_pylist(),
                      table.column(counting.COUNT).to_pylist()))


def _rows_per_shard(element):
    """(id, count, whether the id hashes to the element's shard) of every row."""
    shard, table = element
    ids = table.column(counting.ID)
    right = counting.shard_of(ids)
    return [(identifier, count, bool(expected == shard)) for identifier, count, expected in zip(
        ids.to_pylist(), table.column(counting.COUNT).to_pylist(), right)]


def test_sum_counts_adds_by_value():
    parts = [pc.value_counts(pa.array([b"a", b"b", b"a"])), pc.value_counts(pa.array([b"b", b"c"]))]
    assert _pairs(counting.sum_counts(parts)) == [(b"a", 2), (b"b", 2), (b"c", 1)]


def test_shards_are_fixed_by_the_id_and_cover_every_row():
    ids = pa.array([f"item{i}".encode() for i in range(5_000)], pa.large_binary())
    shards = counting.shard_of(ids)
    assert shards.tolist() == counting.shard_of(ids).tolist()
    assert shards.min() >= 0 and shards.max() < counting.SHARDS
    # Roughly even: each of 32 shards holds 5000/32 ~ 156 ids (sd ~ 12).
    assert np.bincount(shards, minlength=counting.SHARDS).min() > 100
    table = pa.table({counting.ID: ids, counting.COUNT: pa.array(np.arange(5_000), pa.int64())})
    parts = list(counting.split_by_shard(table))
    assert [shard for shard, _ in parts] == sorted({int(s) for s in shards})
    assert sum(part.num_rows for _, part in parts) == 5_000
    for shard, part in parts:
        assert set(counting.shard_of(part.column(counting.ID))) == {shard}


def test_read_file_batches(tmp_path):
    path = str(tmp_path / "f.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(5):
            writer.write(f"r{i}".encode())
    assert list(counting.read_file_batches(path, 2)) == [[b"r0", b"r1"], [b"r2", b"r3"], [b"r4"]]


def test_decode_reads_each_feature_once_with_rows_on_request():
    with TestPipeline() as p:
        decoded = (p | beam.Create([TRAIN[:4], TRAIN[4:]])
                   | counting.Decode({"item_id": counting.BYTES, "user_id": counting.BYTES},  # pylint: disable=no-value-for-parameter
                                     keep_rows=True))
        assert_that(decoded | beam.Map(lambda batch: (
            batch.schema.names, batch.column(0).to_pylist(), batch.column(2).to_pylist())),
            equal_to([(["item_id", "user_id", counting.ROW], [[b"a"], [b"a"], [b"a"], [b"b"]],
                       TRAIN[:4]),
                      (["item_id", "user_id", counting.ROW], [[b"x"], None], TRAIN[4:])]))


def _decoded(p, batches):
    return (p | beam.Create(batches)
            | counting.Decode({"item_id": counting.BYTES}, keep_rows=True))  # pylint: disable=no-value-for-parameter


def test_count_ids_with_missing_rows_and_mid_bundle_flushes(monkeypatch):
    monkeypatch.setattr(counting, "FLUSH_AT", 1)
    with TestPipeline() as p:
        counts, missing = (_decoded(p, [TRAIN[:2], TRAIN[2:4], TRAIN[4:]])
                           | counting.CountIds("item_id"))  # pylint: disable=no-value-for-parameter
        # One element per shard: each id once, in the shard its hash names.
        assert_that(counts | beam.FlatMap(_rows_per_shard), equal_to(
            [(b"a", 3, True), (b"b", 1, True), (b"x", 1, True)]), label="counts")
        assert_that(missing | beam.CombineGlobally(sum), equal_to([1]), label="missing")


def test_shard_rows_keep_rows_with_the_id_in_their_shard():
    with TestPipeline() as p:
        parts = _decoded(p, [TRAIN]) | beam.FlatMap(counting.shard_rows, "item_id")
        assert_that(parts | beam.FlatMap(lambda element: [
            (identifier, row in TRAIN, bool(counting.shard_of(pa.array([identifier]))[0]
                                            == element[0]))
            for identifier, row in zip(element[1].column(counting.ID).to_pylist(),
                                       element[1].column(counting.ROW).to_pylist())]),
            equal_to([(b"a", True, True)] * 3 + [(b"b", True, True), (b"x", True, True)]))
