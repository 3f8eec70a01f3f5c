"""`twotower bench span_quality`: does a model kept up to date by warm-started nightly runs
stay as good as one retrained from scratch?

MovieLens-100K (data/movielens) is split into weekly spans (`twotower data split-spans
--every week`) and `twotower run --set spans.span=<week>` runs the nightly pipeline once per
week, in order, each in a fresh process against one ML Metadata store: ingest the week,
then the pool and the Trainer over the window of the newest `spans.window_spans` weeks,
warm-started from the last blessed model (`incremental`). After each run the bench reads
the Trainer's inputs from ML Metadata (the window's Examples, the pool, the catalogue) and,
on exactly that data, trains the same config from scratch (`full_retrain`) and the TFRS
tutorial (`baseline`, where the window fills its batch of 8,192), and counts MostPop over
the window. Every model is scored the same way: the ModelValidator's `evaluate_export` on
the week's eval split (exact search over the whole catalogue, the items each user had in
the window's training data removed).

`--every day` and `--data` (any folder of the MovieLens contract, e.g. `twotower data
synthetic`) run the same on other data. Writes reports/span_quality.json (docs/benchmarks.md): one
row per span and model with `filtered_recall_at_10`, `filtered_recall_at_100`,
`filtered_ndcg_at_10` and `eval_interactions` (incremental rows also `warm_started`,
`blessed`, `trainer_wall_s`); `summary` holds each model's mean over the spans every model
was scored on and the paired difference incremental minus full_retrain over the
warm-started spans, with its standard error across spans (the noise it is judged by).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Optional, Sequence

import numpy as np
import yaml

from benchmarks import common, increments, quality_rows
from twotower import config as config_lib
from twotower import keys
from twotower.errors import ConfigError

MOVIELENS_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "movielens.yaml"
KS = (10, 50, 100)
METRIC_KEYS = ("filtered_recall_at_10", "filtered_recall_at_100", "filtered_ndcg_at_10")
INCREMENTAL, FULL, BASELINE = "incremental", "full_retrain", "baseline"
MODELS = (INCREMENTAL, FULL, BASELINE, quality_rows.MOSTPOP)
WARM_START_KEY = "warm_start_known_items"  # in a Trainer export's metrics when warm-started


def paired_difference(first: Sequence[float], second: Sequence[float]) -> dict[str, float]:
    """Mean of first - second over paired values, with its standard error.

    Returns:
      {"mean", "stderr", "pairs"}; stderr is 0 for fewer than two pairs.
    """
    diffs = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    stderr = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
    return {"mean": round(float(diffs.mean()), 4), "stderr": round(stderr, 4),
            "pairs": len(diffs)}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means per model over the spans every model was scored on, and incremental minus
    full_retrain per metric over the spans whose run was warm-started (a run without a
    blessed model to start from trains from scratch, as the retrain does)."""
    by_span: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_span.setdefault(row["span"], {})[row["name"]] = row
    complete = [span for span, models in by_span.items() if set(MODELS) <= set(models)]
    paired = [span for span, models in by_span.items()
              if FULL in models and models.get(INCREMENTAL, {}).get("warm_started")]
    means = {name: {key: round(float(np.mean([by_span[s][name][key] for s in complete])), 4)
                    for key in METRIC_KEYS} for name in MODELS} if complete else {}
    differences = {key: paired_difference([by_span[s][INCREMENTAL][key] for s in paired],
                                          [by_span[s][FULL][key] for s in paired])
                   for key in METRIC_KEYS} if paired else {}
    return {"spans_all_models": len(complete), "means": means,
            "incremental_minus_full_retrain": differences}


def score_mostpop(train_patterns: Sequence[str], eval_pattern: str, serving_dir: str,
                  sample: Optional[int]) -> dict[str, float]:
    """MostPop over the window's training data, scored like evaluate_export (same
    catalogue, filter and cut-offs)."""
    from components.model_validator import evaluation  # pylint: disable=import-outside-toplevel
    return evaluation.evaluate_mostpop(serving_dir, train_patterns, eval_pattern, KS,
                                       sample).metrics


