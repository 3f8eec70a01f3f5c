"""The retrieval maths (docs/architecture.md) pinned with hand-computed values.

Running example: B = 2 queries, M = 1 pool item, tau = 0.5.
  u1 = (1, 0), u2 = (0, 1); candidates [p1, p2, n1] = [(1, 0), (0.6, 0.8), (0, 1)].
  dot products: row 1 [1, 0.6, 0], row 2 [0, 0.8, 1]; divided by tau: S below.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import losses

U = tf.constant([[1.0, 0.0], [0.0, 1.0]])
V = tf.constant([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
S = [[2.0, 1.2, 0.0], [0.0, 1.6, 2.0]]


def softplus(x):
    return math.log1p(math.exp(x))


def _logits(scores=S, hits=None):
    hits = None if hits is None else tf.constant(hits)
    return losses.build_logits(tf.constant(scores), hits)


def test_temperature_scaling():
    np.testing.assert_allclose(losses.scaled_scores(U, V, tf.constant(0.5)), S, rtol=1e-6)
    np.testing.assert_allclose(losses.scaled_scores(U, V, tf.constant(1.0)),
                               [[1.0, 0.6, 0.0], [0.0, 0.8, 1.0]], rtol=1e-6)


def test_mixture_log_q_and_subtraction():
    # p_freq = [0.5, 0.25, 0.1], P_pool = [0.2, 0.2, 0.4], B = 2, M = 1:
    # q = [2*0.5 + 0.2, 2*0.25 + 0.2, 2*0.1 + 0.4] = [1.2, 0.7, 0.6].
    log_q = losses.mixture_log_q(tf.constant([0.5, 0.25, 0.1]), tf.constant([0.2, 0.2, 0.4]), 2, 1)
    np.testing.assert_allclose(log_q, np.log([1.2, 0.7, 0.6]), rtol=1e-6)
    corrected = losses.logq_correct(tf.constant(S), log_q)
    # Subtract: the most sampled column (q = 1.2) loses the most.
    np.testing.assert_allclose(corrected[0], [2.0 - math.log(1.2), 1.2 - math.log(0.7),
                                              0.0 - math.log(0.6)], rtol=1e-6)
    assert corrected[0, 0] < 2.0 and corrected[0, 2] > 0.0


def test_in_batch_only_log_q_is_log_b_p():
    log_q = losses.mixture_log_q(tf.constant([0.5, 0.25]), tf.constant([0.3, 0.3]), 4, 0)
    np.testing.assert_allclose(log_q, np.log([2.0, 1.0]), rtol=1e-6)


def test_accidental_hits_mask_other_columns_with_the_positive_item():
    # B = 3 (positives a, b, a) and one pool item c: row 0's positive also sits in column 2,
    # row 2's in column 0; a row's own column is never masked.
    hits = losses.accidental_hits(tf.constant(["a", "b", "a"]), tf.constant(["a", "b", "a", "c"]))
    np.testing.assert_array_equal(hits, [[False, False, True, False],
                                         [False, False, False, False],
                                         [True, False, False, False]])


def test_labels_put_each_positive_on_its_own_column_and_pool_columns_negative():
    logits = _logits()
    np.testing.assert_array_equal(logits.labels, [[1, 0, 0], [0, 1, 0]])
    assert bool(tf.reduce_all(logits.valid))


def _softmax(ids=("p1", "p2", "n1"), log_q=None, hard=None, hits=True, reduction="mean"):
    """The running example through tfrs.tasks.Retrieval (losses.softmax_loss), tau = 0.5."""
    task = losses.softmax_task(hard, hits)
    return float(losses.softmax_loss(task, U, V, tf.constant(list(ids)), tf.constant(0.5),
                                     None if log_q is None else tf.constant(log_q), reduction))


def test_softmax_loss():
    # Row 1: -log(e^2 / (e^2 + e^1.2 + e^0)) = log(1 + e^-0.8 + e^-2).
    # Row 2: -log(e^1.6 / (e^0 + e^1.6 + e^2)) = log(e^-1.6 + 1 + e^0.4).
    row1 = math.log(1 + math.exp(-0.8) + math.exp(-2))
    row2 = math.log(math.exp(-1.6) + 1 + math.exp(0.4))
    assert _softmax() == pytest.approx((row1 + row2) / 2, rel=1e-5)


def test_softmax_subtracts_log_q_unclipped():
    # q = [1.2, 0.7, 1e-8]: TFRS would clip 1.2 to 1 and 1e-8 to 1e-6; the loss must use them
    # as they are. Row 1 scores [2 - log 1.2, 1.2 - log 0.7, 0 - log 1e-8], positive first.
    q = [1.2, 0.7, 1e-8]
    rows = [[2.0, 1.2, 0.0], [0.0, 1.6, 2.0]]
    expected = 0.0
    for i, row in enumerate(rows):
        corrected = [s - math.log(x) for s, x in zip(row, q)]
        top = max(corrected)
        expected += -(corrected[i] - top - math.log(sum(math.exp(c - top) for c in corrected)))
    assert _softmax(log_q=np.log(q).astype(np.float32)) == pytest.approx(expected / 2, rel=1e-4)


def test_masked_column_drops_out_of_softmax():
    # Column 3 holds row 1's positive item again (an accidental hit): gone from row 1 only.
    row1 = math.log(1 + math.exp(-0.8))
    row2 = math.log(math.exp(-1.6) + 1 + math.exp(0.4))
    assert _softmax(ids=("a", "b", "a")) == pytest.approx((row1 + row2) / 2, rel=1e-5)
    # Without removal the hit counts as a negative.
    assert _softmax(ids=("a", "b", "a"), hits=False) == pytest.approx(_softmax(), rel=1e-6)


def test_softmax_hard_negatives_keep_the_positive_and_the_hardest():
    # Row 1 keeps p1 (2) and p2 (1.2); row 2 keeps p2 (1.6) and n1 (2).
    expected = (math.log(1 + math.exp(-0.8)) + math.log(1 + math.exp(0.4))) / 2
    assert _softmax(hard=1) == pytest.approx(expected, rel=1e-5)
    assert _softmax(hard=10) == pytest.approx(_softmax(), rel=1e-6)


def test_softmax_sum_reduction_is_rows_times_the_mean():
    assert _softmax(reduction="sum") == pytest.approx(2 * _softmax(), rel=1e-6)
    with pytest.raises(ValueError, match="mean or sum"):
        _softmax(reduction="max")


def test_bce_loss():
    # Label 1 at (1,1) and (2,2): softplus(-s); label 0 elsewhere: softplus(s). Mean of 6.
    expected = (softplus(-2.0) + softplus(1.2) + softplus(0.0)
                + softplus(0.0) + softplus(-1.6) + softplus(2.0)) / 6
    assert float(losses.bce_loss(_logits())) == pytest.approx(expected, rel=1e-5)


def test_bpr_loss_averages_over_kept_negatives():
    # Pairs s_ii - s_ij: row 1 (2 - 1.2, 2 - 0) = (0.8, 2); row 2 (1.6 - 0, 1.6 - 2) = (1.6, -0.4).
    expected = (softplus(-0.8) + softplus(-2.0) + softplus(-1.6) + softplus(0.4)) / 4
    assert float(losses.bpr_loss(_logits())) == pytest.approx(expected, rel=1e-5)
    # Masking row 1's column 3 leaves 3 pairs, and the mean is over those 3.
    masked = _logits(hits=[[False, False, True], [False, False, False]])
    expected = (softplus(-0.8) + softplus(-1.6) + softplus(0.4)) / 3
    assert float(losses.bpr_loss(masked)) == pytest.approx(expected, rel=1e-5)


def test_hinge_loss():
    # m = 1: row 1 max(0, 1 - 0.8) = 0.2, max(0, 1 - 2) = 0; row 2 0 and max(0, 1 + 0.4) = 1.4.
    assert float(losses.hinge_loss(_logits(), 1.0)) == pytest.approx(1.6 / 4, rel=1e-5)


def test_hard_negatives_keep_the_positive_and_the_hardest_valid_negatives():
    mined = losses.hard_negatives(_logits(), 1)
    # Row 1 keeps p1 (2) and its hardest negative p2 (1.2); row 2 keeps p2 (1.6) and n1 (2).
    np.testing.assert_allclose(mined.scores, [[2.0, 1.2], [1.6, 2.0]], rtol=1e-6)
    np.testing.assert_array_equal(mined.labels, [[1, 0], [1, 0]])
    # BPR over the kept pairs: row 1 (2 - 1.2), row 2 (1.6 - 2).
    expected = (softplus(-0.8) + softplus(0.4)) / 2
    assert float(losses.bpr_loss(mined)) == pytest.approx(expected, rel=1e-5)
    # A masked negative is never picked while a valid one remains.
    masked = losses.hard_negatives(_logits(hits=[[False, False, False], [False, False, True]]), 1)
    np.testing.assert_allclose(masked.scores[1], [1.6, 0.0], rtol=1e-6)
    assert bool(tf.reduce_all(masked.valid))


def test_hard_negatives_larger_than_the_row_keep_everything():
    mined = losses.hard_negatives(_logits(), 10)
    assert mined.scores.shape == (2, 3)
    assert float(losses.bpr_loss(mined)) == pytest.approx(float(losses.bpr_loss(_logits())))


@pytest.mark.parametrize("name, function", [("bce", losses.bce_loss), ("bpr", losses.bpr_loss)])
def test_dispatch(name, function):
    assert float(losses.pairwise_loss(_logits(), name)) == pytest.approx(float(function(_logits())))


def test_dispatch_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.pairwise_loss(_logits(), "softmax")


def test_sum_reduction_is_rows_times_the_mean():
    # _logits() has 2 query rows: like tfrs.tasks.Retrieval's SUM, 2x the mean.
    mean = float(losses.pairwise_loss(_logits(), "bpr"))
    assert float(losses.pairwise_loss(_logits(), "bpr", reduction="sum")) == \
        pytest.approx(2 * mean)
    with pytest.raises(ValueError, match="mean or sum"):
        losses.pairwise_loss(_logits(), "bpr", reduction="max")
