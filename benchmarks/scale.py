"""`twotower bench scale`: the whole local pipeline on large synthetic data.

For each size, synthetic interactions (with a 1M-user, 1M-item world by default) are written
as CSV, then `twotower run` executes every component in a fresh process: ExampleGen,
StatisticsGen and ExampleValidator on both inputs, the NegativePoolBuilder, the Trainer for a
fixed number of steps, the IndexBuilder, the ModelValidator and both Pushers, with Beam's
DirectRunner in multi-processing mode. The wall time of each component comes from the run's
log; memory is the summed resident memory of the run's process tree (the CLI process and
every Beam worker), sampled during the run, peak per component. Scoring samples
`validation.max_eval_interactions` eval events (the pipeline's default unless
--eval-interactions says otherwise), so no stage holds a whole split.

Reports reports/scale.json (docs/benchmarks.md): one row per size and component plus a `pipeline`
row per size, and the growth of each from the first size to the last (`growth`).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Any, Sequence

import yaml

from benchmarks import common
from twotower import config as config_lib
from pipeline import progress
from pipeline.data import synthetic
from twotower.errors import ConfigError

DEFAULT_SIZES = (1_000_000, 10_000_000)
PIPELINE_ROW = "pipeline"


def pipeline_config(folder: pathlib.Path, workers: int, pool_workers: int, train_steps: int,
                    batch_size: int, eval_interactions: int) -> dict[str, Any]:
    """The run's config: the generated tables, fixed training steps, bounded scoring."""
    return {
        "data": {"interactions": str(folder / "data" / "interactions.csv"),
                 "items": str(folder / "data" / "items.csv"), "input_format": "csv"},
        "training": {"train_steps": train_steps, "batch_size": batch_size},
        "validation": {"max_eval_interactions": eval_interactions},
        "serving": {"base_path": str(folder / "serving")},
        "orchestration": {"pipeline_name": "twotower-scale",
                          "pipeline_root": str(folder / "root"),
                          "beam_pipeline_args": common.direct_runner_args(workers),
                          "component_beam_pipeline_args": {
                              "NegativePoolBuilder": common.direct_runner_args(pool_workers)}},
    }


def stage_rows(spans: dict[str, tuple[float, float]],
               samples: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """Wall time and peak summed RSS of each component's time span.

    Args:
      spans: component -> (start, end) epoch seconds (progress.component_spans).
      samples: (epoch seconds, MB) memory samples of the whole run.

    Returns:
      One {"name", "wall_s", "peak_rss_mb"} per component, in run order; a component shorter
      than the sampling interval gets the last sample before its end.
    """
    rows = []
    for name, (start, end) in spans.items():
        inside = [mb for when, mb in samples if start <= when <= end]
        if not inside:  # shorter than the sampling interval: the last sample before its end
            inside = [mb for when, mb in samples if when <= end][-1:]
        rows.append({"name": name, "wall_s": round(end - start, 1),
                     "peak_rss_mb": round(max(inside)) if inside else None})
    return rows


def growth(rows: Sequence[dict[str, Any]], first: int, last: int) -> dict[str, float]:
    """wall_s at `last` interactions / wall_s at `first`, per row name present at both."""
    def by_name(size: int) -> dict[str, float]:
        return {row["name"]: row["wall_s"] for row in rows if row["interactions"] == size}
    small, large = by_name(first), by_name(last)
    return {name: round(large[name] / small[name], 2) for name in small
            if name in large and small[name] > 0}


def measure(size: int, users: int, items: int, args: argparse.Namespace,
            folder: pathlib.Path) -> list[dict[str, Any]]:
    """Generates one size's data, runs the pipeline on it, returns its rows."""
    started = time.time()
    spec = synthetic.SyntheticSpec(users=users, items=items, interactions=size, seed=args.seed)
    synthetic.generate(spec, folder / "data", "csv", progress=False)
    prepare_s = round(time.time() - started, 1)
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(pipeline_config(
        folder, args.workers, args.pool_workers, args.train_steps, args.batch_size,
        args.eval_interactions)))
    print(f"[scale] {size:,} interactions generated in {prepare_s}s; running the pipeline",
          file=sys.stderr)
    samples: list[tuple[float, float]] = []
    measured = common.run_measured(
        [str(pathlib.Path(sys.executable).parent / "twotower"), "run", "--config",
         str(config_file)], folder / "run.log", samples)
    run_log = next((folder / "root" / "logs").glob("run-*.log"))
    spans = progress.component_spans(run_log.read_text().splitlines())
    summary = (folder / "run.log").read_text()
    sizes = {"interactions": size, "users": users, "items": items}
    rows = [{**sizes, **row} for row in stage_rows(spans, samples)]
    rows.append({**sizes, "name": PIPELINE_ROW, **measured, "prepare_s": prepare_s,
                 "interactions_per_s": round(size / measured["wall_s"]),
                 "blessed": "validation: BLESSED" in summary,
                 "pushed": summary.count("\npushed: ")})
    for row in rows:
        print(f"[scale] {json.dumps(row)}", file=sys.stderr)
    return rows


