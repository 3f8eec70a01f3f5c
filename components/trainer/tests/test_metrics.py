"""Metrics by hand: 4 catalogue items, 2 eval interactions."""
import math

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import metrics
from twotower.contract import Contract, FeatureSpec

CATALOG = ["a", "b", "c", "d"]
IDS = Contract((FeatureSpec("user_id", "user_id", "id"), FeatureSpec("item_id", "item_id", "id")))
# Item embeddings on a line so scores are easy: query q scores item j as q * e_j.
EMBEDDINGS = tf.constant([[4.0], [3.0], [2.0], [1.0]])


def _queries(batch):
    return tf.where(tf.equal(batch["user_id"], "u1"), 1.0, -1.0)[:, tf.newaxis]


@pytest.mark.parametrize("budget", [1 << 24, 3, 6, 9])  # 3 rows: blocks of 4, 1, 2, 3 items
def test_score_batch_ranks_and_top_k_by_hand_in_any_blocks(monkeypatch, budget):
    monkeypatch.setattr(metrics, "EVAL_SCORES_BUDGET", budget)
    queries = tf.constant([[1.0], [1.0], [-1.0]])  # rows 0, 1 rank a, b, c, d; row 2 d, c, b, a
    # Row 0's true item is c and it saw a and c: a is removed, c never from its own row.
    # Row 1's true item is outside the catalogue. Row 2's true item is b; it saw d.
    seen = tf.ragged.constant([[0, 2], [], [3]], dtype=tf.int64)
    tfrs, filtered, top = metrics.score_batch(queries, EMBEDDINGS,
                                              tf.constant([2, -1, 1], tf.int64), seen, 2)
    assert tfrs.tolist() == [2, metrics.MISS_RANK, 2]
    assert filtered.tolist() == [1, metrics.MISS_RANK, 1]
    # Filtered top-2: row 0 b, d (a, c seen); row 1 a, b; row 2 c, b (d seen).
    assert top.tolist() == [[1, 3], [0, 1], [2, 1]]


def test_evaluate_by_hand():
    # u1 (query +1) ranks a, b, c, d; saw "a" in training; its eval item is c.
    # u2 (query -1) ranks d, c, b, a; saw nothing; its eval item is "zz" (not in the catalogue).
    seen = metrics.seen_from_pairs(np.array([b"u1"], dtype=object), np.array([0]))
    evaluation = [{"user_id": tf.constant(["u1", "u2"]), "item_id": tf.constant(["c", "zz"])}]
    counts = np.array([10.0, 5.0, 1.0, 0.0])
    result = metrics.evaluate(_queries, evaluation, CATALOG, EMBEDDINGS, seen, counts, IDS,
                              ks=(1, 2))
    # u1: tfrs rank 2 (a, b higher), filtered rank 1 (a removed); u2: a miss at every K,
    # even K >= the catalogue size (NDCG@10 on 4 items).
    assert result["tfrs_recall_at_1"] == 0.0 and result["tfrs_recall_at_2"] == 0.0
    assert result["filtered_recall_at_1"] == 0.0 and result["filtered_recall_at_2"] == 0.5
    assert result["tfrs_ndcg_at_10"] == pytest.approx(0.5 / math.log2(4))
    assert result["filtered_ndcg_at_10"] == pytest.approx(0.5 / math.log2(3))
    # Filtered top-2: u1 -> b, c; u2 -> d, c. Items {b, c, d} of 4.
    assert result["coverage_at_2"] == pytest.approx(3 / 4)
    assert result["popularity_at_2"] == pytest.approx((5 + 1 + 0 + 1) / 4)
    assert result["coverage_at_1"] == pytest.approx(2 / 4)
    # The head is the ceil(0.2 * 4) = 1 most popular item, a: every top-2 slot is in the tail.
    assert result["tail_share_at_2"] == 1.0
    assert result["eval_interactions"] == 2


def test_head_items_are_the_most_popular_fifth_ties_by_catalogue_order():
    counts = np.array([1.0, 9.0, 3.0, 9.0, 0.0, 2.0, 5.0, 4.0, 0.0, 7.0])
    assert np.flatnonzero(metrics.head_items(counts)).tolist() == [1, 3]
    assert np.flatnonzero(metrics.head_items(counts, 0.3)).tolist() == [1, 3, 9]


