"""Towers: shapes, L2 on/off, OOV ids, id-only baseline."""
import dataclasses

import numpy as np
import tensorflow as tf

from components.trainer import towers
from pipeline.config import ModelConfig

USERS = ["u1", "u2"]
ITEMS = ["a", "b", "c"]
QUERY = {"user_id": tf.constant(["u1", "u2", "new"]), "age": tf.constant([24, 0, 60], tf.int64),
         "gender": tf.constant(["M", "F", ""]), "occupation": tf.constant(["writer", "", "x"]),
         "zip": tf.constant(["85711", "T8H1N", ""])}
CANDIDATE = {"item_id": tf.constant(["a", "zzz"]), "title": tf.constant(["Toy Story", ""]),
             "genres": tf.constant(["Animation|Comedy", ""]),
             "release_year": tf.constant([1995, 0], tf.int64)}


def test_l2_on_gives_unit_norms():
    config = ModelConfig(embedding_dim=8, hidden_layers=(16,))
    query = towers.query_tower(USERS, config)(QUERY)
    candidate = towers.candidate_tower(ITEMS, config)(CANDIDATE)
    assert query.shape == (3, 8) and candidate.shape == (2, 8)
    np.testing.assert_allclose(tf.norm(query, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(tf.norm(candidate, axis=1), 1.0, rtol=1e-5)


def test_l2_off_leaves_norms_free():
    config = ModelConfig(embedding_dim=8, hidden_layers=(16,), l2_normalize=False)
    tf.keras.utils.set_random_seed(0)
    norms = tf.norm(towers.query_tower(USERS, config)(QUERY), axis=1).numpy()
    assert not np.allclose(norms, 1.0)


def test_id_only_tower_is_the_id_embedding_with_an_oov_row():
    config = ModelConfig(embedding_dim=4, hidden_layers=(), use_features=False, l2_normalize=False)
    tower = towers.query_tower(USERS, config)
    out = tower(QUERY)
    table = tower.id_embedding.embedding.embeddings.numpy()
    assert table.shape == (3, 4)
    # Index 0 is OOV ("new"); u1 -> 1, u2 -> 2.
    np.testing.assert_allclose(out.numpy(), table[[1, 2, 0]])


def test_features_change_the_embedding_of_the_same_id():
    config = dataclasses.replace(ModelConfig(), embedding_dim=8)
    tower = towers.candidate_tower(ITEMS, config)
    same_id = dict(CANDIDATE, item_id=tf.constant(["a", "a"]))
    out = tower(same_id).numpy()
    assert not np.allclose(out[0], out[1])
