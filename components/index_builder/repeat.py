"""Repeat-aware retrieval: the request's history items as candidates beside the ANN's top-k.

Shoppers buy again, so a retail user's next item is often one they already had; a two-tower
model scores it like any other item and the ANN may not return it. The served graph adds
the items of the request's history (a contract feature of kind history: [B, L] item ids,
the most recent last, "" for padding) to the ANN's candidates, with a repeat term:

    d_j = Σ_{t: h_t = j} 0.5^(s_t / H)        s_t: valid items after position t (0: latest)
    r_j = w · log(1 + d_j)

(w = index.repeat_weight, H = index.repeat_half_life in history steps, None: d_j counts),
added to the model's score of j (the same dot product the index ranks by). The history
policy (index.history_policy) decides what the history's items do:
  rank:    they compete with the ANN's items, scored model + r_j (w = 0: model alone).
  exclude: they are never returned (a film already watched); the ANN is asked for k + L.
Ids unknown to the model (not in the catalogue) are ignored, and only the last `length`
valid items count (the contract's length, as the tower reads them).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

RANK, EXCLUDE = "rank", "exclude"
POLICIES = (RANK, EXCLUDE)
REMOVED = -1e30  # the score of a slot with no candidate left (exclude on a tiny catalogue)


def keep_latest(indices: tf.Tensor, length: int) -> tf.Tensor:
    """[B, L] history indices with all but the last `length` valid ones set to -1 (a
    request may send a longer history than the contract's `length`; the tower reads the
    same last `length`)."""
    valid = indices >= 0
    later = tf.cumsum(tf.cast(valid, tf.int32), axis=1, exclusive=True, reverse=True)
    return tf.where(valid & (later < length), indices, -1)


def _group_sums(indices: tf.Tensor, values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per row, the sum of `values` over the positions holding the same index.

    Sorting each row (stable) puts an item's positions next to each other, the latest last,
    so this costs O(L log L) per row and [B, L] memory (no [B, L, L] comparison).

    Returns:
      (sorted_indices [B, L], group_sum [B, L] the item's sum at each sorted position,
       order [B, L] the original position of each sorted one).
    """
    order = tf.argsort(indices, axis=1, stable=True)
    ordered = tf.gather(indices, order, batch_dims=1)
    ordered_values = tf.gather(values, order, batch_dims=1)
    rows, length = tf.shape(indices)[0], tf.shape(indices)[1]
    starts = tf.concat([tf.ones([rows, 1], tf.bool), ordered[:, 1:] != ordered[:, :-1]], axis=1)
    group = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # [B, L] group within the row
    flat = group + tf.range(rows)[:, tf.newaxis] * length
    sums = tf.math.unsorted_segment_sum(ordered_values, flat, rows * length)
    return ordered, tf.gather(sums, flat), order


def history_terms(indices: tf.Tensor, weight: float, half_life: float | None
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """The repeat term of each history position's item, once per item.

    Args:
      indices: [B, L] int64 catalogue indices of the history, -1 for padding or unknown ids.
      weight: w of the module docstring.
      half_life: H in history steps, or None (plain counts).

    Returns:
      (terms [B, L] float32: r_j at the latest position of each item, 0 elsewhere,
       latest [B, L] bool: the position holds a valid item's latest occurrence).
    """
    valid = indices >= 0
    later = tf.cumsum(tf.cast(valid, tf.float32), axis=1, exclusive=True, reverse=True)
    if half_life is None:
        decay = tf.cast(valid, tf.float32)
    else:
        decay = tf.where(valid, tf.math.pow(0.5, later / half_life), 0.0)
    ordered, sums, order = _group_sums(indices, decay)
    ends = tf.concat([ordered[:, 1:] != ordered[:, :-1],
                      tf.ones([tf.shape(indices)[0], 1], tf.bool)], axis=1)
    sorted_terms = tf.where(ends & (ordered >= 0), weight * tf.math.log1p(sums), 0.0)
    back = tf.argsort(order, axis=1)  # the sorted position of each original one
    terms = tf.gather(sorted_terms, back, batch_dims=1)
    latest = tf.gather(ends & (ordered >= 0), back, batch_dims=1)
    return terms, latest


def _lookup(sorted_keys: tf.Tensor, sorted_values: tf.Tensor, keys: tf.Tensor
            ) -> tuple[tf.Tensor, tf.Tensor]:
    """For [B, M] keys: (found [B, M] bool, the value at the last equal sorted key or 0)."""
    position = tf.searchsorted(sorted_keys, keys, side="right") - 1
    clipped = tf.maximum(position, 0)
    found = (position >= 0) & (tf.gather(sorted_keys, clipped, batch_dims=1) == keys)
    return found, tf.where(found, tf.gather(sorted_values, clipped, batch_dims=1),
                           tf.zeros_like(keys, sorted_values.dtype))


def dense_terms(indices: np.ndarray, num_items: int, weight: float,
                half_life: float | None) -> np.ndarray:
    """[B, N] repeat term of every catalogue item for [B, L] history indices (0 for items
    outside the history): the same values the served graph adds, for offline scoring."""
    terms, latest = history_terms(tf.constant(indices, tf.int64), weight, half_life)
    out = np.zeros((indices.shape[0], num_items), np.float64)
    rows, columns = np.nonzero(latest.numpy())
    out[rows, indices[rows, columns]] = terms.numpy()[rows, columns]
    return out


def merge(ann_indices: tf.Tensor, ann_scores: tf.Tensor, history: tf.Tensor,
          history_scores: tf.Tensor, k: int | tf.Tensor, policy: str, weight: float,
          half_life: float | None) -> tuple[tf.Tensor, tf.Tensor]:
    """The top k of the ANN's candidates and the history's, under a policy.

    Args:
      ann_indices, ann_scores: [B, K'] the ANN's catalogue indices and model scores
        (K' >= k; K' >= k + L under exclude, where the catalogue allows).
      history: [B, L] catalogue indices of the history, -1 for padding or unknown.
      history_scores: [B, L] the model's score of each history item (any value at -1).
      k: How many to return.
      policy: RANK or EXCLUDE.
      weight, half_life: The repeat term's w and H.

    Returns:
      ([B, k] catalogue indices, [B, k] scores), best first.
    """
    terms, latest = history_terms(history, weight, half_life)
    ann_indices = tf.cast(ann_indices, tf.int64)
    # The history's items sorted (one entry per item: the others become -1) with their terms.
    kept = tf.where(latest, history, -1)
    order = tf.argsort(kept, axis=1, stable=True)
    in_history, ann_terms = _lookup(tf.gather(kept, order, batch_dims=1),
                                    tf.gather(terms, order, batch_dims=1), ann_indices)
    in_history &= ann_indices >= 0
    if policy == EXCLUDE:
        scores = tf.where(in_history, REMOVED, ann_scores)
        top = tf.math.top_k(scores, k=k)
        return tf.gather(ann_indices, top.indices, batch_dims=1), top.values
    ann_total = ann_scores + ann_terms
    ann_sorted = tf.sort(ann_indices, axis=1)
    found_by_ann, _ = _lookup(ann_sorted, tf.zeros_like(ann_sorted), history)
    extra = tf.where(latest & tf.logical_not(found_by_ann), history_scores + terms, REMOVED)
    indices = tf.concat([ann_indices, tf.maximum(history, 0)], axis=1)
    top = tf.math.top_k(tf.concat([ann_total, extra], axis=1), k=k)
    return tf.gather(indices, top.indices, batch_dims=1), top.values
