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


def test_offset_moves_the_positive_and_own_columns():
    # Replica 1 of 2 with B = 2 local rows and 4 global columns: its positives are columns 2, 3.
    hits = losses.accidental_hits(tf.constant(["a", "b"]), tf.constant(["b", "x", "a", "b"]), 2)
    np.testing.assert_array_equal(hits, [[False, False, False, False],
                                         [True, False, False, False]])
    np.testing.assert_array_equal(losses.positive_labels(2, 4, 2), [[0, 0, 1, 0], [0, 0, 0, 1]])


def test_labels_put_each_positive_on_its_own_column_and_pool_columns_negative():
    logits = _logits()
    np.testing.assert_array_equal(logits.labels, [[1, 0, 0], [0, 1, 0]])
    assert bool(tf.reduce_all(logits.valid))


def test_softmax_loss():
    # Row 1: -log(e^2 / (e^2 + e^1.2 + e^0)) = log(1 + e^-0.8 + e^-2).
    # Row 2: -log(e^1.6 / (e^0 + e^1.6 + e^2)) = log(e^-1.6 + 1 + e^0.4).
    row1 = math.log(1 + math.exp(-0.8) + math.exp(-2))
    row2 = math.log(math.exp(-1.6) + 1 + math.exp(0.4))
    assert float(losses.softmax_loss(_logits())) == pytest.approx((row1 + row2) / 2, rel=1e-5)


def test_masked_column_drops_out_of_softmax():
    logits = _logits(hits=[[False, False, True], [False, False, False]])
    assert float(logits.scores[0, 2]) == losses.MASKED_LOGIT
    row1 = math.log(1 + math.exp(-0.8))
    row2 = math.log(math.exp(-1.6) + 1 + math.exp(0.4))
    assert float(losses.softmax_loss(logits)) == pytest.approx((row1 + row2) / 2, rel=1e-5)


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
    expected = (math.log(1 + math.exp(-0.8)) + math.log(1 + math.exp(0.4))) / 2
    assert float(losses.softmax_loss(mined)) == pytest.approx(expected, rel=1e-5)
    # A masked negative is never picked while a valid one remains.
    masked = losses.hard_negatives(_logits(hits=[[False, False, False], [False, False, True]]), 1)
    np.testing.assert_allclose(masked.scores[1], [1.6, 0.0], rtol=1e-6)
    assert bool(tf.reduce_all(masked.valid))


def test_hard_negatives_larger_than_the_row_keep_everything():
    mined = losses.hard_negatives(_logits(), 10)
    assert mined.scores.shape == (2, 3)
    assert float(losses.softmax_loss(mined)) == pytest.approx(float(losses.softmax_loss(_logits())))


@pytest.mark.parametrize("name, function", [("softmax", losses.softmax_loss),
                                            ("bce", losses.bce_loss), ("bpr", losses.bpr_loss)])
def test_dispatch(name, function):
    assert float(losses.retrieval_loss(_logits(), name)) == pytest.approx(float(function(_logits())))


def test_dispatch_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.retrieval_loss(_logits(), "focal")


def test_sum_reduction_is_rows_times_the_mean():
    # _logits() has 2 query rows: tfrs.tasks.Retrieval's SUM reduction is 2x the mean.
    mean = float(losses.retrieval_loss(_logits(), "softmax"))
    assert float(losses.retrieval_loss(_logits(), "softmax", reduction="sum")) == \
        pytest.approx(2 * mean)
    with pytest.raises(ValueError, match="mean or sum"):
        losses.retrieval_loss(_logits(), "softmax", reduction="max")
