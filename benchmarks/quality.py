"""`twotower bench quality`: retrieval quality on MovieLens-100K under three protocols, and
on other datasets (`--dataset completejourney`: the temporal protocol, rows added to the
report).

For each protocol (benchmarks/protocols.py) the interactions are split once, written as
ExampleGen-style tf.Example folders, the NegativePoolBuilder runs on the train split, and
every row (benchmarks/quality_rows.py) trains with the same split and epochs, then is
scored against the whole catalogue with exact search. `mostpop` ranks items by training
count; the strongest simple baselines (P-TopFreq on repeat purchases, EASE^R on small
catalogues; benchmarks/quality_references.py) are scored beside it. The default model
is also scored with other popularity prior weights (`--prior-weights`,
components/trainer/prior.py) as rows `default+prior_<β>`.
Writes reports/quality.json and reports/quality.png; with `--split validation`
every row is scored on the protocols' validation splits instead (carved from train,
benchmarks/protocols.py), written to reports/quality_validation.json: the defaults are
chosen there, and eval is touched once per reported row.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmarks import (common, embedding_geometry, history_eval, protocols,
                        quality_claims, quality_history, quality_plot, quality_references,
                        quality_report, quality_rows)
from benchmarks.quality_datasets import DATASETS, load_tables
from benchmarks.quality_history import DEFAULT_HISTORY, repeat_settings
from benchmarks.quality_scoring import protocol_metrics, query_batch, recbole_metrics
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower.errors import TwoTowerError

# Epochs per protocol, the same for every row: the TFRS tutorial trains 3.
EPOCHS = {"tfrs": 3, "temporal": 10, "recbole": 10, "history": 10}


DEFAULT_PRIOR_WEIGHTS = (0.0, 0.25, 0.5)


@dataclasses.dataclass
class Prepared:
    """One protocol's data on disk and what scoring needs besides a model."""

    name: str
    split: protocols.Split
    train_pattern: str
    eval_pattern: str
    catalog_pattern: str
    pool_uri: str
    contract: Any = None
    had: Optional[list[list[str]]] = None
    exclude_had: bool = True
    root: Optional[pathlib.Path] = None
    served_eval: Optional[pd.DataFrame] = None  # temporal with a history: served_scores
    pools: dict[Any, str] = dataclasses.field(default_factory=dict)  # other pool settings


def prepare(protocol: str, interactions: pd.DataFrame, items: pd.DataFrame,
            workdir: pathlib.Path, config: Any, contract: Any,
            history: tuple[int, str] = DEFAULT_HISTORY,
            repeat_purchases: bool = False, part: str = "eval",
            quantile: float = 0.8) -> Prepared:
    """Splits, writes the Examples folders and builds the NegativePool for one protocol
    (history: the history protocol's feature length and pooling; a history the contract
    declares is built as ingestion builds it, on recbole from train alone; quantile: the
    time split's cutoff)."""
    from benchmarks import example_files  # pylint: disable=import-outside-toplevel
    had = None
    if protocol == "history":
        contract = quality_history.with_history(contract, *history)
    if contract.history is not None and protocol != "recbole":
        interactions = history_eval.add_histories(interactions, contract.user_id, contract.item_id,
                                                  contract.event_time, contract.history.name,
                                                  contract.history.length)
    split = protocols.split(protocol, interactions, contract.user_id, contract.event_time,
                            part=part, quantile=quantile)
    if contract.history is not None and protocol == "recbole":
        split = quality_history.recbole_histories(split, contract)
    if protocol == "history":
        had = history_eval.earlier_items(split.train, split.eval, contract.user_id,
                                         contract.item_id, contract.event_time)
    served_eval = quality_history.served_eval(split, contract) if protocol == "temporal" else None
    root = workdir / (protocol if history == DEFAULT_HISTORY else f"{protocol}-{history}")
    example_files.write_split([split.train], root / "interactions", "train")
    example_files.write_split([split.eval], root / "interactions", "eval")
    example_files.write_split([items], root / "items", "catalog")
    pool_uri = example_files.build_pool_artifact(
        root / "interactions", root / "items", root / "pool",
        config.pool, contract)
    folder = root / "interactions"
    return Prepared(protocol, split, str(folder / "Split-train" / "*"),
                    str(folder / "Split-eval" / "*"), str(root / "items" / "Split-catalog" / "*"),
                    pool_uri, contract, had, not repeat_purchases, root,
                    served_eval=served_eval)


