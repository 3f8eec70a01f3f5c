"""NegativePool maths and Beam logic, pinned with a hand-worked example.

Catalogue: a, b, c, d (d has two rows). Train interactions: (u1,a) (u1,a) (u2,a) (u2,b)
(u3,x), where x is not in the catalogue, and one row of u3 without an item id.
Counts: a=3, b=1, x=1, c=d=0; N=5 interactions with an item, T=5 table rows.
With smoothing k=1: p(a)=(3+1)/(5+5)=0.4, p(b)=0.2, p(c)=p(d)=0.1, p(x)=0.2 (sum 1).
"""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pyarrow as pa
import pytest
import tensorflow as tf

from components.negative_pool import counting, pool
from twotower import config as config_lib
from twotower import keys
from twotower.config import PoolConfig
from twotower.contract import Contract, FeatureSpec
from twotower.errors import ConfigError

CONTRACT = Contract((FeatureSpec("user_id", "user_id", "id"), FeatureSpec("item_id", "item_id", "id"),
                     FeatureSpec("title", "candidate", "text")))


def _example(**features) -> bytes:
    example = tf.train.Example()
    for name, value in features.items():
        if isinstance(value, int):
            example.features.feature[name].int64_list.value.append(value)
        else:
            example.features.feature[name].bytes_list.value.append(value.encode())
    return example.SerializeToString(deterministic=True)


CATALOG = [_example(item_id="a", title="A"), _example(item_id="b", title="B"),
           _example(item_id="c", title="C"), _example(item_id="d", title="D1"),
           _example(item_id="d", title="D2")]
TRAIN = [_example(user_id="u1", item_id="a"), _example(user_id="u1", item_id="a"),
         _example(user_id="u2", item_id="a"), _example(user_id="u2", item_id="b"),
         _example(user_id="u3", item_id="x"), _example(user_id="u3")]


def _frequency_rows(serialized):
    features = tf.train.Example.FromString(serialized).features.feature
    return (features[keys.POOL_ITEM_ID].bytes_list.value[0].decode(),
            features[keys.POOL_COUNT].int64_list.value[0],
            features[keys.POOL_IN_CATALOG].int64_list.value[0],
            round(features[keys.POOL_PROBABILITY].float_list.value[0], 6),
            round(features[keys.POOL_POOL_PROBABILITY].float_list.value[0], 6))


def _pool_rows(serialized):
    features = tf.train.Example.FromString(serialized).features.feature
    return (features["item_id"].bytes_list.value[0].decode(),
            features["title"].bytes_list.value[0].decode(),
            round(features[keys.POOL_POOL_PROBABILITY].float_list.value[0], 6))


def _rows(shards):
    """The serialised rows of (shard, rows) elements, each shard checked to be a shard."""
    return shards | f"Rows{shards.producer.full_label}" >> beam.FlatMapTuple(lambda shard, rows: rows if 0 <= shard < counting.SHARDS
                                      else [f"bad shard {shard}"])


def _run(settings, check):
    with TestPipeline() as p:
        # Two batches each, as ReadRecordBatches would emit them.
        outputs = pool.build_pool(p | "Train" >> beam.Create([TRAIN[:3], TRAIN[3:]]),
                                  p | "Catalog" >> beam.Create([CATALOG[:2], CATALOG[2:]]),
                                  settings, CONTRACT)
        check(outputs)


