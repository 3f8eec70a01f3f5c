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


class FakeSearch:
    """Scores knobs by a known separable function (its maximum: τ 0.1, β 0.25, exclude)."""

    protocol, key = "history", "history_recall_at_10"

    def __init__(self):
        self.calls = []
        self.lines = []

    def log(self, line):
        self.lines.append(line)

    def start(self):
        return Knobs(0.2, 0.5, 20, "mean", "rank", 0.0, None)

    def trial(self, knobs):
        self.calls.append(knobs)
        value = (1.0 - (knobs.temperature - 0.1) ** 2 - (knobs.prior - 0.25) ** 2
                 + (0.05 if knobs.pooling == "recency" else 0.0)
                 + (0.1 if knobs.policy == "exclude" else 0.01 * knobs.repeat_weight))
        return {self.key: value, "history_recall_at_100": 2 * value}


def test_the_search_keeps_each_stages_best_and_tries_no_setting_twice():
    search = FakeSearch()
    space = Space(temperatures=(0.05, 0.1, 0.2), prior_weights=(0.0, 0.25, 0.5),
                  repeat_weights=(0.0, 3.0), half_lives=(0.0,))
    best, rows = tune_search.run_search(search, space)
    assert best == Knobs(0.1, 0.25, 20, "recency", "exclude", 0.0, None)
    assert len(search.calls) == len(set(search.calls)) == len(rows)
    assert rows[0]["stage"] == "start" and tune_search.knobs_of(rows[0]) == search.start()
    # The start's τ and β are not tried again; every other stage value is, once.
    assert [row["stage"] for row in rows].count("temperature") == 2
    assert [row["stage"] for row in rows].count("prior") == 2
    assert [row["stage"] for row in rows].count("repeat") == 2  # exclude, 3 x counts
    by_knobs = {tune_search.knobs_of(row): row["objective"] for row in rows}
    assert by_knobs[best] == max(by_knobs.values())
    assert all(row["history_recall_at_100"] == 2 * row["objective"] for row in rows)


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
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "shop.tune.json").read_text())
    rows = report["rows"]
    assert [row["stage"] for row in rows] == ["start", "temperature", "prior", "repeat",
                                              "repeat"]
    assert report["config"]["objective"] == "history_recall_at_10"
    assert set(report["references"]) == {"mostpop", "ptopfreq_asof"}
    assert "300 validation events" in report["notes"]
    chosen = tune_search.knobs_of(next(
        row for row in rows if row["objective"] == max(r["objective"] for r in rows)))
    assert report["chosen"] == dataclasses.asdict(chosen)
    tuned = config_lib.load(str(tmp_path / "shop.tuned.yaml"))
    assert (tuned.model.temperature, tuned.model.popularity_prior,
            tuned.index.history_policy, tuned.index.repeat_weight) == (
        chosen.temperature, chosen.prior, chosen.policy, chosen.repeat_weight)
    assert tuned.training.epochs == 1 and tuned.data.schema_dir == str(schema)
    assert "| trial | stage |" in printed and "wrote " in printed