def score_span(config: Any, workdir: pathlib.Path) -> dict[str, dict[str, Any]]:
    """Scores the run's model, a full retrain, the tutorial and MostPop on the span's eval.

    Args:
      config: The run's pipeline config (its ML Metadata names the Trainer's inputs).
      workdir: Scratch space for the exports trained here.

    Returns:
      {model name: evaluate_export's metrics (plus `train_seconds` for models trained
      here)}; `baseline` is missing when the window cannot fill the tutorial's batch.
    """
    from tfx.types import artifact_utils  # pylint: disable=import-outside-toplevel
    from tfx.utils import io_utils, path_utils  # pylint: disable=import-outside-toplevel
    from components.ingestion import window  # pylint: disable=import-outside-toplevel
    from components.model_validator import evaluation  # pylint: disable=import-outside-toplevel
    from components.trainer import export, training  # pylint: disable=import-outside-toplevel
    from pipeline import artifacts  # pylint: disable=import-outside-toplevel
    inputs = artifacts.latest_inputs(config, "Trainer")
    train_patterns, eval_patterns = window.training_patterns(inputs[keys.EXAMPLES_KEY])
    catalog = io_utils.all_files_pattern(artifact_utils.get_split_uri(
        inputs[keys.ITEMS_KEY], keys.CATALOG_SPLIT))
    pool_uri = artifact_utils.get_single_uri(inputs[keys.NEGATIVE_POOL_KEY])
    model_uri = artifacts.latest_output_uri(config, "Trainer", "Model")
    sample = config.validation.max_eval_interactions

    def evaluate(serving_dir: str) -> dict[str, float]:
        return evaluation.evaluate_export(serving_dir, train_patterns, eval_patterns[0], KS,
                                          sample).metrics
    incremental_dir = path_utils.serving_model_path(model_uri)
    with open(os.path.join(incremental_dir, export.METRICS_FILE)) as f:
        warm_started = WARM_START_KEY in json.load(f)
    scores = {INCREMENTAL: {**evaluate(incremental_dir), "warm_started": warm_started}}
    trained = ((FULL, config), (BASELINE, config_lib.load(None, quality_rows.BASELINE)))
    for name, model_config in trained:
        export_dir = workdir / name
        try:
            result = training.train_and_evaluate(train_patterns, eval_patterns, catalog,
                                                 pool_uri, model_config, str(export_dir))
        except ConfigError:
            continue  # the window cannot fill one batch (the tutorial's 8,192)
        scores[name] = {**evaluate(str(export_dir)),
                        "train_seconds": round(result.metrics["train_seconds"], 1)}
        shutil.rmtree(export_dir)
    scores[quality_rows.MOSTPOP] = score_mostpop(train_patterns, eval_patterns[0],
                                                 incremental_dir, sample)
    return scores


def span_rows(span: str, scores: dict[str, dict[str, Any]], blessed: bool,
              trainer_s: Optional[float]) -> list[dict[str, Any]]:
    """The report rows of one span (module docstring)."""
    rows = []
    for name in MODELS:
        if name not in scores:
            continue
        found = scores[name]
        row = {"span": span, "name": name, "eval_interactions": int(found["eval_interactions"]),
               **{key: round(found[key], 4) for key in METRIC_KEYS}}
        if "train_seconds" in found:
            row["train_seconds"] = found["train_seconds"]
        if name == INCREMENTAL:
            row.update(warm_started=found["warm_started"], blessed=blessed,
                       trainer_wall_s=trainer_s)
        rows.append(row)
    return rows


