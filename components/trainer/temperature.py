"""Temperature calibration (docs/architecture.md; `twotower tune-temperature`).

An L2-normalised model's logits are cos(u, v) / τ. Trained without normalisation, a model
shows how far apart its vectors' directions get on real queries: the cosine extent c (the
99.9th percentile of |cos| over sampled query-item pairs). τ = c / 14 lets the scaled
logits reach about ±14, where sigmoid(14) ≈ 1 - 1e-6, so softmax and sigmoid can get
near 0 and 1; the suggestion is clipped to [0.05, 0.2], the range that trains well.
"""
from __future__ import annotations

import numpy as np

TARGET_LOGIT = 14.0
MIN_SUGGESTED, MAX_SUGGESTED = 0.05, 0.2
PERCENTILE = 99.9


def _extent(values: np.ndarray) -> dict[str, float]:
    return {"min": float(values.min()), "max": float(values.max()),
            "p0.1": float(np.percentile(values, 100 - PERCENTILE)),
            "p99.9": float(np.percentile(values, PERCENTILE)),
            "extent": float(np.percentile(np.abs(values), PERCENTILE))}


def dot_product_ranges(queries: np.ndarray, items: np.ndarray) -> dict[str, dict[str, float]]:
    """Ranges of raw dot products and of cosines over all (query, item) pairs.

    Args:
      queries: [Q, D] query embeddings of an unnormalised model.
      items: [N, D] item embeddings of the same model.

    Returns:
      {"raw": {...}, "cosine": {...}}, each with min, max, p0.1, p99.9 and extent
      (the 99.9th percentile of the absolute value).
    """
    raw = queries @ items.T
    norms = np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(items, axis=1)[None, :]
    cosine = raw / np.maximum(norms, 1e-12)
    return {"raw": _extent(raw), "cosine": _extent(cosine)}


def suggest_temperature(cosine_extent: float, target: float = TARGET_LOGIT) -> float:
    """τ = cosine_extent / target, clipped to [0.05, 0.2]."""
    return float(np.clip(cosine_extent / target, MIN_SUGGESTED, MAX_SUGGESTED))