def test_frequencies_pool_vocabularies_and_stats_by_hand():
    def check(outputs):
        assert_that(_rows(outputs.frequencies) | beam.Map(_frequency_rows), equal_to([
            ("a", 3, 1, 0.4, 0.25), ("b", 1, 1, 0.2, 0.25), ("c", 0, 1, 0.1, 0.25),
            ("d", 0, 1, 0.1, 0.25), ("x", 1, 0, 0.2, 0.0)]), label="frequencies")
        # The duplicate d rows are resolved to the smallest serialisation ("D1").
        assert_that(_rows(outputs.pool) | beam.Map(_pool_rows), equal_to([
            ("a", "A", 0.25), ("b", "B", 0.25), ("c", "C", 0.25), ("d", "D1", 0.25)]),
            label="pool")
        assert_that(outputs.item_vocabulary, equal_to([["a\t3", "b\t1", "x\t1"]]), label="iv")
        assert_that(outputs.user_vocabulary, equal_to([["u1\t2", "u2\t2", "u3\t2"]]), label="uv")
        assert_that(outputs.stats | beam.Map(lambda s: {k: v for k, v in s.items()
                                                        if k != "settings"}), equal_to([{
            "catalog_size": 4, "catalog_duplicate_rows": 1, "train_interactions": 6,
            "interactions_missing_item_id": 1, "items_seen": 2, "items_never_seen": 2,
            "unknown_items": 1, "interactions_with_unknown_item": 1, "frequency_table_size": 5,
            "users": 3, "user_vocab_size": 3, "item_vocab_size": 3,
            "user_ids_with_separators": 0, "item_ids_with_separators": 0, "pool_size": 4}]),
            label="stats")
    _run(PoolConfig(), check)


def test_an_anonymous_contract_counts_items_and_no_users():
    anonymous = Contract((FeatureSpec("item_id", "item_id", "id"),
                          FeatureSpec("title", "candidate", "text")), anonymous_users=True)
    with TestPipeline() as p:
        outputs = pool.build_pool(p | "Train" >> beam.Create([TRAIN]),
                                  p | "Catalog" >> beam.Create([CATALOG]),
                                  PoolConfig(), anonymous)
        assert outputs.user_vocabulary is None
        assert_that(outputs.item_vocabulary, equal_to([["a\t3", "b\t1", "x\t1"]]))
        assert_that(outputs.stats | beam.Map(lambda s: (s["users"], s["user_vocab_size"],
                                                        s["train_interactions"])),
                    equal_to([(0, 0, 6)]), label="stats")


@pytest.mark.parametrize("settings, expected", [
    # popularity, alpha 1: weights (count + 1) = a 4, b 2, c 1, d 1; total 8.
    (PoolConfig(sampler="popularity", alpha=1.0),
     {"a": 0.5, "b": 0.25, "c": 0.125, "d": 0.125}),
    # alpha 0 is uniform.
    (PoolConfig(sampler="popularity", alpha=0.0),
     {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}),
    # unseen_boost 5: a 1, b 1, c 5, d 5; total 12.
    (PoolConfig(sampler="unseen_boost", unseen_weight=5.0),
     {"a": round(1 / 12, 6), "b": round(1 / 12, 6), "c": round(5 / 12, 6),
      "d": round(5 / 12, 6)}),
])
def test_sampler_probabilities(settings, expected):
    def check(outputs):
        assert_that(_rows(outputs.pool) | beam.Map(lambda row: (_pool_rows(row)[0], _pool_rows(row)[2])),
                    equal_to(sorted(expected.items())))
    _run(settings, check)


def test_min_count_and_no_smoothing():
    def check(outputs):
        assert_that(outputs.item_vocabulary, equal_to([["a\t3"]]), label="iv")
        # k = 0: p = count / N; never-seen items get 0.
        assert_that(_rows(outputs.frequencies) | beam.Map(lambda r: (_frequency_rows(r)[0], _frequency_rows(r)[3])),
                    equal_to([("a", 0.6), ("b", 0.2), ("c", 0.0), ("d", 0.0), ("x", 0.2)]),
                    label="frequencies")
    _run(PoolConfig(min_count=2, smoothing=0.0), check)


def test_capped_pool_keeps_items_whose_key_is_below_capacity_over_catalogue():
    # pool_size 2 of a 4-item catalogue: members are the items with key_hash < 2/4.
    keys_by_item = {i: pool.key_hash(7, i.encode()) for i in "abcd"}
    members = sorted(i for i, key in keys_by_item.items() if key < 0.5)
    assert 0 < len(members) < 4, keys_by_item

    def check(outputs):
        assert_that(_rows(outputs.pool) | beam.Map(lambda row: (_pool_rows(row)[0], _pool_rows(row)[2])),
                    equal_to([(item, round(1 / len(members), 6)) for item in members]),
                    label="pool")
        assert_that(outputs.stats | beam.Map(lambda s: s["pool_size"]),
                    equal_to([len(members)]), label="size")
    _run(PoolConfig(pool_size=2, seed=7), check)


