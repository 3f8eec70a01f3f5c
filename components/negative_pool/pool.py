"""Beam logic of the NegativePoolBuilder: item frequencies, vocabularies, the pool, stats.

Definitions (N = training interactions with an item id, T = items in the frequency table,
i.e. catalogue items plus items that only appear in interactions, k = smoothing):
  * in-batch probability p_freq(j) = (count_j + k) / (N + k T): the chance that a random
    training example's item is j, add-k smoothed so never-seen items get p > 0;
  * pool membership: the whole catalogue when it fits `capacity`; else the items whose
    per-key hash u(seed, item_id) in [0, 1) is below capacity / catalogue size: a uniform,
    seeded, deterministic sample of about `capacity` items, decided per key (no global list);
  * pool weight w_j: `uniform` 1; `popularity` (count_j + k)^alpha; `unseen_boost` 1 for seen
    items and `unseen_weight` for never-seen ones; P_pool(j) = w_j / sum of w over the pool.
The trainer's logQ correction uses q_j = B p_freq(j) + M P_pool(j) (docs/architecture.md), so every
frequency-table row carries both probabilities.

Interaction ids are decoded in batches by tfx_bsl's C++ Example decoder and counted with
Arrow (`counting.py`). Ids are split into shards by a hash of the id; every stage after the
counting handles a shard (an Arrow table of up to a million items) as one element with
numpy/Arrow work, so Beam's per-element cost is paid per shard, not per item; the three
global numbers (table size, catalogue size, pool weight total) are sums of per-shard
counters. Rows are serialised in batches by tfx_bsl's C++ Example encoder; vocabulary
files are sorted on one worker (as TFT does), never on the driver.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Optional, Sequence, Union

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tfx_bsl.coders import example_coder

from twotower import keys
from components.negative_pool import counting, preprocessing
from twotower.config import PoolConfig
from twotower.contract import CANDIDATE, QUERY, Contract

_HASH_SCALE = float(1 << 64)
_SEPARATOR_PATTERN = "[\t\n\r]"

# Columns of an item shard: one row per id of the frequency table hashed to the shard.
ITEM_ID = counting.ID  # large_binary
COUNT = counting.COUNT  # int64: training interactions with the item
EXAMPLE = "example"  # large_binary: the catalogue row; null when not in the catalogue
DUPLICATES = "duplicates"  # int64: extra catalogue rows with the same id (dropped)

NO_COUNTS = pa.table({ITEM_ID: pa.array([], pa.large_binary()), COUNT: pa.array([], pa.int64())})
_NO_ROWS = pa.table({ITEM_ID: pa.array([], pa.large_binary()),
                     counting.ROW: pa.array([], pa.large_binary())})


def key_hash(seed: int, item_id: bytes) -> float:
    """A uniform number in [0, 1) fixed by (seed, item_id): the same on every worker and run."""
    digest = hashlib.sha256(str(seed).encode() + b"\x00" + item_id).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SCALE


Number = Union[float, np.ndarray]


def in_batch_probability(count: Number, total: int, table_size: int,
                         smoothing: float) -> Number:
    """p_freq = (count + k) / (N + k T) of a count or an array of counts; 0 when both
    numerator and denominator are 0."""
    denominator = total + smoothing * table_size
    if denominator <= 0:
        return np.zeros_like(count, dtype=np.float64)
    return (count + smoothing) / denominator


def pool_weight(count: Number, settings: PoolConfig) -> np.ndarray:
    """Unnormalised pool sampling weights of items seen `count` times in training
    (a number or an array; the result has its shape)."""
    count = np.asarray(count, np.float64)
    if settings.sampler == "popularity":
        return (count + settings.smoothing) ** settings.alpha
    if settings.sampler == "unseen_boost":
        return np.where(count == 0, settings.unseen_weight, 1.0)
    return np.ones_like(count)


def has_separator(ids: pa.Array) -> np.ndarray:
    """[N] bool: ids with a tab, newline or carriage return, which cannot be written to a
    line-based vocabulary file (those bytes never occur inside a multi-byte UTF-8
    character, so bytes and text agree)."""
    return np.asarray(pc.match_substring_regex(ids, _SEPARATOR_PATTERN), bool)


def vocabulary_lines(counts: pa.Table, min_count: int,
                     max_tokens: Optional[int] = None) -> list[str]:
    """Vocabulary lines "id<TAB>count", most frequent first, ties by id; index = line number.

    Args:
      counts: `id` (binary) and `count` columns, one row per id.
      min_count: Ids below it are left out (they map to the OOV bucket), as are ids
        containing separators.
      max_tokens: Keep only the most frequent ones.
    """
    ids = counts.column(ITEM_ID)
    keep = np.asarray(pc.greater_equal(counts.column(COUNT), min_count)) & ~has_separator(ids)
    kept = counts.filter(pa.array(keep))
    kept = kept.take(pc.sort_indices(kept, sort_keys=[(COUNT, "descending"),
                                                      (ITEM_ID, "ascending")]))
    if max_tokens is not None:
        kept = kept.slice(0, max_tokens)
    return [f"{identifier.decode('utf-8', errors='replace')}\t{count}" for identifier, count
            in zip(kept.column(ITEM_ID).to_pylist(), kept.column(COUNT).to_pylist())]


def item_shard(counts: Sequence[pa.Table], catalog: Sequence[pa.Table]) -> pa.Table:
    """The frequency-table rows of one shard, sorted by id.

    Args:
      counts: (`id`, `count`) tables of the shard's interaction counts.
      catalog: (`id`, `row`) tables of the shard's catalogue rows; duplicate ids keep the
        smallest serialisation.

    Returns:
      A table with the columns ITEM_ID, COUNT, EXAMPLE and DUPLICATES.
    """
    summed = counting.merge_counts([*counts, NO_COUNTS])
    rows = pa.concat_tables([*catalog, _NO_ROWS]).group_by(ITEM_ID).aggregate(
        [(counting.ROW, "min"), (counting.ROW, "count")])
    joined = summed.join(rows, ITEM_ID, join_type="full outer")
    joined = joined.take(pc.sort_indices(joined, sort_keys=[(ITEM_ID, "ascending")]))
    rows_per_id = pc.fill_null(joined.column(f"{counting.ROW}_count"), 0)
    return pa.table({
        ITEM_ID: joined.column(ITEM_ID),
        COUNT: pc.fill_null(joined.column(COUNT), 0),
        EXAMPLE: joined.column(f"{counting.ROW}_min"),
        DUPLICATES: pc.max_element_wise(pc.subtract(rows_per_id, 1), 0),
    })


def _counts(items: pa.Table) -> np.ndarray:
    return np.asarray(items.column(COUNT))


def _in_catalog(items: pa.Table) -> np.ndarray:
    return np.asarray(pc.is_valid(items.column(EXAMPLE)))


def item_counters(items: pa.Table) -> dict[str, int]:
    """The stats counters of one item shard; `train_interactions` is N of p_freq."""
    counts, in_catalog = _counts(items), _in_catalog(items)
    return {
        "catalog_size": int(in_catalog.sum()),
        "catalog_duplicate_rows": int(np.asarray(items.column(DUPLICATES)).sum()),
        "items_seen": int((in_catalog & (counts > 0)).sum()),
        "items_never_seen": int((in_catalog & (counts == 0)).sum()),
        "unknown_items": int((~in_catalog).sum()),
        "interactions_with_unknown_item": int(counts[~in_catalog].sum()),
        "frequency_table_size": items.num_rows,
        "item_ids_with_separators": int(has_separator(items.column(ITEM_ID)).sum()),
        "train_interactions": int(counts.sum()),
    }


def id_counters(counts: pa.Table) -> dict[str, int]:
    """The stats counters of one shard of user counts."""
    return {"users": counts.num_rows,
            "user_ids_with_separators": int(has_separator(counts.column(ITEM_ID)).sum())}


def member_fraction(catalog_size: int, capacity: int) -> float:
    """1 (everything) when the catalogue fits the pool, else capacity / catalogue size."""
    return 1.0 if catalog_size <= capacity else capacity / catalog_size


def is_member(items: pa.Table, totals: dict[str, float], settings: PoolConfig) -> np.ndarray:
    """[N] bool pool membership: catalogue items whose key hash is below the member
    fraction (hashed only when the catalogue exceeds the capacity)."""
    members = _in_catalog(items)
    fraction = member_fraction(totals["catalog_size"], settings.capacity)
    if fraction < 1.0:
        ids = items.column(ITEM_ID).filter(pa.array(members)).to_pylist()
        members[members] = np.array([key_hash(settings.seed, identifier) for identifier in ids],
                                    np.float64) < fraction
    return members


def pool_counters(items: pa.Table, totals: dict[str, float],
                  settings: PoolConfig) -> dict[str, float]:
    """Pool members and their summed weight in one item shard."""
    members = is_member(items, totals, settings)
    return {"pool_size": int(members.sum()),
            "pool_weight": float(pool_weight(_counts(items)[members], settings).sum())}


def pool_probability(items: pa.Table, members: np.ndarray, pooled: dict[str, float],
                     settings: PoolConfig) -> np.ndarray:
    """[N] P_pool of the shard's items: weight / total pool weight, 0 outside the pool."""
    weight_sum = pooled.get("pool_weight", 0.0)
    if weight_sum <= 0:
        return np.zeros(items.num_rows)
    return np.where(members, pool_weight(_counts(items), settings) / weight_sum, 0.0)