def write_report(args: argparse.Namespace, data: pathlib.Path, git: str,
                 rows: Sequence[dict[str, Any]], done: int, total: int) -> pathlib.Path:
    """Writes the report of the spans scored so far (after each span, so a long run can be
    read while it goes; the notes say when it is partial)."""
    summary = summarise(rows)
    difference = summary["incremental_minus_full_retrain"].get("filtered_recall_at_100", {})
    notes = "" if done == total else f"PARTIAL: {done} of {total} spans so far. "
    notes += (f"{data} as {total} {args.every}ly spans, one nightly `twotower run` per "
              f"span (window of {args.window} spans, Trainer warm-started from the last "
              "blessed model = `incremental`); on the same window's data, read from ML "
              "Metadata, a from-scratch retrain of the same config (`full_retrain`), the TFRS "
              "tutorial (`baseline`, only where the window fills its 8,192 batch) and "
              "MostPop. All scored on the span's eval split by the ModelValidator's "
              "evaluate_export (filtered: the window's training items of each user removed).")
    if args.set:
        notes += f" Config overrides: {list(args.set)}."
    if difference:
        notes += (f" Filtered recall@100, incremental minus full_retrain: "
                  f"{difference['mean']:+.4f} (standard error {difference['stderr']:.4f} over "
                  f"{difference['pairs']} spans).")
    config = {"data": str(data), "every": args.every, "spans": total, "spans_done": done,
              "window_spans": args.window, "config": "configs/movielens.yaml",
              "overrides": list(args.set), "ks": list(KS)}
    return common.write_report("span_quality", config, rows, notes, args.out, git=git,
                               extra={"summary": summary})


def run(args: argparse.Namespace) -> pathlib.Path:
    """Splits the interactions into spans, runs and scores every span, writes the report."""
    from pipeline import artifacts  # pylint: disable=import-outside-toplevel
    from pipeline.data import spans as spans_data  # pylint: disable=import-outside-toplevel
    data = pathlib.Path(args.data)
    if not (data / "interactions.csv").is_file():
        raise ConfigError(f"{data}/interactions.csv not found: run `twotower data movielens "
                          f"--out {data}` (or `make data`) first")
    git = common.git_commit()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="span-quality-", dir=args.workdir))
    rows: list[dict[str, Any]] = []
    with common.scratch_folder(folder, args.keep, "span-quality"):
        layout = spans_data.split(data / "interactions.csv", folder / "spans", "timestamp",
                                  every=args.every, extra_tables=(data / "items.csv",))
        settings = yaml.safe_load(MOVIELENS_CONFIG.read_text())
        settings["data"]["items"] = str(folder / "spans" / "items.csv")
        settings["serving"] = {"base_path": str(folder / "serving")}
        settings["orchestration"] = {"pipeline_name": "twotower-span-quality",
                                     "pipeline_root": str(folder / "root")}
        config_file = folder / "config.yaml"
        config_file.write_text(yaml.safe_dump(settings))
        names = sorted(layout.rows)[:args.spans]
        for number, span in enumerate(names, 1):
            overrides = (f"data.interactions={layout.interactions_pattern}",
                         f"spans.span={span}", f"spans.window_spans={args.window}", *args.set)
            found = increments.run_once(folder, config_file, folder / "root", span, overrides)
            config = config_lib.load(str(config_file), overrides)
            blessing = artifacts.latest_output(config, "ModelValidator", "ModelBlessing")
            blessed = bool(artifacts.custom_property(blessing, keys.BLESSED_PROPERTY))
            trainer_s = next((row["wall_s"] for row in found if row["name"] == "Trainer"), None)
            scores = score_span(config, folder / "models")
            rows.extend(span_rows(span, scores, blessed, trainer_s))
            print(f"[span-quality] span {number}/{len(names)} {span}: " + ", ".join(
                f"{name} {scores[name]['filtered_recall_at_100']:.4f}" for name in MODELS
                if name in scores) + " (filtered recall@100)", file=sys.stderr)
            path = write_report(args, data, git, rows, number, len(names))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data/movielens",
                        help="folder written by `twotower data movielens`")
    parser.add_argument("--every", choices=("day", "week"), default="week", help="span period")
    parser.add_argument("--window", type=int, default=4, help="spans.window_spans")
    parser.add_argument("--spans", type=int, help="run only the first N spans (default all)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override for every run and the retrain (repeatable)")
    parser.add_argument("--workdir", type=pathlib.Path, help="scratch folder (default $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/span_quality.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if args.window < 1 or (args.spans is not None and args.spans < 1):
        raise ConfigError("--window and --spans must be >= 1")
    print(f"wrote {run(args)}")
