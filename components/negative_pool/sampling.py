"""Draws the M pool negatives of a batch (used by the trainer; tested against P_pool here)."""
from __future__ import annotations

import tensorflow as tf


def draw_pool_indices(pool_probabilities: tf.Tensor, num_samples: int,
                      seed: tf.Tensor) -> tf.Tensor:
    """Draws pool rows with replacement from P_pool, reproducibly for a given seed.

    Args:
      pool_probabilities: [P] float, the pool's `pool_probability` column (sums to 1).
      num_samples: M, the number of pool negatives in the batch.
      seed: [2] int, a stateless seed (e.g. (run seed, step)).

    Returns:
      [M] int64 indices into the pool.
    """
    logits = tf.math.log(tf.cast(pool_probabilities, tf.float32))[tf.newaxis, :]
    return tf.random.stateless_categorical(logits, num_samples, seed, dtype=tf.int64)[0]