def _one_per_row(values: Union[np.ndarray, pa.ChunkedArray], dtype: pa.DataType) -> pa.Array:
    """[N] values as a list array of one value per row (a tf.Example feature column)."""
    offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
    if isinstance(values, pa.ChunkedArray):
        return pa.ListArray.from_arrays(offsets, pc.cast(values.combine_chunks(), dtype))
    return pa.ListArray.from_arrays(offsets, pa.array(values, dtype))


def _encode(columns: dict[str, pa.Array]) -> list[bytes]:
    """Serialised tf.Examples of list columns, one per row (C++ encoder)."""
    return example_coder.RecordBatchToExamplesEncoder().encode(
        pa.RecordBatch.from_arrays(list(columns.values()), list(columns)))


def frequency_rows(items: pa.Table, totals: dict[str, float], pooled: dict[str, float],
                   settings: PoolConfig) -> list[bytes]:
    """The shard's frequency-table rows as serialised tf.Examples (README for the columns)."""
    counts = _counts(items)
    probability = in_batch_probability(counts, totals["train_interactions"],
                                       totals["frequency_table_size"], settings.smoothing)
    return _encode({
        keys.POOL_ITEM_ID: _one_per_row(items.column(ITEM_ID), pa.large_binary()),
        keys.POOL_COUNT: _one_per_row(counts, pa.int64()),
        keys.POOL_IN_CATALOG: _one_per_row(_in_catalog(items).astype(np.int64), pa.int64()),
        keys.POOL_PROBABILITY: _one_per_row(probability.astype(np.float32), pa.float32()),
        keys.POOL_POOL_PROBABILITY: _one_per_row(
            pool_probability(items, is_member(items, totals, settings), pooled,
                             settings).astype(np.float32),
            pa.float32()),
    })


