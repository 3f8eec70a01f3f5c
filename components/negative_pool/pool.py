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
Arrow (`counting.py`); every aggregate is a Beam combiner. Vocabulary files are sorted on one worker (as TFT
does), never on the driver.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Optional

import apache_beam as beam
import tensorflow as tf

from twotower import keys
from components.negative_pool import counting, preprocessing
from twotower.config import PoolConfig
from twotower.contract import Contract

SEPARATORS = ("\t", "\n", "\r")
_HASH_SCALE = float(1 << 64)


@dataclasses.dataclass(frozen=True)
class ItemRecord:
    """One row of the frequency table.

    Attributes:
      item_id: The id (bytes).
      count: Training interactions with this item.
      in_catalog: Whether the catalogue has the item.
      example: The catalogue row (serialised tf.Example), None when not in the catalogue.
      key: key_hash(seed, item_id) in [0, 1), which decides pool membership under a cap.
      duplicates: Extra catalogue rows with the same id (dropped; the smallest row is kept).
    """

    item_id: bytes
    count: int
    in_catalog: bool
    example: Optional[bytes]
    key: float
    duplicates: int = 0


def key_hash(seed: int, item_id: bytes) -> float:
    """A uniform number in [0, 1) fixed by (seed, item_id): the same on every worker and run."""
    digest = hashlib.sha256(str(seed).encode() + b"\x00" + item_id).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SCALE


def in_batch_probability(count: int, total: int, table_size: int, smoothing: float) -> float:
    """p_freq = (count + k) / (N + k T); 0 when both numerator and denominator are 0."""
    denominator = total + smoothing * table_size
    return (count + smoothing) / denominator if denominator > 0 else 0.0


def pool_weight(count: int, settings: PoolConfig) -> float:
    """Unnormalised pool sampling weight of an item seen `count` times in training."""
    if settings.sampler == "popularity":
        return (count + settings.smoothing) ** settings.alpha
    if settings.sampler == "unseen_boost":
        return settings.unseen_weight if count == 0 else 1.0
    return 1.0


def has_separator(identifier: bytes) -> bool:
    """Ids with tab/newline cannot be written to a line-based vocabulary file."""
    text = identifier.decode("utf-8", errors="replace")
    return any(separator in text for separator in SEPARATORS)


def vocabulary_lines(counts: list[tuple[bytes, int]], min_count: int,
                     max_tokens: Optional[int] = None) -> list[str]:
    """Vocabulary lines "id<TAB>count", most frequent first, ties by id; index = line number.

    Ids below min_count or containing separators are left out (they map to the OOV bucket);
    with max_tokens only the most frequent max_tokens are kept.
    """
    kept = [(identifier, count) for identifier, count in counts
            if count >= min_count and not has_separator(identifier)]
    kept.sort(key=lambda pair: (-pair[1], pair[0]))
    if max_tokens is not None:
        kept = kept[:max_tokens]
    return [f"{identifier.decode('utf-8', errors='replace')}\t{count}" for identifier, count in kept]


class _KeepSmallestRow(beam.CombineFn):
    """Dedupes catalogue rows per id: keeps the smallest serialisation and counts the rows."""

    def create_accumulator(self) -> tuple[Optional[bytes], int]:
        return None, 0

    def add_input(self, accumulator, row):
        kept, rows = accumulator
        return (row if kept is None or row < kept else kept), rows + 1

    def merge_accumulators(self, accumulators):
        kept, rows = None, 0
        for other, other_rows in accumulators:
            if other is not None and (kept is None or other < kept):
                kept = other
            rows += other_rows
        return kept, rows

    def extract_output(self, accumulator):
        return accumulator


def _to_record(element: tuple[bytes, dict[str, list]], seed: int) -> ItemRecord:
    item_id, grouped = element
    count = sum(grouped["count"])
    if grouped["catalog"]:
        example, rows = grouped["catalog"][0]
        return ItemRecord(item_id, count, True, example, key_hash(seed, item_id), rows - 1)
    return ItemRecord(item_id, count, False, None, key_hash(seed, item_id))


def _item_stats(record: ItemRecord) -> dict[str, int]:
    return {
        "catalog_size": int(record.in_catalog),
        "catalog_duplicate_rows": record.duplicates,
        "items_seen": int(record.in_catalog and record.count > 0),
        "items_never_seen": int(record.in_catalog and record.count == 0),
        "unknown_items": int(not record.in_catalog),
        "interactions_with_unknown_item": 0 if record.in_catalog else record.count,
        "frequency_table_size": 1,
        "item_ids_with_separators": int(has_separator(record.item_id)),
    }


def _user_stats(user: tuple[bytes, int]) -> dict[str, int]:
    return {"users": 1, "user_ids_with_separators": int(has_separator(user[0]))}


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


def frequency_example(record: ItemRecord, probability: float,
                      pool_probability: float) -> tf.train.Example:
    """A frequency-table row as a tf.Example (see README for the columns)."""
    example = tf.train.Example()
    features = example.features.feature
    features[keys.POOL_ITEM_ID].bytes_list.value.append(record.item_id)
    features[keys.POOL_COUNT].int64_list.value.append(record.count)
    features[keys.POOL_IN_CATALOG].int64_list.value.append(int(record.in_catalog))
    features[keys.POOL_PROBABILITY].float_list.value.append(probability)
    features[keys.POOL_POOL_PROBABILITY].float_list.value.append(pool_probability)
    return example


