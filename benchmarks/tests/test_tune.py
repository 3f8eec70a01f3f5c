"""`twotower tune`: the coordinate-wise search, the validation split it carves from the
pipeline's training part, its inputs' errors, the tuned config; and the command end to end
on small synthetic data with a history feature."""
import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmarks import protocols, tune, tune_search
from benchmarks.tune_search import Knobs, Space
from pipeline import cli
from pipeline.data import synthetic
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower.errors import ConfigError, TwoTowerError


def test_stages_run_in_order_and_the_repeat_grid_skips_half_lives_at_weight_zero():
    space = Space(temperatures=(0.05, 0.1), poolings=("mean", "recency"), prior_weights=(0.0, 1.0),
                  repeat_weights=(0.0, 2.0), half_lives=(0.0, 50.0))
    plan = dict(tune_search.stages(space, history=True))
    assert list(plan) == ["temperature", "history", "prior", "repeat"]
    best = Knobs(0.2, 0.5, 20, "mean", "rank", 3.0, None)
    assert [(k.length, k.pooling) for k in plan["history"](best)] == [(20, "mean"),
                                                                      (20, "recency")]
    assert [(k.policy, k.repeat_weight, k.half_life) for k in plan["repeat"](best)] == [
        ("exclude", 0.0, None), ("rank", 0.0, None), ("rank", 2.0, None), ("rank", 2.0, 50.0)]
    assert list(dict(tune_search.stages(space, history=False))) == ["temperature", "prior"]


class FakeSearch(tune_search.Search):
    """Scores knobs by a known separable function as hits of 2,000 shared validation events
    (an event is a hit when its uniform draw is below the knobs' value), so two trials'
    paired difference has a real noise; the real compare/beats/keep_only run on them."""

    protocol, key = "history", "history_recall_at_10"
    EVENTS = np.random.default_rng(0).uniform(size=2000)

    def __init__(self):  # pylint: disable=super-init-not-called
        self.calls, self.lines = [], []
        self._events, self._models, self.groups = {}, {}, None

    def log(self, line):
        self.lines.append(line)

    def start(self):
        return Knobs(0.2, 0.5, 20, "mean", "rank", 0.0, None)

    @staticmethod
    def value(knobs):
        # τ 0.1, recency and exclude gain beyond the noise; β 0.25 gains 0.002, within it.
        return (0.3 + (0.05 if knobs.temperature == 0.1 else 0.0)
                + (0.002 if knobs.prior == 0.25 else 0.0)
                + (0.05 if knobs.pooling == "recency" else 0.0)
                + (0.1 if knobs.policy == "exclude" else 0.01 * knobs.repeat_weight))

    def trial(self, knobs):
        if knobs not in self._events:
            self.calls.append(knobs)
            self._events[knobs] = (self.EVENTS < self.value(knobs)).astype(float)
        value = float(self._events[knobs].mean())
        return {self.key: value, "history_recall_at_100": 2 * value}


def test_the_search_keeps_a_stages_value_only_when_it_wins_beyond_the_noise():
    search = FakeSearch()
    space = Space(temperatures=(0.05, 0.1, 0.2), prior_weights=(0.0, 0.25, 0.5),
                  repeat_weights=(0.0, 3.0), half_lives=(0.0,))
    best, rows = tune_search.run_search(search, space)
    # β 0.25 scores higher on these events, but by less than the paired interval: kept 0.5.
    assert best == Knobs(0.1, 0.5, 20, "recency", "exclude", 0.0, None)
    assert len(search.calls) == len(set(search.calls)) == len(rows)
    assert rows[0]["stage"] == "start" and tune_search.knobs_of(rows[0]) == search.start()
    # The start's τ and β are not tried again; every other stage value is, once.
    assert [row["stage"] for row in rows].count("temperature") == 2
    assert [row["stage"] for row in rows].count("prior") == 2
    assert [row["stage"] for row in rows].count("repeat") == 2  # exclude, 3 x counts
    by_knobs = {tune_search.knobs_of(row): row for row in rows}
    small, kept = (Knobs(0.1, prior, 20, "recency", "rank", 0.0, None) for prior in (0.25, 0.5))
    assert by_knobs[small]["objective"] > by_knobs[kept]["objective"]
    difference, half_width = search.compare(small, kept)
    assert 0 < difference < half_width and not search.beats(small, kept)
    assert by_knobs[best]["vs_chosen"] == 0.0 and by_knobs[best]["vs_chosen_ci95"] == 0.0
    start = rows[0]
    assert start["vs_chosen"] == pytest.approx(-0.2, abs=0.03)
    assert start["vs_chosen"] + start["vs_chosen_ci95"] < 0
    assert all(row["history_recall_at_100"] == 2 * row["objective"] for row in rows)
    assert any("against the best so far" in line for line in search.lines)


