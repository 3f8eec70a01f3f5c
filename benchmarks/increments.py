"""`twotower bench increments`: nightly runs over data that arrives in spans.

Synthetic interactions are written as one file and split into `--spans` numbered span folders
of equal size (`twotower data split-spans`); then `twotower run --set spans.span=k` runs the
whole nightly pipeline for k = 1..S, each in a fresh process against one ML Metadata store:
ingest span k (ExampleGen, StatisticsGen, ExampleValidator, drift gate), the pool and a
warm-started Trainer over the window of the last `--window` spans, the index, the validator
and the pushers. A first run (`single_file`) ingests the same interactions as one file
without spans, the pipeline every run used to be.

Reports reports/increments.json (docs/benchmarks.md): one row per span k and component (`wall_s`,
`peak_rss_mb`, from the run's log and the summed RSS of its process tree, as in
`bench scale`), an `ingest` row per k summing ExampleGen + StatisticsGen + ExampleValidator,
and `ingest_growth`: span k's ingest time over span 1's. A full-size bench can outlast a
sitting: `--resume FOLDER` continues it, `--report-from FOLDER` reports the runs it finished.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Optional, Sequence

import yaml

from benchmarks import common, scale
from pipeline import progress
from pipeline.data import spans as spans_data
from pipeline.data import synthetic
from twotower.errors import ConfigError

INGEST_STAGES = ("InteractionsExampleGen", "InteractionsStatisticsGen",
                 "InteractionsExampleValidator")
INGEST_ROW = "ingest"
SINGLE_FILE = "single_file"
STATE = "state.json"
CHECKPOINT = "checkpoint"
METADATA = "metadata.sqlite"
PATHS = "paths.json"


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


def checkpoint(folder: pathlib.Path, state: dict[str, Any]) -> None:
    """Saves what the next nightly run starts from, in a new checkpoint folder: a copy of the
    ML Metadata store, every path under the pipeline root and the serving folder (run logs
    aside) and the bench's state (config, finished rows), the state written last so a
    checkpoint without it is incomplete; then removes the older checkpoints."""
    saved = folder / f"{CHECKPOINT}-{len(finished(state)):03d}"
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir()
    metadata = folder / "root" / METADATA
    if metadata.exists():
        shutil.copy2(metadata, saved / METADATA)
    (saved / PATHS).write_text(json.dumps(sorted(str(path) for path in _outputs(folder))))
    (saved / (STATE + ".partial")).write_text(json.dumps(state, indent=1))
    (saved / (STATE + ".partial")).replace(saved / STATE)
    for older in folder.glob(f"{CHECKPOINT}-*"):
        if older != saved:
            shutil.rmtree(older, ignore_errors=True)


def latest_checkpoint(folder: pathlib.Path) -> pathlib.Path:
    """The newest complete checkpoint in `folder`.

    Raises:
      ConfigError: if there is none.
    """
    complete = sorted(path.parent for path in folder.glob(f"{CHECKPOINT}-*/{STATE}"))
    if not complete:
        raise ConfigError(f"{folder} holds no checkpoint of a `bench increments` run (one is "
                          "written once the data is generated): pass the scratch folder such "
                          "a run kept, or start a new run without --resume")
    return complete[-1]


def finished(state: dict[str, Any]) -> set[Any]:
    """The nightly runs (span numbers, and SINGLE_FILE) whose rows the state holds."""
    return {row["span"] for row in state["rows"]}


def rewind(folder: pathlib.Path) -> dict[str, Any]:
    """Undoes a nightly run that was cut off: removes every output written after the newest
    checkpoint and restores its ML Metadata store, so the run is measured again from scratch
    (otherwise its finished components would be reused from the cache).

    Returns:
      The state saved with that checkpoint.
    """
    saved = latest_checkpoint(folder)
    kept = set(json.loads((saved / PATHS).read_text()))
    extra = sorted((path for path in _outputs(folder) if str(path) not in kept),
                   key=lambda path: len(path.parts), reverse=True)
    for path in extra:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    metadata = folder / "root" / METADATA
    metadata.unlink(missing_ok=True)
    if (saved / METADATA).exists():
        shutil.copy2(saved / METADATA, metadata)
    return json.loads((saved / STATE).read_text())


def _outputs(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every path a nightly run may write: under the pipeline root (its logs and ML Metadata
    store aside) and the serving folder."""
    paths = []
    for top in (folder / "root", folder / "serving"):
        if top.is_dir():
            paths += [path for path in top.rglob("*")
                      if path.relative_to(top).parts[0] not in ("logs", METADATA)]
    return paths


