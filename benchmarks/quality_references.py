"""The strongest simple baselines as rows of `twotower bench quality` (benchmarks/baselines.py),
scored like MostPop: the same catalogue, splits, filters and report keys as the models.

Rows, where they apply:
  ptopfreq        repeat-purchase data, temporal protocol: the user's training counts.
  ptopfreq_asof   repeat-purchase data, history protocol: counts as of each event.
  ptopfreq_decay  the same, each earlier event weighted 0.5^(age / half-life).
  ease            up to baselines.EASE_MAX_ITEMS items with training events, every protocol (on the history
                  protocol scored from the items the user had before each event).
The half-life and EASE's L2 weight are chosen on the protocol's validation split (carved
from its training part, benchmarks/protocols.py) by recall@10, never on what is reported;
the choice and every candidate's validation recall are kept in the row
(`<protocol>_half_life_days`, `<protocol>_ease_l2`, `..._validation`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from benchmarks import baselines, history_eval, protocols, quality_history
from benchmarks.quality_scoring import protocol_metrics, recbole_metrics
from benchmarks.quality_rows import EASE, PTOPFREQ, PTOPFREQ_ASOF, PTOPFREQ_DECAY


def train_counts(train: pd.DataFrame, catalog_ids: Any, item: str) -> np.ndarray:
    """[N] training events per catalogue item."""
    columns = baselines.positions(train[item], catalog_ids)
    return np.bincount(columns[columns >= 0], minlength=len(catalog_ids)).astype(np.float64)


def _user_scores_metrics(prepared: Any, result: Any, scores: baselines.UserScores
                         ) -> dict[str, float]:
    """Report keys of per-user scores under the temporal, tfrs or recbole protocol."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from components.trainer import features, metrics  # pylint: disable=import-outside-toplevel
    contract = result.contract
    vectors = scores.vectors()
    if prepared.name == "recbole":
        return recbole_metrics(prepared, result.catalog_ids, vectors, lambda batch: scores.one_hot(
            [value.decode() for value in np.asarray(batch[contract.user_id])]), contract)

    def queries(batch: dict[str, tf.Tensor]) -> tf.Tensor:
        users = [value.decode() for value in batch[contract.user_id].numpy()]
        return tf.constant(scores.one_hot(users))
    found = metrics.evaluate(queries, features.dataset(
        prepared.eval_pattern, metrics.eval_rows(len(result.catalog_ids)), False, 0,
        contract, features.interaction_names(contract)), result.catalog_ids,
        tf.constant(vectors), result.seen, result.train_counts, contract)
    return protocol_metrics(prepared, found)


def _served(prepared: Any, catalog_ids: Any, scores: baselines.UserScores) -> dict[str, float]:
    """quality_history.served_scores of per-user scores, where the protocol has them."""
    if prepared.served_eval is None:
        return {}
    user = prepared.contract.user_id
    return quality_history.served_scores(
        prepared, catalog_ids, lambda rows: scores.score_rows(rows[user].astype(str).tolist()))


def _validation(prepared: Any) -> protocols.Split:
    contract = prepared.contract
    return protocols.validation_split(prepared.name, prepared.split, contract.event_time,
                                      user_column=contract.user_id)


def _history_recall(prepared: Any, valid: protocols.Split, catalog_ids: Any, exclude: bool,
                    scorer: Callable[[pd.DataFrame], np.ndarray],
                    had: list[list[str]]) -> float:
    """history_recall_at_10 of a scorer on the history protocol's validation split."""
    contract = prepared.contract
    return history_eval.evaluate(scorer, valid.train, valid.eval, catalog_ids, contract.user_id,
                                 contract.item_id, contract.event_time,
                                 had if exclude else [[] for _ in had])["history_recall_at_10"]


