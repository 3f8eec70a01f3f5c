"""Retrieval metrics against the whole catalogue with exact (brute-force) search, scored
in blocks of the catalogue with a running top-k (`score_batch`: at most
EVAL_SCORES_BUDGET scores held at once, a few hundred rows per matmul).

For each eval interaction (query features, true item) every catalogue item is scored by
the dot product of the towers' embeddings. The rank of the true item is the number of
items scoring strictly higher:
  * `tfrs` protocol: over all items, seen or not (the TFRS tutorials' hit rate);
  * `filtered` protocol: items the user interacted with in training are removed first
    (the true item itself is never removed).
recall@K is the share of interactions whose rank < K (one relevant item per interaction,
so it equals the hit rate), NDCG@10 averages 1 / log2(rank + 2) for rank < 10. An eval item
missing from the catalogue counts as a miss. Coverage@K is the share of catalogue items
appearing in any filtered top-K; popularity@K is the mean training count of those top-K;
tail_share@K is the share of top-K slots holding an item outside the head (the HEAD_SHARE
most popular catalogue items by training count): how much of the long tail is recommended.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from components.trainer import eval_sample, towers
from twotower import logs
from twotower.contract import Contract

KS = (10, 50, 100)
MISS_RANK = np.iinfo(np.int64).max
EVAL_SCORES_BUDGET = 1 << 24  # scores per eval batch: 64 MB of float32
MAX_EVAL_BATCH = 1024
MIN_EVAL_ROWS = 256
HEAD_SHARE = 0.2  # the head: the 20% most popular catalogue items


def eval_batch_size(catalog_size: int) -> int:
    """Eval rows per batch so one [rows, N] score matrix holds at most EVAL_SCORES_BUDGET
    values (1024 rows on small catalogues, 16 on 1M items)."""
    return int(np.clip(EVAL_SCORES_BUDGET // max(catalog_size, 1), 1, MAX_EVAL_BATCH))


def head_items(train_counts: np.ndarray, share: float = HEAD_SHARE) -> np.ndarray:
    """[N] True for the ceil(share * N) items with the most training interactions (ties
    by catalogue order)."""
    head = np.zeros(len(train_counts), bool)
    head[np.argsort(-train_counts, kind="stable")[:int(np.ceil(share * len(train_counts)))]] = True
    return head


def unique_users(batches: Iterable[Mapping[str, tf.Tensor]], user_feature: str) -> np.ndarray:
    """[U] distinct user ids (bytes) of some batches, e.g. the eval rows scored."""
    parts = [np.unique(batch[user_feature].numpy()) for batch in batches]
    return np.unique(np.concatenate(parts)) if parts else np.array([], dtype=object)


def seen_from_pairs(users: np.ndarray, items: np.ndarray
                    ) -> tuple[tf.keras.layers.StringLookup, tf.RaggedTensor]:
    """User id -> catalogue indices of the items the user interacted with in training.

    Args:
      users: [P] user id (bytes) of each training interaction kept.
      items: [P] catalogue index of its item (duplicates allowed).

    Returns:
      A lookup user_id -> row (0: unknown) and [U + 1, None] catalogue indices per row.
    """
    pairs = pd.DataFrame({"user": users, "item": np.asarray(items, np.int64)})
    pairs = pairs.drop_duplicates().sort_values(["user", "item"], kind="stable")
    vocabulary, rows = np.unique(pairs["user"].to_numpy(), return_inverse=True)
    names = [user.decode() for user in vocabulary] or ["<none>"]
    lookup = towers.string_lookup(names, 1)
    history = tf.RaggedTensor.from_value_rowids(
        pairs["item"].to_numpy(np.int64), rows.astype(np.int64) + 1, nrows=len(names) + 1)
    return lookup, history


def no_history() -> tuple[tf.keras.layers.StringLookup, tf.RaggedTensor]:
    """`seen_from_pairs` of an anonymous contract: every query is row 0, which saw nothing (the
    filtered protocol then filters nothing)."""
    return towers.string_lookup(["<none>"], 1), tf.RaggedTensor.from_row_lengths(
        tf.zeros([0], tf.int64), tf.constant([0, 0], tf.int64))


def user_rows(lookup: tf.keras.layers.StringLookup, batch: Mapping[str, tf.Tensor],
              contract: Contract) -> tf.Tensor:
    """[b] row of each event's user in `seen_from_pairs`' history (0 for all without a user id)."""
    if contract.user_id is None:
        return tf.zeros([tf.shape(batch[contract.item_id])[0]], tf.int64)
    return lookup(batch[contract.user_id])


def eval_rows(catalog_size: int) -> int:
    """Eval rows scored together by `score_batch`: as many as EVAL_SCORES_BUDGET holds
    against the whole catalogue, but at least MIN_EVAL_ROWS (a matmul of a few rows wastes
    the cores; the catalogue is then scored in blocks) and at most MAX_EVAL_BATCH."""
    return int(np.clip(EVAL_SCORES_BUDGET // max(catalog_size, 1), MIN_EVAL_ROWS,
                       MAX_EVAL_BATCH))


def _merge_top_k(top_values: tf.Tensor, top_index: tf.Tensor, scores: tf.Tensor, start: int,
                 k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The running top-k ([b, k'] values and catalogue indices) merged with a block of
    scores [b, C] whose first item is catalogue index `start`.

    Once k items are held, only the block's scores above each row's k-th best can enter:
    those few are gathered and merged (a full top_k over every block costs twice the
    block's matmul at 1M items)."""
    rows = int(scores.shape[0])
    if top_values.shape[1] < k:
        best = tf.math.top_k(scores, k=min(k, int(scores.shape[1])))
        values = tf.concat([top_values, best.values], axis=1)
        index = tf.concat([top_index, tf.cast(best.indices, tf.int64) + start], axis=1)
    else:
        entering = tf.where(scores > top_values[:, -1:])  # [m, 2], sorted by row
        held = tf.repeat(tf.range(rows, dtype=tf.int64), k)
        row = tf.concat([held, entering[:, 0]], axis=0)
        order = tf.argsort(row, stable=True)
        row = tf.gather(row, order)
        flat_values = tf.gather(tf.concat([tf.reshape(top_values, [-1]),
                                           tf.gather_nd(scores, entering)], axis=0), order)
        flat_index = tf.gather(tf.concat([tf.reshape(top_index, [-1]),
                                          entering[:, 1] + start], axis=0), order)
        values = tf.RaggedTensor.from_value_rowids(flat_values, row, nrows=rows).to_tensor(
            default_value=tf.constant(-np.inf, scores.dtype))
        index = tf.RaggedTensor.from_value_rowids(flat_index, row, nrows=rows).to_tensor(
            default_value=-1)
    if values.shape[1] <= k:
        return values, index
    kept = tf.math.top_k(values, k=k)
    return kept.values, tf.gather(index, kept.indices, batch_dims=1)