def prepare(folder: pathlib.Path, args: argparse.Namespace, git: str) -> dict[str, Any]:
    """Generates the data and span folders and writes the run's config; the first state."""
    total = args.spans * args.interactions_per_span
    spec = synthetic.SyntheticSpec(users=args.users, items=args.items, interactions=total,
                                   seed=args.seed)
    synthetic.generate(spec, folder / "data", "csv", progress=False)
    layout = spans_data.split(folder / "data" / "interactions.csv", folder / "spans",
                              "timestamp", spans=args.spans,
                              extra_tables=(folder / "data" / "items.csv",))
    base = scale.pipeline_config(folder, args.workers, args.pool_workers, args.train_steps,
                                 args.batch_size, args.eval_interactions)
    base["data"]["items"] = str(folder / "spans" / "items.csv")
    base["orchestration"]["pipeline_name"] = "twotower-increments"
    (folder / "config.yaml").write_text(yaml.safe_dump(base))
    if args.single_file:
        single = scale.pipeline_config(folder, args.workers, args.pool_workers, args.train_steps,
                                       args.batch_size, args.eval_interactions)
        single["orchestration"]["pipeline_root"] = str(folder / "single_root")
        single["serving"]["base_path"] = str(folder / "single_serving")
        (folder / "single.yaml").write_text(yaml.safe_dump(single))
    config = {"spans": args.spans, "interactions_per_span": args.interactions_per_span,
              "users": args.users, "items": args.items, "window_spans": args.window,
              "workers": args.workers, "pool_workers": args.pool_workers,
              "train_steps": args.train_steps, "batch_size": args.batch_size, "max_eval_interactions": args.eval_interactions,
              "seed": args.seed, "single_file": args.single_file}
    return {"config": config, "git": git, "pattern": layout.interactions_pattern,
            "rows": [], "sessions": [{"git": git, "first_run": _label(planned(config)[0])}]}


def planned(config: dict[str, Any]) -> list[Any]:
    """The runs in order: the single-file run first (when asked for: its peak memory is the
    riskier measurement), then span 1..S."""
    return ([SINGLE_FILE] if config["single_file"] else []) + list(range(1, config["spans"] + 1))


def run_rest(folder: pathlib.Path, state: dict[str, Any]) -> None:
    """Runs every planned run not finished yet, saving the state and a checkpoint after
    each."""
    config = state["config"]
    done = finished(state)
    for run_id in planned(config):
        if run_id in done:
            continue
        if run_id == SINGLE_FILE:
            for leftover in (folder / "single_root", folder / "single_serving"):
                shutil.rmtree(leftover, ignore_errors=True)
            found = run_once(folder, folder / "single.yaml", folder / "single_root",
                             SINGLE_FILE, ())
            interactions = config["spans"] * config["interactions_per_span"]
        else:
            found = run_once(folder, folder / "config.yaml", folder / "root", f"span-{run_id}", (
                f"data.interactions={state['pattern']}", f"spans.span={run_id}",
                f"spans.window_spans={config['window_spans']}"))
            interactions = config["interactions_per_span"]
        state["rows"].extend({"span": run_id, "interactions": interactions, **row}
                             for row in found)
        checkpoint(folder, state)
        print(f"[increments] {_label(run_id)}: "
              f"{json.dumps([r for r in found if r['name'] in (INGEST_ROW, 'pipeline')])}",
              file=sys.stderr)


def _label(run_id: Any) -> str:
    return run_id if run_id == SINGLE_FILE else f"span-{run_id}"


def resume(folder: pathlib.Path, git: str) -> dict[str, Any]:
    """The state of an interrupted run in `folder` at its newest checkpoint, the cut-off run
    rewound."""
    state = rewind(folder)
    done = finished(state)
    left = [run_id for run_id in planned(state["config"]) if run_id not in done]
    first = _label(left[0]) if left else "none (all finished)"
    state["sessions"].append({"git": git, "first_run": first})
    print(f"[increments] resuming {folder} at {first}", file=sys.stderr)
    return state