def pool_example(record: ItemRecord, pool_probability: float) -> tf.train.Example:
    """The catalogue row with the item's training count and pool sampling probability."""
    example = tf.train.Example.FromString(record.example)
    features = example.features.feature
    features[keys.POOL_COUNT].int64_list.value.append(record.count)
    features[keys.POOL_POOL_PROBABILITY].float_list.value.append(pool_probability)
    return example


def is_member(record: ItemRecord, fraction: float) -> bool:
    """Pool membership: a catalogue item whose key hash is below the sampled fraction."""
    return record.in_catalog and record.key < fraction


def member_fraction(catalog_size: int, capacity: int) -> float:
    """1 (everything) when the catalogue fits the pool, else capacity / catalogue size."""
    return 1.0 if catalog_size <= capacity else capacity / catalog_size


@dataclasses.dataclass
class PoolOutputs:
    """PCollections the executor writes: serialised frequency and pool rows, vocabulary
    lines for users (None in an anonymous contract) and items (one list each), (feature,
    lines) vocabularies of the other features, the numeric features' statistics (one dict)
    and the stats dict."""

    frequencies: beam.PCollection
    pool: beam.PCollection
    user_vocabulary: Optional[beam.PCollection]
    item_vocabulary: beam.PCollection
    feature_vocabularies: beam.PCollection
    numeric: beam.PCollection
    stats: beam.PCollection


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
    items, missing_items = interactions | "CountItems" >> counting.CountIds(  # pylint: disable=no-value-for-parameter
        item.name)
    catalog_rows = (catalog
                    | "KeyCatalog" >> counting.KeyById(item.name)  # pylint: disable=no-value-for-parameter
                    | "DedupeCatalog" >> beam.CombinePerKey(_KeepSmallestRow()))
    records = ({"count": items, "catalog": catalog_rows}
               | "JoinCountsAndCatalog" >> beam.CoGroupByKey()
               | "ToRecord" >> beam.Map(_to_record, settings.seed))

    total = items | "Values" >> beam.Values() | "TotalInteractions" >> beam.CombineGlobally(sum)
    table_size = records | "CountTable" >> beam.combiners.Count.Globally()
    catalog_records = records | "CatalogOnly" >> beam.Filter(lambda record: record.in_catalog)
    fraction = (catalog_records
                | "CountCatalog" >> beam.combiners.Count.Globally()
                | "MemberFraction" >> beam.Map(member_fraction, settings.capacity))
    limit = beam.pvalue.AsSingleton(fraction)
    members = catalog_records | "PoolMembers" >> beam.Filter(
        lambda record, at_most: is_member(record, at_most), at_most=limit)
    weight_total = (members
                    | "Weights" >> beam.Map(lambda record: pool_weight(record.count, settings))
                    | "TotalWeight" >> beam.CombineGlobally(sum))
    weights = beam.pvalue.AsSingleton(weight_total)

    def pool_probability(record: ItemRecord, at_most: float, weight_sum: float) -> float:
        if not is_member(record, at_most) or weight_sum <= 0:
            return 0.0
        return pool_weight(record.count, settings) / weight_sum

    frequencies = records | "FrequencyRows" >> beam.Map(
        lambda record, n, size, at_most, weight_sum: frequency_example(
            record, in_batch_probability(record.count, n, size, settings.smoothing),
            pool_probability(record, at_most, weight_sum)).SerializeToString(),
        n=beam.pvalue.AsSingleton(total), size=beam.pvalue.AsSingleton(table_size),
        at_most=limit, weight_sum=weights)
    pool = members | "PoolRows" >> beam.Map(
        lambda record, at_most, weight_sum: pool_example(
            record, pool_probability(record, at_most, weight_sum)).SerializeToString(),
        at_most=limit, weight_sum=weights)

    item_vocabulary = (items
                       | "ItemCountsToList" >> beam.combiners.ToList()
                       | "ItemVocabulary" >> beam.Map(
                           vocabulary_lines, item.min_count or settings.min_count,
                           item.max_tokens))
    feature_stats = preprocessing.build_feature_stats(interactions, catalog, contract,
                                                      vocabulary_lines)

    counted = [records | "ItemStats" >> beam.Map(_item_stats),
               members | "PoolStats" >> beam.Map(lambda _: {"pool_size": 1}),
               items | "InteractionStats" >> beam.Map(lambda pair: {"train_interactions": pair[1]}),
               missing_items | "MissingItemStats" >> beam.Map(
                   lambda n: {"interactions_missing_item_id": n}),
               item_vocabulary | "ItemVocabStats" >> beam.Map(
                   lambda lines: {"item_vocab_size": len(lines)})]
    user_vocabulary = None
    if contract.user_id is not None:
        user = contract.by_name(contract.user_id)
        users, _ = interactions | "CountUsers" >> counting.CountIds(user.name)  # pylint: disable=no-value-for-parameter
        user_vocabulary = (users
                           | "UserCountsToList" >> beam.combiners.ToList()
                           | "UserVocabulary" >> beam.Map(
                               vocabulary_lines, user.min_count or settings.min_count,
                               user.max_tokens))
        counted += [users | "UserStats" >> beam.Map(_user_stats),
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
