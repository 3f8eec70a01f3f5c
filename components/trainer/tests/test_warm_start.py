"""Warm start with a grown vocabulary: known ids keep their rows, new ids start fresh."""
import numpy as np
import pytest
import tensorflow as tf

from components.trainer import towers, warm_start
from components.trainer.tests.small_world import CONTRACT, preprocessing
from twotower.config import ModelConfig
from twotower.contract import Contract

CONFIG = ModelConfig(embedding_dim=4, hidden_layers=(8,), id_embedding_dim=4,
                     feature_embedding_dim=2)


def _tower(vocabulary, config=CONFIG, seed=0, contract=CONTRACT, genres=("Drama",)):
    tf.keras.utils.set_random_seed(seed)
    statistics = preprocessing([], vocabulary)
    statistics.vocabularies["genres"] = list(genres)
    tower = towers.candidate_tower(contract, statistics, config)
    warm_start.build(tower)
    return tower


def _row(tower, item, name="item_id"):
    table = tower.vocabulary_tables()[name]
    index = table.lookup(tf.constant([item])).numpy()[0]
    return table.embedding.embeddings.numpy()[index]


def test_grown_vocabulary_keeps_known_rows(tmp_path):
    old = _tower(["a", "b"], seed=1)
    path = str(tmp_path / "ws" / "candidate_tower.npz")
    warm_start.save(old, path)
    new = _tower(["c", "b", "a"], seed=2, genres=("Comedy", "Drama"))
    fresh_c = _row(new, "c").copy()
    fresh_comedy = _row(new, "Comedy", "genres").copy()
    stats = warm_start.restore(new, path)
    assert (stats.known_ids, stats.new_ids) == (2, 1)
    for item in ("a", "b", "unknown-id"):  # the OOV row is carried over too
        np.testing.assert_array_equal(_row(new, item), _row(old, item))
    np.testing.assert_array_equal(_row(new, "c"), fresh_c)
    # A grown category vocabulary is remapped the same way: Drama kept, Comedy fresh.
    np.testing.assert_array_equal(_row(new, "Drama", "genres"), _row(old, "Drama", "genres"))
    np.testing.assert_array_equal(_row(new, "Comedy", "genres"), fresh_comedy)
    # Every other weight (other feature embeddings, dense layers) is copied as is.
    tables = [table.embedding.embeddings for table in new.vocabulary_tables().values()]
    others = [(n, o) for n, o in zip(new.weights, old.weights)
              if not any(n is table for table in tables)]
    assert len(others) == len(new.weights) - len(tables)
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


def test_changed_feature_set_is_refused_naming_the_features(tmp_path):
    path = str(tmp_path / "candidate_tower.npz")
    warm_start.save(_tower(["a"]), path)
    fewer = Contract(tuple(f for f in CONTRACT.features if f.name != "genres"))
    with pytest.raises(warm_start.WarmStartError,
                       match=r"feature set changed .*removed \['genres'\].*warm_start=false"):
        warm_start.restore(_tower(["a"], contract=fewer), path)


def test_matching_rows_by_value_and_oov_rows_by_position():
    new = np.array([b"[UNK]", b"[UNK]", b"c", b"b", b"a"])
    old = np.array([b"[UNK]", b"a", b"zz", b"b"])
    new_rows, old_rows = warm_start.matching_rows(new, old, b"[UNK]")
    assert sorted(zip(new_rows.tolist(), old_rows.tolist())) == [(0, 0), (3, 3), (4, 1)]
    new_rows, old_rows = warm_start.matching_rows(new, np.array([b"[UNK]"]), b"[UNK]")
    assert (new_rows.tolist(), old_rows.tolist()) == ([0], [0])


def test_vocabulary_is_the_lookup_row_order():
    tower = _tower(["b", "a", "ü"])
    assert tower.vocabulary_tables()["item_id"].vocabulary().tolist() == [
        b"[UNK]", b"b", b"a", "ü".encode()]


def test_files_of_the_earlier_format_still_restore(tmp_path):
    """Exports before the bytes format pickled Python strings (object arrays)."""
    old = _tower(["a", "b"], seed=1)
    path = str(tmp_path / "candidate_tower.npz")
    warm_start.save(old, path)
    with np.load(path) as saved:
        arrays = {name: saved[name] for name in saved.files}
    for name in arrays:
        if arrays[name].dtype.kind in "SU":
            arrays[name] = np.array([value.decode() if isinstance(value, bytes) else value
                                     for value in arrays[name].tolist()], dtype=object)
    np.savez(path, **arrays)
    new = _tower(["c", "a"], seed=2)
    assert (warm_start.restore(new, path).known_ids, _row(new, "a").tolist()) == (
        1, _row(old, "a").tolist())