def pool_rows(items: pa.Table, totals: dict[str, float], pooled: dict[str, float],
              settings: PoolConfig) -> list[bytes]:
    """The shard's pool members: each catalogue row with its training count and pool
    sampling probability added (serialised messages concatenate: the parser merges them)."""
    members = is_member(items, totals, settings)
    probability = pool_probability(items, members, pooled, settings)[members]
    extra = _encode({keys.POOL_COUNT: _one_per_row(_counts(items)[members], pa.int64()),
                     keys.POOL_POOL_PROBABILITY: _one_per_row(probability.astype(np.float32),
                                                              pa.float32())})
    rows = items.column(EXAMPLE).filter(pa.array(members)).to_pylist()
    return [row + added for row, added in zip(rows, extra)]


class SumDicts(beam.CombineFn):
    """Adds dicts of counters key by key."""

    def create_accumulator(self) -> dict[str, float]:
        return {}

    def add_input(self, accumulator, element):
        for key, value in element.items():
            accumulator[key] = accumulator.get(key, 0) + value
        return accumulator

    def merge_accumulators(self, accumulators):
        merged: dict[str, float] = {}
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


@dataclasses.dataclass
class PoolOutputs:
    """PCollections the executor writes: (shard, serialised rows) of the frequency table
    and of the pool (one element per shard, written as one file each), vocabulary lines
    for users (None in an anonymous contract) and items (one list each), (feature, lines)
    vocabularies of the other features, the numeric features' statistics (one dict) and
    the stats dict."""

    frequencies: beam.PCollection
    pool: beam.PCollection
    user_vocabulary: Optional[beam.PCollection]
    item_vocabulary: beam.PCollection
    feature_vocabularies: beam.PCollection
    numeric: beam.PCollection
    stats: beam.PCollection


def _vocabulary(counts: beam.PCollection, label: str, min_count: int,
                max_tokens: Optional[int]) -> beam.PCollection:
    """One list of vocabulary lines from (shard, counts table) elements (shards hold
    disjoint ids, so their tables concatenate)."""
    return (counts
            | f"{label}CountsToList" >> beam.combiners.ToList()
            | f"{label}Vocabulary" >> beam.Map(lambda shards: vocabulary_lines(
                pa.concat_tables([NO_COUNTS, *(table for _, table in shards)]),
                min_count, max_tokens)))