def score(prepared: Prepared, result: Any, prior_weight: float,
          history: tuple[str, float, Optional[float]] = ("rank", 0.0, None)) -> dict[str, float]:
    """A trained model's report keys for one protocol at one popularity prior weight (and,
    on the history protocol and the temporal one as served, with the served model's history
    policy, repeat weight and half-life: index.history_policy, repeat_weight,
    repeat_half_life)."""
    if prepared.name == "history":
        return quality_history.history_scores(prepared, result.catalog_ids,
                                              history_scorer(result, prior_weight, history))
    if prepared.name == "recbole":
        return recbole_metrics(prepared, result.catalog_ids, result.index_vectors(prior_weight),
                               lambda batch: result.query_vectors(batch, prior_weight),
                               result.contract)
    found = protocol_metrics(prepared, result.evaluate(prepared.eval_pattern, prior_weight))
    if prepared.served_eval is not None:
        found.update(quality_history.served_scores(prepared, result.catalog_ids,
                                                   history_scorer(result, prior_weight,
                                                                  history)))
    if prepared.name == "temporal":
        geometry = embedding_geometry.measure(result, prepared.eval_pattern)
        found.update({f"temporal_{key}": value for key, value in geometry.items()})
    return found


def history_scorer(result: Any, prior_weight: float,
                   history: tuple[str, float, Optional[float]]
                   ) -> Callable[[pd.DataFrame], np.ndarray]:
    """The scorer of eval rows with a history ([b] rows -> [b, N]): the model at one
    popularity prior weight, ranking as the served model does under `history` (policy,
    repeat weight, half-life)."""
    items = result.index_vectors(prior_weight)
    return quality_history.with_repeat(
        lambda rows: np.asarray(result.query_vectors(query_batch(rows, result.contract),
                                                     prior_weight)) @ items.T,
        result.catalog_ids, result.contract.history.name, *history)


def score_mostpop(prepared: Prepared, result: Any, sample: Optional[int] = None
                  ) -> dict[str, float]:
    """MostPop's report keys, with the same catalogue, history and filters as the models
    (sample: on the temporal and TFRS protocols, about this many eval rows, the sample
    TrainResult.evaluate draws; None: all)."""
    from components.model_validator import evaluation  # pylint: disable=import-outside-toplevel
    from components.trainer import eval_sample, features, metrics  # pylint: disable=import-outside-toplevel
    vectors = evaluation.mostpop_vectors(result.train_counts)
    contract = result.contract
    def ranking(rows: pd.DataFrame) -> np.ndarray:
        return np.tile(vectors[:, 0], (len(rows), 1))
    if prepared.name == "history":
        return quality_history.history_scores(prepared, result.catalog_ids, ranking)
    if prepared.name == "recbole":
        return recbole_metrics(prepared, result.catalog_ids, vectors, lambda batch: np.ones(
            (len(batch[contract.user_id]), 1)), contract)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    scores = metrics.evaluate(lambda batch: evaluation.mostpop_queries(batch[contract.item_id]),
                              features.dataset(prepared.eval_pattern, 1024, False, 0, contract,
                                               features.interaction_names(contract),
                                               rate=eval_sample.sample_rate(
                                                   prepared.eval_pattern, sample)),
                              result.catalog_ids, tf.constant(vectors), result.seen,
                              result.train_counts, contract)
    found = protocol_metrics(prepared, scores)
    if prepared.served_eval is not None:
        found.update(quality_history.served_scores(prepared, result.catalog_ids, ranking))
    return found


