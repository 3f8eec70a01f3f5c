"""Towers: shapes, L2 on/off, OOV ids, id-only baseline."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import features, towers
from components.trainer.tests.small_world import CONTRACT, preprocessing
from twotower.config import HISTORY_ID_DROPOUT, ModelConfig
from twotower.contract import Contract, FeatureSpec

USERS = ["u1", "u2"]
ITEMS = ["a", "b", "c"]
PREPROCESSING = preprocessing(USERS, ITEMS)
MISSING = features.MISSING_INT
QUERY = {"user_id": tf.constant(["u1", "u2", "new"]),
         "age": tf.constant([24, MISSING, 60], tf.int64),
         "gender": tf.constant(["M", "F", ""]), "occupation": tf.constant(["writer", "", "x"]),
         "zip": tf.constant(["85711", "T8H1N", ""])}
CANDIDATE = {"item_id": tf.constant(["a", "zzz"]), "title": tf.constant(["Toy Story", ""]),
             "genres": tf.constant(["Animation|Comedy", ""]),
             "release_year": tf.constant([1995, MISSING], tf.int64)}


def test_l2_on_gives_unit_norms():
    config = ModelConfig(embedding_dim=8, hidden_layers=(16,))
    query = towers.query_tower(CONTRACT, PREPROCESSING, config)(QUERY)
    candidate = towers.candidate_tower(CONTRACT, PREPROCESSING, config)(CANDIDATE)
    assert query.shape == (3, 8) and candidate.shape == (2, 8)
    np.testing.assert_allclose(tf.norm(query, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(tf.norm(candidate, axis=1), 1.0, rtol=1e-5)


def test_l2_off_leaves_norms_free():
    config = ModelConfig(embedding_dim=8, hidden_layers=(16,), l2_normalize=False)
    tf.keras.utils.set_random_seed(0)
    norms = tf.norm(towers.query_tower(CONTRACT, PREPROCESSING, config)(QUERY), axis=1).numpy()
    assert not np.allclose(norms, 1.0)


def test_id_only_tower_is_the_id_embedding_with_an_oov_row():
    config = ModelConfig(embedding_dim=4, hidden_layers=(), use_features=False, l2_normalize=False)
    tower = towers.query_tower(CONTRACT, PREPROCESSING, config)
    out = tower(QUERY)
    table = tower.id_embedding.table.embedding.embeddings.numpy()
    assert table.shape == (3, 4)
    # Index 0 is OOV ("new"); u1 -> 1, u2 -> 2.
    np.testing.assert_allclose(out.numpy(), table[[1, 2, 0]])


def test_id_dropout_trains_on_the_unknown_id_and_never_serves_with_it():
    config = ModelConfig(embedding_dim=4, hidden_layers=(), use_features=False,
                         l2_normalize=False, id_dropout=0.5)
    tower = towers.query_tower(CONTRACT, PREPROCESSING, config)
    table = tower.id_embedding.table.embedding
    users = {"user_id": tf.constant(["u1", "u2"] * 500)}
    np.testing.assert_allclose(tower(users).numpy(), tower(users, training=False).numpy())
    trained = tower(users, training=True).numpy()
    known = np.tile(table.embeddings.numpy()[[1, 2]], (500, 1))
    oov = table.embeddings.numpy()[0]
    dropped = np.all(np.isclose(trained, oov), axis=1)
    # Each row is either its own id's row or the OOV row; about half are dropped.
    assert np.all(dropped | np.all(np.isclose(trained, known), axis=1))
    assert 400 < dropped.sum() < 600


def test_id_dropout_left_null_is_on_only_with_a_history_feature():
    ids = (FeatureSpec("u", "user_id", "id"), FeatureSpec("i", "item_id", "id"))
    history = FeatureSpec("recent", "query", "history")
    stats = towers.Preprocessing({"u": ["u1"], "i": ["a"], "recent": ["a"]}, {})
    config = ModelConfig(embedding_dim=4, hidden_layers=())
    assert config.id_dropout is None
    with_history = Contract(ids + (history,))
    assert towers.query_tower(with_history, stats, config).id_dropout == HISTORY_ID_DROPOUT
    assert towers.candidate_tower(with_history, stats, config).id_dropout == HISTORY_ID_DROPOUT
    assert towers.query_tower(Contract(ids), stats, config).id_dropout == 0.0
    chosen = dataclasses.replace(config, id_dropout=0.05)
    assert towers.query_tower(with_history, stats, chosen).id_dropout == 0.05


def test_drop_ids_rates_zero_and_near_one():
    ids = tf.constant(["a", "b", "c"])
    assert towers.drop_ids(ids, 0.0).numpy().tolist() == [b"a", b"b", b"c"]
    assert towers.drop_ids(ids, 0.999999).numpy().tolist() == [b"", b"", b""]


def test_features_change_the_embedding_of_the_same_id():
    config = dataclasses.replace(ModelConfig(), embedding_dim=8)
    tower = towers.candidate_tower(CONTRACT, PREPROCESSING, config)
    same_id = dict(CANDIDATE, item_id=tf.constant(["a", "a"]))
    out = tower(same_id).numpy()
    assert not np.allclose(out[0], out[1])


def test_an_anonymous_query_tower_reads_its_features_and_no_id():
    contract = Contract((FeatureSpec("i", "item_id", "id"),
                         FeatureSpec("page", "query", "categorical")), anonymous_users=True)
    stats = towers.Preprocessing({"page": ["home", "cart"]}, {})
    config = ModelConfig(embedding_dim=4, hidden_layers=(), feature_embedding_dim=3)
    tower = towers.query_tower(contract, stats, config)
    assert tower.id_feature is None and tower.feature_names == ("page",)
    out = tower({"page": tf.constant(["home", "cart", "home"])}).numpy()
    assert out.shape == (3, 4) and np.allclose(out[0], out[2])
    assert not np.allclose(out[0], out[1])
    assert list(tower.vocabulary_tables()) == ["page"]


def _tower(*specs, stats=None):
    contract = Contract((FeatureSpec("u", "user_id", "id"), FeatureSpec("i", "item_id", "id"),
                         *specs))
    config = ModelConfig(embedding_dim=4, hidden_layers=(), l2_normalize=False,
                         feature_embedding_dim=3)
    return towers.query_tower(contract, towers.Preprocessing({"u": ["u1"]}, stats or {}),
                              config)


def test_timestamp_is_hour_of_day_plus_day_of_week():
    tower = _tower(FeatureSpec("t", "query", "timestamp", dtype="int64"))
    layer = tower.feature_layers["t"]
    # 1970-01-01 00:00 was a Thursday (weekday 3); 1970-01-05 13:xx a Monday at 13h.
    seconds = tf.constant([0, 4 * 86400 + 13 * 3600 + 59, 7 * 86400, MISSING], tf.int64)
    out = layer(seconds).numpy()
    hours, days = layer.hours.embeddings.numpy(), layer.days.embeddings.numpy()
    np.testing.assert_allclose(out[0], hours[1] + days[4], rtol=1e-6)
    np.testing.assert_allclose(out[1], hours[14] + days[1], rtol=1e-6)
    np.testing.assert_allclose(out[2], out[0], rtol=1e-6)  # a week later, same hour
    np.testing.assert_allclose(out[3], hours[0] + days[0], rtol=1e-6)  # missing


def test_numeric_buckets_missing_and_normalisation():
    spec = FeatureSpec("n", "query", "numeric", dtype="float32", normalize=True)
    tower = _tower(spec, stats={"n": towers.NumericStats((10.0, 20.0), 15.0, 5.0)})
    layer = tower.feature_layers["n"]
    out = layer(tf.constant([5.0, 10.0, 25.0, float("nan")])).numpy()
    table = layer.embedding.embeddings.numpy()
    # Buckets: missing 0, (<10) 1, [10, 20) 2, (>=20) 3; then (x - 15) / 5 (missing: 0).
    np.testing.assert_allclose(out[:, :3], table[[1, 2, 3, 0]], rtol=1e-6)
    np.testing.assert_allclose(out[:, 3], [-2.0, -1.0, 2.0, 0.0], rtol=1e-6)


def test_hashed_categorical_has_no_vocabulary_and_a_fixed_table():
    tower = _tower(FeatureSpec("c", "query", "categorical", hash_bins=16))
    layer = tower.feature_layers["c"]
    assert layer(tf.constant(["x", "x", "y"])).shape == (3, 3)
    assert layer.table.embedding.embeddings.shape == (16, 3)
    assert "c" not in tower.vocabulary_tables() and "u" in tower.vocabulary_tables()


def test_history_pools_the_last_items_and_handles_empty_and_long_inputs():
    spec = FeatureSpec("recent", "query", "history", length=2, pooling="mean")
    tower = towers.query_tower(
        Contract((FeatureSpec("u", "user_id", "id"), FeatureSpec("i", "item_id", "id"), spec)),
        towers.Preprocessing({"u": ["u1"], "recent": ["a", "b", "c"]}, {}),
        ModelConfig(embedding_dim=4, hidden_layers=(), l2_normalize=False,
                    feature_embedding_dim=3))
    layer = tower.feature_layers["recent"]
    table = layer.table

    def row(item):
        return table.embedding.embeddings.numpy()[table.lookup(tf.constant([item])).numpy()[0]]
    out = layer(tf.constant([["a", "b", "c", ""], ["c", "", "", ""], ["", "", "", ""]])).numpy()
    np.testing.assert_allclose(out[0], (row("b") + row("c")) / 2, rtol=1e-6)  # last 2 only
    np.testing.assert_allclose(out[1], row("c"), rtol=1e-6)
    np.testing.assert_allclose(out[2], 0.0)  # an empty history
    # The served signature takes [B, L] of any L, padded with "".
    assert tower.serving_specs["recent"].shape.as_list() == [None, None]
    batch = {"u": tf.constant(["u1", "u1"]), "recent": tf.constant([["a", "zzz"], ["", ""]])}
    assert tower(batch).shape == (2, 4)


def test_recency_pooling_halves_weights_going_back():
    spec = FeatureSpec("recent", "query", "history", length=4, pooling="recency")
    layer = towers.feature_layer(spec, towers.Preprocessing({"recent": ["a", "b"]}, {}), 2)
    table = layer.table

    def row(item):
        return table.embedding.embeddings.numpy()[table.lookup(tf.constant([item])).numpy()[0]]
    # Half-life length / 4 = 1 step: weights 0.5 (a, one step back) and 1 (b).
    out = layer(tf.constant([["a", "b"]])).numpy()[0]
    np.testing.assert_allclose(out, (0.5 * row("a") + row("b")) / 1.5, rtol=1e-6)


def test_vocabularies_are_not_held_as_lists_keras_walks_on_every_call():
    """A list attribute of a Keras layer is tracked element by element and walked on each
    eager call (0.6 s per call with 1M items); the lookups keep arrays instead."""
    items = [f"item{i}" for i in range(1000)]
    config = ModelConfig(embedding_dim=8, hidden_layers=(16,))
    tower = towers.candidate_tower(CONTRACT, preprocessing(USERS, items), config)
    tower(CANDIDATE)
    long_lists = [(layer.name, name) for layer in tower._flatten_layers()
                  for name, value in vars(layer).items()
                  if isinstance(value, (list, tuple)) and len(value) >= len(items)]
    assert long_lists == []
    lookup = towers.string_lookup(["a", "b"], 2)
    assert lookup(tf.constant(["b", "a", "zzz"])).numpy().tolist() == [3, 2, 0]
    assert lookup.get_vocabulary() == ["[UNK]", "[UNK]", "a", "b"]


@pytest.mark.parametrize("pooling", ["mean", "recency"])
def test_history_pooling_equals_a_per_position_reference_and_its_gradient_is_per_distinct_id(
        pooling):
    spec = FeatureSpec("recent", "query", "history", length=5, pooling=pooling)
    vocabulary = [f"p{i}" for i in range(8)]
    layer = towers.feature_layer(spec, towers.Preprocessing({"recent": vocabulary}, {}), 3)
    histories = [["p1", "p2", "p1", "p1", "", "p3", "p1", "p7"],  # repeats, longer than 5
                 ["", "", "", "", "", "", "", ""],
                 ["zzz", "", "p2", "", "", "", "", "p2"],  # an unknown id, padding inside
                 ["p4", "", "", "", "", "", "", ""]]
    items = tf.constant(histories)
    pooled = layer(items).numpy()
    table = layer.table.embedding.embeddings.numpy()
    half_life = max(spec.length / 4.0, 1.0)
    expected = []
    for history in histories:
        kept = [item for item in history if item][-spec.length:]
        weights = np.array([0.5 ** ((len(kept) - 1 - t) / half_life) if pooling == "recency"
                            else 1.0 for t in range(len(kept))])
        rows = table[layer.table.lookup(tf.constant(kept or [""])).numpy()][:len(kept)]
        expected.append((weights[:, None] * rows).sum(0) / max(weights.sum(), 1e-9)
                        if kept else np.zeros(3))
    np.testing.assert_allclose(pooled, np.array(expected), rtol=1e-5, atol=1e-7)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(items))
    gradient = tape.gradient(loss, layer.table.embedding.embeddings)
    indices = gradient.indices.numpy().tolist()
    assert sorted(indices) == sorted(set(indices))  # one row per distinct id
    assert len(indices) == len({"p1", "p2", "p3", "p7", "zzz", "p4"})
