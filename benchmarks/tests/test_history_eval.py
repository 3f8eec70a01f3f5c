"""The history protocol by hand, and how a run of some protocols merges into the report."""
import numpy as np
import pandas as pd
import pytest

from benchmarks import history_eval, quality_report

TRAIN = pd.DataFrame({"u": ["a", "a", "b"], "i": ["x", "y", "x"], "t": [1, 2, 3]})
EVAL = pd.DataFrame({"u": ["a", "c", "c"], "i": ["z", "y", "x"], "t": [10, 11, 12]})
CATALOG = ["x", "y", "z"]


def test_histories_and_earlier_items_are_point_in_time():
    frame = history_eval.add_histories(pd.concat([TRAIN, EVAL], ignore_index=True),
                                       "u", "i", "t", "h", 1)
    assert frame["h"].tolist() == [[], ["x"], [], ["y"], [], ["y"]]
    # Every earlier item of the user, train or eval, for each eval row.
    assert history_eval.earlier_items(TRAIN, EVAL, "u", "i", "t") == [["x", "y"], [], ["y"]]


def test_ranks_exclude_had_items_but_never_the_true_one():
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    # Row 0: true z (index 2); x and y excluded -> rank 0. Row 1: true x, had x -> kept, rank 0.
    assert history_eval.ranks(scores, np.array([2, 0]), [[0, 1], [0]]).tolist() == [0, 0]
    assert history_eval.ranks(scores, np.array([2, -1]), [[], []])[0] == 2
    assert history_eval.ranks(scores, np.array([2, -1]), [[], []])[1] > 1000