class FixedRanking:
    """One ranking of the catalogue for every query (MostPop's), scored without a matmul:
    a row's rank is its true item's position less the seen items ahead of it, and its
    filtered top-k the first k items of the ranking that the row did not see."""

    def __init__(self, scores: np.ndarray) -> None:
        """Args: scores: [N] distinct scores (higher ranks first)."""
        self.order = np.argsort(-np.asarray(scores), kind="stable")
        self.position = np.empty(len(self.order), np.int64)
        self.position[self.order] = np.arange(len(self.order))

    def score(self, true_index: tf.Tensor, seen: tf.RaggedTensor, k: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """score_batch's outputs for this ranking."""
        true = true_index.numpy()
        tfrs = np.where(true >= 0, self.position[np.maximum(true, 0)], MISS_RANK)
        filtered = tfrs.copy()
        top = np.empty((len(true), k), np.int64)
        for row, items in enumerate(seen.numpy()):
            items = np.asarray(items, np.int64)
            if true[row] >= 0:
                others = items[items != true[row]]
                filtered[row] -= int(np.sum(self.position[others] < tfrs[row]))
            ahead = self.order[:k + len(items)]
            unseen = np.isin(ahead, items, invert=True)
            # A row that saw all but a few items fills its top-k with seen ones, as the
            # filtered scores' -inf entries do in score_batch.
            top[row] = np.concatenate([ahead[unseen], ahead[~unseen]])[:k]
        return tfrs, filtered, top


def score_batch(queries: tf.Tensor, catalog: tf.Tensor, true_index: tf.Tensor,
                seen: tf.RaggedTensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ranks and filtered top-k of a batch against the whole catalogue, block by
    block (at most EVAL_SCORES_BUDGET scores held at once), with a running top-k.

    Args:
      queries: [b, D] query vectors.
      catalog: [N, D] item vectors.
      true_index: [b] catalogue index of each row's true item, -1 when not in it.
      seen: [b, None] catalogue indices the row's user saw in training (the filter).
      k: Top-k size (at most N).

    Returns:
      [b] tfrs ranks and [b] filtered ranks (items scoring strictly higher; the true item
      never filtered; MISS_RANK for a true item outside the catalogue), and [b, k] catalogue
      indices of the filtered top-k.
    """
    rows, n = int(queries.shape[0]), int(catalog.shape[0])
    block = max(1, EVAL_SCORES_BUDGET // max(rows, 1))
    safe = tf.maximum(true_index, 0)
    true_score = tf.reduce_sum(queries * tf.gather(catalog, safe), axis=1)
    seen_row = tf.cast(seen.value_rowids(), tf.int64)
    seen_item = tf.cast(seen.flat_values, tf.int64)
    higher = tf.zeros([rows], tf.int64)
    seen_higher = tf.zeros([rows], tf.int64)
    top_values = tf.fill([rows, 0], tf.constant(-np.inf, queries.dtype))
    top_index = tf.zeros([rows, 0], tf.int64)
    for start in range(0, n, block):
        end = min(n, start + block)
        scores = tf.matmul(queries, catalog[start:end], transpose_b=True)
        above = scores > true_score[:, tf.newaxis]
        higher += tf.cast(tf.reduce_sum(tf.cast(above, tf.int32), axis=1), tf.int64)
        own = (safe >= start) & (safe < end)
        own_above = tf.gather(above, tf.clip_by_value(safe - start, 0, end - start - 1),
                              batch_dims=1)  # the true item itself, by the matmul's rounding
        higher -= tf.cast(own & own_above, tf.int64)
        in_block = (seen_item >= start) & (seen_item < end)
        pairs = tf.stack([tf.boolean_mask(seen_row, in_block),
                          tf.boolean_mask(seen_item, in_block) - start], axis=1)
        counted = tf.gather_nd(above, pairs) & (
            tf.gather(safe, pairs[:, 0]) != pairs[:, 1] + start)
        seen_higher += tf.math.unsorted_segment_sum(tf.cast(counted, tf.int64), pairs[:, 0],
                                                    rows)
        filtered = scores
        if pairs.shape[0]:
            filtered = tf.tensor_scatter_nd_update(
                scores, pairs, tf.fill([tf.shape(pairs)[0]], tf.constant(-np.inf, scores.dtype)))
        top_values, top_index = _merge_top_k(top_values, top_index, filtered, start, k)
    missing = true_index < 0
    tfrs = tf.where(missing, tf.constant(MISS_RANK, tf.int64), higher)
    filtered_rank = tf.where(missing, tf.constant(MISS_RANK, tf.int64), higher - seen_higher)
    return tfrs.numpy(), filtered_rank.numpy(), top_index.numpy()


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The metrics of one scorer and what they were computed from, event by event (in the
    eval split's order, so two scorers of the same split pair up).

    Attributes:
      metrics: As `evaluate` returns them.
      ranks: Protocol ("tfrs", "filtered") -> [n] rank of each event's true item.
      users: [n] each event's user id, or None (an anonymous contract).
      top: [n, k] catalogue indices of each event's filtered top-k.
    """

    metrics: dict[str, float]
    ranks: dict[str, np.ndarray]
    users: Optional[np.ndarray]
    top: np.ndarray

    def hits(self, protocol: str, k: int) -> np.ndarray:
        """[n] 1.0 where the event's true item ranks in the top k, else 0.0."""
        return (self.ranks[protocol] < k).astype(np.float64)


def evaluate(*args: Any, **kwargs: Any) -> dict[str, float]:
    """evaluate_events(...).metrics: the metrics alone."""
    return evaluate_events(*args, **kwargs).metrics


def evaluate_events(query_embeddings: Callable[[Mapping[str, tf.Tensor]], tf.Tensor],
                    eval_batches: Iterable[Mapping[str, tf.Tensor]], catalog_ids: Sequence[str],
                    catalog_embeddings: tf.Tensor,
                    seen: tuple[tf.keras.layers.StringLookup, tf.RaggedTensor],
                    train_counts: np.ndarray, contract: Contract, ks: Sequence[int] = KS,
                    expected_rows: Optional[int] = None,
                    fixed: Optional[FixedRanking] = None) -> Evaluation:
    """Computes every metric of the module docstring, each recall and NDCG with the
    half-width of its 95% interval (`<metric>_ci95`, eval_sample.ci95: clustered by user).

    Per-event query features (context columns) are those of the eval event's own row.
    Progress (rows scored, rate, time left) is logged every logs.PROGRESS_SECONDS.

    Args:
      query_embeddings: Raw query features -> [b, D].
      eval_batches: Parsed eval batches with the query features and the item id.
      catalog_ids: [N] item ids, in the row order of catalog_embeddings.
      catalog_embeddings: [N, D].
      seen: From `seen_from_pairs` (train_history.TrainHistory.seen).
      train_counts: [N] training count of each catalogue item.
      contract: Names the id features.
      ks: Cut-offs.
      expected_rows: About how many eval rows come (for the progress lines' time left).
      fixed: The same ranking for every query (MostPop): scored from it directly, with
        the same results as scoring its [N, 1] vectors (query_embeddings is not called).

    Returns:
      An Evaluation whose metrics are {"tfrs_recall_at_K", "filtered_recall_at_K",
      "tfrs_ndcg_at_10", "filtered_ndcg_at_10", each also as "<name>_ci95",
      "coverage_at_K", "popularity_at_K", "tail_share_at_K", "eval_interactions"}.
    """
    n = len(catalog_ids)
    index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(list(catalog_ids)), tf.range(n, dtype=tf.int64)), default_value=-1)
    lookup, history = seen
    k_max = min(max(ks), n)
    tfrs_ranks, filtered_ranks, top, users = [], [], [], []
    meter = logs.Meter("evaluation: eval interactions scored", expected_rows)
    scored = 0
    for batch in eval_batches:
        queries = None if fixed is not None else query_embeddings(batch)
        true_index = index.lookup(batch[contract.item_id])
        seen_rows = tf.gather(history, user_rows(lookup, batch, contract))
        if fixed is not None:
            tfrs_rank, filtered_rank, top_k = fixed.score(true_index, seen_rows, k_max)
        else:
            tfrs_rank, filtered_rank, top_k = score_batch(queries, catalog_embeddings,
                                                          true_index, seen_rows, k_max)
        tfrs_ranks.append(tfrs_rank)
        filtered_ranks.append(filtered_rank)
        top.append(top_k)
        if contract.user_id is not None:
            users.append(batch[contract.user_id].numpy())
        scored += len(tfrs_ranks[-1])
        meter.update(scored)
    ranks_by_protocol = {"tfrs": np.concatenate(tfrs_ranks),
                         "filtered": np.concatenate(filtered_ranks)}
    groups = np.concatenate(users) if users else None
    top_all = np.concatenate(top)
    return Evaluation(summarize(ranks_by_protocol, top_all, groups, train_counts, ks),
                      ranks_by_protocol, groups, top_all)


