"""Warm start with a grown vocabulary: known ids keep their rows, new ids start fresh."""
import numpy as np
import pytest
import tensorflow as tf

from components.trainer import features, towers, warm_start
from pipeline.config import ModelConfig

CONFIG = ModelConfig(embedding_dim=4, hidden_layers=(8,), id_embedding_dim=4,
                     feature_embedding_dim=2)


def _tower(vocabulary, config=CONFIG, seed=0):
    tf.keras.utils.set_random_seed(seed)
    tower = towers.candidate_tower(vocabulary, config)
    warm_start.build(tower, features.CANDIDATE_FEATURES)
    return tower


def _row(tower, item):
    index = tower.id_embedding.lookup(tf.constant([item])).numpy()[0]
    return tower.id_embedding.embedding.embeddings.numpy()[index]


def test_grown_vocabulary_keeps_known_rows(tmp_path):
    old = _tower(["a", "b"], seed=1)
    path = str(tmp_path / "ws" / "candidate_tower.npz")
    warm_start.save(old, path)
    new = _tower(["c", "b", "a"], seed=2)
    fresh_c = _row(new, "c").copy()
    stats = warm_start.restore(new, path)
    assert (stats.known_ids, stats.new_ids) == (2, 1)
    for item in ("a", "b", "unknown-id"):  # the OOV row is carried over too
        np.testing.assert_array_equal(_row(new, item), _row(old, item))
    np.testing.assert_array_equal(_row(new, "c"), fresh_c)
    # Every other weight (feature embeddings, dense layers) is copied as is.
    table = new.id_embedding.embedding.embeddings
    others = [(n, o) for n, o in zip(new.weights, old.weights) if n is not table]
    assert len(others) == len(new.weights) - 1
    for new_weight, old_weight in others:
        np.testing.assert_array_equal(new_weight.numpy(), old_weight.numpy())
    batch = {"item_id": tf.constant(["a", "b"]), "title": tf.constant(["x", "y"]),
             "genres": tf.constant(["Drama", ""]),
             "release_year": tf.constant([1990, 0], tf.int64)}
    np.testing.assert_allclose(new(batch), old(batch), rtol=1e-6)


def test_changed_model_section_is_refused(tmp_path):
    path = str(tmp_path / "candidate_tower.npz")
    warm_start.save(_tower(["a"]), path)
    wider = ModelConfig(embedding_dim=4, hidden_layers=(16,), id_embedding_dim=4,
                        feature_embedding_dim=2)
    with pytest.raises(warm_start.WarmStartError, match="warm_start=false"):
        warm_start.restore(_tower(["a"], wider), path)
    with pytest.raises(warm_start.WarmStartError, match="no warm-start weights"):
        warm_start.restore(_tower(["a"]), str(tmp_path / "missing.npz"))
