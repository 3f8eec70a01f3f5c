"""`twotower tune --config C`: a config's knobs chosen on a validation split, never on eval.

The validation split is carved from the pipeline's own training part, the way `twotower
run` splits (data.split time): the events before the run's cutoff are all tuning sees, and
of those the last 1 - data.cutoff_quantile by event time are the validation events. They
are scored with the evaluation protocols of `twotower bench quality`
(benchmarks/protocols.py), so a tuned figure and a reported one are measured alike: with a
history feature in the contract, the history protocol (each validation event scored with the
query as of that moment, every catalogue item ranked as the served model ranks them, the
history policy applied); without one, the temporal protocol under the config's
validation.protocol (`tfrs`: every item ranked, `filtered`: the user's training items left
out).

The search is bounded and coordinate-wise; each stage starts from the best values so far:
  1. model.temperature (one training per value),
  2. the history feature's length and pooling (one training each; contract settings),
  3. model.popularity_prior on the best model (scoring only),
  4. index.history_policy, repeat_weight and repeat_half_life (scoring only).
The objective (`--metric`) is measured on a seeded sample of validation events, the same
events in every trial, so trials compare event by event: a stage's value replaces the best
so far only when the paired difference's 95% interval lies above zero (a value the data
cannot tell apart from the configured one stays as configured). MostPop (and P-TopFreq as of
each event, with a history) are scored on the same events beside the trials. Writes the
config with the chosen values (`--out`), every trial as a JSON report (`--report`) and the
full log beside it (`<report>.log`; the console gets the progress lines).

TFX's Tuner component (KerasTuner behind a `tuner_fn`) searches what one Keras fit can
score. Most of these knobs act after training, in the served graph (the prior's extra
dimension, the repeat merge), and the objective is a whole-catalogue ranking as of each
event, so the search runs here, beside the scheduled pipeline, and hands it a config.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import glob
import logging
import pathlib
import sys
import tempfile
import textwrap
import time
from typing import Any, Optional, Sequence

import pandas as pd
import yaml

from benchmarks import common, protocols, report_table
from benchmarks.tune_search import (DEFAULT_HALF_LIVES, DEFAULT_MAX_EVENTS, DEFAULT_PRIOR_WEIGHTS,
                                    DEFAULT_REPEAT_WEIGHTS, DEFAULT_TEMPERATURES, METRICS, Knobs,
                                    Search, Space, knobs_of, run_search)
from pipeline import progress
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower import event_times, logs
from twotower.errors import ConfigError, TwoTowerError


def read_table(pattern: str, input_format: str, contract: Any) -> pd.DataFrame:
    """A raw input (every file `pattern` matches) typed as the contract says.

    Raises:
      ConfigError: no file matches, or a format tune does not read.
      TwoTowerError: a column does not hold the kind its contract declares.
    """
    from benchmarks import example_files  # pylint: disable=import-outside-toplevel (imports TF)
    files = sorted(glob.glob(pattern))
    if not files:
        raise ConfigError(f"{pattern}: no file matches; set data.interactions / data.items to "
                          "your files")
    if input_format == "csv":
        frames = [pd.read_csv(name, dtype=str, keep_default_na=False) for name in files]
    elif input_format == "parquet":
        frames = [pd.read_parquet(name) for name in files]
    else:
        raise ConfigError(f"data.input_format {input_format}: `twotower tune` reads csv or "
                          "parquet files; write the tables in one of those to tune")
    frame = pd.concat(frames, ignore_index=True)
    time = contract.event_time
    if time in frame:
        form = contract.by_name(time).format
        try:
            frame[time] = [event_times.to_seconds(value, form) for value in frame[time]]
        except ValueError as e:
            raise TwoTowerError(f"{pattern}: column {time}: {e} in some row; fix the rows or "
                                f"the format declared for {time} in features.yaml") from e
    try:
        return example_files.typed_frame(frame, contract)
    except (TypeError, ValueError) as e:
        raise TwoTowerError(f"{pattern}: {e}; each column must hold the kind its contract "
                            "declares (`twotower run` checks the data against it)") from e


def pipeline_train(interactions: pd.DataFrame, config: Any, time_column: str) -> pd.DataFrame:
    """The events `twotower run` trains on: before the time split's cutoff.

    Raises:
      ConfigError: with data.split hash (its validation part cannot be told apart here).
    """
    data = config.data
    if data.split != "time":
        raise ConfigError("data.split hash: `twotower tune` carves its validation events from "
                          "the time split's training part; tune with data.split time")
    if data.cutoff_timestamp is not None:
        return interactions[interactions[time_column].to_numpy() < data.cutoff_timestamp]
    return protocols.temporal_split(interactions, time_column, data.cutoff_quantile).train


def tuned_values(values: dict[str, Any], best: Knobs, history: bool) -> dict[str, Any]:
    """The config's sections with the chosen values set."""
    out = copy.deepcopy(values)
    out.setdefault("model", {}).update(temperature=best.temperature,
                                       popularity_prior=best.prior)
    if history:
        out.setdefault("index", {}).update(history_policy=best.policy,
                                           repeat_weight=best.repeat_weight,
                                           repeat_half_life=best.half_life)
    return out


