"""The simple baselines against hand-computed values: P-TopFreq's order (own counts, then
popularity), its point-in-time counts and decay, EASE^R's closed form, and the selection on
validation."""
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from benchmarks import baselines

DAY = baselines.SECONDS_PER_DAY
CATALOG = ["a", "b", "c", "d"]


def _events(rows):
    return pd.DataFrame(rows, columns=["user", "item", "time"])


def _order(scores):
    """Item ids from best to worst by score (the scores are strict)."""
    assert len(set(scores.tolist())) == len(scores)
    return [CATALOG[i] for i in np.argsort(-scores)]


def test_popularity_order_is_strict_and_follows_counts_then_catalogue_order():
    values = baselines.popularity_order(np.array([1.0, 5.0, 1.0, 0.0]))
    assert values[1] > values[0] > values[2] > values[3] >= 0.0
    assert values.max() < 1.0


def test_ptopfreq_ranks_own_items_by_count_then_the_rest_by_popularity():
    train = _events([("u", "c", 1), ("u", "c", 2), ("u", "d", 3), ("v", "a", 1),
                     ("v", "a", 2), ("v", "b", 3)])
    counts = np.array([2.0, 1.0, 2.0, 1.0])  # a, b, c, d
    scores = baselines.ptopfreq(train, CATALOG, "user", "item", counts)
    assert scores.users == ["u", "v"]
    # u: c (2 buys), d (1), then a before b (popularity 2 vs 1).
    assert _order(scores.score_rows(["u"])[0]) == ["c", "d", "a", "b"]
    # A user without training events: popularity, ties by catalogue order (a before c).
    assert _order(scores.score_rows(["new"])[0]) == ["a", "c", "b", "d"]


def test_user_scores_vectors_give_each_users_scores_by_a_one_hot_dot_product():
    scores = baselines.UserScores(["u", "v"], np.array([[1.0, 2.0], [3.0, 4.0]]),
                                  np.array([5.0, 6.0]))
    queries = scores.one_hot(["v", "stranger", "u"])
    np.testing.assert_array_equal(queries @ scores.vectors().T,
                                  [[3.0, 4.0], [5.0, 6.0], [1.0, 2.0]])


def test_asof_counts_only_events_strictly_before_the_scored_one():
    train = _events([("u", "a", 10), ("u", "b", 20)])
    evaluation = _events([("u", "c", 30), ("u", "d", 30), ("u", "b", 40)])
    scorer = baselines.asof_scorer(train, evaluation, CATALOG, "user", "item", "time",
                                   np.array([1.0, 1.0, 0.0, 0.0]))
    scores = scorer(evaluation)
    # At t=30: a and b once each (b later in the catalogue: a wins the tie); the basket
    # bought at the same second (c, d) is not yet history.
    assert _order(scores[0])[:2] == ["a", "b"]
    assert scores[0, 2] < scores[0, 1] and scores[0, 3] < scores[0, 1]
    np.testing.assert_array_equal(scores[0], scores[1])
    # At t=40: a, b, c, d once each, so every item is "bought": ties by popularity.
    assert _order(scores[2]) == ["a", "b", "c", "d"]
    assert scores[2].min() > scores[0].max() - 1.0  # all four among the bought ones


def test_asof_decay_weighs_each_earlier_event_by_its_age():
    train = _events([("u", "a", 0), ("u", "a", DAY), ("u", "b", 9 * DAY)])
    evaluation = _events([("u", "c", 10 * DAY)])
    counts = np.zeros(4)
    plain = baselines.asof_scorer(train, evaluation, CATALOG, "user", "item", "time", counts)
    decayed = baselines.asof_scorer(train, evaluation, CATALOG, "user", "item", "time", counts,
                                    half_life_days=1.0)
    assert _order(plain(evaluation)[0])[:2] == ["a", "b"]  # two buys beat one
    # Decayed: a weighs 2^-10 + 2^-9, b 2^-1: the recent single buy wins.
    scores = decayed(evaluation)[0]
    assert _order(scores)[:2] == ["b", "a"]
    assert scores[1] - scores[0] == pytest.approx(np.log(0.5) - np.log(2 ** -10 + 2 ** -9),
                                                  abs=1e-6)


def test_ease_weights_match_the_closed_form_and_ridge_regression():
    # Two items: B[0, 1] is the ridge regression of column 1 on column 0, c / (a + λ).
    matrix = sparse.csr_matrix(np.array([[1, 1], [1, 0], [1, 1], [0, 1]], float))
    weights = baselines.ease_weights(matrix, l2=2.0)
    a, c = 3.0, 2.0  # column 0's squared norm, the columns' dot product
    assert weights[0, 1] == pytest.approx(c / (a + 2.0))
    assert weights[1, 0] == pytest.approx(c / (3.0 + 2.0))
    np.testing.assert_array_equal(np.diag(weights), [0.0, 0.0])
    # Three items: each column minimises ||x_j - X b_j||² + λ||b_j||² over b_j with b_jj = 0.
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 3)) < 0.5).astype(float)
    weights = baselines.ease_weights(sparse.csr_matrix(dense), l2=5.0)
    for j in range(3):
        others = [i for i in range(3) if i != j]
        x = dense[:, others]
        solved = np.linalg.solve(x.T @ x + 5.0 * np.eye(2), x.T @ dense[:, j])
        np.testing.assert_allclose(weights[others, j], solved, rtol=1e-9)


