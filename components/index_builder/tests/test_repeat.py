"""The repeat term and the merge of history items with the ANN's, against hand-computed
values: a history item outranks an ANN item when its repeat term says so, is counted once,
and is removed under `exclude`."""
import numpy as np
import pytest
import tensorflow as tf

from components.index_builder import repeat


def test_history_terms_decay_by_steps_back_and_sit_at_each_items_latest_position():
    history = tf.constant([[3, 5, 3, -1], [-1, -1, -1, -1]], tf.int64)
    terms, latest = repeat.history_terms(history, weight=2.0, half_life=1.0)
    # Row 0: item 3 at 2 and 0 steps back -> 0.25 + 1; item 5 at 1 step back -> 0.5.
    np.testing.assert_allclose(terms.numpy()[0], [0.0, 2 * np.log(1.5), 2 * np.log(2.25), 0.0],
                               rtol=1e-6)
    np.testing.assert_array_equal(latest.numpy(), [[False, True, True, False], [False] * 4])
    np.testing.assert_array_equal(terms.numpy()[1], np.zeros(4))


def test_without_a_half_life_the_term_counts_the_purchases():
    terms, _ = repeat.history_terms(tf.constant([[7, -1, 7, 7, 2]], tf.int64), 1.0, None)
    np.testing.assert_allclose(terms.numpy(), [[0, 0, 0, np.log(4), np.log(2)]], rtol=1e-6)


def test_dense_terms_put_each_items_term_in_its_catalogue_column():
    dense = repeat.dense_terms(np.array([[3, 5, 3, -1]]), 6, 2.0, 1.0)
    expected = np.zeros((1, 6))
    expected[0, 3], expected[0, 5] = 2 * np.log(2.25), 2 * np.log(1.5)
    np.testing.assert_allclose(dense, expected, rtol=1e-6)


def _merge(policy, weight, k=3):
    ann = tf.constant([[10, 11, 12, 13, 14]], tf.int64)
    ann_scores = tf.constant([[0.9, 0.8, 0.7, 0.6, 0.5]])
    history = tf.constant([[20, 11, 20, -1]], tf.int64)  # 20 twice, 11 once (also an ANN hit)
    history_scores = tf.constant([[0.1, 0.8, 0.1, 123.0]])
    indices, scores = repeat.merge(ann, ann_scores, history, history_scores, k, policy, weight,
                                   None)
    return indices.numpy()[0].tolist(), scores.numpy()[0]


def test_rank_lets_a_bought_item_outrank_the_anns_when_its_term_says_so():
    indices, scores = _merge(repeat.RANK, weight=1.0)
    # 11 (ANN 0.8, bought once): 1.493; 20 (model 0.1, bought twice): 1.199; then 10 at 0.9.
    assert indices == [11, 20, 10]
    np.testing.assert_allclose(scores, [0.8 + np.log(2), 0.1 + np.log(3), 0.9], rtol=1e-6)


def test_rank_with_no_weight_is_the_models_own_ranking_without_duplicates():
    indices, scores = _merge(repeat.RANK, weight=0.0, k=5)
    assert indices == [10, 11, 12, 13, 14]
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7, 0.6, 0.5], rtol=1e-6)
    # Asked for more: the history's 20 once (11 is already the ANN's), then an empty slot.
    indices, scores = _merge(repeat.RANK, weight=0.0, k=7)
    assert indices[:6] == [10, 11, 12, 13, 14, 20]
    assert scores[5] == pytest.approx(0.1) and scores[6] == pytest.approx(repeat.REMOVED)


def test_exclude_never_returns_a_history_item():
    indices, scores = _merge(repeat.EXCLUDE, weight=5.0)
    assert indices == [10, 12, 13]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6], rtol=1e-6)


def test_exclude_on_a_catalogue_smaller_than_k_plus_history_marks_empty_slots():
    indices, scores = repeat.merge(tf.constant([[1, 2]], tf.int64), tf.constant([[0.5, 0.4]]),
                                   tf.constant([[2]], tf.int64), tf.constant([[0.4]]), 2,
                                   repeat.EXCLUDE, 1.0, None)
    assert indices.numpy()[0, 0] == 1 and scores.numpy()[0, 1] == pytest.approx(repeat.REMOVED)


def _reference_terms(history, weight, half_life):
    """{item: r_j} of one history row, straight from the module docstring."""
    valid = [item for item in history if item >= 0]
    decayed = {}
    for steps_back, item in enumerate(reversed(valid)):
        factor = 1.0 if half_life is None else 0.5 ** (steps_back / half_life)
        decayed[item] = decayed.get(item, 0.0) + factor
    return {item: weight * np.log1p(value) for item, value in decayed.items()}


@pytest.mark.parametrize("half_life", [None, 3.0])
def test_terms_and_merge_match_a_direct_computation_on_random_rows(half_life):
    rng = np.random.default_rng(11)
    history = rng.integers(-1, 15, size=(50, 30))
    ann = np.stack([rng.permutation(40)[:12] for _ in range(50)])
    ann_scores = -np.sort(-rng.normal(size=(50, 12)), axis=1).astype(np.float32)
    model = rng.normal(size=(50, 40)).astype(np.float32)  # every item's model score per row
    for row in range(50):  # the ANN's scores are the model's, as in the served graph
        model[row, ann[row]] = ann_scores[row]
    history_scores = np.take_along_axis(model, np.maximum(history, 0), axis=1)
    dense = repeat.dense_terms(history, 40, 0.7, half_life)
    indices, scores = repeat.merge(tf.constant(ann, tf.int64), tf.constant(ann_scores),
                                   tf.constant(history, tf.int64), tf.constant(history_scores),
                                   8, repeat.RANK, 0.7, half_life)
    for row in range(50):
        terms = _reference_terms(history[row].tolist(), 0.7, half_life)
        expected_dense = np.zeros(40)
        for item, term in terms.items():
            expected_dense[item] = term
        np.testing.assert_allclose(dense[row], expected_dense, rtol=1e-5, atol=1e-6)
        candidates = {int(item): float(model[row, item]) + terms.get(int(item), 0.0)
                      for item in set(ann[row].tolist()) | set(terms)}
        best = sorted(candidates.items(), key=lambda pair: -pair[1])[:8]
        np.testing.assert_allclose(scores.numpy()[row], [score for _, score in best], rtol=1e-5)
        assert sorted(indices.numpy()[row].tolist()) == sorted(item for item, _ in best)


def test_keep_latest_keeps_the_last_valid_items_whatever_the_padding():
    kept = repeat.keep_latest(tf.constant([[1, -1, 2, 3, -1, 4, -1]], tf.int64), 3)
    np.testing.assert_array_equal(kept.numpy(), [[-1, -1, 2, 3, -1, 4, -1]])