def run(args: argparse.Namespace) -> pathlib.Path:
    """Measures every size (data removed after each) and writes the report."""
    git = common.git_commit()
    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        folder = pathlib.Path(tempfile.mkdtemp(prefix=f"scale-{size}-", dir=args.workdir))
        try:
            rows.extend(measure(size, args.users, args.items, args, folder))
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    first, last = args.sizes[0], args.sizes[-1]
    ratios = growth(rows, first, last) if len(args.sizes) >= 2 else {}
    notes = ("Each size runs `twotower run` in a fresh process (DirectRunner multi_processing; "
             "the NegativePoolBuilder with `pool_workers`). "
             "wall_s per component is from the run's log; peak_rss_mb is the peak of the summed "
             "RSS of the run's whole process tree (CLI process and Beam workers) while the "
             "component ran; the pipeline row covers the whole command. Generating the CSV "
             "input (prepare_s) is not included.")
    if PIPELINE_ROW in ratios:
        notes += (f" The whole pipeline's wall time grows {ratios[PIPELINE_ROW]:.2f}x from "
                  f"{first:,} to {last:,} interactions ({last / first:.0f}x the data).")
    config = {"sizes": list(args.sizes), "users": args.users, "items": args.items,
              "workers": args.workers, "pool_workers": args.pool_workers,
              "train_steps": args.train_steps,
              "batch_size": args.batch_size, "max_eval_interactions": args.eval_interactions,
              "seed": args.seed, "runner": "DirectRunner multi_processing"}
    return common.write_report("scale", config, rows, notes, args.out, git=git,
                               extra={"growth": {"from": first, "to": last, "wall_s": ratios}})


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The world and pipeline settings `bench scale` and `bench increments` share."""
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
    parser.add_argument("--pool-workers", type=int, default=1,
                        help="the NegativePoolBuilder's DirectRunner worker processes (1: in "
                             "one process; at 10M interactions / 1M items 2 workers took 430 s "
                             "and 7.2 GB, one process 686 s and 4.1 GB)")
    parser.add_argument("--train-steps", type=int, default=500,
                        help="fixed Trainer steps (training.train_steps)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--eval-interactions", type=int,
                        default=config_lib.DEFAULT_EVAL_INTERACTIONS,
                        help="validation.max_eval_interactions: eval rows scored against "
                             "the whole catalogue by the Trainer and the ModelValidator "
                             "(default: the pipeline's default, as users run it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=pathlib.Path,
                        help="where the data and pipeline roots go (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the data and pipeline roots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="interaction counts to run, smallest first")
    add_run_arguments(parser)
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/scale.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if sorted(args.sizes) != list(args.sizes):
        raise ConfigError(f"--sizes: got {args.sizes}; give the sizes smallest first")
    print(f"wrote {run(args)}")
