"""The batched pool (shards of Arrow tables) equals a per-item reference on synthetic data.

The reference below is the pool's definition (pool.py's docstring) computed one item at a
time in plain Python, as the builder did before it worked in shards. The data has what real
tables have: duplicate catalogue rows, interactions naming items the catalogue lacks, rows
without an item id, ids with separators, never-seen items, skewed counts.
"""
import collections

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
import numpy as np
import pytest
import tensorflow as tf

from components.negative_pool import pool
from components.negative_pool.tests.test_pool import _rows
from twotower import keys
from twotower.config import PoolConfig
from twotower.contract import Contract, FeatureSpec

CONTRACT = Contract((FeatureSpec("user_id", "user_id", "id"),
                     FeatureSpec("item_id", "item_id", "id"),
                     FeatureSpec("title", "candidate", "text")))


def _example(**features) -> bytes:
    example = tf.train.Example()
    for name, value in features.items():
        example.features.feature[name].bytes_list.value.append(value.encode())
    return example.SerializeToString()


def _data(seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """(train, catalogue) rows: 3,000 items (2 with a tab in the id, 150 with a second
    row), 20,000 interactions over 400 users drawn Zipf-like from 2,400 of the items plus
    40 unknown ids, 25 rows without an item id."""
    rng = np.random.default_rng(seed)
    items = [f"i{n}" for n in range(2_998)] + ["tab\tid", "new\nline"]
    catalog = [_example(item_id=item, title=f"t{n % 97}") for n, item in enumerate(items)]
    catalog += [_example(item_id=items[n], title="second row") for n in rng.choice(
        len(items), 150, replace=False)]
    seen = items[:2_400] + [f"unknown{n}" for n in range(40)]
    weights = 1.0 / np.arange(1, len(seen) + 1) ** 0.8
    drawn = rng.choice(len(seen), 20_000, p=weights / weights.sum())
    users = rng.integers(0, 400, 20_000)
    train = [_example(user_id=f"u{user}", item_id=seen[item]) for item, user in zip(drawn, users)]
    train += [_example(user_id="u0") for _ in range(25)]
    order = rng.permutation(len(train))
    return [train[i] for i in order], [catalog[i] for i in rng.permutation(len(catalog))]


def _values(row: bytes, name: str) -> list[bytes]:
    return list(tf.train.Example.FromString(row).features.feature[name].bytes_list.value)


def _weight(count: int, settings: PoolConfig) -> float:
    if settings.sampler == "popularity":
        return (count + settings.smoothing) ** settings.alpha
    if settings.sampler == "unseen_boost":
        return settings.unseen_weight if count == 0 else 1.0
    return 1.0


def _lines(counts: dict[bytes, int], min_count: int) -> list[str]:
    kept = sorted(((-count, identifier) for identifier, count in counts.items()
                   if count >= min_count and not any(s in identifier for s in b"\t\n\r")))
    return [f"{identifier.decode()}\t{-count}" for count, identifier in kept]


def reference(train: list[bytes], catalog: list[bytes], settings: PoolConfig) -> dict:
    """Every pool output computed item by item."""
    counts, users, missing = collections.Counter(), collections.Counter(), 0
    for row in train:
        ids = _values(row, "item_id")
        missing += not ids
        counts.update(ids)
        users.update(_values(row, "user_id"))
    rows: dict[bytes, list[bytes]] = collections.defaultdict(list)
    for row in catalog:
        rows[_values(row, "item_id")[0]].append(row)
    table = sorted(set(counts) | set(rows))
    total = sum(counts.values())
    fraction = pool.member_fraction(len(rows), settings.capacity)
    members = sorted(i for i in rows if pool.key_hash(settings.seed, i) < fraction)
    weight_sum = sum(_weight(counts[i], settings) for i in members)
    pooled = {i: _weight(counts[i], settings) / weight_sum for i in members}
    frequencies = {i: (counts[i], int(i in rows),
                       (counts[i] + settings.smoothing) / (total + settings.smoothing * len(table)),
                       pooled.get(i, 0.0)) for i in table}
    pool_rows = {i: (min(rows[i]), counts[i], pooled[i]) for i in members}
    separators = sum(any(s in i for s in b"\t\n\r") for i in table)
    stats = {"catalog_size": len(rows), "train_interactions": len(train),
             "catalog_duplicate_rows": sum(len(r) - 1 for r in rows.values()),
             "interactions_missing_item_id": missing,
             "items_seen": sum(1 for i in rows if counts[i]),
             "items_never_seen": sum(1 for i in rows if not counts[i]),
             "unknown_items": sum(1 for i in counts if i not in rows),
             "interactions_with_unknown_item": sum(c for i, c in counts.items() if i not in rows),
             "frequency_table_size": len(table), "users": len(users),
             "item_ids_with_separators": separators, "user_ids_with_separators": 0,
             "pool_size": len(members)}
    item_vocabulary = _lines(counts, settings.min_count)
    user_vocabulary = _lines(users, settings.min_count)
    stats.update(item_vocab_size=len(item_vocabulary), user_vocab_size=len(user_vocabulary))
    return {"frequencies": frequencies, "pool": pool_rows, "stats": stats,
            "items": item_vocabulary, "users": user_vocabulary}


def _frequency(row: bytes):
    features = tf.train.Example.FromString(row).features.feature
    return (features[keys.POOL_ITEM_ID].bytes_list.value[0],
            (features[keys.POOL_COUNT].int64_list.value[0],
             features[keys.POOL_IN_CATALOG].int64_list.value[0],
             features[keys.POOL_PROBABILITY].float_list.value[0],
             features[keys.POOL_POOL_PROBABILITY].float_list.value[0]))


def _pool_row(row: bytes):
    """(id, (catalogue part, count, probability)): the catalogue features without the two
    the pool adds, re-serialised deterministically to compare with the reference's row."""
    example = tf.train.Example.FromString(row)
    features = example.features.feature
    count = features[keys.POOL_COUNT].int64_list.value[0]
    probability = features[keys.POOL_POOL_PROBABILITY].float_list.value[0]
    del features[keys.POOL_COUNT], features[keys.POOL_POOL_PROBABILITY]
    return features["item_id"].bytes_list.value[0], (example, count, probability)


def _same_table(expected: dict, cast_row=None):
    def check(actual):
        got = dict(actual)
        assert len(got) == len(actual), "an id appears twice"
        assert sorted(got) == sorted(expected)
        for identifier, values in got.items():
            want = expected[identifier]
            if cast_row:
                want = (tf.train.Example.FromString(want[0]),) + tuple(want[1:])
            assert values[:-2] == want[:-2], identifier
            # Probabilities are float32 in the files: equal to the float64 reference rounded.
            assert values[-2:] == pytest.approx(np.float32(want[-2:]), rel=1e-6), identifier
    return check


@pytest.mark.parametrize("settings", [
    PoolConfig(),
    PoolConfig(sampler="popularity", alpha=0.75, pool_size=1_000, seed=3, min_count=2),
    PoolConfig(sampler="unseen_boost", unseen_weight=4.0, smoothing=0.0),
], ids=["uniform", "popularity_capped", "unseen_boost_unsmoothed"])
def test_batched_pool_equals_the_per_item_reference(settings):
    train, catalog = _data()
    expected = reference(train, catalog, settings)
    assert expected["stats"]["pool_size"] < 3_000 or settings.pool_size is None
    with TestPipeline() as p:
        outputs = pool.build_pool(
            p | "Train" >> beam.Create([train[i:i + 1_000] for i in range(0, len(train), 1_000)]),
            p | "Catalog" >> beam.Create([catalog[i:i + 700] for i in range(0, len(catalog), 700)]),
            settings, CONTRACT)
        assert_that(_rows(outputs.frequencies) | beam.Map(_frequency),
                    _same_table(expected["frequencies"]), label="frequencies")
        assert_that(_rows(outputs.pool) | beam.Map(_pool_row),
                    _same_table(expected["pool"], cast_row=True), label="pool")
        assert_that(outputs.item_vocabulary, lambda got: got == [expected["items"]] or (
            _fail("item vocabulary", got)), label="items")
        assert_that(outputs.user_vocabulary, lambda got: got == [expected["users"]] or (
            _fail("user vocabulary", got)), label="users")
        assert_that(outputs.stats | beam.Map(lambda s: {k: v for k, v in s.items()
                                                        if k != "settings"}),
                    lambda got: got == [expected["stats"]] or _fail("stats", got),
                    label="stats")


def _fail(what: str, got) -> None:
    raise AssertionError(f"{what} differs from the reference: {str(got)[:500]}")