def test_ease_refuses_a_catalogue_too_large_to_invert(monkeypatch):
    monkeypatch.setattr(baselines, "EASE_MAX_ITEMS", 3)
    with pytest.raises(ValueError, match="4 items is above 3"):
        baselines.ease_weights(sparse.csr_matrix((2, 4)), 1.0)


def test_ease_scores_users_and_histories_and_falls_back_to_popularity():
    train = _events([("u", "a", 1), ("u", "b", 2), ("v", "a", 1), ("v", "c", 2),
                     ("w", "b", 1)])
    counts = np.array([2.0, 2.0, 1.0, 0.0])
    scores, model = baselines.ease(train, CATALOG, "user", "item", counts, l2=1.0)
    # d has no training event: B is fitted over a, b, c, and d scores 0 for everyone.
    np.testing.assert_array_equal(model.columns, [0, 1, 2])
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 0]], float)
    full = np.zeros((4, 4))
    full[:3, :3] = baselines.ease_weights(sparse.csr_matrix(x), 1.0)
    np.testing.assert_allclose(scores.scores, np.pad(x, ((0, 0), (0, 1))) @ full, atol=1e-8)
    assert _order(scores.score_rows(["nobody"])[0]) == ["a", "b", "c", "d"]
    had = pd.Series([["a"], ["b", "c", "unknown"]], index=[7, 9])
    rows = baselines.ease_history_scorer(model, CATALOG, had)(pd.DataFrame(index=[9, 7]))
    np.testing.assert_allclose(rows[0], full[1] + full[2], atol=1e-8)
    np.testing.assert_allclose(rows[1], full[0], atol=1e-8)


def test_event_recall_removes_training_items_but_never_the_true_one():
    train = _events([("u", "a", 1), ("u", "b", 2)])
    evaluation = _events([("u", "c", 3), ("u", "a", 4), ("u", "zzz", 5)])
    fixed = np.array([4.0, 3.0, 2.0, 1.0])  # a > b > c > d for everyone
    scorer = lambda rows: np.tile(fixed, (len(rows), 1))  # noqa: E731
    # Top 1: c ranks first once a and b are removed; a keeps itself; zzz is a miss.
    assert baselines.event_recall(scorer, train, evaluation, CATALOG, "user", "item",
                                  exclude_train=True, k=1) == pytest.approx(2 / 3)
    assert baselines.event_recall(scorer, train, evaluation, CATALOG, "user", "item",
                                  exclude_train=False, k=1) == pytest.approx(1 / 3)


def test_choose_takes_the_best_candidate_and_the_first_on_a_tie():
    best, found = baselines.choose([1.0, 2.0, 3.0], {1.0: 0.2, 2.0: 0.5, 3.0: 0.5}.get)
    assert best == 2.0 and found == {"1": 0.2, "2": 0.5, "3": 0.5}


def test_reference_rows_of_the_history_protocol_on_repeat_purchases():
    """Each user re-buys one favourite every day and tries something else twice: the as-of
    rule finds the favourite, the decay's half-life is chosen on validation, and EASE runs
    on this small catalogue."""
    from types import SimpleNamespace  # pylint: disable=import-outside-toplevel

    from benchmarks import history_eval, protocols, quality, quality_references, quality_rows  # pylint: disable=import-outside-toplevel
    rows = []
    items = [f"i{n}" for n in range(12)]
    for user in range(8):
        for day in range(20):
            rows.append((f"u{user}", items[user], day * DAY))
            if day in (3, 11):
                rows.append((f"u{user}", items[(user + day) % 12], day * DAY + 1))
    events = _events(rows)
    contract = SimpleNamespace(user_id="user", item_id="item", event_time="time")
    split = protocols.temporal_split(events, "time")
    had = history_eval.earlier_items(split.train, split.eval, "user", "item", "time")
    prepared = quality.Prepared("history", split, "", "", "", "", contract, had,
                                exclude_had=False)
    counts = quality_references.train_counts(split.train, items, "item")
    result = SimpleNamespace(catalog_ids=items, train_counts=counts, contract=contract)
    logged = []
    found = quality_references.score(prepared, result, True, logged.append)
    assert set(found) == {quality_rows.PTOPFREQ_ASOF, quality_rows.PTOPFREQ_DECAY,
                          quality_rows.EASE}
    assert found[quality_rows.PTOPFREQ_ASOF]["history_recall_at_10"] == pytest.approx(1.0)
    assert found[quality_rows.PTOPFREQ_ASOF]["history_recall_at_10"] >= found[
        quality_rows.EASE]["history_recall_at_10"]
    decay = found[quality_rows.PTOPFREQ_DECAY]
    assert decay["history_half_life_days"] in baselines.HALF_LIVES_DAYS
    assert set(decay["history_half_life_validation"]) == {
        f"{days:g}" for days in baselines.HALF_LIVES_DAYS}
    assert found[quality_rows.EASE]["history_ease_l2"] in baselines.EASE_L2_WEIGHTS
    assert any("half-life" in line for line in logged)
