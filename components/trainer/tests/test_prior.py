"""The popularity prior folded into one dot product."""
import numpy as np
import tensorflow as tf

from components.negative_pool import artifact_io
from components.trainer import prior


def test_augmented_dot_product_is_tau_times_the_prior_score():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(5, 3)).astype(np.float32)
    queries = rng.normal(size=(2, 3)).astype(np.float32)
    log_p = np.log(np.array([0.5, 0.2, 0.1, 0.1, 0.1], np.float32))
    tau, beta = 0.1, 0.7
    augmented = prior.query_vectors(tf.constant(queries), beta).numpy() @ \
        prior.item_vectors(items, log_p, beta, tau).T
    wanted = queries @ items.T / tau + beta * log_p  # the score of prior.py's docstring
    np.testing.assert_allclose(augmented, tau * wanted, rtol=1e-5, atol=1e-6)
    assert (np.argsort(-augmented, axis=1) == np.argsort(-wanted, axis=1)).all()


def test_zero_weight_leaves_vectors_unchanged():
    items = np.ones((2, 3), np.float32)
    assert prior.item_vectors(items, np.zeros(2, np.float32), 0.0, 0.1) is items
    assert prior.query_vectors(tf.ones((1, 3)), 0.0).shape == (1, 3)


def test_log_popularity_reads_the_table_and_floors_missing_items():
    table = artifact_io.Frequencies(
        item_ids=np.array(["a", "b", "c"], dtype=object), counts=np.array([3, 1, 0]),
        in_catalog=np.array([True, True, True]),
        probability=np.array([0.75, 0.25, 0.0], np.float32),
        pool_probability=np.array([0.5, 0.5, 0.0], np.float32))
    # zz is not in the table and c has probability 0: both get the smallest positive one.
    np.testing.assert_allclose(prior.log_popularity(["b", "a", "zz", "c"], table),
                               np.log([0.25, 0.75, 0.25, 0.25]), rtol=1e-6)
