"""`twotower bench increments`: nightly runs over data that arrives in spans.

Synthetic interactions are written as one file and split into `--spans` numbered span folders
of equal size (`twotower data split-spans`); then `twotower run --set spans.span=k` runs the
whole nightly pipeline for k = 1..S, each in a fresh process against one ML Metadata store:
ingest span k (ExampleGen, StatisticsGen, ExampleValidator, drift gate), the pool and a
warm-started Trainer over the window of the last `--window` spans, the index, the validator
and the pushers. A last row ingests the same interactions as one file without spans
(`single_file`), the pipeline every run used to be.

Reports reports/increments.json (DESIGN §8): one row per span k and component (`wall_s`,
`peak_rss_mb`, from the run's log and the summed RSS of its process tree, as in
`bench scale`), an `ingest` row per k summing ExampleGen + StatisticsGen + ExampleValidator,
and `ingest_growth`: span k's ingest time over span 1's.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
from typing import Any, Sequence

import yaml

from benchmarks import common, scale
from pipeline import progress
from pipeline.data import spans as spans_data
from pipeline.data import synthetic
from pipeline.errors import ConfigError

INGEST_STAGES = ("InteractionsExampleGen", "InteractionsStatisticsGen",
                 "InteractionsExampleValidator")
INGEST_ROW = "ingest"
SINGLE_FILE = "single_file"


def ingest_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The interactions' ingestion of one run: summed wall time, peak memory of its stages."""
    stages = [row for row in rows if row["name"] in INGEST_STAGES]
    peaks = [row["peak_rss_mb"] for row in stages if row["peak_rss_mb"] is not None]
    return {"name": INGEST_ROW, "wall_s": round(sum(row["wall_s"] for row in stages), 1),
            "peak_rss_mb": max(peaks) if peaks else None}


def ingest_growth(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Span k's ingest wall time / span 1's, per k."""
    ingest = {row["span"]: row["wall_s"] for row in rows
              if row["name"] == INGEST_ROW and isinstance(row["span"], int)}
    first = ingest.get(1)
    return {str(k): round(wall / first, 2) for k, wall in sorted(ingest.items()) if first}


def run_once(folder: pathlib.Path, config_file: pathlib.Path, root: pathlib.Path, label: str,
             overrides: Sequence[str]) -> list[dict[str, Any]]:
    """One `twotower run` in a fresh process; its per-component rows plus `ingest` and
    `pipeline` rows (root: the run's pipeline root, where its log lands)."""
    log_dir = root / "logs"
    before = set(log_dir.glob("run-*.log")) if log_dir.is_dir() else set()
    samples: list[tuple[float, float]] = []
    command = [str(pathlib.Path(sys.executable).parent / "twotower"), "run", "--config",
               str(config_file)]
    for override in overrides:
        command += ["--set", override]
    measured = common.run_measured(command, folder / f"run-{label}.log", samples)
    run_log = next(iter(set(log_dir.glob("run-*.log")) - before))
    rows = scale.stage_rows(progress.component_spans(run_log.read_text().splitlines()), samples)
    rows.append(ingest_row(rows))
    rows.append({"name": scale.PIPELINE_ROW, **measured})
    return rows


def run(args: argparse.Namespace) -> pathlib.Path:
    """Generates the data, runs every span and the single-file run, writes the report."""
    git = common.git_commit()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="increments-", dir=args.workdir))
    total = args.spans * args.interactions_per_span
    rows: list[dict[str, Any]] = []
    with common.scratch_folder(folder, args.keep, "increments"):
        spec = synthetic.SyntheticSpec(users=args.users, items=args.items, interactions=total,
                                       seed=args.seed)
        synthetic.generate(spec, folder / "data", "csv", progress=False)
        layout = spans_data.split(folder / "data" / "interactions.csv", folder / "spans",
                                  "timestamp", spans=args.spans,
                                  extra_tables=(folder / "data" / "items.csv",))
        base = scale.pipeline_config(folder, args.workers, args.train_steps, args.batch_size,
                                     args.eval_interactions)
        base["data"]["items"] = str(folder / "spans" / "items.csv")
        base["orchestration"]["pipeline_name"] = "twotower-increments"
        config_file = folder / "config.yaml"
        config_file.write_text(yaml.safe_dump(base))
        for k in range(1, args.spans + 1):
            found = run_once(folder, config_file, folder / "root", f"span-{k}", (
                f"data.interactions={layout.interactions_pattern}", f"spans.span={k}",
                f"spans.window_spans={args.window}"))
            rows.extend({"span": k, "interactions": args.interactions_per_span, **row}
                        for row in found)
            print(f"[increments] span {k}: "
                  f"{json.dumps([r for r in found if r['name'] in (INGEST_ROW, 'pipeline')])}",
                  file=sys.stderr)
        if args.single_file:
            single = scale.pipeline_config(folder, args.workers, args.train_steps,
                                           args.batch_size, args.eval_interactions)
            single["orchestration"]["pipeline_root"] = str(folder / "single_root")
            single_file = folder / "single.yaml"
            single_file.write_text(yaml.safe_dump(single))
            found = run_once(folder, single_file, folder / "single_root", SINGLE_FILE, ())
            rows.extend({"span": SINGLE_FILE, "interactions": total, **row} for row in found)
    growth = ingest_growth(rows)
    last = growth.get(str(args.spans))
    notes = (f"{args.spans} spans of {args.interactions_per_span:,} synthetic interactions "
             f"({args.users:,} users, {args.items:,} items), one nightly `twotower run` per "
             f"span in a fresh process (window of {args.window} spans, warm-started Trainer "
             f"with {args.train_steps} steps). wall_s per component is from the run's log; "
             "peak_rss_mb the peak summed RSS of the run's process tree while it ran. "
             "ingest = InteractionsExampleGen + InteractionsStatisticsGen + "
             "InteractionsExampleValidator.")
    if last is not None:
        notes += f" Ingesting span {args.spans} took {last:.2f}x the time of span 1."
    config = {"spans": args.spans, "interactions_per_span": args.interactions_per_span,
              "users": args.users, "items": args.items, "window_spans": args.window,
              "workers": args.workers, "train_steps": args.train_steps,
              "batch_size": args.batch_size, "max_eval_interactions": args.eval_interactions,
              "seed": args.seed, "single_file": args.single_file}
    return common.write_report("increments", config, rows, notes, args.out, git=git,
                               extra={"ingest_growth": growth})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spans", type=int, default=10, help="spans (nightly runs)")
    parser.add_argument("--interactions-per-span", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=4, help="spans.window_spans")
    parser.add_argument("--no-single-file", dest="single_file", action="store_false",
                        help="skip the run over all interactions as one file")
    scale.add_run_arguments(parser)
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/increments.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if args.spans < 1 or args.interactions_per_span < 1:
        raise ConfigError("--spans and --interactions-per-span must be >= 1")
    print(f"wrote {run(args)}")
