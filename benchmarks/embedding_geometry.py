"""Alignment and uniformity of a trained model's embeddings (Wang & Isola, ICML 2020).

Both are measured on the unit sphere (embeddings L2-normalised first, whatever the model's
own last layer does):
  * alignment = E ||q - p||^2 over (query, positive item) pairs: lower is better aligned;
  * uniformity = log E exp(-2 ||v_i - v_j||^2) over distinct pairs of catalogue items:
    lower (more negative) is more uniform; -4 is the floor of two antipodal points, and
    identical embeddings give 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

MAX_ITEMS = 2000  # items sampled for uniformity (pairs grow quadratically)
MAX_PAIRS = 5000  # eval (query, positive) pairs for alignment


def normalise(vectors: np.ndarray) -> np.ndarray:
    """[N, D] rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def uniformity(vectors: np.ndarray, max_items: int = MAX_ITEMS, seed: int = 0) -> float:
    """log mean exp(-2 ||v_i - v_j||^2) over pairs i < j of (a sample of) [N, D] vectors."""
    rng = np.random.default_rng(seed)
    if len(vectors) > max_items:
        vectors = vectors[rng.choice(len(vectors), max_items, replace=False)]
    unit = normalise(np.asarray(vectors, np.float64))
    squared = np.maximum(2.0 - 2.0 * unit @ unit.T, 0.0)
    upper = squared[np.triu_indices(len(unit), k=1)]
    return float(np.log(np.mean(np.exp(-2.0 * upper))))


def alignment(queries: np.ndarray, positives: np.ndarray) -> float:
    """mean ||q_i - p_i||^2 of row-paired [B, D] query and positive-item vectors."""
    difference = normalise(np.asarray(queries, np.float64)) - normalise(
        np.asarray(positives, np.float64))
    return float(np.mean(np.sum(difference ** 2, axis=1)))


def measure(result: Any, eval_pattern: str) -> dict[str, float]:
    """Alignment on the first MAX_PAIRS eval rows whose item is in the catalogue, and
    uniformity of the catalogue, for a training.TrainResult."""
    from components.trainer import features  # pylint: disable=import-outside-toplevel
    contract = result.contract
    position = {item.encode(): row for row, item in enumerate(result.catalog_ids)}
    queries, positives = [], []
    for batch in features.dataset(eval_pattern, 1024, False, 0, contract,
                                  features.interaction_names(contract), max_rows=MAX_PAIRS):
        rows = np.array([position.get(item, -1) for item in batch[contract.item_id].numpy()])
        known = rows >= 0
        queries.append(np.asarray(result.model(batch))[known])
        positives.append(result.catalog_embeddings[rows[known]])
    return {"alignment": round(alignment(np.concatenate(queries), np.concatenate(positives)), 4),
            "uniformity": round(uniformity(result.catalog_embeddings), 4)}