def run(rows: dict[str, tuple[str, ...]], protocol_names: Sequence[str], data_dir: pathlib.Path,
        prior_weights: Sequence[float], workdir: Optional[pathlib.Path],
        out: Optional[pathlib.Path], dataset: str = "movielens",
        histories: Sequence[tuple[int, str]] = (DEFAULT_HISTORY,),
        part: str = "eval",
        repeats: Sequence[tuple[str, float, Optional[float]]] = ()) -> pathlib.Path:
    """Trains and scores every row under every protocol; writes the report and the chart.

    MovieLens rows replace the report's MovieLens rows (a run of some protocols keeps the
    other protocols' keys); another dataset's rows (marked `dataset`) replace that dataset's
    rows in the existing report, beside MovieLens's. `part` "validation" scores on the
    validation splits and writes reports/quality_validation.json. The history protocol
    runs every row with histories[0] (length, pooling) and the default row with each
    other history as `default+history_<length>_<pooling>`, and with each of `repeats`
    (history policy, repeat weight, half-life) as quality_history.repeat_row_name.
    """
    if part == "validation":
        out = out or common.REPORTS_DIR / "quality_validation.json"
    from components.trainer import training  # pylint: disable=import-outside-toplevel
    contract = contract_lib.load(str(config_lib.SCHEMAS_ROOT / DATASETS[dataset].schema_dir))
    interactions, items = load_tables(data_dir, contract, DATASETS[dataset].command)
    base = DATASETS[dataset].base_config()
    commit = common.git_commit()
    table: dict[str, dict[str, Any]] = {}
    started = time.time()
    if workdir is not None:
        pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for protocol in protocol_names:
            epochs = f"training.epochs={EPOCHS[protocol]}"
            prepared = prepare(protocol, interactions, items, pathlib.Path(tmp),
                               config_lib.load(base, (epochs,)), contract, histories[0],
                               DATASETS[dataset].repeat_purchases, part)
            _log(f"{protocol}: train {len(prepared.split.train):,}, {part} "
                 f"{len(prepared.split.eval):,} interactions; {EPOCHS[protocol]} epochs")
            for name, overrides in rows.items():
                config = config_lib.load(base, (epochs, *overrides))  # a row may set epochs
                row = table.setdefault(name, {"name": name, "overrides": list(overrides)})
                if name == quality_rows.TAU_RULE:
                    tau = quality_claims.rule_temperature(prepared, config)
                    row[f"rule_temperature_{protocol}"] = tau
                    config = config_lib.load(base, (f"model.temperature={tau}", epochs))
                result = training.train_and_evaluate(prepared.train_pattern,
                                                     prepared.eval_pattern,
                                                     prepared.catalog_pattern,
                                                     quality_claims.pool_for(prepared, config),
                                                     config)
                served = (config.index.history_policy, config.index.repeat_weight,
                          config.index.repeat_half_life)
                row.update(score(prepared, result, config.model.popularity_prior, served))
                row[f"examples_per_sec_{protocol}"] = round(result.metrics["examples_per_sec"])
                _log(f"{protocol} {name}: {quality_report.brief(row)}")
                if name == "default":
                    for weight in prior_weights:
                        extra = table.setdefault(f"default+prior_{weight:g}", {
                            "name": f"default+prior_{weight:g}",
                            "overrides": [f"model.popularity_prior={weight:g}"]})
                        extra.update(score(prepared, result, weight, served))
                    if protocol == "history" or prepared.served_eval is not None:
                        for settings in repeats:
                            extra_name = quality_history.repeat_row_name(*settings)
                            table.setdefault(extra_name, {
                                "name": extra_name, "overrides": quality_history.repeat_overrides(
                                    settings)}).update(score(
                                        prepared, result, config.model.popularity_prior, settings))
                            _log(f"{protocol} {extra_name}: {quality_report.brief(table[extra_name])}")
                mostpop = table.setdefault(quality_rows.MOSTPOP, {
                    "name": quality_rows.MOSTPOP, "overrides": []})
                if not any(key.startswith(protocol) for key in mostpop):
                    mostpop.update(score_mostpop(prepared, result))
                    for reference, keys in quality_references.score(
                            prepared, result, DATASETS[dataset].repeat_purchases,
                            _log).items():
                        table.setdefault(reference, {"name": reference,
                                                     "overrides": []}).update(keys)
                        _log(f"{protocol} {reference}: {quality_report.brief(table[reference])}")
                if protocol == "history" and quality_rows.ITEMKNN_HISTORY not in table:
                    table[quality_rows.ITEMKNN_HISTORY] = {
                        "name": quality_rows.ITEMKNN_HISTORY, "overrides": [],
                        **quality_history.score_itemknn(prepared, result.catalog_ids)}
            if protocol == "history":
                for history in histories[1:]:
                    other = prepare(protocol, interactions, items, pathlib.Path(tmp),
                                    config_lib.load(base, (epochs,)), contract, history,
                                    DATASETS[dataset].repeat_purchases, part)
                    config = config_lib.load(base, (epochs,))
                    result = training.train_and_evaluate(
                        other.train_pattern, other.eval_pattern, other.catalog_pattern,
                        other.pool_uri, config)
                    name = quality_history.row_name(history)
                    table[name] = {"name": name, "overrides": [], **score(
                        other, result, config.model.popularity_prior)}
                    _log(f"history {name}: {quality_report.brief(table[name])}")
    for row in table.values():
        speeds = [row[key] for key in (f"examples_per_sec_{p}" for p in ("temporal", "tfrs",
                                                                        "recbole")) if key in row]
        if speeds:
            row["examples_per_sec"] = speeds[0]
    ordered = sorted(table.values(), key=lambda r: quality_report.order(r["name"]))
    config = {"data": str(data_dir), "split": part, "protocols": list(protocol_names),
              "epochs": {p: EPOCHS[p] for p in protocol_names},
              "rows": {name: list(overrides) for name, overrides in rows.items()},
              "prior_weights": list(prior_weights),
              "defaults": config_lib.load(base).to_dict()}
    if dataset != "movielens":
        return quality_report.merge_dataset_rows(dataset, ordered, config, time.time() - started, out, commit)
    others = quality_report.read_report(out)
    config["datasets"] = others["config"].get("datasets", {})
    config["protocols"], config["protocol_runs"], kept = quality_report.protocol_runs(others, protocol_names,
                                                                      commit)
    if kept:
        ordered = quality_report.keep_other_protocols([r for r in others["rows"] if not r.get("dataset")],
                                       ordered, protocol_names)
    run_note = quality_report.notes(ordered, time.time() - started, part)
    if kept:
        run_note += (f" This run measured {list(protocol_names)}; the keys of {kept} are kept "
                     "from the runs in config.protocol_runs.")
    notes = " || ".join([run_note] + [part for part in others.get("notes", "").split(" || ")
                                      if part.split(":")[0] in config["datasets"]])
    path = common.write_report("quality", config, ordered + [
        row for row in others["rows"] if row.get("dataset")], notes, out, commit)
    quality_plot.bar_chart(ordered, path.with_suffix(".png"))
    return path


