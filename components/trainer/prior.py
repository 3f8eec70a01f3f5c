"""A popularity prior added at retrieval while the score stays one dot product (docs/benchmarks.md).

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

from components.negative_pool import artifact_io


def log_popularity(catalog_ids: Sequence[str], frequencies: artifact_io.Frequencies
                   ) -> np.ndarray:
    """[N] log p_freq of each catalogue item, from the pool's (smoothed) frequency table;
    items missing from the table (or at 0) get the table's smallest positive probability."""
    known = frequencies.probability[frequencies.probability > 0]
    floor = float(known.min()) if known.size else 1.0 / max(len(catalog_ids), 1)
    rows = frequencies.positions(catalog_ids)
    probability = np.where(rows >= 0, frequencies.probability[np.maximum(rows, 0)], 0.0)
    probability = np.where(probability > 0, probability, floor).astype(np.float64)
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