def history_advice(start: Knobs, best: Knobs, contract: Any, schema_dir: str) -> Optional[str]:
    """The contract edit the chosen history needs (length and pooling are contract
    settings, not config), or None."""
    if (best.length, best.pooling) == (start.length, start.pooling):
        return None
    return (f"the history scored best with length {best.length}, pooling {best.pooling}: set "
            f"them on feature `{contract.history.name}` in {schema_dir}/features.yaml")


def write_config(values: dict[str, Any], path: pathlib.Path, header: Sequence[str]) -> None:
    """Writes the tuned config (checked by loading it) with a comment header."""
    config_lib.from_dict(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = textwrap.wrap(" ".join(header), 90, break_long_words=False,
                          break_on_hyphens=False)
    path.write_text("".join(f"# {line}\n" for line in lines)
                    + yaml.safe_dump(values, sort_keys=False))


def _log(message: str) -> None:
    print(f"[tune] {message}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="the YAML config to tune (defaults apply to missing "
                                         "fields)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE",
                        help="override one config field before tuning (repeatable)")
    parser.add_argument("--metric", choices=METRICS, default=METRICS[0],
                        help="the objective, on the validation events")
    parser.add_argument("--temperatures", type=float, nargs="+",
                        default=list(DEFAULT_TEMPERATURES), help="model.temperature values "
                                                                  "(one training each)")
    parser.add_argument("--history-lengths", type=int, nargs="+", default=[],
                        help="history lengths to train with (default: the contract's)")
    parser.add_argument("--history-poolings", nargs="+", choices=contract_lib.POOLINGS,
                        default=list(contract_lib.POOLINGS), help="history poolings to train "
                                                                  "with")
    parser.add_argument("--prior-weights", type=float, nargs="+",
                        default=list(DEFAULT_PRIOR_WEIGHTS),
                        help="model.popularity_prior values (scoring only)")
    parser.add_argument("--repeat-weights", type=float, nargs="+",
                        default=list(DEFAULT_REPEAT_WEIGHTS),
                        help="index.repeat_weight values (scoring only; with a history)")
    parser.add_argument("--repeat-half-lives", type=float, nargs="+",
                        default=list(DEFAULT_HALF_LIVES),
                        help="index.repeat_half_life values in history steps, 0: plain counts")
    parser.add_argument("--max-events", type=int, default=DEFAULT_MAX_EVENTS,
                        help="validation events scored per trial, a seeded sample (0: all)")
    parser.add_argument("--out", type=pathlib.Path,
                        help="the tuned config (default: <config>.tuned.yaml beside it)")
    parser.add_argument("--report", type=pathlib.Path,
                        help="the trials as JSON (default: <config>.tune.json beside it)")
    parser.add_argument("--workdir", type=pathlib.Path,
                        help="temporary Examples and pools (default: system temp)")


def output_paths(args: argparse.Namespace) -> tuple[pathlib.Path, pathlib.Path]:
    """(tuned config, report) paths."""
    stem = pathlib.Path(args.config).with_suffix("") if args.config else pathlib.Path(
        "twotower")
    return (args.out or stem.with_name(stem.name + ".tuned.yaml"),
            args.report or stem.with_name(stem.name + ".tune.json"))


def main_from_args(args: argparse.Namespace) -> None:
    if any(value <= 0 for value in args.temperatures):
        raise ConfigError(f"--temperatures {args.temperatures}: give values above 0 "
                          "(0.05-0.2 is the usual range)")
    if args.max_events < 0:
        raise ConfigError(f"--max-events {args.max_events}: give 0 (all) or a positive count")
    values = config_lib.load_values(args.config, tuple(args.overrides))
    config = config_lib.from_dict(values)
    contract = contract_lib.load(config.data.schema_dir)
    if contract.event_time is None:
        raise ConfigError(f"{config.data.schema_dir}/features.yaml declares no event_time "
                          "column; `twotower tune` splits by time")
    out, report = output_paths(args)
    log_path = report.with_suffix(".log")
    logs.to_file(str(log_path), logging.Formatter(progress.LOG_FORMAT))
    logs.progress_to_console()
    _log(f"full log: {log_path}")
    _log(f"reading {config.data.interactions} and {config.data.items}")
    interactions = read_table(config.data.interactions, config.data.input_format, contract)
    items = read_table(config.data.items, config.data.input_format, contract)
    train = pipeline_train(interactions, config, contract.event_time)
    space = Space(args.temperatures, args.history_lengths, args.history_poolings,
                  args.prior_weights, args.repeat_weights, args.repeat_half_lives)
    max_events = args.max_events or None
    started = time.time()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        search = Search(values, config, contract, (train, items), pathlib.Path(tmp),
                        args.metric, max_events, _log)
        _log(f"{len(train):,} training-part events of {len(interactions):,}; "
             f"{search.protocol} protocol, objective {search.key}")
        best, rows = run_search(search, space)
        validation = search.data(best)
    start = search.start()
    history = search.protocol == "history"
    advice = history_advice(start, best, contract, config.data.schema_dir) if history else None
    chosen = next(row for row in rows if knobs_of(row) == best)
    header = config_header(args.config, report, search.key, chosen["objective"],
                           rows[0]["objective"], config.data.cutoff_quantile, history)
    if advice:
        header.append(f"Also: {advice}.")
        _log(advice)
    write_config(tuned_values(values, best, history), out, header)
    references = {name: keys.get(search.key) for name, keys in search.references.items()}
    gain = -rows[0]["vs_chosen"] or 0.0  # chosen minus configured
    notes = (f"Chosen on {scored_events(validation, max_events)} validation events (the last "
             f"{1 - config.data.cutoff_quantile:.0%} by time of the {len(train):,} events before "
             f"the run's cutoff), {search.protocol} protocol; {len(rows)} trials in "
             f"{time.time() - started:.0f} s. Objective {search.key}: "
             f"{chosen['objective']:.4f} chosen, {rows[0]['objective']:.4f} as configured "
             f"(paired difference {gain:+.4f} ±{rows[0]['vs_chosen_ci95']:.4f}; "
             "a value changed only where it won beyond its paired 95% interval); "
             + ", ".join(f"{name} {value:.4f}" for name, value in references.items()
                         if value is not None) + " on the same events.")
    common.write_report("tune", {
        "source": args.config, "overrides": list(args.overrides), "objective": search.key,
        "protocol": search.protocol, "max_events": max_events,
        "space": dataclasses.asdict(space), "data": config.data.interactions},
        rows, notes, report, extra={"start": dataclasses.asdict(start),
                                    "chosen": dataclasses.asdict(best),
                                    "references": search.references})
    columns = ["trial", "stage", "temperature", "prior"] + (
        ["length", "pooling", "policy", "repeat_weight", "half_life"] if history else []) + [
        "objective", "vs_chosen", "vs_chosen_ci95", "seconds"]
    print(report_table.markdown(rows, columns))
    print(notes)
    print(f"wrote {out} and {report}")


def config_header(source: Optional[str], report: pathlib.Path, key: str, chosen: float,
                  started: float, quantile: float, history: bool) -> list[str]:
    """The tuned config's comment: where its values come from."""
    fields = "model.temperature, popularity_prior" + (
        " and index.history_policy, repeat_weight, repeat_half_life" if history else "")
    return [f"Written by `twotower tune` from {source or 'the defaults'} on "
            f"{datetime.date.today().isoformat()}: {fields} chosen on the validation split "
            f"(the last {1 - quantile:.0%} of the training part by time): {key} {chosen:.4f} "
            f"against {started:.4f} with the values it started from.",
            f"Every trial: {report}."]


def scored_events(prepared: Any, max_events: Optional[int]) -> str:
    """How many validation events each trial scored."""
    events = len(prepared.split.eval)
    if prepared.name == "history" or max_events is None or events <= max_events:
        return f"{events:,}"
    return f"about {max_events:,} (a seeded sample) of {events:,}"