def test_paired_differences_and_per_event_values():
    ranks = np.array([0, 3, 9, 10, 99, 100, np.iinfo(np.int64).max])
    assert tune_search.event_values(ranks, "recall_at_10").tolist() == [1, 1, 1, 0, 0, 0, 0]
    assert tune_search.event_values(ranks, "recall_at_100").sum() == 5
    gains = tune_search.event_values(ranks, "ndcg_at_10")
    assert gains[:3] == pytest.approx([1.0, 1 / np.log2(5), 1 / np.log2(11)])
    assert gains[3:].sum() == 0
    # Paired: a constant shift has no noise; the same shift as independent draws has some.
    first = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    assert tune_search.paired(first, first, None) == (0.0, 0.0)
    difference, half_width = tune_search.paired(first, np.roll(first, 1), None)
    assert difference == pytest.approx(0.0) and half_width > 0.5
    grouped = tune_search.paired(first, 1 - first, np.array(list("aabbcc")))
    assert grouped[0] == pytest.approx(1 / 3) and grouped[1] > 0


def test_the_validation_events_come_from_the_runs_training_part_only():
    frame = pd.DataFrame({"t": np.arange(100), "u": ["a"] * 100})
    config = config_lib.load(None, ("data.cutoff_quantile=0.8",))
    train = tune.pipeline_train(frame, config, "t")
    assert train["t"].tolist() == list(range(79))  # cutoff 79: eval from the cutoff on
    validation = protocols.split("temporal", train, "u", "t", quantile=0.8).eval
    assert validation["t"].tolist() == list(range(62, 79))
    fixed = tune.pipeline_train(frame, config_lib.load(None, ("data.cutoff_timestamp=30",)), "t")
    assert fixed["t"].tolist() == list(range(30))
    with pytest.raises(ConfigError, match="tune with data.split time"):
        tune.pipeline_train(frame, config_lib.load(None, ("data.split=hash",)), "t")


def test_inputs_tune_cannot_read_are_one_clear_error(tmp_path):
    contract = contract_lib.load(str(config_lib.SCHEMAS_ROOT / "movielens"))
    with pytest.raises(ConfigError, match="no file matches"):
        tune.read_table(str(tmp_path / "none*.csv"), "csv", contract)
    (tmp_path / "a.tfrecord").write_text("")
    with pytest.raises(ConfigError, match="reads csv or parquet"):
        tune.read_table(str(tmp_path / "a.tfrecord"), "tfrecord", contract)
    (tmp_path / "dates.csv").write_text("user_id,item_id,timestamp\n1,2,2024-01-03\n")
    with pytest.raises(TwoTowerError, match="dates.csv: column timestamp: not .*seconds"):
        tune.read_table(str(tmp_path / "dates.csv"), "csv", contract)
    (tmp_path / "ids.csv").write_text("user_id,item_id,timestamp,age\n1,2,5,old\n")
    with pytest.raises(TwoTowerError, match="ids.csv: .*the kind its contract declares"):
        tune.read_table(str(tmp_path / "ids.csv"), "csv", contract)
    iso = contract_lib.Contract(tuple(
        dataclasses.replace(feature, format="iso8601") if feature.name == "timestamp" else feature
        for feature in contract.features))
    assert tune.read_table(str(tmp_path / "dates.csv"), "csv", iso)["timestamp"].tolist() == [
        1704240000]
    pd.DataFrame({"user_id": [1, 2], "item_id": [5, 6], "timestamp": [10, 11]}).to_parquet(
        tmp_path / "a.parquet")
    table = tune.read_table(str(tmp_path / "*.parquet"), "parquet", contract)
    assert table["item_id"].tolist() == ["5", "6"] and table["timestamp"].tolist() == [10, 11]


