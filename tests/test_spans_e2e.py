"""Span runs through `twotower run`: a span whose category shares jump stops at the drift gate
and pushes nothing; the one-run waiver accepts it; a span missing on its date is a clear
error. Synthetic data (3,000 events) split into three date-named spans."""
import pandas as pd
import pytest

from twotower import versions
from pipeline import cli
from pipeline.data import spans as spans_data
from pipeline.data import synthetic

pytestmark = pytest.mark.e2e
DATES = ("2026-01-01", "2026-01-02", "2026-01-03")


def _run(tmp_path, incoming, date, *overrides):
    args = ["run", "--set", f"data.interactions={incoming}/{{YYYY}}-{{MM}}-{{DD}}/interactions.csv",
            "--set", f"data.items={incoming / 'items.csv'}", "--set", f"spans.span={date}",
            "--set", "spans.drift_thresholds={genres: 0.3}",
            "--set", f"orchestration.pipeline_root={tmp_path / 'root'}",
            "--set", f"serving.base_path={tmp_path / 'serving'}", "--set", "training.epochs=1",
            "--set", "training.batch_size=128", "--set", "validation.max_relative_regression=1.0"]
    for override in overrides:
        args += ["--set", override]
    return cli.main(args)


def test_drifted_span_stops_pushes_nothing_and_can_be_waived(tmp_path, capsys):
    raw = tmp_path / "raw"
    synthetic.generate(synthetic.SyntheticSpec(users=200, items=150, interactions=3_000, seed=7),
                       raw, progress=False)
    spans_data.split(raw / "interactions.csv", tmp_path / "numbered", "timestamp", spans=3,
                     extra_tables=(raw / "items.csv",))
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (tmp_path / "numbered" / "items.csv").rename(incoming / "items.csv")
    for k, date in enumerate(DATES[:2], start=1):
        (tmp_path / "numbered" / f"span-{k}").rename(incoming / date)
    drifted = incoming / DATES[1] / "interactions.csv"
    frame = pd.read_csv(drifted, dtype=str, keep_default_na=False)
    frame["genres"] = frame["genres"].iloc[0]  # one category takes every row
    frame.to_csv(drifted, index=False)
    pushed = tmp_path / "serving" / "twotower"

    assert _run(tmp_path, incoming, DATES[0]) == 0
    assert len(versions.versions(str(pushed))) == 1
    capsys.readouterr()
    assert _run(tmp_path, incoming, DATES[1]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "feature 'genres': Drift. L-infinity distance" in err
    assert "above the threshold 0.3" in err and "--set spans.drift_thresholds={}" in err
    assert len(versions.versions(str(pushed))) == 1  # nothing pushed
    assert _run(tmp_path, incoming, DATES[1], "spans.drift_thresholds={}") == 0
    assert len(versions.versions(str(pushed))) == 2
    capsys.readouterr()
    assert _run(tmp_path, incoming, DATES[2]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"no input for {DATES[2]} (span 20456)" in err and "spans.wait_minutes" in err
    assert len(versions.versions(str(pushed))) == 2