@pytest.mark.parametrize("size, capacity, fraction", [(4, 4, 1.0), (3, 4, 1.0), (8, 2, 0.25)])
def test_member_fraction(size, capacity, fraction):
    assert pool.member_fraction(size, capacity) == fraction


def test_capped_membership_size_is_close_to_the_capacity():
    # 20,000 items capped at 5,000: a Binomial(20000, 0.25) count, sd ~ 61.
    fraction = pool.member_fraction(20_000, 5_000)
    kept = sum(pool.key_hash(3, f"item{i}".encode()) < fraction for i in range(20_000))
    assert abs(kept - 5_000) < 300


def test_key_hash_is_deterministic_uniform_and_seeded():
    ids = [f"item{i}".encode() for i in range(20_000)]
    first = [pool.key_hash(1, i) for i in ids]
    assert first == [pool.key_hash(1, i) for i in ids]
    assert first != [pool.key_hash(2, i) for i in ids]
    # Chi-square over 10 equal bins: 9 degrees of freedom, 99.9th percentile is 27.9.
    counts = [0] * 10
    for value in first:
        counts[int(value * 10)] += 1
    expected = len(ids) / 10
    assert sum((c - expected) ** 2 / expected for c in counts) < 27.9


@pytest.mark.parametrize("count, total, size, k, expected", [
    (3, 5, 5, 1.0, 0.4), (0, 5, 5, 1.0, 0.1), (0, 5, 5, 0.0, 0.0), (0, 0, 0, 0.0, 0.0)])
def test_in_batch_probability(count, total, size, k, expected):
    assert pool.in_batch_probability(count, total, size, k) == pytest.approx(expected)


def _counts(pairs):
    return pa.table({counting.ID: pa.array([i for i, _ in pairs], pa.large_binary()),
                     counting.COUNT: pa.array([c for _, c in pairs], pa.int64())})


def test_vocabulary_lines_drop_ids_with_separators():
    lines = pool.vocabulary_lines(_counts([(b"ok", 2), (b"tab\tid", 5), (b"new\nline", 5),
                                           (b"z", 2), (b"cr\r", 9)]), 1)
    assert lines == ["ok\t2", "z\t2"]
    assert pool.has_separator(pa.array(["a\tb".encode(), "é".encode(), b"x\ry"])).tolist() == [
        True, False, True]


def test_vocabulary_lines_order_by_count_then_id_bytes_and_cap():
    pairs = [(b"b", 2), (b"a", 2), ("é".encode(), 2), (b"c", 7), (b"\xff", 1), (b"d", 1)]
    assert pool.vocabulary_lines(_counts(pairs), 1) == [
        "c\t7", "a\t2", "b\t2", "é\t2", "d\t1", "\ufffd\t1"]
    assert pool.vocabulary_lines(_counts(pairs), 2, max_tokens=2) == ["c\t7", "a\t2"]
    assert pool.vocabulary_lines(_counts([]), 1) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": "zipf"}, "pool.sampler: got 'zipf'; expected one of uniform, popularity"),
    ({"alpha": 0.5}, "pool.alpha: got 0.5; expected 0 unless pool.sampler is popularity"),
    ({"sampler": "popularity", "alpha": -1.0}, "pool.alpha: got -1.0; expected a number from 0"),
    ({"pool_size": 10, "max_pool_size": 5}, r"pool.pool_size: got 10; expected at most "
                                            r"pool.max_pool_size \(5\)"),
    ({"pool_size": 0}, "pool.pool_size: got 0; expected a number from 1"),
    ({"smoothing": -1.0}, "pool.smoothing: got -1.0; expected a number from 0"),
    ({"min_count": 0}, "pool.min_count: got 0; expected a number from 1"),
    ({"sampler": "unseen_boost", "unseen_weight": 0.0}, "pool.unseen_weight: got 0.0"),
])
def test_invalid_pool_configs_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        config_lib.check_section("pool", PoolConfig(**kwargs))
