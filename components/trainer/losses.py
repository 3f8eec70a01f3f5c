"""The retrieval loss (docs/architecture.md), one small function per trick.

Layout. A batch has B queries with positives p_1..p_B and M pool items n_1..n_M. The
candidate matrix has C = B + M columns [p_1..p_B, n_1..n_M], so row i's positive is column i
(labels = eye(B, C), tfrs.tasks.Retrieval's layout; across replicas the gathered columns
are rolled so this replica's come first, as TFRS does on TPUs).

Sampled softmax (the default) is `tfrs.tasks.Retrieval`: its temperature, accidental-hit
removal (tfrs.layers.loss.RemoveAccidentalHits) and hard-negative mining
(tfrs.layers.loss.HardNegativeMining) as they are; only the logQ term is ours
(`softmax_loss`), because TFRS clips the sampling probability to [1e-6, 1], which flattens
the long tail of a million-item catalogue (p ~ 1e-7) and cannot hold the mixture's expected
count q > 1 (B p_freq of a popular item).

The pairwise losses (BCE, BPR, hinge) are ours: TFRS has none, and they average over the
kept valid negatives, so they work on

  scores [B, C] float, labels [B, C] float one-hot, valid [B, C] bool,

where `valid` is False for masked entries (accidental hits). Hard-negative mining keeps the
same three tensors, with fewer columns.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

PairwiseLoss = Literal["bce", "bpr", "hinge"]
MASKED_LOGIT = -1e9


class Logits(NamedTuple):
    """Scores with their one-hot labels and validity mask, all [B, C']."""

    scores: tf.Tensor
    labels: tf.Tensor
    valid: tf.Tensor


def scaled_scores(queries: tf.Tensor, candidates: tf.Tensor, temperature: tf.Tensor) -> tf.Tensor:
    """s_ij = <u_i, v_j> / tau.

    Args:
      queries: [B, D] query embeddings u.
      candidates: [C, D] candidate embeddings v.
      temperature: scalar tau > 0.

    Returns:
      [B, C] scores.
    """
    return tf.matmul(queries, candidates, transpose_b=True) / temperature


def mixture_log_q(in_batch_probability: tf.Tensor, pool_probability: tf.Tensor,
                  batch_size: tf.Tensor | int, num_pool: tf.Tensor | int) -> tf.Tensor:
    """log q_j with q_j = B p_freq(j) + M P_pool(j): the expected count of item j in a batch's
    candidate set, the same for a column whichever source it came from.

    Args:
      in_batch_probability: [C] p_freq of each candidate column's item.
      pool_probability: [C] P_pool of each candidate column's item (0 outside the pool).
      batch_size: B.
      num_pool: M (0 gives the usual in-batch logQ, log(B p_freq)).

    Returns:
      [C] log q.
    """
    dtype = in_batch_probability.dtype
    q = (tf.cast(batch_size, dtype) * in_batch_probability
         + tf.cast(num_pool, dtype) * tf.cast(pool_probability, dtype))
    return tf.math.log(q)


def logq_correct(scores: tf.Tensor, log_q: tf.Tensor) -> tf.Tensor:
    """s_ij - log q_j: subtract, so frequently sampled items are not over-penalised.

    Args:
      scores: [B, C].
      log_q: [C].
    """
    return scores - log_q[tf.newaxis, :]


def positive_labels(batch: tf.Tensor, columns: tf.Tensor,
                    dtype: tf.DType = tf.float32) -> tf.Tensor:
    """[B, C] one-hot labels: row i's positive is column i (tf.eye(B, C), as in TFRS)."""
    return tf.eye(batch, columns, dtype=dtype)


def accidental_hits(positive_ids: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
    """[B, C] bool: True where column j holds row i's positive item but is not its own column.

    Args:
      positive_ids: [B] id of each row's positive.
      candidate_ids: [C] id of each column's item.
    """
    same = tf.equal(positive_ids[:, tf.newaxis], candidate_ids[tf.newaxis, :])
    own = positive_labels(tf.shape(positive_ids)[0], tf.shape(candidate_ids)[0], tf.float32) > 0
    return tf.logical_and(same, tf.logical_not(own))


def build_logits(scores: tf.Tensor, hits: tf.Tensor | None = None) -> Logits:
    """Labels (positive of row i at column i) and the validity mask; masked scores are set
    to MASKED_LOGIT.

    Args:
      scores: [B, C] (after temperature and logQ).
      hits: [B, C] bool accidental hits to mask, or None.
    """
    batch, columns = tf.shape(scores)[0], tf.shape(scores)[1]
    labels = positive_labels(batch, columns, scores.dtype)
    valid = tf.ones_like(scores, dtype=tf.bool) if hits is None else tf.logical_not(hits)
    scores = tf.where(valid, scores, tf.cast(MASKED_LOGIT, scores.dtype))
    return Logits(scores, labels, valid)


def hard_negatives(logits: Logits, num_hard: int) -> Logits:
    """Keeps each row's positive and its `num_hard` highest-scoring valid negatives.

    Returns:
      Logits of shape [B, min(num_hard + 1, C)]; column order follows the score ranking
      with the positive first.
    """
    columns = tf.shape(logits.scores)[1]
    k = tf.minimum(num_hard + 1, columns)
    # Positive first, then valid negatives by score, then masked entries.
    rank_key = tf.where(logits.valid, logits.scores, tf.cast(MASKED_LOGIT, logits.scores.dtype))
    rank_key = tf.where(logits.labels > 0, tf.cast(float("inf"), rank_key.dtype), rank_key)
    _, index = tf.math.top_k(rank_key, k=k)
    return Logits(tf.gather(logits.scores, index, batch_dims=1),
                  tf.gather(logits.labels, index, batch_dims=1),
                  tf.gather(logits.valid, index, batch_dims=1))


def softmax_task(num_hard_negatives: Optional[int],
                 remove_accidental_hits: bool) -> tfrs.tasks.Retrieval:
    """TFRS's retrieval task for sampled softmax: cross-entropy of each row against its
    column, summed over rows (TFRS's default, and the reduction Keras allows inside a
    tf.distribute strategy); no metrics (the Trainer evaluates over the whole catalogue
    afterwards, metrics.py)."""
    return tfrs.tasks.Retrieval(
        loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True,
                                                     reduction=tf.keras.losses.Reduction.SUM),
        num_hard_negatives=num_hard_negatives, remove_accidental_hits=remove_accidental_hits)


def softmax_loss(task: tfrs.tasks.Retrieval, queries: tf.Tensor, candidates: tf.Tensor,
                 candidate_ids: tf.Tensor, temperature: tf.Tensor,
                 log_q: Optional[tf.Tensor] = None, reduction: str = "mean") -> tf.Tensor:
    """Sampled softmax through `task` with s_ij = <u_i, v_j> / tau - log q_j.

    TFRS scores q·c. The temperature divides the queries, and -log q rides in one extra
    column (the queries' entry 1), so the task's scores are exactly those above: unclipped,
    and the same for a learnable temperature (its gradient does not reach the log q term).

    Args:
      task: softmax_task's Retrieval.
      queries: [B, D] query embeddings u.
      candidates: [C, D] candidate embeddings v, row i's positive first (column i).
      candidate_ids: [C] item keys (equal keys are accidental hits when the task removes them).
      temperature: scalar tau > 0.
      log_q: [C] log q of each column (mixture_log_q), or None for no correction.
      reduction: `mean` over the B rows or `sum` (see pairwise_loss).

    Returns:
      Scalar loss.

    Raises:
      ValueError: for another reduction.
    """
    _check_reduction(reduction)
    rows = tf.cast(tf.shape(queries)[0], queries.dtype)
    queries = queries / temperature
    if log_q is not None:
        queries = tf.concat([queries, tf.ones_like(queries[:, :1])], axis=1)
        candidates = tf.concat([candidates, -tf.cast(log_q, candidates.dtype)[:, tf.newaxis]],
                               axis=1)
    total = task(queries, candidates, candidate_ids=candidate_ids, compute_metrics=False,
                 compute_batch_metrics=False)
    return total if reduction == "sum" else total / rows


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be mean or sum; got {reduction!r}")


def bce_loss(logits: Logits) -> tf.Tensor:
    """Pointwise BCE: sigmoid on every valid s_ij, label 1 iff it is the row's positive."""
    per_entry = tf.nn.sigmoid_cross_entropy_with_logits(labels=logits.labels,
                                                        logits=logits.scores)
    weight = tf.cast(logits.valid, per_entry.dtype)
    return tf.reduce_sum(per_entry * weight) / tf.reduce_sum(weight)


def _pairs(logits: Logits) -> tuple[tf.Tensor, tf.Tensor]:
    """(s_ii - s_ij) [B, C'] and the weight of each pair (1 for kept valid negatives)."""
    positive = tf.reduce_sum(logits.scores * logits.labels, axis=1, keepdims=True)
    negative = tf.logical_and(logits.valid, logits.labels <= 0)
    return positive - logits.scores, tf.cast(negative, logits.scores.dtype)


def bpr_loss(logits: Logits) -> tf.Tensor:
    """BPR: mean over kept negatives of -log sigmoid(s_ii - s_ij)."""
    margin, weight = _pairs(logits)
    return tf.reduce_sum(tf.math.softplus(-margin) * weight) / tf.reduce_sum(weight)


def hinge_loss(logits: Logits, margin: float) -> tf.Tensor:
    """Hinge: mean over kept negatives of max(0, m - s_ii + s_ij)."""
    gap, weight = _pairs(logits)
    return tf.reduce_sum(tf.nn.relu(margin - gap) * weight) / tf.reduce_sum(weight)


def pairwise_loss(logits: Logits, loss: PairwiseLoss, margin: float = 0.5,
                  reduction: str = "mean") -> tf.Tensor:
    """The configured pairwise or pointwise loss (config `loss.loss`), averaged or, with
    reduction `sum`, times the batch's B query rows, as tfrs.tasks.Retrieval's SUM does for
    softmax. The scale matters to Adagrad: its initial accumulator makes small gradients take
    small steps."""
    if loss == "bce":
        value = bce_loss(logits)
    elif loss == "bpr":
        value = bpr_loss(logits)
    elif loss == "hinge":
        value = hinge_loss(logits, margin)
    else:
        raise ValueError(f"loss must be one of bce, bpr, hinge (softmax: softmax_loss); "
                         f"got {loss!r}")
    _check_reduction(reduction)
    if reduction == "sum":
        return value * tf.cast(tf.shape(logits.scores)[0], value.dtype)
    return value