def build_pool(interactions: beam.PCollection, catalog: beam.PCollection,
               settings: PoolConfig, contract: Contract) -> PoolOutputs:
    """Builds every NegativePool output from serialised train interactions and catalogue rows.

    Args:
      interactions: Lists of serialised tf.Examples of the train split (never eval), e.g.
        from `counting.ReadRecordBatches`.
      catalog: Lists of serialised tf.Examples of the item catalogue.
      settings: Validated parameters.
      contract: The feature set: the id columns, their vocabulary limits (min_count
        defaults to settings.min_count) and the features that need statistics.

    Returns:
      The PCollections to write.
    """
    item = contract.by_name(contract.item_id)
    ids = {name: counting.BYTES for name in (contract.item_id, contract.user_id) if name}
    interactions = interactions | "DecodeTrain" >> counting.Decode(  # pylint: disable=no-value-for-parameter
        {**preprocessing.decoded_features(preprocessing.tower_features(contract, QUERY)), **ids})
    catalog = catalog | "DecodeCatalog" >> counting.Decode(  # pylint: disable=no-value-for-parameter
        {**preprocessing.decoded_features(preprocessing.tower_features(contract, CANDIDATE)),
         item.name: counting.BYTES}, keep_rows=True)
    counts, missing_items = interactions | "CountItems" >> counting.CountIds(  # pylint: disable=no-value-for-parameter
        item.name)
    catalog_rows = catalog | "ShardCatalog" >> beam.FlatMap(counting.shard_rows, item.name)
    items = ({"counts": counts, "catalog": catalog_rows}
             | "JoinCountsAndCatalog" >> beam.CoGroupByKey()
             | "ItemShards" >> beam.MapTuple(lambda shard, grouped: (shard, item_shard(
                 grouped["counts"], grouped["catalog"]))))
    item_stats = items | "ItemCounters" >> beam.MapTuple(lambda _, table: item_counters(table))
    totals = beam.pvalue.AsSingleton(item_stats | "ItemTotals" >> beam.CombineGlobally(
        SumDicts()))
    pool_stats = items | "PoolCounters" >> beam.Map(
        lambda shard, summed: pool_counters(shard[1], summed, settings), summed=totals)
    pooled = beam.pvalue.AsSingleton(pool_stats | "PoolTotals" >> beam.CombineGlobally(
        SumDicts()))
    frequencies = items | "FrequencyRows" >> beam.Map(
        lambda shard, summed, pool_summed: (shard[0], frequency_rows(
            shard[1], summed, pool_summed, settings)), summed=totals, pool_summed=pooled)
    pool = items | "PoolRows" >> beam.Map(
        lambda shard, summed, pool_summed: (shard[0], pool_rows(
            shard[1], summed, pool_summed, settings)), summed=totals, pool_summed=pooled)

    item_vocabulary = _vocabulary(counts, "Item", item.min_count or settings.min_count,
                                  item.max_tokens)
    feature_stats = preprocessing.build_feature_stats(interactions, catalog, contract,
                                                      vocabulary_lines)
    counted = [item_stats, pool_stats,
               missing_items | "MissingItemStats" >> beam.Map(
                   lambda n: {"interactions_missing_item_id": n}),
               item_vocabulary | "ItemVocabStats" >> beam.Map(
                   lambda lines: {"item_vocab_size": len(lines)})]
    user_vocabulary = None
    if contract.user_id is not None:
        user = contract.by_name(contract.user_id)
        users, _ = interactions | "CountUsers" >> counting.CountIds(user.name)  # pylint: disable=no-value-for-parameter
        user_vocabulary = _vocabulary(users, "User", user.min_count or settings.min_count,
                                      user.max_tokens)
        counted += [users | "UserStats" >> beam.MapTuple(lambda _, table: id_counters(table)),
                    user_vocabulary | "UserVocabStats" >> beam.Map(
                        lambda lines: {"user_vocab_size": len(lines)})]
    counters = (
        tuple(counted)
        | "FlattenStats" >> beam.Flatten()
        | "SumStats" >> beam.CombineGlobally(SumDicts()))
    stats = counters | "FinishStats" >> beam.Map(finish_stats, settings)
    return PoolOutputs(frequencies, pool, user_vocabulary, item_vocabulary,
                       feature_stats.vocabularies, feature_stats.numeric, stats)


STAT_KEYS = ("catalog_size", "catalog_duplicate_rows", "train_interactions",
             "interactions_missing_item_id", "items_seen", "items_never_seen", "unknown_items",
             "interactions_with_unknown_item", "frequency_table_size", "users",
             "user_vocab_size", "item_vocab_size", "user_ids_with_separators",
             "item_ids_with_separators", "pool_size")


def finish_stats(counters: dict[str, float], settings: PoolConfig) -> dict[str, Any]:
    """Fills absent counters with 0, adds the interactions missing an item id to the
    training count, and records the settings."""
    stats: dict[str, Any] = {key: int(counters.get(key, 0)) for key in STAT_KEYS}
    stats["train_interactions"] += stats["interactions_missing_item_id"]
    stats["settings"] = dataclasses.asdict(settings)
    return stats


def stats_json(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, sort_keys=True)
