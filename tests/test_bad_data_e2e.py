"""A corpus of broken inputs through `twotower run`: each either stops the run at validation
with a message naming the problem (and nothing is pushed), or is handled and counted in the
run's report. docs/operations.md lists which is which."""
import pathlib
import re

import pandas as pd
import pytest

from pipeline import cli
from pipeline.data import synthetic

pytestmark = pytest.mark.e2e


@pytest.fixture(name="clean", scope="module")
def fixture_clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    synthetic.generate(synthetic.SyntheticSpec(users=200, items=150, interactions=3_000, seed=7),
                       out, progress=False)
    return (pd.read_csv(out / "interactions.csv", dtype=str),
            pd.read_csv(out / "items.csv", dtype=str))


def _run(tmp_path: pathlib.Path, interactions: pathlib.Path, items: pathlib.Path, *overrides):
    args = ["run", "--set", f"data.interactions={interactions}", "--set", f"data.items={items}",
            "--set", f"orchestration.pipeline_root={tmp_path / 'root'}",
            "--set", f"serving.base_path={tmp_path / 'serving'}", "--set", "training.epochs=2"]
    for override in overrides:
        args += ["--set", override]
    return cli.main(args)


def _set(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


def _write_empty(path: pathlib.Path, interactions: pd.DataFrame) -> None:
    del interactions
    path.write_text("")


def _write_header_only(path: pathlib.Path, interactions: pd.DataFrame) -> None:
    path.write_text(",".join(interactions.columns) + "\n")


def _write_ragged(path: pathlib.Path, interactions: pd.DataFrame) -> None:
    interactions.to_csv(path, index=False)
    with path.open("a") as f:
        f.write("1,2,3\n")


STOPS = {
    "empty_file": (_write_empty, "is empty; a CSV input needs a header line"),
    "header_only": (_write_header_only, "[train] split: Empty split. It has no rows"),
    "ragged_row": (_write_ragged, "a row has 3 fields but the header has 11"),
    "negative_timestamp": (
        lambda path, f: _set(f, 5, "timestamp", "-5").to_csv(path, index=False),
        "feature 'timestamp': Out-of-range values. Unexpectedly small value: -5"),
    "millisecond_timestamp": (
        lambda path, f: _set(f, 5, "timestamp", "1700000000000").to_csv(path, index=False),
        "feature 'timestamp': Out-of-range values. Unexpectedly large value"),
    "unreadable_timestamp": (
        lambda path, f: _set(f, 5, "timestamp", "not-a-time").to_csv(path, index=False),
        "interactions.csv:7: column 'timestamp' (the event time): value 'not-a-time' is not "
        "integer Unix seconds; fix or drop the row"),
    "no_timestamp_column": (
        lambda path, f: f.drop(columns=["timestamp"]).to_csv(path, index=False),
        "interactions.csv: no column 'timestamp' (the contract's event time) in the header"),
    "unknown_gender": (
        lambda path, f: _set(f, 7, "gender", "unknown").to_csv(path, index=False),
        "feature 'gender'"),
}


@pytest.mark.parametrize("case", sorted(STOPS))
def test_broken_interactions_stop_the_run_with_a_named_problem(case, clean, tmp_path, capsys):
    write, message = STOPS[case]
    path = tmp_path / "interactions.csv"
    write(path, clean[0])
    items = tmp_path / "items.csv"
    clean[1].to_csv(items, index=False)
    assert _run(tmp_path, path, items) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "serving").exists()


def test_items_table_without_its_id_column_stops_the_run(clean, tmp_path, capsys):
    interactions, items = tmp_path / "interactions.csv", tmp_path / "items.csv"
    clean[0].to_csv(interactions, index=False)
    clean[1].drop(columns=["item_id"]).to_csv(items, index=False)
    assert _run(tmp_path, interactions, items) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "items failed validation" in err and "feature 'item_id': Column dropped" in err, err
    assert not (tmp_path / "serving").exists()


def test_handled_problems_are_counted_and_the_run_finishes(clean, tmp_path, capsys):
    interactions, items = clean
    duplicates = interactions.iloc[:100]
    ghosts = interactions.iloc[100:120].assign(item_id=[f"ghost-{i}" for i in range(20)])
    odd_ids = ["ユーザー,1", "a|b", "x y", "tab\tid", 'quote"id']
    unicode_users = interactions.iloc[120:140].assign(user_id=odd_ids * 4)
    broken = pd.concat([interactions, duplicates, ghosts, unicode_users])
    path = tmp_path / "interactions.csv"
    broken.sort_values("timestamp", kind="stable").to_csv(path, index=False)
    rare = set(interactions["item_id"].value_counts().index[-5:])
    catalogue = tmp_path / "items.csv"
    items[~items["item_id"].isin(rare)].to_csv(catalogue, index=False)

    assert _run(tmp_path, path, catalogue) == 0
    out = capsys.readouterr().out
    sizes = re.search(r"interactions: train: (\d+) examples, eval: (\d+) examples", out)
    assert int(sizes.group(1)) + int(sizes.group(2)) == len(broken)  # duplicates kept
    assert "items: catalog: 145 examples" in out
    pool = re.search(r"(\d+) with an item missing from the catalogue, (\d+) users", out)
    assert pool, out
    ghost_or_rare = broken["item_id"].str.startswith("ghost-") | broken["item_id"].isin(rare)
    assert 0 < int(pool.group(1)) <= int(ghost_or_rare.sum())
    assert int(pool.group(2)) == 200 + len(odd_ids)  # every odd id is its own user
    assert re.search(r"pushed: .*/twotower/\d+", out), out
