"""The history protocol's pieces of `bench quality`: the added history feature, its
scoring and the ItemKNN-history reference, the (length, pooling) variants compared on
validation (issue 15: N and pooling are chosen there), and the temporal protocol scored as
served for a contract that declares a history (served_scores)."""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmarks import history_eval
from twotower.contract import HISTORY, QUERY, Contract, FeatureSpec

# The history protocol's added feature (contract kind history); its default length and
# pooling are the contract's.
HISTORY_FEATURE = "history"
DEFAULT_HISTORY = (FeatureSpec.length, FeatureSpec.pooling)
SERVED = "temporal_served"  # the temporal protocol's keys as served (served_scores)


def settings(lengths: Sequence[int], poolings: Sequence[str]) -> list[tuple[int, str]]:
    """Every (length, pooling) combination, the first of each list first."""
    return list(itertools.product(lengths, poolings))


def row_name(history: tuple[int, str]) -> str:
    """The report row of the default model trained with another history."""
    return f"default+history_{history[0]}_{history[1]}"


def with_history(contract: Any, length: int, pooling: str = DEFAULT_HISTORY[1]) -> Any:
    """The contract with one history feature, HISTORY_FEATURE, of `length` items pooled by
    `pooling` (in place of the one it declares, if any)."""
    kept = tuple(feature for feature in contract.features if not feature.is_history)
    return Contract(kept + (FeatureSpec(HISTORY_FEATURE, QUERY, HISTORY, length=length,
                                        pooling=pooling),))


def history_scores(prepared: Any, catalog_ids: Sequence[str],
                   score_rows: Any) -> dict[str, float]:
    """history_eval.evaluate on the history protocol's eval events."""
    return history_eval.summarise(*history_ranks(prepared, catalog_ids, score_rows))


def history_ranks(prepared: Any, catalog_ids: Sequence[str],
                  score_rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """history_eval.event_ranks on the history protocol's eval events: ([n] ranks, [n] warm)."""
    contract = prepared.contract
    excluded = prepared.had if prepared.exclude_had else [[] for _ in prepared.had]
    return history_eval.event_ranks(score_rows, prepared.split.train, prepared.split.eval,
                                    catalog_ids, contract.user_id, contract.item_id,
                                    contract.event_time, excluded)


def recbole_histories(split: Any, contract: Any) -> Any:
    """The recbole split with the contract's history feature, built from train alone: each
    train row's user's earlier train items (history_eval.add_histories), and each valid and
    eval row's user's last train items (history_eval.training_histories: RecBole represents
    a user by the train part, and the held-out parts must not leak into any history)."""
    user, item, time = contract.user_id, contract.item_id, contract.event_time
    name, length = contract.history.name, contract.history.length

    def held_out(frame: Optional[pd.DataFrame]) -> Optional[pd.DataFrame]:
        if frame is None:
            return None
        return frame.assign(**{name: history_eval.training_histories(
            split.train, frame, user, item, time, length)})
    return dataclasses.replace(
        split, train=history_eval.add_histories(split.train, user, item, time, name, length),
        eval=held_out(split.eval), valid=held_out(split.valid))


def served_eval(split: Any, contract: Any) -> Optional[pd.DataFrame]:
    """The temporal split's eval rows with each history replaced by the user's training
    history (history_eval.training_histories), for served_scores; None without a history."""
    if contract.history is None:
        return None
    return split.eval.assign(**{contract.history.name: history_eval.training_histories(
        split.train, split.eval, contract.user_id, contract.item_id, contract.event_time,
        contract.history.length)})


def served_scores(prepared: Any, catalog_ids: Sequence[str],
                  score_rows: Any) -> dict[str, float]:
    """The temporal protocol as served (`prepared.served_eval`: each eval row's query carries
    its user's training history): every item ranked by `score_rows`, nothing removed, as
    history_eval.evaluate counts it; keys temporal_served_recall_at_K,
    temporal_served_ndcg_at_10 (also _warm / _cold) and the event counts."""
    contract = prepared.contract
    rows = prepared.served_eval
    found = history_eval.evaluate(score_rows, prepared.split.train, rows, catalog_ids,
                                  contract.user_id, contract.item_id, contract.event_time,
                                  [[] for _ in range(len(rows))])
    return {key.replace("history_", f"{SERVED}_", 1): value for key, value in found.items()}


def history_indices(histories: pd.Series, catalog_ids: Sequence[str]) -> np.ndarray:
    """[b, L] catalogue indices of some rows' history lists (-1: padding or unknown)."""
    index = pd.Index(list(catalog_ids))
    width = max([len(items) for items in histories] + [1])
    out = np.full((len(histories), width), -1, np.int64)
    for row, items in enumerate(histories):
        out[row, :len(items)] = index.get_indexer([str(value) for value in items])
    return out


def with_repeat(score_rows: Callable[[pd.DataFrame], np.ndarray], catalog_ids: Sequence[str],
                feature: str, policy: str, weight: float, half_life: Optional[float]
                ) -> Callable[[pd.DataFrame], np.ndarray]:
    """A scorer of eval rows as the served model ranks with exact search: the items of each
    row's history (column `feature`) get the repeat term (policy rank) or are removed
    (exclude), components/index_builder/repeat.py."""
    from components.index_builder import repeat  # pylint: disable=import-outside-toplevel

    def score(rows: pd.DataFrame) -> np.ndarray:
        scores = np.asarray(score_rows(rows), np.float64)
        history = history_indices(rows[feature], catalog_ids)
        if policy == repeat.EXCLUDE:
            row, column = np.nonzero(history >= 0)
            scores[row, history[row, column]] = -np.inf
            return scores
        if weight:
            scores += repeat.dense_terms(history, len(catalog_ids), weight, half_life)
        return scores
    return score


def repeat_row_name(policy: str, weight: float, half_life: Optional[float]) -> str:
    """The report row of the default model scored with other history settings."""
    if policy == "exclude":
        return "default+exclude"
    return f"default+repeat_{weight:g}_{'count' if half_life is None else f'{half_life:g}'}"


def score_itemknn(prepared: Any, catalog_ids: Sequence[str]) -> dict[str, float]:
    """The ItemKNN-history reference row's keys (history protocol only)."""
    contract = prepared.contract
    similarity = history_eval.itemknn_similarity(prepared.split.train, catalog_ids,
                                                 contract.user_id, contract.item_id)
    had = pd.Series(prepared.had, index=prepared.split.eval.index)
    return history_scores(prepared, catalog_ids,
                          history_eval.itemknn_scorer(similarity, catalog_ids, had))


def repeat_overrides(settings: tuple[str, float, Optional[float]]) -> list[str]:
    """The config overrides of a (history policy, repeat weight, half-life) row."""
    policy, weight, half_life = settings
    return [f"index.history_policy={policy}", f"index.repeat_weight={weight:g}",
            f"index.repeat_half_life={'null' if half_life is None else f'{half_life:g}'}"]


def repeat_settings(weights: Sequence[float], half_lives: Sequence[float]
                    ) -> list[tuple[str, float, Optional[float]]]:
    """The history protocol's extra rows: `exclude`, then `rank` at every weight x
    half-life (0: plain counts)."""
    return [("exclude", 0.0, None)] + [
        ("rank", weight, half_life or None) for weight in weights for half_life in half_lives]
