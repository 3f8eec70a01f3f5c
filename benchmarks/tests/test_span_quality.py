"""bench span_quality: its arithmetic, and two daily spans of synthetic data end to end."""
import argparse
import json

import pytest

from benchmarks import span_quality
from pipeline.data import synthetic


def _row(span, name, recall, warm_started=None):
    row = {"span": span, "name": name, "filtered_recall_at_10": recall / 4,
           "filtered_recall_at_100": recall, "filtered_ndcg_at_10": recall / 8}
    if warm_started is not None:
        row["warm_started"] = warm_started
    return row


def test_paired_difference_is_the_mean_difference_with_its_standard_error():
    found = span_quality.paired_difference([0.3, 0.5, 0.4], [0.2, 0.5, 0.2])
    # differences 0.1, 0.0, 0.2: mean 0.1, sample std 0.1, stderr 0.1 / sqrt(3)
    assert found == {"mean": 0.1, "stderr": 0.0577, "pairs": 3}
    assert span_quality.paired_difference([0.3], [0.1])["stderr"] == 0.0


def test_summary_pairs_only_warm_started_spans_and_averages_complete_ones():
    rows = [_row("d1", "incremental", 0.2, warm_started=False), _row("d1", "full_retrain", 0.2),
            _row("d1", "mostpop", 0.3),
            _row("d2", "incremental", 0.4, warm_started=True), _row("d2", "full_retrain", 0.3),
            _row("d2", "baseline", 0.1), _row("d2", "mostpop", 0.2),
            _row("d3", "incremental", 0.6, warm_started=True), _row("d3", "full_retrain", 0.6),
            _row("d3", "baseline", 0.3), _row("d3", "mostpop", 0.4)]
    summary = span_quality.summarise(rows)
    assert summary["spans_all_models"] == 2
    assert summary["means"]["incremental"]["filtered_recall_at_100"] == 0.5
    assert summary["means"]["baseline"]["filtered_recall_at_100"] == 0.2
    difference = summary["incremental_minus_full_retrain"]["filtered_recall_at_100"]
    assert difference["pairs"] == 2 and difference["mean"] == 0.05


@pytest.mark.e2e
def test_two_daily_spans_score_the_warm_started_run_beside_a_retrain(tmp_path):
    data = tmp_path / "data"
    # 30 s per event from 2020-09-13 12:26 UTC: 1,386 events on the first day, 1,614 on the next
    synthetic.generate(synthetic.SyntheticSpec(users=200, items=150, interactions=3_000, seed=7),
                       data, progress=False)
    out = tmp_path / "span_quality.json"
    args = argparse.Namespace(data=str(data), every="day", window=4, spans=2, workdir=tmp_path,
                              keep=False, out=out,
                              set=["training.epochs=2", "training.batch_size=128"])
    span_quality.main_from_args(args)
    report = json.loads(out.read_text())
    rows = {(row["span"], row["name"]): row for row in report["rows"]}
    assert sorted({span for span, _ in rows}) == ["2020-09-13", "2020-09-14"]
    first, second = rows["2020-09-13", "incremental"], rows["2020-09-14", "incremental"]
    assert not first["warm_started"] and second["warm_started"]
    assert first["blessed"] and first["eval_interactions"] > 0
    # With no blessed model yet the pipeline's Trainer trains from scratch on the same data
    # and seed as the bench's retrain: the same model, scored the same way.
    assert first["filtered_recall_at_100"] == pytest.approx(
        rows["2020-09-13", "full_retrain"]["filtered_recall_at_100"], abs=0.02)
    assert ("2020-09-14", "mostpop") in rows
    assert ("2020-09-14", "baseline") not in rows  # 3,000 events cannot fill a batch of 8,192
    assert report["config"]["spans_done"] == 2 and not report["notes"].startswith("PARTIAL")
    assert report["summary"]["incremental_minus_full_retrain"]["filtered_recall_at_100"][
        "pairs"] == 1
    assert not list(tmp_path.glob("span-quality-*")), "scratch folder left behind"


def test_scratch_folder_is_removed_unless_kept_or_a_run_failed(tmp_path, capsys):
    from benchmarks import common
    for name, keep in (("done", False), ("kept", True)):
        with common.scratch_folder(tmp_path / name, keep, "t") as folder:
            folder.mkdir()
    assert not (tmp_path / "done").exists() and (tmp_path / "kept").is_dir()
    with pytest.raises(RuntimeError):
        with common.scratch_folder(tmp_path / "failed", False, "t") as folder:
            folder.mkdir()
            raise RuntimeError("a run failed")
    assert (tmp_path / "failed").is_dir()
    assert f"kept: {tmp_path / 'failed'}" in capsys.readouterr().err
