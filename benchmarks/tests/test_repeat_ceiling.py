"""benchmarks/repeat_ceiling.py: features, ranks and the conditional logit by hand."""
import numpy as np
import pytest

from benchmarks import repeat_ceiling as rc
from twotower.errors import TwoTowerError

DAY = 86_400.0


def _stats(n_items=10):
    return rc.ItemStats(np.log1p(np.arange(n_items, dtype=float)), np.full(n_items, 0.5),
                        np.full(n_items, -1.0))


def test_item_stats_repeat_rate_and_median_gap():
    # user 0 buys item 1 on days 0, 2, 6 (gaps 2 and 4: median 3); user 1 buys it once;
    # item 2 bought once by user 0.
    stats = rc.item_stats(np.array([0, 0, 0, 1, 0]), np.array([1, 1, 1, 1, 2]),
                          np.array([0, 2, 6, 1, 3]) * DAY, 3)
    assert stats.log_count == pytest.approx(np.log1p([0, 4, 1]))
    assert stats.repeat_rate == pytest.approx([1 / 2, 2 / 4, 1 / 3])
    assert stats.log_gap == pytest.approx([-1.0, np.log1p(3.0), -1.0])


def test_day_features_by_hand():
    # item 5 on days 0 and 2, item 7 on day 1; scored on day 3.
    times, items = np.array([0.0, 1.0, 2.0]) * DAY, np.array([5, 7, 5])
    unique, inverse, before = rc.own_items(times, items, 3 * DAY)
    assert unique.tolist() == [5, 7]
    found = rc.day_features(unique, inverse, before, 3 * DAY, _stats())
    first = rc.DAY_HALF_LIVES[0]
    assert found[:, 0] == pytest.approx(np.log1p([2 ** (-3 / first) + 2 ** (-1 / first),
                                                  2 ** (-2 / first)]))
    extra = found[:, len(rc.DAY_HALF_LIVES):]
    assert extra[:, 0] == pytest.approx(np.log1p([2, 1]))  # count
    assert extra[:, 1] == pytest.approx(np.log1p([1, 2]))  # days since the last purchase
    assert extra[:, 2] == pytest.approx(np.log1p([0, 1]))  # baskets since
    assert extra[:, 3] == pytest.approx([2 / 3, 1 / 3])  # share of the user's baskets
    assert extra[:, 5] == pytest.approx(np.log1p([5, 7]))  # the item's popularity
    # an event at the same moment as a purchase does not see it (strictly before)
    assert rc.own_items(times, items, 2 * DAY)[0].tolist() == [5, 7]
    assert len(rc.own_items(times, items, 1 * DAY)[1]) == 1


def test_step_features_read_only_the_last_length_items():
    unique, inverse = np.array([5, 7]), np.array([0, 1, 0])  # 5, 7, 5 (latest last)
    full = rc.step_features(unique, inverse, 3, _stats())
    half = rc.STEP_HALF_LIVES[0]
    assert full[:, 0] == pytest.approx(np.log1p([1 + 2 ** (-2 / half), 2 ** (-1 / half)]))
    steps = len(rc.STEP_HALF_LIVES)
    assert full[:, steps] == pytest.approx(np.log1p([2, 1]))
    assert full[:, steps + 1] == pytest.approx(np.log1p([0, 1]))
    short = rc.step_features(unique, inverse, 1, _stats())  # only the latest 5
    assert short[:, steps] == pytest.approx(np.log1p([1, 0]))
    assert short[:, steps + 1] == pytest.approx(np.log1p([0, 1]))  # 7 unseen: `length`


def test_rank_of_own_items_first_then_popularity():
    popularity_rank = np.array([2, 0, 1, 3, 4])  # item 1 most popular, then 2, 0, 3, 4
    unique, scores = np.array([3, 4]), np.array([0.5, 0.9])
    assert rc.rank_of(scores, unique, 4, popularity_rank) == 0
    assert rc.rank_of(scores, unique, 3, popularity_rank) == 1
    assert rc.rank_of(scores, unique, 1, popularity_rank) == 2  # first of the rest
    assert rc.rank_of(scores, unique, 0, popularity_rank) == 4  # after own 3, 4 and 1, 2
    assert rc.rank_of(np.zeros(0), np.zeros(0, np.int64), 0, popularity_rank) == 2


def test_conditional_logit_learns_which_feature_marks_the_true_item():
    rng = np.random.default_rng(0)
    features, positives = [], []
    for _ in range(300):
        rows = rng.normal(size=(6, 2))
        truth = int(np.argmax(rows[:, 0] + 0.3 * rng.normal(size=6)))
        features.append(rows)
        positives.append(np.arange(6) == truth)
    features.append(rng.normal(size=(3, 2)))  # an event whose item is new: ignored
    positives.append(np.zeros(3, bool))
    model = rc.fit_conditional_logit(features, positives)
    assert model.weights[0] > 1.0 and abs(model.weights[1]) < 0.3 * model.weights[0]
    top = [int(np.argmax(model.scores(rows))) == int(np.flatnonzero(truth)[0])
           for rows, truth in zip(features[:-1], positives[:-1])]
    assert np.mean(top) > 0.7
    with pytest.raises(ValueError, match="no event"):
        rc.fit_conditional_logit(features[-1:], positives[-1:])


def test_compare_pairs_each_ranker_with_the_rule():
    rule, ranks = np.array([0, 50, 200, 5]), np.array([0, 5, 200, 150])
    row = rc.compare("x", ranks, rule, np.array([0, 0, 1, 1]))
    assert row["recall_at_10"] == 0.5 and row["recall_at_10_vs_rule"] == 1.0
    assert row["recall_at_10_diff"] == 0.0
    assert row["recall_at_100"] == 0.5 and row["recall_at_100_vs_rule"] == pytest.approx(2 / 3, abs=1e-4)
    assert row["recall_at_100_diff"] == -0.25


def test_only_repeat_purchase_datasets(tmp_path):
    with pytest.raises(TwoTowerError, match="not a repeat-purchase dataset"):
        rc.run(["movielens"], tmp_path)
