"""Fast Beam reading and id counting over serialised tf.Examples, in shards of ids.

Beam's TFRecord source is pure Python (about 25 µs a record here) and every element costs
Beam several µs per stage, so at a million items per-item elements dominate the run.
Instead, `ReadRecordBatches` reads each file with tf.data (C++) and emits lists of records;
`Decode` turns each list into one Arrow RecordBatch of every feature the pool reads (C++,
tfx_bsl: one decoding pass per source); `CountIds` counts ids with Arrow and pre-aggregates
the counts of a whole bundle; ids are then split into `SHARDS` groups by a hash of the id,
and every later stage handles one shard (an Arrow table) as one element.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence, Union

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

BATCH_SIZE = 8192
FLUSH_AT = 2_000_000
MISSING = "missing"
# Groups of ids handled as one element each: enough to spread a catalogue of tens of
# millions over workers (a shard then holds about a million items), few enough that a
# small catalogue does not pay per-shard costs.
SHARDS = 32
ID = "id"
COUNT = "count"
ROW = "row"


def read_file_batches(path: str, batch_size: int = BATCH_SIZE) -> Iterator[list[bytes]]:
    """Yields the records of one (optionally gzipped) TFRecord file in lists."""
    compression = "GZIP" if path.endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(path, compression_type=compression).batch(batch_size)
    for batch in dataset.as_numpy_iterator():
        yield list(batch)


@beam.ptransform_fn
def ReadRecordBatches(pipeline: beam.Pipeline,  # pylint: disable=invalid-name
                      pattern: Union[str, Sequence[str]]) -> beam.PCollection:
    """Lists of serialised records from every file matching `pattern` (or any of a list of
    patterns: a window of spans), files spread over workers."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = sorted({path for glob in patterns for path in tf.io.gfile.glob(glob)})
    return (pipeline
            | "ListFiles" >> beam.Create(files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadBatches" >> beam.FlatMap(read_file_batches))


BYTES = schema_pb2.BYTES


class _Decode(beam.DoFn):
    """Decodes each list of serialised Examples into one Arrow RecordBatch of the named
    features (C++, tfx_bsl): large_list columns, null where a row lacks the feature; with
    `keep_rows` the serialised rows ride along in a ROW column."""

    def __init__(self, features: dict[str, int], keep_rows: bool) -> None:
        self._features = dict(features)
        self._keep_rows = keep_rows
        self._decoder = None

    def setup(self) -> None:
        schema = schema_pb2.Schema(feature=[schema_pb2.Feature(name=name, type=kind)
                                            for name, kind in self._features.items()])
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString())

    def process(self, batch: list[bytes]) -> Iterator[pa.RecordBatch]:
        decoded = self._decoder.DecodeBatch(batch)
        if self._keep_rows:
            decoded = pa.RecordBatch.from_arrays(
                [*decoded.columns, pa.array(batch, pa.large_binary())],
                [*decoded.schema.names, ROW])
        yield decoded


@beam.ptransform_fn
def Decode(batches: beam.PCollection, features: dict[str, int],  # pylint: disable=invalid-name
           keep_rows: bool = False) -> beam.PCollection:
    """Record batches of `features` (name -> TFMD type, e.g. BYTES) from lists of
    serialised Examples: each source is decoded once, whatever reads it."""
    return batches | "DecodeBatches" >> beam.ParDo(_Decode(features, keep_rows))


def global_window_value(element: Any) -> WindowedValue:
    """An element emitted from finish_bundle (which must say its window)."""
    return WindowedValue(element, MIN_TIMESTAMP, (GlobalWindow(),))


def sum_counts(parts: list[pa.StructArray]) -> pa.Table:
    """Adds value_counts results (struct of values, counts) by value: a table of `id`
    (large binary) and `count` (int64), one row per id."""
    table = pa.table({ID: pa.concat_arrays([part.field("values") for part in parts]),
                      COUNT: pa.concat_arrays([part.field("counts") for part in parts])})
    summed = table.group_by(ID).aggregate([(COUNT, "sum")])
    return pa.table({ID: pc.cast(summed.column(ID), pa.large_binary()),
                     COUNT: pc.cast(summed.column(f"{COUNT}_sum"), pa.int64())})


def shard_of(ids: Union[pa.Array, pa.ChunkedArray], shards: int = SHARDS) -> np.ndarray:
    """[N] shard in [0, shards) of each id: a keyed hash of its bytes, the same on every
    worker and run."""
    values = np.asarray(ids, dtype=object)
    return (pd.util.hash_array(values, categorize=False) % np.uint64(shards)).astype(np.int64)


def split_by_shard(table: pa.Table, shards: int = SHARDS) -> Iterator[tuple[int, pa.Table]]:
    """(shard, rows of that shard) for every shard holding a row, by the `id` column."""
    if not table.num_rows:
        return
    shard = shard_of(table.column(ID), shards)
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(shards + 1))
    for index in range(shards):
        if bounds[index] < bounds[index + 1]:
            yield index, table.take(pa.array(order[bounds[index]:bounds[index + 1]]))