def _log(message: str) -> None:
    print(f"[quality] {message}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="movielens",
                        help="movielens (writes the report anew), completejourney or "
                             "instacart (add their rows to the report)")
    parser.add_argument("--data", type=pathlib.Path,
                        help="folder written by `twotower data <dataset>` (default "
                             "data/<dataset>)")
    parser.add_argument("--protocols", nargs="+", choices=protocols.PROTOCOLS,
                        help="default: all four on movielens, temporal and history on the "
                             "others")
    parser.add_argument("--rows", nargs="+", choices=list(quality_rows.TRAINED_ROWS),
                        help="trained rows to run (default: the dataset's, "
                             "benchmarks/quality_rows.py DATASET_ROWS)")
    parser.add_argument("--claims", action="store_true",
                        help="also run the rows testing the seed's claims (pool, samplers, "
                             "losses x hard negatives, τ sweep and rule; "
                             "quality_rows.CLAIM_ROWS); report with --out")
    parser.add_argument("--variant", action="append", default=[],
                        help="an extra row NAME:section.field=value[,...] (repeatable; "
                             "after the protocol's epochs: training.epochs=N sets them)")
    parser.add_argument("--prior-weights", type=float, nargs="*",
                        default=list(DEFAULT_PRIOR_WEIGHTS),
                        help="popularity prior weights to score the default model with")
    parser.add_argument("--history-length", type=int, nargs="+",
                        help="items in the history feature of the history protocol (default: "
                             "the contract's history feature, else "
                             f"{DEFAULT_HISTORY[0]}); more values add rows "
                             "default+history_<length>_<pooling>")
    parser.add_argument("--history-pooling", nargs="+", choices=("mean", "recency"),
                        help="its pooling (the first length and pooling run every row)")
    parser.add_argument("--repeat-weights", type=float, nargs="*", default=[],
                        help="history protocol and temporal as served (a contract with a "
                             "history): also score the default model with these "
                             "index.repeat_weight values (rows default+repeat_<w>_<half-life>) "
                             "and with index.history_policy=exclude")
    parser.add_argument("--repeat-half-lives", type=float, nargs="+", default=[0.0],
                        help="index.repeat_half_life values for --repeat-weights, in history "
                             "steps (0: plain counts)")
    parser.add_argument("--split", choices=protocols.SPLITS, default="eval",
                        help="validation: score on splits carved from train and write "
                             "reports/quality_validation.json (choose defaults there)")
    parser.add_argument("--workdir", type=pathlib.Path, help="temporary data (default: system temp)")
    parser.add_argument("--out", type=pathlib.Path, help="report path (default reports/quality.json)")


def main_from_args(args: argparse.Namespace) -> None:
    dataset = DATASETS[args.dataset]
    rows = {name: quality_rows.TRAINED_ROWS[name]
            for name in args.rows or quality_rows.DATASET_ROWS[args.dataset]}
    if args.claims:
        rows.update(quality_rows.CLAIM_ROWS)
    try:
        rows.update(quality_rows.parse_variant(text) for text in args.variant)
    except ValueError as e:
        raise TwoTowerError(str(e)) from e
    declared = contract_lib.load(str(config_lib.SCHEMAS_ROOT / dataset.schema_dir)).history
    length, pooling = ((declared.length, declared.pooling) if declared else DEFAULT_HISTORY)
    path = run(rows, args.protocols or list(dataset.protocols),
               args.data or pathlib.Path(dataset.data_dir), args.prior_weights, args.workdir,
               args.out, args.dataset, quality_history.settings(args.history_length or [length],
                                                                args.history_pooling or [pooling]),
               args.split, repeat_settings(args.repeat_weights, args.repeat_half_lives)
               if args.repeat_weights else [])
    chart = f" and {path.with_suffix('.png')}" if args.dataset == "movielens" else ""
    print(f"wrote {path}{chart}")
