"""bench increments' arithmetic (the ingest row, its growth across spans), its resuming
of an interrupted run and its report of the runs a folder finished."""
import json

import pytest

from benchmarks import increments
from twotower.errors import ConfigError


def test_ingest_row_sums_the_three_stages_and_keeps_their_peak():
    rows = [{"name": "InteractionsExampleGen", "wall_s": 10.0, "peak_rss_mb": 900},
            {"name": "InteractionsStatisticsGen", "wall_s": 5.5, "peak_rss_mb": 1200},
            {"name": "InteractionsExampleValidator", "wall_s": 0.5, "peak_rss_mb": None},
            {"name": "Trainer", "wall_s": 99.0, "peak_rss_mb": 5000}]
    assert increments.ingest_row(rows) == {"name": "ingest", "wall_s": 16.0, "peak_rss_mb": 1200}


def test_ingest_growth_is_relative_to_span_one_and_ignores_the_single_file_run():
    rows = [{"name": "ingest", "span": 1, "wall_s": 20.0},
            {"name": "ingest", "span": 2, "wall_s": 22.0},
            {"name": "pipeline", "span": 2, "wall_s": 100.0},
            {"name": "ingest", "span": "single_file", "wall_s": 90.0}]
    assert increments.ingest_growth(rows) == {"1": 1.0, "2": 1.1}


def _write(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_rewind_removes_what_a_cut_off_run_wrote_and_restores_the_metadata(tmp_path):
    _write(tmp_path / "root" / "metadata.sqlite", "after span 1")
    _write(tmp_path / "root" / "InteractionsExampleGen" / "examples" / "3" / "Split-train" / "a.gz")
    _write(tmp_path / "serving" / "1" / "saved_model.pb")
    state = {"config": {"spans": 3}, "rows": [{"span": 1, "name": "ingest"}], "sessions": []}
    increments.checkpoint(tmp_path, state)

    _write(tmp_path / "root" / "metadata.sqlite", "span 2 half done")
    _write(tmp_path / "root" / "InteractionsExampleGen" / "examples" / "9" / "Split-train" / "a.gz")
    _write(tmp_path / "root" / "logs" / "run-2.log")
    _write(tmp_path / "serving" / "2" / "saved_model.pb")

    assert increments.rewind(tmp_path) == state
    assert (tmp_path / "root" / "metadata.sqlite").read_text() == "after span 1"
    assert (tmp_path / "root" / "InteractionsExampleGen" / "examples" / "3" / "Split-train"
            / "a.gz").exists()
    assert not (tmp_path / "root" / "InteractionsExampleGen" / "examples" / "9").exists()
    assert not (tmp_path / "serving" / "2").exists()
    assert (tmp_path / "serving" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "root" / "logs" / "run-2.log").exists()  # logs are kept


def test_only_the_newest_complete_checkpoint_is_kept_and_used(tmp_path):
    first = {"config": {"spans": 2}, "rows": [], "sessions": []}
    increments.checkpoint(tmp_path, first)
    second = {"config": {"spans": 2}, "rows": [{"span": 1}], "sessions": []}
    increments.checkpoint(tmp_path, second)
    assert [path.name for path in tmp_path.glob("checkpoint-*")] == ["checkpoint-001"]
    (tmp_path / "checkpoint-002").mkdir()  # cut off before its state was written
    assert increments.rewind(tmp_path) == second


def test_resume_without_a_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="start a new run without --resume"):
        increments.rewind(tmp_path)


def test_an_interrupted_bench_resumes_at_the_cut_off_run(tmp_path, monkeypatch):
    calls = []

    def run_once(folder, config_file, root, label, overrides):
        calls.append(label)
        _write(root / label / "output")
        if label == "span-2" and calls.count("span-2") == 1:
            raise KeyboardInterrupt
        return [{"name": "ingest", "wall_s": 1.0, "peak_rss_mb": 1}]
    monkeypatch.setattr(increments, "run_once", run_once)
    state = {"config": {"spans": 3, "interactions_per_span": 10, "window_spans": 2,
                        "single_file": True},
             "pattern": "p", "rows": [], "sessions": [{"git": "a", "first_run": "span-1"}]}
    increments.checkpoint(tmp_path, state)
    with pytest.raises(KeyboardInterrupt):
        increments.run_rest(tmp_path, state)
    assert (tmp_path / "root" / "span-2" / "output").exists()

    resumed = increments.resume(tmp_path, "b")
    assert not (tmp_path / "root" / "span-2").exists()
    assert resumed["sessions"][-1] == {"git": "b", "first_run": "span-2"}
    increments.run_rest(tmp_path, resumed)
    assert calls == ["single_file", "span-1", "span-2", "span-2", "span-3"]
    assert [row["span"] for row in resumed["rows"]] == ["single_file", 1, 2, 3]
    assert increments.rewind(tmp_path)["rows"] == resumed["rows"]


def test_report_from_writes_the_finished_runs_and_leaves_the_folder_alone(tmp_path):
    config = {"spans": 3, "interactions_per_span": 10, "users": 5, "items": 4,
              "window_spans": 2, "train_steps": 7, "single_file": True}
    rows = [{"span": "single_file", "name": "ingest", "wall_s": 30.0, "peak_rss_mb": 9},
            {"span": 1, "name": "ingest", "wall_s": 4.0, "peak_rss_mb": 3},
            {"span": 2, "name": "ingest", "wall_s": 5.0, "peak_rss_mb": 3}]
    state = {"config": config, "git": "abc", "pattern": "p", "rows": rows,
             "sessions": [{"git": "abc", "first_run": "single_file"}]}
    increments.checkpoint(tmp_path, state)
    _write(tmp_path / "root" / "span-3" / "output")  # the bench is still running span 3

    path = increments.report_from(tmp_path, tmp_path / "report.json")

    report = json.loads(path.read_text())
    assert report["rows"] == rows
    assert report["git"] == "abc"
    assert report["ingest_growth"] == {"1": 1.0, "2": 1.25}
    assert report["not_measured"] == ["span-3"]
    assert "Not measured: span-3" in report["notes"]
    assert (tmp_path / "root" / "span-3" / "output").exists()
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-003"]
