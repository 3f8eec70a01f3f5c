"""`twotower bench repeat_ceiling`: how far a learned repeat ranker gets past the decayed
P-TopFreq rule on a repeat-purchase dataset (the history protocol's validation split only).

On repeat-purchase data the served model's repeat term brings it level with the rule
(docs/benchmarks.md); this measures the room left on the repeat side. For every validation
event, the user's own earlier items (strictly before the event) are scored by:
  rule          their counts decayed 0.5^(age / half-life days), the half-life chosen on
                the fitting half by recall@10 (the `ptopfreq_decay` row of bench quality)
  gbdt_days     gradient-boosted trees (scikit-learn) on per-(user, item) features with
                times: decayed counts at several half-lives, count, days and baskets since
                the last purchase, the share of the user's baskets holding it, the user's
                basket count, the item's popularity, repeat rate and median repurchase gap
  gbdt_steps    the same learner on what the served graph sees: the last `length` history
                items (the contract's), decayed by history steps, no times
  linear_steps  a conditional logit (a softmax over the user's own items) on the step
                features: the form a served repeat term could take
Each learner is fitted on a seeded sample of the events of half the users (crc32 of the
id) and scored on every event of the other half; every item the user never had ranks after
their own by training popularity, as the rule pads. Rows: recall@10 / @100, the ratio to
the rule and the paired difference with its 95% interval clustered by user. The eval split
is never read. Writes reports/repeat_ceiling.json (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time
import zlib
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from benchmarks import baselines, common, protocols
from benchmarks.quality_datasets import DATASETS, load_tables
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower.errors import TwoTowerError

DAY_HALF_LIVES = (3.0,) + baselines.HALF_LIVES_DAYS  # days; the rule's candidates among them
STEP_HALF_LIVES = (25.0, 50.0, 100.0, 200.0, 400.0)  # history steps
DEFAULT_FIT_EVENTS = 12_000
CUTOFFS = (10, 100)
L2 = 1e-4  # the conditional logit's weight penalty (standardised features)
SEED = 0
DEFAULT_LENGTH = 500  # history items the step features read when the contract has none
REPEAT_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.repeat_purchases)


@dataclasses.dataclass(frozen=True)
class ItemStats:
    """Per-item statistics of the training part, as [N] arrays over item codes.

    Attributes:
      log_count: log(1 + training events).
      repeat_rate: (buyers with two or more events + 1) / (buyers + 2).
      log_gap: log(1 + median days between a buyer's consecutive events), -1 if none.
    """

    log_count: np.ndarray
    repeat_rate: np.ndarray
    log_gap: np.ndarray


def item_stats(users: np.ndarray, items: np.ndarray, times: np.ndarray, n_items: int
               ) -> ItemStats:
    """ItemStats of training events ([n] user codes, item codes, seconds)."""
    frame = pd.DataFrame({"u": users, "i": items, "t": times})
    per_pair = frame.groupby(["i", "u"]).size()
    buyers = per_pair.groupby(level=0).size().reindex(range(n_items), fill_value=0)
    repeaters = (per_pair >= 2).groupby(level=0).sum().reindex(range(n_items), fill_value=0)
    ordered = frame.sort_values("t", kind="stable")
    gaps = ordered.groupby(["u", "i"])["t"].diff()
    median = (gaps.groupby(ordered["i"]).median() / baselines.SECONDS_PER_DAY)
    median = median.reindex(range(n_items))
    counts = np.bincount(items, minlength=n_items)
    return ItemStats(np.log1p(counts), ((repeaters + 1) / (buyers + 2)).to_numpy(np.float64),
                     np.nan_to_num(np.log1p(median.to_numpy(np.float64)), nan=-1.0))


def own_items(times: np.ndarray, items: np.ndarray, moment: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The user's events strictly before `moment` ([n] sorted seconds and item codes).

    Returns:
      (unique items [c], inverse [m] each earlier event's index into them, times [m]).
    """
    before = int(np.searchsorted(times, moment, side="left"))
    unique, inverse = np.unique(items[:before], return_inverse=True)
    return unique, inverse, times[:before]


def day_features(unique: np.ndarray, inverse: np.ndarray, times: np.ndarray, moment: float,
                 stats: ItemStats) -> np.ndarray:
    """[c, F] features with times of the user's own items (module docstring); columns
    0..len(DAY_HALF_LIVES)-1 are log(1 + decayed count) at DAY_HALF_LIVES."""
    size = len(unique)
    age = (moment - times) / baselines.SECONDS_PER_DAY
    decayed = [np.log1p(np.bincount(inverse, np.exp2(-age / days), size))
               for days in DAY_HALF_LIVES]
    last = np.full(size, -np.inf)
    np.maximum.at(last, inverse, times)
    baskets = np.unique(times)
    basket_of = np.searchsorted(baskets, times)
    pairs = np.unique(inverse * len(baskets) + basket_of)
    in_baskets = np.bincount(pairs // len(baskets), minlength=size)
    since = (moment - last) / baselines.SECONDS_PER_DAY
    gap = stats.log_gap[unique]
    return np.column_stack(decayed + [
        np.log1p(np.bincount(inverse, minlength=size)), np.log1p(since),
        np.log1p(len(baskets) - np.searchsorted(baskets, last, side="right")),
        in_baskets / len(baskets), np.full(size, np.log1p(len(baskets))),
        stats.log_count[unique], stats.repeat_rate[unique], gap,
        np.where(gap < 0, 0.0, np.log1p(since) - gap)])


def step_features(unique: np.ndarray, inverse: np.ndarray, length: int, stats: ItemStats
                  ) -> np.ndarray:
    """[c, F] features of the user's own items from the last `length` events alone, as the
    served graph reads its history (positions, no times); an item only older than that
    gets zero counts."""
    size = len(unique)
    kept = inverse[-length:]
    steps = np.arange(len(kept))[::-1].astype(np.float64)  # 0: the latest
    decayed = [np.log1p(np.bincount(kept, np.exp2(-steps / half), size))
               for half in STEP_HALF_LIVES]
    latest = np.full(size, float(length))
    np.minimum.at(latest, kept, steps)
    return np.column_stack(decayed + [
        np.log1p(np.bincount(kept, minlength=size)), np.log1p(latest),
        np.full(size, np.log1p(len(kept))), stats.log_count[unique], stats.repeat_rate[unique]])


def rank_of(scores: np.ndarray, unique: np.ndarray, target: int, popularity_rank: np.ndarray
            ) -> int:
    """0-based rank of `target` when the user's own items ([c] codes, [c] scores, ties
    counted against the target) come first and every other item follows by popularity
    (`popularity_rank`: [N] 0 = the most popular)."""
    where = np.flatnonzero(unique == target)
    if len(where):
        return int((scores > scores[where[0]]).sum())
    ahead = popularity_rank[target]
    return len(unique) + ahead - int((popularity_rank[unique] < ahead).sum())


@dataclasses.dataclass
class ConditionalLogit:
    """Linear scores w · (x - mean) / scale, fitted as a softmax over each event's
    candidates against the one that happened (events without it do not count).

    Attributes:
      mean, scale: [F] the fitting rows' standardisation.
      weights: [F] w.
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        """[c] scores of [c, F] candidates."""
        return ((features - self.mean) / self.scale) @ self.weights


def fit_conditional_logit(features: Sequence[np.ndarray], positives: Sequence[np.ndarray],
                          l2: float = L2) -> ConditionalLogit:
    """Maximum likelihood (plus l2 · |w|²) of each event's true candidate under a softmax
    over its candidates.

    Args:
      features: Per event, [c_e, F] candidate features.
      positives: Per event, [c_e] bool, true at the candidate that happened (if any).
    """
    kept = [index for index, positive in enumerate(positives) if positive.any()]
    if not kept:
        raise ValueError("no event has its true item among its candidates")
    sizes = np.array([len(features[index]) for index in kept])
    rows = np.concatenate([features[index] for index in kept])
    target = np.concatenate([positives[index] for index in kept])
    mean, scale = rows.mean(axis=0), rows.std(axis=0) + 1e-9
    rows = (rows - mean) / scale
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def loss(weights: np.ndarray) -> tuple[float, np.ndarray]:
        scores = rows @ weights
        peak = np.maximum.reduceat(scores, starts)
        exp = np.exp(scores - np.repeat(peak, sizes))
        total = np.add.reduceat(exp, starts)
        soft = exp / np.repeat(total, sizes)
        value = -(scores[target].sum() - (peak + np.log(total)).sum()) / len(kept)
        grad = -(rows[target].sum(axis=0) - soft @ rows) / len(kept)
        return value + l2 * weights @ weights, grad + 2 * l2 * weights
    found = optimize.minimize(loss, np.zeros(rows.shape[1]), jac=True, method="L-BFGS-B")
    return ConditionalLogit(mean, scale, found.x)


@dataclasses.dataclass
class Events:
    """The validation events of one half of the users, with their candidates.

    Attributes:
      users: [n] user codes; targets: [n] item codes.
      unique: per event, [c] the user's own earlier items.
      days, steps: per event, [c, F] day_features and step_features.
    """

    users: np.ndarray
    targets: np.ndarray
    unique: list[np.ndarray]
    days: list[np.ndarray]
    steps: list[np.ndarray]


def gather(rows: pd.DataFrame, by_user: dict[int, tuple[np.ndarray, np.ndarray]],
           user_index: pd.Index, item_index: pd.Index, columns: tuple[str, str, str],
           stats: ItemStats, length: int) -> Events:
    """Events of `rows` (user, item, time columns) with the features of their candidates."""
    user, item, moment = columns
    users, targets = baselines.positions(rows[user], user_index), baselines.positions(rows[item], item_index)
    unique, days, steps = [], [], []
    for code, when in zip(users, rows[moment].to_numpy(np.float64)):
        found, inverse, times = own_items(*by_user[code], when)
        unique.append(found)
        days.append(day_features(found, inverse, times, when, stats))
        steps.append(step_features(found, inverse, length, stats))
    return Events(users, targets, unique, days, steps)


def _ranks(events: Events, scorer: Callable[[int], np.ndarray], popularity_rank: np.ndarray,
           tie: np.ndarray) -> np.ndarray:
    """[n] each event's rank of its true item under `scorer` (event index -> [c] scores of
    its candidates, never called without any; popularity breaks exact ties)."""
    ranks = np.empty(len(events.targets), np.int64)
    for index, (found, target) in enumerate(zip(events.unique, events.targets)):
        scores = scorer(index) + tie[found] if len(found) else np.zeros(0)
        ranks[index] = rank_of(scores, found, target, popularity_rank)
    return ranks


def compare(name: str, ranks: np.ndarray, rule: np.ndarray, users: np.ndarray
            ) -> dict[str, Any]:
    """A report row: recall@k of [n] ranks, its ratio to the rule's and the paired
    difference with its 95% interval clustered by user."""
    from components.trainer import eval_sample  # pylint: disable=import-outside-toplevel (imports TF)
    row: dict[str, Any] = {"name": name}
    for k in CUTOFFS:
        key = f"recall_at_{k}"
        mine, theirs = (ranks < k).astype(np.float64), (rule < k).astype(np.float64)
        difference = mine - theirs
        row.update({key: round(float(mine.mean()), 4),
                    f"{key}_vs_rule": round(float(mine.mean() / max(theirs.mean(), 1e-12)), 4),
                    f"{key}_diff": round(float(difference.mean()), 4),
                    f"{key}_diff_ci95": round(eval_sample.ci95(difference, users), 4)})
    return row


def measure(dataset: str, data_dir: pathlib.Path, fit_events: int,
            log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every ranker's row on one dataset, and that dataset's settings."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # pylint: disable=import-outside-toplevel
    spec = DATASETS[dataset]
    contract = contract_lib.load(str(config_lib.SCHEMAS_ROOT / spec.schema_dir))
    length = contract.history.length if contract.history else DEFAULT_LENGTH
    interactions, _ = load_tables(data_dir, contract, spec.command)
    user, item, moment = contract.user_id, contract.item_id, contract.event_time
    split = protocols.split("history", interactions, user, moment, part="validation")
    user_index = pd.Index(interactions[user].astype(str).unique())
    item_index = pd.Index(interactions[item].astype(str).unique())
    train = split.train
    stats = item_stats(baselines.positions(train[user], user_index), baselines.positions(train[item], item_index),
                       train[moment].to_numpy(np.float64), len(item_index))
    counts = np.expm1(stats.log_count)
    popularity_rank = np.empty(len(item_index), np.int64)
    popularity_rank[np.lexsort((np.arange(len(counts)), -counts))] = np.arange(len(counts))
    tie = 1e-9 * baselines.popularity_order(counts)
    every = pd.concat([train, split.eval]).sort_values(moment, kind="stable")
    every = every.assign(_u=baselines.positions(every[user], user_index), _i=baselines.positions(every[item], item_index))
    by_user = {code: (group[moment].to_numpy(np.float64), group["_i"].to_numpy())
               for code, group in every.groupby("_u", sort=False)}
    half = split.eval[user].astype(str).map(lambda key: zlib.crc32(key.encode()) % 2).to_numpy()
    fitting = split.eval[half == 0]
    fitting = fitting.sample(min(fit_events, len(fitting)), random_state=SEED)
    scored = split.eval[half == 1]
    log(f"{dataset}: train {len(train):,}, validation {len(split.eval):,} events; fitting on "
        f"{len(fitting):,} events of half the users, scoring {len(scored):,} of the other half")
    fit = gather(fitting, by_user, user_index, item_index, (user, item, moment), stats, length)
    test = gather(scored, by_user, user_index, item_index, (user, item, moment), stats, length)
    positives = [found == target for found, target in zip(fit.unique, fit.targets)]

    def decayed(events: Events, column: int) -> np.ndarray:
        return _ranks(events, lambda index: events.days[index][:, column], popularity_rank, tie)
    trials = {days: round(float((decayed(fit, column) < 10).mean()), 4)
              for column, days in enumerate(DAY_HALF_LIVES)}
    days = max(trials, key=trials.get)
    log(f"{dataset} rule: half-life {days:g} days (fitting half recall@10 {trials})")
    rule = decayed(test, DAY_HALF_LIVES.index(days))
    rows = [compare("rule", rule, rule, test.users)]
    for name, kind in (("gbdt_days", "days"), ("gbdt_steps", "steps")):
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05,
                                               early_stopping=True, random_state=SEED)
        model.fit(np.concatenate(getattr(fit, kind)), np.concatenate(positives))
        chosen = getattr(test, kind)
        rows.append(compare(name, _ranks(test, lambda index: model.predict_proba(
            chosen[index])[:, 1], popularity_rank, tie), rule, test.users))
        log(f"{dataset} {name}: recall@10 / @100 {rows[-1]['recall_at_10']:.4f} / "
            f"{rows[-1]['recall_at_100']:.4f}")
    logit = fit_conditional_logit(fit.steps, positives)
    rows.append({**compare("linear_steps", _ranks(test, lambda index: logit.scores(
        test.steps[index]), popularity_rank, tie), rule, test.users),
                 "weights": [round(float(value), 4) for value in logit.weights]})
    settings = {"fit_events": len(fitting), "scored_events": len(scored),
                "history_length": length, "rule_half_life_days": days,
                "rule_half_life_trials": trials}
    return [{"dataset": dataset, **row} for row in rows], {dataset: settings}


def run(datasets: Sequence[str], data_root: pathlib.Path, fit_events: int = DEFAULT_FIT_EVENTS,
        out: Optional[pathlib.Path] = None, log: Callable[[str], None] = print
        ) -> pathlib.Path:
    """Fits and scores every ranker on each dataset's validation split; writes the report
    (`data_root`/<dataset> holds each dataset's tables, as `twotower data` writes them)."""
    wrong = [name for name in datasets
             if name not in DATASETS or not DATASETS[name].repeat_purchases]
    if wrong:
        raise TwoTowerError(f"{wrong[0]} is not a repeat-purchase dataset; choose from "
                            f"{', '.join(REPEAT_DATASETS)}")
    started, commit = time.time(), common.git_commit()
    rows: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    for name in datasets:
        found, chosen = measure(name, data_root / pathlib.Path(DATASETS[name].data_dir).name,
                                fit_events, log)
        rows += found
        settings.update(chosen)
    notes = "; ".join(
        f"{row['dataset']} {row['name']} {row['recall_at_10']:.4f} / {row['recall_at_100']:.4f}"
        f" ({row['recall_at_10_vs_rule']:.2f}x / {row['recall_at_100_vs_rule']:.2f}x the rule)"
        for row in rows)
    path = common.write_report(
        "repeat_ceiling", {"datasets": list(datasets), "fit_events": fit_events,
                           "day_half_lives": list(DAY_HALF_LIVES),
                           "step_half_lives": list(STEP_HALF_LIVES), "per_dataset": settings,
                           "seconds": round(time.time() - started, 1)},
        rows, notes, out=out, git=commit)
    log(f"{notes}\nwrote {path}")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`twotower bench repeat_ceiling`'s flags."""
    parser.add_argument("--datasets", nargs="+", default=list(REPEAT_DATASETS),
                        choices=REPEAT_DATASETS, help="repeat-purchase datasets to measure")
    parser.add_argument("--data-root", type=pathlib.Path, default=pathlib.Path("data"),
                        help="folder holding each dataset's tables (`twotower data NAME "
                             "--out DATA_ROOT/NAME`)")
    parser.add_argument("--fit-events", type=int, default=DEFAULT_FIT_EVENTS,
                        help="validation events the learners are fitted on (seeded sample)")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="report path (default reports/repeat_ceiling.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if args.fit_events < 100:
        raise TwoTowerError(f"--fit-events {args.fit_events} is too few to fit on; use 100 or more")
    run(args.datasets, args.data_root, args.fit_events, args.out)