def run(args: argparse.Namespace) -> pathlib.Path:
    """Generates the data (or resumes an interrupted run), runs every span and the
    single-file run, writes the report."""
    git = common.git_commit()
    if args.resume:
        folder = args.resume
        state = resume(folder, git)
    else:
        folder = pathlib.Path(tempfile.mkdtemp(prefix="increments-", dir=args.workdir))
    hint = (f"; continue it with `twotower bench increments --resume {folder}` (each nightly "
            "run finished so far is kept)")
    with common.scratch_folder(folder, args.keep, "increments", hint):
        if not args.resume:
            state = prepare(folder, args, git)
            checkpoint(folder, state)
        run_rest(folder, state)
    return write(state, args.out)


def report_from(folder: pathlib.Path, out: Optional[pathlib.Path]) -> pathlib.Path:
    """Writes the report of the runs a kept scratch folder's newest checkpoint holds, without
    running or changing anything there (a bench may still be running in it): for a bench
    that cannot finish in the time at hand."""
    return write(json.loads((latest_checkpoint(folder) / STATE).read_text()), out)


def write(state: dict[str, Any], out: Optional[pathlib.Path]) -> pathlib.Path:
    """Writes the report of `state`'s finished runs; its notes name the planned runs it
    lacks."""
    config, rows = state["config"], state["rows"]
    growth = ingest_growth(rows)
    last = growth.get(str(config["spans"]))
    notes = (f"{config['spans']} spans of {config['interactions_per_span']:,} synthetic "
             f"interactions ({config['users']:,} users, {config['items']:,} items), one nightly "
             f"`twotower run` per span in a fresh process (window of {config['window_spans']} "
             f"spans, warm-started Trainer with {config['train_steps']} steps). wall_s per "
             "component is from the run's log; peak_rss_mb the peak summed RSS of the run's "
             "process tree while it ran. ingest = InteractionsExampleGen + "
             "InteractionsStatisticsGen + InteractionsExampleValidator.")
    if len(state["sessions"]) > 1:
        notes += (" The bench was interrupted and resumed (`sessions`: the commit and first "
                  "nightly run of each part); a cut-off run was rewound and run again whole.")
    missing = [_label(run_id) for run_id in planned(config) if run_id not in finished(state)]
    if missing:
        notes += (f" Not measured: {', '.join(missing)} (the report was written with "
                  "--report-from before the bench finished them).")
    if last is not None:
        notes += f" Ingesting span {config['spans']} took {last:.2f}x the time of span 1."
    return common.write_report("increments", config, rows, notes, out, git=state["git"],
                               extra={"ingest_growth": growth, "sessions": state["sessions"],
                                      "not_measured": missing})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spans", type=int, default=10, help="spans (nightly runs)")
    parser.add_argument("--interactions-per-span", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=4, help="spans.window_spans")
    parser.add_argument("--no-single-file", dest="single_file", action="store_false",
                        help="skip the run over all interactions as one file")
    scale.add_run_arguments(parser)
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/increments.json)")
    parser.add_argument("--resume", type=pathlib.Path, metavar="FOLDER",
                        help="continue an interrupted run from its kept scratch folder (the "
                             "runs it finished are kept, a cut-off run is run again; the "
                             "other options come from that run)")
    parser.add_argument("--report-from", type=pathlib.Path, metavar="FOLDER",
                        help="only write the report of the runs a kept scratch folder has "
                             "finished (its newest checkpoint), leaving the folder as it is; "
                             "the report's `not_measured` lists the rest")


def main_from_args(args: argparse.Namespace) -> None:
    if args.spans < 1 or args.interactions_per_span < 1:
        raise ConfigError("--spans and --interactions-per-span must be >= 1")
    if args.report_from:
        if args.resume:
            raise ConfigError("--report-from writes the report of a folder as it is; "
                              "--resume continues running it: pass one of them")
        print(f"wrote {report_from(args.report_from, args.out)}")
        return
    print(f"wrote {run(args)}")
