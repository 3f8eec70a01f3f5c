"""The search of `twotower tune` (benchmarks/tune.py): trials, stages and the kept model.

A trial is one set of knob values (Knobs); trials that differ only in scoring knobs share a
model. Stages run in order, each trying its values from the best knobs so far
(coordinate-wise), so the number of trainings is the number of temperatures plus history
settings, whatever the scoring grid.

Every trial is scored on the same validation events, so two trials compare event by event:
a trial replaces the best so far only when the 95% interval of the paired difference of
their objective (clustered by user, components/trainer/eval_sample.py) lies above zero. A
value the data cannot tell from the configured one is not changed, and the report gives
each trial's paired difference from the chosen knobs with its interval.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import pathlib
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmarks import baselines, history_eval, quality, quality_history, quality_rows
from benchmarks.quality_scoring import protocol_metrics
from components.trainer import eval_sample
from twotower import config as config_lib
from twotower import contract as contract_lib

METRICS = ("recall_at_10", "recall_at_100", "ndcg_at_10")
DEFAULT_TEMPERATURES = (0.05, 0.1, 0.2)
DEFAULT_PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
DEFAULT_REPEAT_WEIGHTS = (0.0, 1.5, 3.0, 6.0)
DEFAULT_HALF_LIVES = (0.0, 50.0, 200.0)  # history steps; 0: plain counts
DEFAULT_MAX_EVENTS = config_lib.DEFAULT_EVAL_INTERACTIONS
SEED = 0


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The values one trial runs with (length, pooling: the history feature's; None without
    one)."""

    temperature: float
    prior: float
    length: Optional[int] = None
    pooling: Optional[str] = None
    policy: str = "rank"
    repeat_weight: float = 0.0
    half_life: Optional[float] = None

    def model_key(self) -> tuple[Any, ...]:
        """What needs a model of its own: trials equal here share one training."""
        return (self.temperature, self.length, self.pooling)


@dataclasses.dataclass(frozen=True)
class Space:
    """The values each stage tries."""

    temperatures: Sequence[float] = DEFAULT_TEMPERATURES
    lengths: Sequence[int] = ()  # empty: the contract's
    poolings: Sequence[str] = contract_lib.POOLINGS
    prior_weights: Sequence[float] = DEFAULT_PRIOR_WEIGHTS
    repeat_weights: Sequence[float] = DEFAULT_REPEAT_WEIGHTS
    half_lives: Sequence[float] = DEFAULT_HALF_LIVES


def stages(space: Space, history: bool) -> list[tuple[str, Callable[[Knobs], list[Knobs]]]]:
    """(stage name, the trials of that stage given the best knobs so far), in order."""
    def repeats(best: Knobs) -> list[Knobs]:
        found = [dataclasses.replace(best, policy="exclude", repeat_weight=0.0, half_life=None)]
        for weight in space.repeat_weights:
            for half_life in (space.half_lives if weight else (0.0,)):
                found.append(dataclasses.replace(best, policy="rank", repeat_weight=weight,
                                                 half_life=half_life or None))
        return found
    out: list[tuple[str, Callable[[Knobs], list[Knobs]]]] = [
        ("temperature", lambda best: [dataclasses.replace(best, temperature=value)
                                      for value in space.temperatures])]
    if history:
        out.append(("history", lambda best: [
            dataclasses.replace(best, length=length, pooling=pooling)
            for length, pooling in itertools.product(space.lengths or [best.length],
                                                     space.poolings)]))
    out.append(("prior", lambda best: [dataclasses.replace(best, prior=value)
                                       for value in space.prior_weights]))
    if history:
        out.append(("repeat", repeats))
    return out


def objective_key(protocol: str, metric: str, validation_protocol: str) -> str:
    """The report key `metric` is read from under a protocol."""
    if protocol == "history":
        return f"history_{metric}"
    return f"temporal_{metric}" if validation_protocol == "filtered" else (
        f"temporal_unfiltered_{metric}")