def summarize(ranks_by_protocol: Mapping[str, np.ndarray], top_all: np.ndarray,
              groups: Optional[np.ndarray], train_counts: np.ndarray, ks: Sequence[int]
              ) -> dict[str, float]:
    """evaluate's metrics from the scored events (Evaluation's fields; top_all at least
    min(max(ks), N) wide)."""
    tfrs_all, filtered_all = ranks_by_protocol["tfrs"], ranks_by_protocol["filtered"]
    n = len(train_counts)
    head = head_items(train_counts)
    result: dict[str, float] = {"eval_interactions": float(len(tfrs_all))}

    def mean_and_interval(name: str, values: np.ndarray) -> None:
        result[name] = float(np.mean(values))
        result[f"{name}_ci95"] = eval_sample.ci95(values, groups)

    for k in ks:
        mean_and_interval(f"tfrs_recall_at_{k}", tfrs_all < k)
        mean_and_interval(f"filtered_recall_at_{k}", filtered_all < k)
        top_k = top_all[:, :k]
        result[f"coverage_at_{k}"] = float(len(np.unique(top_k)) / n)
        result[f"popularity_at_{k}"] = float(np.mean(train_counts[top_k]))
        result[f"tail_share_at_{k}"] = float(np.mean(~head[top_k]))
    for name, all_ranks in (("tfrs", tfrs_all), ("filtered", filtered_all)):
        hit = all_ranks < 10
        gain = np.zeros(len(all_ranks))
        gain[hit] = 1.0 / np.log2(all_ranks[hit] + 2.0)
        mean_and_interval(f"{name}_ndcg_at_10", gain)
    return result