def test_per_user_metrics_by_hand():
    # 1-d embeddings: item scores for a query of 1 are the item values themselves.
    items = np.array([[5.0], [4.0], [3.0], [2.0], [1.0]])
    queries = np.array([[1.0], [-1.0]])
    # User 0: ranking 0,1,2,3,4; item 0 seen -> top-2 is [1, 2]; relevant {2, 4}:
    #   recall@2 = 1/2, DCG = 1/log2(3), IDCG = 1 + 1/log2(3).
    # User 1: ranking 4,3,2,1,0; nothing seen -> top-2 [4, 3]; relevant {4}: recall 1, NDCG 1.
    result = metrics.per_user_metrics(queries, items, [[2, 4], [4]], [[0], []], k=2)
    assert result["users"] == 2
    assert result["recall_at_2"] == pytest.approx((0.5 + 1.0) / 2)
    user0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert result["ndcg_at_2"] == pytest.approx((user0 + 1.0) / 2)


def test_seen_from_pairs_groups_each_users_items_once():
    users = np.array([b"u1", b"u2", b"u1", b"u1"], dtype=object)
    lookup, history = metrics.seen_from_pairs(users, np.array([2, 0, 0, 2]))
    rows = lookup(tf.constant(["u1", "u2", "u9"])).numpy()
    assert history[rows[0]].numpy().tolist() == [0, 2]  # c twice, a once: each once, sorted
    assert history[rows[1]].numpy().tolist() == [0]
    assert rows[2] == 0 and history[0].numpy().tolist() == []  # unknown user: row 0, nothing


def test_unique_users_and_eval_batch_size():
    batches = [{"user_id": tf.constant(["u2", "u1"])}, {"user_id": tf.constant(["u1"])}]
    assert metrics.unique_users(batches, "user_id").tolist() == [b"u1", b"u2"]
    assert metrics.eval_batch_size(4) == metrics.MAX_EVAL_BATCH
    assert metrics.eval_batch_size(1_000_000) == 16
    assert metrics.eval_batch_size(10 ** 9) == 1
    assert metrics.eval_rows(4) == metrics.MAX_EVAL_BATCH
    assert metrics.eval_rows(1_000_000) == metrics.MIN_EVAL_ROWS  # the catalogue in blocks


@pytest.mark.parametrize("budget", [1 << 24, 7 * 40, 7 * 13])
def test_score_batch_equals_a_dense_reference_on_random_data(monkeypatch, budget):
    """Integer embeddings (exact float sums, many ties): ranks and the top-k's scores are
    those of scoring the whole [rows, N] matrix at once, whatever the blocks."""
    monkeypatch.setattr(metrics, "EVAL_SCORES_BUDGET", budget)
    rng = np.random.default_rng(5)
    catalog = rng.integers(-5, 6, size=(300, 4)).astype(np.float32)
    queries = rng.integers(-5, 6, size=(7, 4)).astype(np.float32)
    true = rng.integers(0, 300, size=7)
    true[3] = -1
    seen = [rng.choice(300, size=rng.integers(0, 60), replace=False) for _ in range(7)]
    seen[0] = np.append(seen[0][seen[0] != true[0]], true[0])  # its own item seen too
    tfrs, filtered, top = metrics.score_batch(
        tf.constant(queries), tf.constant(catalog), tf.constant(true, tf.int64),
        tf.ragged.constant([s.tolist() for s in seen], dtype=tf.int64), 20)
    scores = queries @ catalog.T
    for row in range(7):
        masked = scores[row].copy()
        masked[seen[row]] = -np.inf
        assert np.array_equal(np.sort(scores[row][top[row]])[::-1], np.sort(masked)[::-1][:20])
        assert not set(top[row]) & set(seen[row].tolist())
        if true[row] < 0:
            assert tfrs[row] == filtered[row] == metrics.MISS_RANK
            continue
        above = scores[row] > scores[row, true[row]]
        assert tfrs[row] == above.sum()
        others = np.setdiff1d(seen[row], [true[row]])
        assert filtered[row] == above.sum() - above[others].sum()


def test_a_fixed_ranking_scores_as_its_vectors_would():
    """MostPop's one ranking for everyone, scored from the ranking, equals scoring its
    [N, 1] vectors with queries of 1."""
    rng = np.random.default_rng(6)
    scores = rng.permutation(300).astype(np.float64)  # distinct
    true = rng.integers(0, 300, size=9)
    true[4] = -1
    seen = tf.ragged.constant([rng.choice(300, size=rng.integers(0, 80), replace=False).tolist()
                               + ([int(true[row])] if row == 2 else []) for row in range(9)],
                              dtype=tf.int64)
    expected = metrics.score_batch(tf.ones([9, 1], tf.float64), tf.constant(scores[:, None]),
                                   tf.constant(true, tf.int64), seen, 25)
    found = metrics.FixedRanking(scores).score(tf.constant(true, tf.int64), seen, 25)
    for want, got in zip(expected, found):
        np.testing.assert_array_equal(want, got)
