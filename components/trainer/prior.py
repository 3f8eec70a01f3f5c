"""A popularity prior added at retrieval while the score stays one dot product (DESIGN §6).

logQ correction trains the towers to score items net of popularity; for retrieval, the
prior log p_freq(j) can be added back with a weight β:

    score(i, j) = <u_i, v_j> / τ + β · log p_freq(j),

which ranks items exactly as <[u_i, 1], [v_j, τ·β·log p_freq(j)]>. So the item vectors get
one more component and the query vectors a constant 1, and any maximum-inner-product index
(ScaNN, FAISS, exact top-K) serves it unchanged. β = 0 leaves the vectors as they are.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from components import keys


def log_popularity(catalog_ids: Sequence[str], frequencies: dict[str, dict[str, float]]
                   ) -> np.ndarray:
    """[N] log p_freq of each catalogue item, from the pool's (smoothed) frequency table;
    items missing from the table get the table's smallest probability."""
    known = [row[keys.POOL_PROBABILITY] for row in frequencies.values()
             if row[keys.POOL_PROBABILITY] > 0]
    floor = min(known) if known else 1.0 / max(len(catalog_ids), 1)
    probability = np.array([frequencies.get(item, {}).get(keys.POOL_PROBABILITY, 0.0) or floor
                            for item in catalog_ids], np.float64)
    return np.log(probability).astype(np.float32)


def item_vectors(embeddings: np.ndarray, log_p: np.ndarray, weight: float,
                 temperature: float) -> np.ndarray:
    """[N, D] -> [N, D + 1] with τ·β·log p appended; unchanged when weight β is 0."""
    if weight == 0:
        return embeddings
    column = (temperature * weight * log_p).astype(embeddings.dtype)[:, np.newaxis]
    return np.concatenate([embeddings, column], axis=1)


def query_vectors(queries: tf.Tensor, weight: float) -> tf.Tensor:
    """[B, D] -> [B, D + 1] with a constant 1 appended; unchanged when weight β is 0."""
    if weight == 0:
        return queries
    return tf.concat([queries, tf.ones_like(queries[:, :1])], axis=1)
