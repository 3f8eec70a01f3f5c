"""index_report.json: ScaNN's recall against exact search and latency, on eval queries."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from components.index_builder import retrieval_model
from components.index_builder.scann_settings import ScannSettings
from components.trainer import metrics


def recall_against_exact(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approximate top-K ∩ exact top-K| / K.

    Args:
      approximate: [Q, K] ids from the index.
      exact: [Q, K] ids from exact search.
    """
    if exact.size == 0:
        return 1.0
    hits = [len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(approximate, exact)]
    return float(np.mean(hits))


def retrieve_ids(model: retrieval_model.RetrievalModel,
                 queries: Mapping[str, np.ndarray]) -> np.ndarray:
    """[Q, K] item ids for raw query features {name: [Q]}, a few queries per call so exact
    search never holds more than metrics.EVAL_SCORES_BUDGET scores at once."""
    total = len(next(iter(queries.values())))
    rows = metrics.eval_batch_size(int(model.item_ids.shape[0]))
    parts = [model.retrieve({name: tf.constant(values[start:start + rows])
                             for name, values in queries.items()})
             [retrieval_model.ITEM_IDS_OUTPUT].numpy() for start in range(0, total, rows)]
    return np.concatenate(parts) if parts else np.zeros((0, model.k), dtype=object)


def _latency_ms(retrieve: Callable[..., Any], queries: Mapping[str, np.ndarray],
                count: int) -> dict[str, float]:
    """p50/p95 milliseconds of single-query calls over the first `count` queries."""
    rows = min(count, len(next(iter(queries.values()))))
    times = []
    for row in range(rows):
        single = {name: tf.constant(values[row:row + 1]) for name, values in queries.items()}
        started = time.perf_counter()
        retrieve(single)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def tune_search(scann: retrieval_model.RetrievalModel, exact: retrieval_model.RetrievalModel,
                queries: Mapping[str, np.ndarray], settings: ScannSettings,
                target_recall: float) -> tuple[ScannSettings, list[dict[str, Any]]]:
    """Doubles leaves searched and reordering depth until ScaNN's recall@K against exact
    search on the eval queries reaches `target_recall` (or every leaf is searched).

    The derived settings suit well-clustered embeddings; overlapping ones need far more
    leaves (reports/index.json: 0.53 recall at 50 of 1000 leaves on the `hard` data set,
    0.96 at 400). Both knobs are read at query time, so no rebuild is needed.

    Returns:
      The settings reached and one {leaves_to_search, reorder, recall} entry per step.
    """
    truth = retrieve_ids(exact, queries)
    steps = []
    while True:
        found = retrieve_ids(scann, queries)
        recall = recall_against_exact(found, truth)
        steps.append({"leaves_to_search": settings.num_leaves_to_search,
                      "reorder": settings.reorder, "recall": recall})
        if (recall >= target_recall or settings.brute_force
                or settings.num_leaves_to_search >= settings.num_leaves):
            return settings, steps
        settings = dataclasses.replace(
            settings, num_leaves_to_search=min(settings.num_leaves,
                                               2 * settings.num_leaves_to_search),
            reorder=min(len(exact.item_ids.numpy()), 2 * settings.reorder))
        scann.search.set_search(settings)


def index_report(scann: retrieval_model.RetrievalModel, exact: retrieval_model.RetrievalModel,
                 queries: Mapping[str, np.ndarray], settings: ScannSettings,
                 latency_queries: int = 200) -> dict[str, Any]:
    """Compares the ScaNN model with exact search on a batch of raw query features.

    Args:
      scann: The ScaNN retrieval model.
      exact: The exact retrieval model over the same towers and catalogue.
      queries: Raw query features {name: [Q]}.
      settings: The ScaNN settings used (recorded in the report).
      latency_queries: Single-query calls timed per model.

    Returns:
      queries, k, scann_recall (at k), scann_recall_at_10, settings, and p50/p95 latency
      of one-query calls (query tower included) for both models.
    """
    found, truth = retrieve_ids(scann, queries), retrieve_ids(exact, queries)
    return {"queries": int(found.shape[0]), "k": int(settings.k),
            "scann_recall": recall_against_exact(found, truth),
            "scann_recall_at_10": recall_against_exact(found[:, :10], truth[:, :10]),
            "settings": dataclasses.asdict(settings),
            "scann_latency": _latency_ms(scann.retrieve, queries, latency_queries),
            "exact_latency": _latency_ms(exact.retrieve, queries, latency_queries)}