def per_user_metrics(query_embeddings: np.ndarray, catalog_embeddings: np.ndarray,
                     relevant: Sequence[Sequence[int]], excluded: Sequence[Sequence[int]],
                     k: int = 10, chunk: int = 512) -> dict[str, float]:
    """Per-user full-ranking recall@k and NDCG@k, averaged over users (RecBole's way).

    Each user's held-out items are the relevant set; items in `excluded` (the user's
    training history) are removed from the ranking first. recall@k = hits / |relevant|;
    NDCG@k = DCG / IDCG with binary gains and IDCG over min(|relevant|, k) positions.

    Args:
      query_embeddings: [U, D], one row per evaluated user.
      catalog_embeddings: [N, D].
      relevant: Per user, catalogue indices of the held-out items (non-empty).
      excluded: Per user, catalogue indices that do not compete.
      k: Cut-off.
      chunk: Users scored at a time.

    Returns:
      {"recall_at_<k>", "ndcg_at_<k>", "users"}.
    """
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    recalls, ndcgs = [], []
    for start in range(0, len(relevant), chunk):
        scores = query_embeddings[start:start + chunk] @ catalog_embeddings.T
        for row, (truth, seen) in enumerate(zip(relevant[start:start + chunk],
                                                excluded[start:start + chunk])):
            user_scores = scores[row].copy()
            user_scores[list(seen)] = -np.inf
            top = np.argpartition(-user_scores, k)[:k] if len(user_scores) > k else \
                np.arange(len(user_scores))
            top = top[np.argsort(-user_scores[top], kind="stable")]
            hits = np.isin(top, list(truth))
            recalls.append(hits.sum() / len(truth))
            ideal = discounts[:min(len(truth), k)].sum()
            ndcgs.append(float((hits * discounts[:len(top)]).sum() / ideal))
    return {f"recall_at_{k}": float(np.mean(recalls)), f"ndcg_at_{k}": float(np.mean(ndcgs)),
            "users": float(len(recalls))}