def _ease_l2(prepared: Any, catalog_ids: Any, exclude: bool) -> tuple[float, dict[str, float]]:
    """EASE's L2 weight chosen by recall@10 on the protocol's validation split."""
    contract = prepared.contract
    user, item = contract.user_id, contract.item_id
    valid = _validation(prepared)
    counts = train_counts(valid.train, catalog_ids, item)
    had = (history_eval.earlier_items(valid.train, valid.eval, user, item, contract.event_time)
           if prepared.name == "history" else [])

    def measure(l2: float) -> float:
        scores, model = baselines.ease(valid.train, catalog_ids, user, item, counts, l2)
        if prepared.name == "history":
            return _history_recall(prepared, valid, catalog_ids, exclude,
                                   baselines.ease_history_scorer(
                                       model, catalog_ids,
                                       pd.Series(had, index=valid.eval.index)), had)
        return baselines.event_recall(lambda rows: scores.score_rows(rows[user].tolist()),
                                      valid.train, valid.eval, catalog_ids, user, item, exclude)
    return baselines.choose(baselines.EASE_L2_WEIGHTS, measure)


def _half_life(prepared: Any, catalog_ids: Any) -> tuple[float, dict[str, float]]:
    """The decay's half-life (days) chosen by recall@10 on the history protocol's validation
    split, every item ranked (repeat purchases)."""
    contract = prepared.contract
    user, item, time = contract.user_id, contract.item_id, contract.event_time
    valid = _validation(prepared)
    counts = train_counts(valid.train, catalog_ids, item)
    nothing = [[] for _ in range(len(valid.eval))]

    def measure(days: float) -> float:
        return _history_recall(prepared, valid, catalog_ids, False, baselines.asof_scorer(
            valid.train, valid.eval, catalog_ids, user, item, time, counts, days), nothing)
    return baselines.choose(baselines.HALF_LIVES_DAYS, measure)


def score(prepared: Any, result: Any, repeat_purchases: bool,
          log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """{row name: report keys} of the reference rows that apply to this protocol and data.

    Args:
      prepared: The protocol's data (benchmarks/quality.py Prepared).
      result: A trained row's result (its catalogue, training counts, seen items, contract).
      repeat_purchases: Rank every item (no P-TopFreq without it, it is then MostPop).
      log: Progress lines.
    """
    contract = result.contract
    user, item, time = contract.user_id, contract.item_id, contract.event_time
    catalog_ids, split, name = result.catalog_ids, prepared.split, prepared.name
    rows: dict[str, dict[str, Any]] = {}
    if repeat_purchases and name == "temporal":
        counts = baselines.ptopfreq(split.train, catalog_ids, user, item, result.train_counts)
        rows[PTOPFREQ] = {**_user_scores_metrics(prepared, result, counts),
                          **_served(prepared, catalog_ids, counts)}
    if repeat_purchases and name == "history":
        rows[PTOPFREQ_ASOF] = quality_history.history_scores(
            prepared, catalog_ids, baselines.asof_scorer(split.train, split.eval, catalog_ids,
                                                         user, item, time, result.train_counts))
        days, trials = _half_life(prepared, catalog_ids)
        log(f"{name} {PTOPFREQ_DECAY}: half-life {days:g} days (validation recall@10 {trials})")
        rows[PTOPFREQ_DECAY] = {
            **quality_history.history_scores(prepared, catalog_ids, baselines.asof_scorer(
                split.train, split.eval, catalog_ids, user, item, time, result.train_counts,
                days)),
            f"{name}_half_life_days": days, f"{name}_half_life_validation": trials}
    trained = baselines.trained_items(split.train, catalog_ids, item)
    if trained > baselines.EASE_MAX_ITEMS:
        log(f"{name} {EASE}: skipped, {trained:,} items with training events is above "
            f"{baselines.EASE_MAX_ITEMS:,} (an [n, n] inverse, benchmarks/baselines.py)")
        return rows
    l2, trials = _ease_l2(prepared, catalog_ids, exclude=not repeat_purchases)
    log(f"{name} {EASE}: L2 weight {l2:g} (validation recall@10 {trials})")
    scores, model = baselines.ease(split.train, catalog_ids, user, item, result.train_counts, l2)
    if name == "history":
        found = quality_history.history_scores(prepared, catalog_ids, baselines.ease_history_scorer(
            model, catalog_ids, pd.Series(prepared.had, index=split.eval.index)))
    else:
        found = {**_user_scores_metrics(prepared, result, scores),
                 **_served(prepared, catalog_ids, scores)}
    rows[EASE] = {**found, f"{name}_ease_l2": l2, f"{name}_ease_l2_validation": trials}
    return rows