def test_evaluate_splits_warm_and_cold_users():
    # Scores x > y > z for everyone. a (warm) wants z with x, y excluded: rank 0. c (cold)
    # wants y (nothing had): rank 1; then x with y had: rank 0.
    result = history_eval.evaluate(lambda rows: np.tile([3.0, 2.0, 1.0], (len(rows), 1)),
                                   TRAIN, EVAL, CATALOG, "u", "i", "t")
    assert result["history_recall_at_10"] == 1.0
    assert result["history_ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(3) + 1) / 3)
    assert result["history_events"] == 3 and result["history_events_cold"] == 2
    assert result["history_ndcg_at_10_warm"] == 1.0
    assert result["history_ndcg_at_10_cold"] == pytest.approx((1 / np.log2(3) + 1) / 2)


def test_itemknn_sums_cosine_similarity_to_recent_items():
    # x and y share user a; x also has b. cos(x, y) = 1 / (sqrt(2) * 1); z has no users.
    similarity = history_eval.itemknn_similarity(TRAIN, CATALOG, "u", "i").toarray()
    np.testing.assert_allclose(similarity, [[0, 1 / np.sqrt(2), 0], [1 / np.sqrt(2), 0, 0],
                                            [0, 0, 0]])
    scorer = history_eval.itemknn_scorer(
        history_eval.itemknn_similarity(TRAIN, CATALOG, "u", "i"), CATALOG,
        pd.Series([["x"], [], ["y"]], index=EVAL.index))
    np.testing.assert_allclose(scorer(EVAL), [[0, 1 / np.sqrt(2), 0], [0, 0, 0],
                                              [1 / np.sqrt(2), 0, 0]])


def test_a_run_of_some_protocols_keeps_the_others_keys():
    old = [{"name": "default", "tfrs_top_100": 0.4, "history_recall_at_10": 0.1,
            "examples_per_sec_tfrs": 9, "overrides": []},
           {"name": "loss_bpr", "tfrs_top_100": 0.39}]
    new = [{"name": "default", "history_recall_at_10": 0.2, "overrides": []},
           {"name": "itemknn_history", "history_recall_at_10": 0.15}]
    merged = {row["name"]: row for row in quality_report.keep_other_protocols(old, new, ["history"])}
    assert merged["default"] == {"name": "default", "tfrs_top_100": 0.4,
                                 "examples_per_sec_tfrs": 9, "history_recall_at_10": 0.2,
                                 "overrides": []}
    assert merged["loss_bpr"] == old[1] and "itemknn_history" in merged
    # An old row this run did not produce loses the measured protocols' keys (they came
    # from other defaults), and goes when nothing is left.
    stale = [{"name": "tau_0.05", "history_recall_at_10": 0.1, "tfrs_top_100": 0.3},
             {"name": "default+prior_2", "history_recall_at_10": 0.1, "overrides": ["x"]}]
    merged = {row["name"]: row for row in quality_report.keep_other_protocols(stale, new,
                                                                              ["history"])}
    assert merged["tau_0.05"] == {"name": "tau_0.05", "tfrs_top_100": 0.3}
    assert "default+prior_2" not in merged
    assert quality_report.protocol_of("temporal_unfiltered_recall_at_10") == "temporal"
    assert quality_report.protocol_of("examples_per_sec_history") == "history"
    assert quality_report.protocol_of("name") is None



def test_protocol_runs_say_which_commit_measured_each_protocol():
    # A report from before protocol_runs existed: its protocols were measured at its git.
    old = {"git": "abc", "config": {"protocols": ["tfrs", "temporal", "recbole"]}}
    protocols, runs, kept = quality_report.protocol_runs(old, ["history"], "def")
    assert protocols == ["tfrs", "temporal", "recbole", "history"]
    assert runs == {"tfrs": "abc", "temporal": "abc", "recbole": "abc", "history": "def"}
    assert kept == ["recbole", "temporal", "tfrs"]
    again = {"git": "def", "config": {"protocols": protocols, "protocol_runs": runs}}
    assert quality_report.protocol_runs(again, ["tfrs"], "ghi")[1]["tfrs"] == "ghi"
    assert quality_report.protocol_runs(again, ["tfrs"], "ghi")[1]["history"] == "def"


def test_training_histories_are_each_users_last_training_items_at_the_cutoff():
    assert history_eval.training_histories(TRAIN, EVAL, "u", "i", "t", 1) == [["y"], [], []]
    assert history_eval.training_histories(TRAIN, EVAL, "u", "i", "t", 5) == [["x", "y"], [],
                                                                                []]
    # Events at the same time are all before the cutoff.
    tied = pd.DataFrame({"u": ["a", "a"], "i": ["x", "y"], "t": [4, 4]})
    assert history_eval.training_histories(tied, EVAL, "u", "i", "t", 5)[0] == ["x", "y"]


def test_the_temporal_protocol_as_served_ranks_every_item_with_the_training_history():
    from types import SimpleNamespace  # pylint: disable=import-outside-toplevel

    from benchmarks import protocols, quality_history  # pylint: disable=import-outside-toplevel
    # Everyone is scored z > x > y by the towers. a had x and y in training and wants y:
    # rank 2 without a repeat term; with weight 10 both bought items pass z, x first.
    served = EVAL.assign(i=["y", "y", "x"], h=history_eval.training_histories(
        TRAIN, EVAL, "u", "i", "t", 5))
    prepared = SimpleNamespace(
        contract=SimpleNamespace(user_id="u", item_id="i", event_time="t"),
        split=protocols.Split(TRAIN, EVAL), served_eval=served)

    def towers(rows):
        return np.tile([2.0, 1.0, 3.0], (len(rows), 1))
    plain = quality_history.served_scores(prepared, CATALOG, towers)
    # a: y rank 2; c (cold, nothing bought): y rank 2, x rank 1. Nothing is removed.
    assert plain["temporal_served_ndcg_at_10"] == pytest.approx(
        (0.5 + 0.5 + 1 / np.log2(3)) / 3)
    assert plain["temporal_served_events"] == 3 and plain["temporal_served_events_cold"] == 2
    assert set(plain) == {key.replace("history_", "temporal_served_") for key in
                          history_eval.summarise(np.zeros(3, np.int64),
                                                 np.array([True, False, False]))}
    repeat = quality_history.served_scores(prepared, CATALOG, quality_history.with_repeat(
        towers, CATALOG, "h", "rank", 10.0, None))
    assert repeat["temporal_served_ndcg_at_10_warm"] == pytest.approx(1 / np.log2(3))
    assert repeat["temporal_served_ndcg_at_10_cold"] == plain["temporal_served_ndcg_at_10_cold"]


def test_a_dataset_run_of_some_protocols_keeps_its_other_protocols_keys(tmp_path):
    out = tmp_path / "quality.json"
    from benchmarks import common  # pylint: disable=import-outside-toplevel
    common.write_report("quality", {"datasets": {"cj": {"protocols": ["temporal", "history"],
                                                        "git": "abc"}}},
                        [{"name": "default", "tfrs_top_100": 0.4},
                         {"name": "default", "dataset": "cj", "temporal_recall_at_10": 0.1,
                          "history_recall_at_10": 0.2, "overrides": []},
                         {"name": "ptopfreq_decay", "dataset": "cj",
                          "history_recall_at_10": 0.3, "overrides": []}], "", out, git="abc")
    quality_report.merge_dataset_rows(
        "cj", [{"name": "default", "temporal_recall_at_10": 0.15,
                "temporal_served_recall_at_10": 0.2, "overrides": []}],
        {"protocols": ["temporal"]}, 60.0, out, "def")
    import json  # pylint: disable=import-outside-toplevel
    report = json.loads(out.read_text())
    rows = {(row.get("dataset"), row["name"]): row for row in report["rows"]}
    assert rows[(None, "default")] == {"name": "default", "tfrs_top_100": 0.4}
    assert rows[("cj", "default")] == {"name": "default", "dataset": "cj",
                                       "temporal_recall_at_10": 0.15,
                                       "temporal_served_recall_at_10": 0.2,
                                       "history_recall_at_10": 0.2, "overrides": []}
    assert rows[("cj", "ptopfreq_decay")]["history_recall_at_10"] == 0.3
    assert report["config"]["datasets"]["cj"]["protocol_runs"] == {"temporal": "def",
                                                                   "history": "abc"}
    assert "['history'] kept" in report["notes"]


def test_recbole_histories_come_from_the_train_part_alone():
    from benchmarks import protocols, quality_history  # pylint: disable=import-outside-toplevel
    from twotower.contract import Contract, FeatureSpec  # pylint: disable=import-outside-toplevel
    contract = quality_history.with_history(Contract((
        FeatureSpec("u", "user_id", "id"), FeatureSpec("i", "item_id", "id"),
        FeatureSpec("t", "event_time", "timestamp"))), 2)
    # a's events in time order x1..x5; the split's parts are chosen by hand, out of order.
    frame = pd.DataFrame({"u": ["a"] * 5 + ["b"], "i": ["x1", "x2", "x3", "x4", "x5", "y"],
                          "t": [1, 2, 3, 4, 5, 6]})
    split = protocols.Split(train=frame.iloc[[0, 2, 4, 5]], eval=frame.iloc[[1]],
                            valid=frame.iloc[[3]])
    built = quality_history.recbole_histories(split, contract)
    # Train rows: the user's earlier train items only (x2 and x4 are held out).
    assert built.train["history"].tolist() == [[], ["x1"], ["x1", "x3"], []]
    # Held-out rows: the user's last 2 train items, whatever their own time.
    assert built.eval["history"].tolist() == [["x3", "x5"]]
    assert built.valid["history"].tolist() == [["x3", "x5"]]
    assert quality_history.recbole_histories(
        protocols.Split(split.train, split.eval), contract).valid is None