def test_the_tuned_config_keeps_the_users_fields_and_loads_with_the_chosen_values(tmp_path):
    values = config_lib.load_values(None, ("training.epochs=3", "serving.model_name=shop"))
    best = Knobs(0.07, 0.25, 50, "mean", "rank", 1.5, 200.0)
    path = tmp_path / "tuned.yaml"
    tune.write_config(tune.tuned_values(values, best, history=True), path, ["chosen here"])
    assert path.read_text().startswith("# chosen here\n")
    config = config_lib.load(str(path))
    assert (config.training.epochs, config.serving.model_name) == (3, "shop")
    assert (config.model.temperature, config.model.popularity_prior) == (0.07, 0.25)
    assert (config.index.history_policy, config.index.repeat_weight,
            config.index.repeat_half_life) == ("rank", 1.5, 200.0)
    no_history = tune.tuned_values(values, best, history=False)
    assert "index" not in no_history and no_history["model"]["temperature"] == 0.07


@pytest.mark.e2e
def test_tune_on_data_with_a_history_writes_a_config_and_every_trial(tmp_path, capsys):
    data = tmp_path / "data"
    synthetic.generate(synthetic.SyntheticSpec(users=150, items=120, interactions=3_000,
                                               seed=3), data, progress=False)
    schema = tmp_path / "schema"
    shutil.copytree(config_lib.SCHEMAS_ROOT / "movielens", schema)
    with open(schema / "features.yaml", "a", encoding="utf-8") as features:
        features.write("  recent: {role: query, kind: history, length: 20, pooling: mean}\n")
    with open(schema / "interactions.pbtxt", "a", encoding="utf-8") as interactions:
        interactions.write('feature {\n  name: "recent"\n  type: BYTES\n'
                           '  value_count {\n    min: 1\n    max: 20\n  }\n}\n')
    config = tmp_path / "shop.yaml"
    config.write_text(f"data:\n  interactions: {data}/interactions.csv\n  items: "
                      f"{data}/items.csv\n  schema_dir: {schema}\ntraining:\n  epochs: 1\n")
    code = cli.main(["tune", "--config", str(config), "--temperatures", "0.1",
                     "--history-poolings", "mean", "--prior-weights", "0", "0.5",
                     "--repeat-weights", "0", "2", "--repeat-half-lives", "0",
                     "--max-events", "300"])
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    # Progress on the console once each; every record in the log beside the report.
    assert "epoch 1:" in captured.err and "INFO:" not in captured.err
    assert "epoch 1:" in (tmp_path / "shop.tune.log").read_text()
    report = json.loads((tmp_path / "shop.tune.json").read_text())
    rows = report["rows"]
    assert [row["stage"] for row in rows] == ["start", "temperature", "prior", "repeat",
                                              "repeat"]
    assert report["config"]["objective"] == "history_recall_at_10"
    assert set(report["references"]) == {"mostpop", "ptopfreq_asof"}
    assert "300 validation events" in report["notes"]
    chosen = Knobs(**report["chosen"])
    chosen_row = next(row for row in rows if tune_search.knobs_of(row) == chosen)
    assert (chosen_row["vs_chosen"], chosen_row["vs_chosen_ci95"]) == (0.0, 0.0)
    assert all(row["vs_chosen_ci95"] >= 0 for row in rows)
    assert "paired difference" in report["notes"]
    tuned = config_lib.load(str(tmp_path / "shop.tuned.yaml"))
    assert (tuned.model.temperature, tuned.model.popularity_prior,
            tuned.index.history_policy, tuned.index.repeat_weight) == (
        chosen.temperature, chosen.prior, chosen.policy, chosen.repeat_weight)
    assert tuned.training.epochs == 1 and tuned.data.schema_dir == str(schema)
    assert "| trial | stage |" in printed and "wrote " in printed
