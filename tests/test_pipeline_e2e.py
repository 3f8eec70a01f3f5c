"""End to end through `twotower run` (LocalDagRunner, SQLite MLMD) on small synthetic data."""
import json
import re

import pandas as pd
import pytest

from components.ingestion.component import DataValidationReport
from twotower import versions
from pipeline import artifacts, cli
from twotower import config as config_lib
from pipeline.data import synthetic

pytestmark = pytest.mark.e2e
ROWS = 3_000


@pytest.fixture(name="data_dir", scope="module")
def fixture_data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    synthetic.generate(synthetic.SyntheticSpec(users=200, items=150, interactions=ROWS, seed=7),
                       out, progress=False)
    return out


def _run(tmp_path, interactions, items, *overrides):
    root = tmp_path / "root"
    args = ["run", "--set", f"data.interactions={interactions}", "--set", f"data.items={items}",
            "--set", f"orchestration.pipeline_root={root}",
            "--set", f"serving.base_path={tmp_path / 'serving'}"]
    for override in overrides:
        args += ["--set", override]
    return cli.main(args), config_lib.load(None, tuple(args[2::2]))


def test_run_prints_split_sizes_and_reuses_cache(tmp_path, data_dir, capsys):
    code, config = _run(tmp_path, data_dir / "interactions.csv", data_dir / "items.csv")
    out, err = capsys.readouterr()
    assert code == 0, err
    sizes = re.search(r"interactions: train: (\d+) examples, eval: (\d+) examples", out)
    assert sizes, out
    train, evaluation = int(sizes.group(1)), int(sizes.group(2))
    assert train + evaluation == ROWS
    # Synthetic times are distinct and evenly spaced: the 0.8 quantile leaves ~20% in eval.
    assert evaluation == pytest.approx(0.2 * ROWS, abs=3)
    assert "items: catalog: 150 examples" in out
    pool = re.search(r"negative pool \(uniform sampler\): (\d+) catalogue items, (\d+) never "
                     r"seen in training, (\d+) train interactions, 0 with an item missing from "
                     r"the catalogue, .* (\d+) pool items", out)
    assert pool, out
    assert int(pool.group(1)) == 150 and int(pool.group(4)) == 150
    assert int(pool.group(3)) == train
    model = re.search(r"model: recall \(TFRS protocol, seen not removed\) @10 ([0-9.]+), @50 "
                      r"([0-9.]+), @100 ([0-9.]+); filtered recall @10 ([0-9.]+)", out)
    assert model, out
    recall_10, recall_50, recall_100 = (float(model.group(i)) for i in (1, 2, 3))
    assert 0.0 <= recall_10 <= recall_50 <= recall_100 <= 1.0
    # A random ranking of the 150 items has recall@10 = 10/150; the planted clusters are learnable.
    assert recall_10 > 10 / 150, out
    assert err.count(" done in ") == 17
    # The Trainer trains in a child process (orchestration.separate_processes); the child's records
    # reach the run's log.
    log = next((tmp_path / "root" / "logs").glob("run-*.log")).read_text()
    assert "Running training in a child process" in log and "Eval metrics:" in log
    # First model: the absolute checks and MostPop apply, at a cut-off of 10% of the 150
    # items; both variants are pushed.
    gated = re.search(r"validation: BLESSED: filtered_recall_at_15 ([0-9.]+) \(MostPop "
                      r"([0-9.]+), no blessed model yet\); ScaNN recall@100 vs exact 1\.0000",
                      out)
    assert gated and float(gated.group(1)) > float(gated.group(2)), out
    serving = tmp_path / "serving"
    for name in ("twotower", "twotower-stock"):
        assert re.search(rf"pushed: {serving / name}/\d+", out), out
        assert len(versions.versions(str(serving / name))) == 1

    code, _ = _run(tmp_path, data_dir / "interactions.csv", data_dir / "items.csv")
    out, err = capsys.readouterr()
    assert code == 0
    # Everything up to the index is cached; the validator re-runs because the resolver now
    # finds a blessed baseline (the same model), and nothing is pushed twice.
    assert err.count(" cached") == 13, err
    assert ", latest blessed" in out and "validation: BLESSED" in out, out
    for name in ("twotower", "twotower-stock"):
        assert len(versions.versions(str(serving / name))) == 1
    assert artifacts.latest_output_uri(config, "InteractionsValidationGate",
                                       DataValidationReport.TYPE_NAME)

    # Warm start: the resolver hands the latest blessed model to a new Trainer run, which
    # keeps the rows of every id in its vocabularies (same data: 200 users, the 149 items
    # seen in training; none is new).
    code, _ = _run(tmp_path, data_dir / "interactions.csv", data_dir / "items.csv",
                   "training.warm_start=true")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Trainer done" in err, err
    assert re.search(r"warm start: kept the rows of 200 users and 149 items; 0 users and 0 "
                     r"items are new", out), out

    # tune-temperature on the same run's data: an unnormalised model, then a two-point sweep.
    code = cli.main(["tune-temperature", "--set", f"orchestration.pipeline_root={tmp_path / 'root'}",
                     "--set", "training.epochs=2", "--sample", "100", "--sweep", "0.05", "0.1",
                     "--out", str(tmp_path / "tune.json")])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads((tmp_path / "tune.json").read_text())
    assert report["queries"] == 100 and report["items"] == 150
    assert 0.05 <= report["suggested_temperature"] <= 0.2
    assert report["raw"]["extent"] > 0 and 0 < report["cosine"]["extent"] <= 1
    assert [row["temperature"] for row in report["sweep"]] == [0.05, 0.1]
    assert "suggested model.temperature:" in out and "best by filtered recall@100" in out


def test_wrong_type_stops_at_example_validator_naming_the_feature(tmp_path, data_dir, capsys):
    frame = pd.read_csv(data_dir / "interactions.csv", dtype=str)
    frame.loc[10, "age"] = "twenty"
    bad = tmp_path / "interactions.csv"
    frame.to_csv(bad, index=False)
    code, config = _run(tmp_path, bad, data_dir / "items.csv")
    _, err = capsys.readouterr()
    assert code == cli.EXIT_USER_ERROR
    assert "interactions failed validation" in err
    assert "feature 'age': Unexpected data type. Expected data of type: INT but got STRING" in err
    assert '"twenty"' in err
    assert "InteractionsValidationGate ..." in err
    assert "InteractionsValidationGate done" not in err
    assert "NegativePoolBuilder" not in err and "Trainer" not in err
    assert artifacts.latest_output_uri(config, "InteractionsValidationGate",
                                       DataValidationReport.TYPE_NAME) is None


def test_missing_required_feature_is_named(tmp_path, data_dir, capsys):
    frame = pd.read_csv(data_dir / "interactions.csv", dtype=str).drop(columns=["item_id"])
    bad = tmp_path / "interactions.csv"
    frame.to_csv(bad, index=False)
    code, _ = _run(tmp_path, bad, data_dir / "items.csv")
    _, err = capsys.readouterr()
    assert code == cli.EXIT_USER_ERROR
    assert "feature 'item_id': Column dropped" in err
