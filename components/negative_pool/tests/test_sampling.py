"""Pool draws follow P_pool (chi-square on a fixed seed) and are reproducible."""
import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from components.negative_pool import pool, sampling
from twotower.config import PoolConfig

COUNTS = [50, 20, 10, 5, 2, 1, 0, 0]


def _pool_probabilities(settings: PoolConfig) -> np.ndarray:
    weights = pool.pool_weight(np.array(COUNTS), settings)
    return weights / weights.sum()


@pytest.mark.parametrize("settings", [
    PoolConfig(),
    PoolConfig(sampler="popularity", alpha=0.75),
    PoolConfig(sampler="unseen_boost", unseen_weight=5.0),
])
def test_draws_match_the_sampler_distribution(settings):
    probabilities = _pool_probabilities(settings)
    draws = sampling.draw_pool_indices(tf.constant(probabilities), 40_000,
                                       tf.constant([7, 0])).numpy()
    observed = np.bincount(draws, minlength=len(COUNTS))
    _, p_value = stats.chisquare(observed, probabilities * len(draws))
    assert p_value > 0.001
    # The same check has power: a different sampler's distribution is rejected.
    other = _pool_probabilities(PoolConfig(sampler="popularity", alpha=1.5))
    _, p_wrong = stats.chisquare(observed, other * len(draws))
    assert p_wrong < 1e-6


def test_draws_are_reproducible_per_seed():
    probabilities = tf.constant(_pool_probabilities(PoolConfig()))
    first = sampling.draw_pool_indices(probabilities, 64, tf.constant([1, 2]))
    assert first.shape == (64,) and first.dtype == tf.int64
    assert np.array_equal(first, sampling.draw_pool_indices(probabilities, 64, tf.constant([1, 2])))
    assert not np.array_equal(first, sampling.draw_pool_indices(probabilities, 64,
                                                                tf.constant([1, 3])))


def test_zero_probability_rows_are_never_drawn():
    draws = sampling.draw_pool_indices(tf.constant([0.5, 0.0, 0.5]), 5_000, tf.constant([3, 4]))
    assert 1 not in set(draws.numpy().tolist())