def merge_counts(tables: Sequence[pa.Table]) -> pa.Table:
    """Adds (id, count) tables by id."""
    table = pa.concat_tables(tables)
    summed = table.group_by(ID).aggregate([(COUNT, "sum")])
    return pa.table({ID: summed.column(ID), COUNT: summed.column(f"{COUNT}_sum")})


class _BundleIdCounts(beam.DoFn):
    """Counts a feature's values over record batches, emitting per-bundle (shard, (id,
    count) table) totals. Rows without the feature go to the `missing` output as counts."""

    def __init__(self, feature: str) -> None:
        self._feature = feature
        self._parts: list[pa.StructArray] = []
        self._held = 0
        self._missing = 0

    def start_bundle(self) -> None:
        self._parts, self._held, self._missing = [], 0, 0

    def process(self, batch: pa.RecordBatch) -> Iterator[Any]:
        column = batch.column(batch.schema.get_field_index(self._feature))
        self._missing += column.null_count
        counts = pc.value_counts(pc.list_flatten(column))
        self._parts.append(counts)
        self._held += len(counts)
        if self._held >= FLUSH_AT:
            yield from self._flush()

    def _flush(self) -> list[tuple[int, pa.Table]]:
        shards = list(split_by_shard(sum_counts(self._parts))) if self._parts else []
        self._parts, self._held = [], 0
        return shards

    def finish_bundle(self) -> Iterator[Any]:
        for shard in self._flush():
            yield global_window_value(shard)
        if self._missing:
            yield beam.pvalue.TaggedOutput(MISSING, global_window_value(self._missing))
        self._missing = 0


@beam.ptransform_fn
def CountIds(batches: beam.PCollection, feature: str) -> beam.pvalue.DoOutputsTuple:  # pylint: disable=invalid-name
    """Totals per id over record batches (from `Decode`, with `feature` as BYTES): outputs
    `counts` ((shard, table of `id` and `count`), one element per non-empty shard, each id
    in one) and `missing` (row counts without the feature)."""
    partial = batches | "Count" >> beam.ParDo(_BundleIdCounts(feature)).with_outputs(
        MISSING, main="partial")
    counts = (partial.partial
              | "GroupShards" >> beam.GroupByKey()
              | "SumPerId" >> beam.MapTuple(lambda shard, tables: (shard, merge_counts(
                  list(tables)))))
    return counts, partial[MISSING]


def shard_rows(batch: pa.RecordBatch, feature: str) -> Iterator[tuple[int, pa.Table]]:
    """(shard, table of `id` and serialised `row`) for the rows of a record batch (from
    `Decode` with keep_rows) that have the id feature (its first value)."""
    column = batch.column(batch.schema.get_field_index(feature))
    keep = pc.fill_null(pc.greater(pc.list_value_length(column), 0), False)
    ids = pc.list_element(pc.filter(column, keep), 0)
    rows = pc.filter(batch.column(batch.schema.get_field_index(ROW)), keep)
    yield from split_by_shard(pa.table({ID: ids, ROW: rows}))
