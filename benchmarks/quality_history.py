"""The history protocol's pieces of `bench quality`: the added history feature, its
scoring and the ItemKNN-history reference, and the (length, pooling) variants compared on
validation (issue 15: N and pooling are chosen there)."""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import pandas as pd

from benchmarks import history_eval
from pipeline.contract import FeatureSpec

# The history protocol's added feature (contract kind history); its default length and
# pooling are the contract's.
HISTORY_FEATURE = "history"
DEFAULT_HISTORY = (FeatureSpec.length, FeatureSpec.pooling)


def settings(lengths: Sequence[int], poolings: Sequence[str]) -> list[tuple[int, str]]:
    """Every (length, pooling) combination, the first of each list first."""
    return list(itertools.product(lengths, poolings))


def row_name(history: tuple[int, str]) -> str:
    """The report row of the default model trained with another history."""
    return f"default+history_{history[0]}_{history[1]}"


def with_history(contract: Any, length: int, pooling: str = DEFAULT_HISTORY[1]) -> Any:
    """The contract plus a history feature of `length` items pooled by `pooling`."""
    from pipeline.contract import QUERY, HISTORY, Contract  # pylint: disable=import-outside-toplevel
    return Contract(contract.features + (FeatureSpec(HISTORY_FEATURE, QUERY, HISTORY,
                                                     length=length, pooling=pooling),))


def history_scores(prepared: Any, catalog_ids: Sequence[str],
                   score_rows: Any) -> dict[str, float]:
    """history_eval.evaluate on the history protocol's eval events."""
    contract = prepared.contract
    excluded = prepared.had if prepared.exclude_had else [[] for _ in prepared.had]
    return history_eval.evaluate(score_rows, prepared.split.train, prepared.split.eval,
                                 catalog_ids, contract.user_id, contract.item_id,
                                 contract.event_time, excluded)


def score_itemknn(prepared: Any, catalog_ids: Sequence[str]) -> dict[str, float]:
    """The ItemKNN-history reference row's keys (history protocol only)."""
    contract = prepared.contract
    similarity = history_eval.itemknn_similarity(prepared.split.train, catalog_ids,
                                                 contract.user_id, contract.item_id)
    had = pd.Series(prepared.had, index=prepared.split.eval.index)
    return history_scores(prepared, catalog_ids,
                          history_eval.itemknn_scorer(similarity, catalog_ids, had))
