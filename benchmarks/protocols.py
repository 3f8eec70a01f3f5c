"""The three evaluation protocols of `twotower bench quality`, as splits of one table.

* `tfrs`: the TFRS tutorials' split: a random 80/20 split of all interactions (seed 42);
  hit rate per eval interaction over the whole catalogue, seen items not removed.
* `temporal`: the pipeline's own split: train before the 0.8 quantile of event time,
  eval after; filtered recall (items seen in training removed).
* `recbole`: RecBole's default for ML-100K: per user, interactions in random order split
  8:1:1 (train/valid/test, RecBole's rounding); full ranking of the test items with the
  user's train and valid items masked; per-user recall@10 and NDCG@10. The model trains on
  train only (RecBole uses valid for early stopping, which we do not do).
* `history`: the temporal split, with a history feature added to the contract and each eval
  event scored as of its moment (benchmarks/history_eval.py).

`validation_split` carves each protocol's validation split from its training part, the way
the protocol splits the whole table: a random 20% of train (`tfrs`), the last 20% of train
by time (`temporal`, `history`), RecBole's own valid part scored with train masked
(`recbole`). `twotower bench quality --split validation` scores every row on it, so choices
(β, τ, history length, losses) are made without touching eval; eval is then run once per
reported row.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd

PROTOCOLS = ("tfrs", "temporal", "recbole", "history")
SPLITS = ("eval", "validation")


@dataclasses.dataclass
class Split:
    """One protocol's split of the interactions.

    Attributes:
      train: Training interactions.
      eval: Held-out interactions scored by the protocol.
      valid: RecBole's validation part (masked at test time), else None.
    """

    train: pd.DataFrame
    eval: pd.DataFrame
    valid: Optional[pd.DataFrame] = None


def tfrs_split(interactions: pd.DataFrame, seed: int = 42, train_fraction: float = 0.8) -> Split:
    """A random train/eval split of all interactions."""
    order = np.random.default_rng(seed).permutation(len(interactions))
    cut = int(round(train_fraction * len(interactions)))
    return Split(interactions.iloc[np.sort(order[:cut])], interactions.iloc[np.sort(order[cut:])])


def temporal_split(interactions: pd.DataFrame, time_column: str, quantile: float = 0.8) -> Split:
    """Train before the `quantile` of event time, eval at or after it (as ingestion does)."""
    cutoff = np.quantile(interactions[time_column].to_numpy(), quantile, method="nearest")
    late = interactions[time_column].to_numpy() >= cutoff
    return Split(interactions[~late], interactions[late])


def recbole_counts(total: int, ratios: tuple[float, ...] = (0.8, 0.1, 0.1)) -> list[int]:
    """RecBole's `_calcu_split_ids` part sizes: floor for the later parts, the rest to the
    first, and a later part whose share is below one row gets one (taken from the first)."""
    counts = [int(ratio * total) for ratio in ratios]
    counts[0] = total - sum(counts[1:])
    for i in range(1, len(ratios)):
        if counts[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            counts[-i] += 1
            counts[0] -= 1
    return counts


def recbole_split(interactions: pd.DataFrame, user_column: str, seed: int = 42) -> Split:
    """Per user: random order, then 8:1:1 by `recbole_counts`."""
    rng = np.random.default_rng(seed)
    part = np.empty(len(interactions), dtype=np.int8)
    for rows in interactions.groupby(user_column, sort=True).indices.values():
        shuffled = rows[rng.permutation(len(rows))]
        train, valid, _ = recbole_counts(len(rows))
        part[shuffled[:train]] = 0
        part[shuffled[train:train + valid]] = 1
        part[shuffled[train + valid:]] = 2
    return Split(interactions[part == 0], interactions[part == 2], interactions[part == 1])


def validation_split(protocol: str, full: Split, time_column: str, seed: int = 42,
                     quantile: float = 0.8, user_column: Optional[str] = None) -> Split:
    """The validation split of one protocol, from its training part only (`quantile`: the
    time split's cutoff).

    A `recbole` split without a valid part (itself a validation split, whose references
    choose their settings on a split of its own) is split again by `recbole_split` of its
    train part (seed + 1; needs `user_column`).

    Returns:
      Split(train = the rest of train, eval = the validation part); for `recbole`, train as
      is and eval = RecBole's valid part (nothing else is masked then).
    """
    if protocol == "tfrs":
        return tfrs_split(full.train, seed + 1)
    if protocol in ("temporal", "history"):
        return temporal_split(full.train, time_column, quantile)
    if protocol == "recbole":
        if full.valid is not None:
            return Split(full.train, full.valid)
        if user_column is None:
            raise ValueError("a recbole split without a valid part needs user_column to be "
                             "split again")
        inner = recbole_split(full.train, user_column, seed + 1)
        return Split(inner.train, inner.valid)
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")


def split(protocol: str, interactions: pd.DataFrame, user_column: str, time_column: str,
          seed: int = 42, part: str = "eval", quantile: float = 0.8) -> Split:
    """The split of one protocol (see the module docstring; `quantile`: the time split's
    cutoff); `part` "validation" returns `validation_split` of it."""
    if part == "validation":
        return validation_split(protocol, split(protocol, interactions, user_column,
                                                time_column, seed, quantile=quantile),
                                time_column, seed, quantile)
    if protocol == "tfrs":
        return tfrs_split(interactions, seed)
    if protocol in ("temporal", "history"):
        return temporal_split(interactions, time_column, quantile)
    if protocol == "recbole":
        return recbole_split(interactions, user_column, seed)
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