def event_values(ranks: np.ndarray, metric: str) -> np.ndarray:
    """[n] each event's share of `metric` (one of METRICS) from its true item's rank: the
    metric is their mean."""
    ranks = np.asarray(ranks)
    hit = ranks < int(metric.rsplit("_", 1)[1])
    if not metric.startswith("ndcg_at_"):
        return hit.astype(np.float64)
    gains = np.zeros(len(ranks))
    gains[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return gains


def paired(first: np.ndarray, second: np.ndarray, groups: Optional[np.ndarray]
           ) -> tuple[float, float]:
    """(mean of first - second, half-width of its 95% interval clustered by `groups`) over
    the same events."""
    difference = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    return float(difference.mean()), eval_sample.ci95(difference, groups)


def subsample(prepared: Any, size: Optional[int]) -> Any:
    """The history protocol's data with a seeded sample of `size` eval events (all if fewer)."""
    events = len(prepared.split.eval)
    if size is None or events <= size:
        return prepared
    keep = np.sort(np.random.default_rng(SEED).choice(events, size, replace=False))
    split = dataclasses.replace(prepared.split, eval=prepared.split.eval.iloc[keep])
    return dataclasses.replace(prepared, split=split, had=[prepared.had[i] for i in keep])


class Search:
    """Trains and scores trials on one validation split; keeps the best model only."""

    def __init__(self, values: dict[str, Any], config: Any, contract: Any,
                 frames: tuple[pd.DataFrame, pd.DataFrame], workdir: pathlib.Path,
                 metric: str, max_events: Optional[int],
                 log: Callable[[str], None]) -> None:
        self.values, self.config, self.contract = values, config, contract
        self.frames, self.workdir, self.max_events, self.log = frames, workdir, max_events, log
        self.protocol = "history" if contract.history is not None else "temporal"
        self.metric = metric
        self.key = objective_key(self.protocol, metric, config.validation.protocol)
        self._data: dict[tuple[Any, Any], Any] = {}
        self._scored: dict[Knobs, dict[str, float]] = {}
        self._events: dict[Knobs, np.ndarray] = {}  # [n] objective share of each event
        self.groups: Optional[np.ndarray] = None  # [n] each event's user
        self._models: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # (prepared, result)
        self.references: dict[str, dict[str, float]] = {}

    def start(self) -> Knobs:
        """The config's own values."""
        index, history = self.config.index, self.contract.history
        return Knobs(self.config.model.temperature, self.config.model.popularity_prior,
                     history.length if history else None, history.pooling if history else None,
                     index.history_policy if history else "rank",
                     index.repeat_weight if history else 0.0,
                     index.repeat_half_life if history else None)

    def data(self, knobs: Knobs) -> Any:
        """The validation split's Examples and pool for a history setting (made once)."""
        setting = (knobs.length, knobs.pooling)
        if setting not in self._data:
            history = (setting if self.protocol == "history"
                       else quality_history.DEFAULT_HISTORY)
            prepared = quality.prepare(self.protocol, *self.frames, self.workdir, self.config,
                                       self.contract, history, repeat_purchases=True,
                                       quantile=self.config.data.cutoff_quantile)
            if self.protocol == "history":
                prepared = subsample(prepared, self.max_events)
            self._data[setting] = prepared
        return self._data[setting]

    def train(self, knobs: Knobs) -> tuple[Any, Any]:
        """(data, TrainResult) of a model trained with `knobs`."""
        from components.trainer import training  # pylint: disable=import-outside-toplevel
        prepared = self.data(knobs)
        values = copy.deepcopy(self.values)
        values.setdefault("model", {})["temperature"] = knobs.temperature
        values.setdefault("validation", {})["max_eval_interactions"] = self.max_events
        result = training.train_and_evaluate(prepared.train_pattern, prepared.eval_pattern,
                                             prepared.catalog_pattern, prepared.pool_uri,
                                             config_lib.from_dict(values))
        return prepared, result

    def score(self, knobs: Knobs, prepared: Any, result: Any) -> dict[str, float]:
        """The protocol's metrics of one trial, and its objective event by event (cached:
        equal knobs are scored once)."""
        if knobs not in self._scored:
            if self.protocol == "history":
                ranks, warm = quality_history.history_ranks(
                    prepared, result.catalog_ids, quality.history_scorer(
                        result, knobs.prior, (knobs.policy, knobs.repeat_weight,
                                              knobs.half_life)))
                found = history_eval.summarise(ranks, warm)
                user = self.contract.user_id
                groups = prepared.split.eval[user].to_numpy() if user else None
            else:
                evaluation = result.evaluate_events(prepared.eval_pattern, knobs.prior,
                                                    self.max_events)
                found = protocol_metrics(prepared, evaluation.metrics)
                ranks = evaluation.ranks[  # the ranking objective_key reads
                    "filtered" if self.config.validation.protocol == "filtered" else "tfrs"]
                groups = evaluation.users
            self.groups = groups
            self._events[knobs] = event_values(ranks, self.metric)
            self._scored[knobs] = {key: value for key, value in found.items()
                                   if key.startswith(self.protocol)}
        return self._scored[knobs]

    def trial(self, knobs: Knobs) -> dict[str, float]:
        """Scores `knobs`, training first unless a kept model has its training knobs."""
        if knobs in self._scored:
            return self._scored[knobs]
        kept = self._models.get(knobs.model_key())
        if kept is not None:
            return self.score(knobs, *kept)
        prepared, result = self.train(knobs)
        self._models[knobs.model_key()] = (prepared, result)
        found = self.score(knobs, prepared, result)
        if not self.references:
            self.references = score_references(prepared, result, self.max_events)
        return found

    def compare(self, knobs: Knobs, other: Knobs) -> tuple[float, float]:
        """paired(objective of knobs, objective of other) over the validation events; both
        scored already."""
        return paired(self._events[knobs], self._events[other], self.groups)

    def beats(self, knobs: Knobs, other: Knobs) -> bool:
        """Whether knobs' objective is above other's beyond the events' noise: the paired
        difference's 95% interval lies above zero."""
        difference, half_width = self.compare(knobs, other)
        return difference - half_width > 0

    def keep_only(self, knobs: Knobs) -> None:
        """Frees every trained model but the one knobs' trials use."""
        self._models = {key: value for key, value in self._models.items()
                        if key == knobs.model_key()}


def score_references(prepared: Any, result: Any, max_events: Optional[int]
                     ) -> dict[str, dict[str, float]]:
    """MostPop, and P-TopFreq as of each event on the history protocol, on the trials'
    validation events."""
    found = {quality_rows.MOSTPOP: quality.score_mostpop(prepared, result, max_events)}
    if prepared.name == "history":
        contract, split = prepared.contract, prepared.split
        found[quality_rows.PTOPFREQ_ASOF] = quality_history.history_scores(
            prepared, result.catalog_ids, baselines.asof_scorer(
                split.train, split.eval, result.catalog_ids, contract.user_id,
                contract.item_id, contract.event_time, result.train_counts))
    return {name: {key: value for key, value in keys.items() if key.startswith(prepared.name)}
            for name, keys in found.items()}


def run_search(search: Search, space: Space) -> tuple[Knobs, list[dict[str, Any]]]:
    """The config's own values (trial 1), then every stage in order: a trial becomes the best
    only when it beats the best so far beyond noise (Search.beats). Returns the best knobs
    and one row per distinct trial, each with its paired difference from the best
    (`vs_chosen`, `vs_chosen_ci95`)."""
    best = search.start()
    rows: list[dict[str, Any]] = []
    started = time.time()

    def measure(stage: str, knobs: Knobs) -> str:
        began = time.time()
        found = search.trial(knobs)
        rows.append({"trial": len(rows) + 1, "stage": stage, **dataclasses.asdict(knobs),
                     "objective": found[search.key], **found,
                     "seconds": round(time.time() - began)})
        return (f"trial {len(rows)} ({stage}) {describe(knobs)}: {search.key} "
                f"{found[search.key]:.4f} ({rows[-1]['seconds']:.0f} s; "
                f"{time.time() - started:.0f} s so far)")

    search.log(measure("start", best))
    tried = {best}
    for stage, trials_of in stages(space, search.protocol == "history"):
        for knobs in trials_of(best):
            if knobs in tried:
                continue
            tried.add(knobs)
            line = measure(stage, knobs)
            difference, half_width = search.compare(knobs, best)
            search.log(f"{line}; {difference:+.4f} ±{half_width:.4f} against the best so far")
            if search.beats(knobs, best):
                best = knobs
            search.keep_only(best)
        search.log(f"after {stage}: {describe(best)} ({search.key} "
                   f"{search.trial(best)[search.key]:.4f})")
    for row in rows:
        row["vs_chosen"], row["vs_chosen_ci95"] = search.compare(knobs_of(row), best)
    return best, rows


def describe(knobs: Knobs) -> str:
    """One line of a trial's values."""
    text = f"temperature {knobs.temperature:g}, prior {knobs.prior:g}"
    if knobs.length is not None:
        repeat = ("exclude" if knobs.policy == "exclude" else
                  f"rank, repeat {knobs.repeat_weight:g} x "
                  f"{'count' if knobs.half_life is None else f'half-life {knobs.half_life:g}'}")
        text += f", history {knobs.length} {knobs.pooling}, {repeat}"
    return text


def knobs_of(row: dict[str, Any]) -> Knobs:
    """The knobs of a trial row."""
    return Knobs(**{field.name: row[field.name] for field in dataclasses.fields(Knobs)})
