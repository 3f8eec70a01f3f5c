"""ScaNN settings from the catalogue size, recall against exact search, by hand."""
import numpy as np
import pytest
import tensorflow as tf

from components.index_builder import report, scann_settings
from components.trainer import metrics
from twotower.config import IndexConfig
from twotower.errors import TwoTowerError


def test_small_catalogue_is_brute_force():
    settings = scann_settings.derive(1_682, IndexConfig(k=100))
    assert settings.brute_force and settings.k == 100


def test_large_catalogue_gets_a_tree_sized_by_sqrt_n():
    settings = scann_settings.derive(1_000_000, IndexConfig(k=10))
    # √1e6 = 1000 leaves, 1000 / 20 = 50 searched, reorder max(4·10, 100) = 100.
    assert (settings.num_leaves, settings.num_leaves_to_search, settings.reorder) == (1000, 50, 100)
    assert settings.anisotropic_quantization_threshold == 0.2


def test_overrides_win_and_are_checked():
    config = IndexConfig(k=10, brute_force_below=10, num_leaves=7, num_leaves_to_search=3,
                         reorder=50)
    settings = scann_settings.derive(120, config)
    assert (settings.num_leaves, settings.num_leaves_to_search, settings.reorder) == (7, 3, 50)
    with pytest.raises(TwoTowerError, match="num_leaves=500 exceeds the catalogue size"):
        scann_settings.derive(120, IndexConfig(num_leaves=500))
    with pytest.raises(TwoTowerError, match="num_leaves_to_search=9 exceeds"):
        scann_settings.derive(120, IndexConfig(num_leaves=4, num_leaves_to_search=9))
    with pytest.raises(TwoTowerError, match="nothing to index"):
        scann_settings.derive(0, IndexConfig())
    # k larger than the catalogue shrinks to it.
    assert scann_settings.derive(5, IndexConfig(k=100)).k == 5


def test_recall_against_exact_by_hand():
    exact = np.array([["a", "b"], ["c", "d"]])
    found = np.array([["b", "x"], ["c", "d"]])
    assert report.recall_against_exact(found, exact) == pytest.approx((0.5 + 1.0) / 2)


class _RecordingModel:
    """Returns each query's own index as its one retrieved id and records call sizes."""

    def __init__(self, catalog_size):
        self.item_ids = tf.zeros([catalog_size], tf.string)
        self.k = 1
        self.calls = []

    def retrieve(self, features):
        rows = features["user_id"]
        self.calls.append(int(rows.shape[0]))
        return {"item_ids": tf.reshape(rows, [-1, 1])}


def test_retrieve_ids_splits_queries_to_bound_the_score_matrix(monkeypatch):
    monkeypatch.setattr(metrics, "EVAL_SCORES_BUDGET", 40)
    model = _RecordingModel(catalog_size=10)  # 4 queries per call
    queries = {"user_id": np.array([b"q%d" % i for i in range(10)], dtype=object)}
    ids = report.retrieve_ids(model, queries)
    assert model.calls == [4, 4, 2]
    assert ids[:, 0].tolist() == queries["user_id"].tolist()
