"""The strongest simple baselines of `twotower bench quality`, in numpy.

* P-TopFreq (Li et al. 2021, "A Next Basket Recommendation Reality Check"): the user's own
  most bought items first, by how often the user had them; then every other item by global
  training popularity (which also breaks ties). `ptopfreq` counts training events only;
  `asof_scorer` counts every event strictly before each scored event (train or eval, the
  history protocol's point in time), optionally each weighted 0.5^(age / half-life).
* EASE^R (Steck 2019): an item-item weight matrix B = argmin ||X - XB||² + λ||B||² with
  diag(B) = 0, in closed form: P = (XᵀX + λI)⁻¹, B = -P / diag(P) by column, diag 0; a user's
  scores are x_u B for their binary training row x_u. Only up to EASE_MAX_ITEMS items with
  training events (an [n, n] inverse).

Scores are float64 [rows, N] matrices for the protocols' rankers (an item ranks by how many
items score strictly higher), so every ranking below is strict: ties are broken by
popularity.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from benchmarks import history_eval

HALF_LIVES_DAYS = (7.0, 14.0, 30.0, 60.0, 120.0, 365.0)  # the decay's candidates
EASE_L2_WEIGHTS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)  # EASE's λ candidates
# EASE inverts an [n, n] matrix over the items with training events: ~2 s at 4,000 here,
# growing as n³ (~30 s at 10,000, ~18 min at the Complete Journey sample's 31,826).
EASE_MAX_ITEMS = 10_000
SECONDS_PER_DAY = 86_400.0
_UNSEEN = -1e6  # below every bought item's log weight
_TIE = 1e-9  # popularity's share in a bought item's score: breaks exact ties only


def popularity_order(train_counts: np.ndarray) -> np.ndarray:
    """[N] values in [0, 1) ordering items by training count, ties by catalogue order
    (the first item wins), so no two items tie."""
    order = np.lexsort((np.arange(len(train_counts)), -train_counts))
    values = np.empty(len(train_counts))
    values[order] = 1.0 - (np.arange(len(train_counts)) + 1.0) / (len(train_counts) + 1.0)
    return values


def frequency_scores(weights: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """[b, N] P-TopFreq scores from [b, N] non-negative (decayed) counts: items with a
    positive count by that count, all of them above the rest, which rank by `tie`."""
    bought = weights > 0
    logs = np.log(np.where(bought, weights, 1.0))
    return np.where(bought, logs + _TIE * tie, _UNSEEN + tie)


def positions(values: pd.Series, catalog_ids: Sequence[str]) -> np.ndarray:
    """[n] catalogue index of each value, -1 where it is not in the catalogue."""
    index = pd.Index(list(catalog_ids))
    return index.get_indexer(values.astype(str))


@dataclasses.dataclass
class UserScores:
    """Precomputed scores per known user, and the fallback ranking for any other user.

    Attributes:
      users: [U] user ids (str), row order of `scores`.
      scores: [U, N] float64 scores.
      fallback: [N] scores of a user without training events.
    """

    users: list[str]
    scores: np.ndarray
    fallback: np.ndarray

    def rows(self, user_ids: Sequence[str]) -> np.ndarray:
        """[b] row of each user in `vectors`' columns (U for an unknown user)."""
        index = pd.Index(self.users).get_indexer([str(user) for user in user_ids])
        return np.where(index >= 0, index, len(self.users))

    def vectors(self) -> np.ndarray:
        """[N, U + 1] item vectors: a user's one-hot query (`rows`) times them gives the
        user's scores, so the protocols' dot-product scorers rank by them."""
        return np.vstack([self.scores, self.fallback[np.newaxis, :]]).T

    def one_hot(self, user_ids: Sequence[str]) -> np.ndarray:
        """[b, U + 1] one-hot queries of some users."""
        out = np.zeros((len(user_ids), len(self.users) + 1))
        out[np.arange(len(user_ids)), self.rows(user_ids)] = 1.0
        return out

    def score_rows(self, user_ids: Sequence[str]) -> np.ndarray:
        """[b, N] scores of some users."""
        return np.vstack([self.scores, self.fallback[np.newaxis, :]])[self.rows(user_ids)]


def interaction_matrix(train: pd.DataFrame, catalog_ids: Sequence[str], user: str,
                       item: str, binary: bool) -> tuple[list[str], sparse.csr_matrix]:
    """Training users (sorted) and their [U, N] counts (1 per distinct item if binary);
    items outside the catalogue are dropped."""
    columns = positions(train[item], catalog_ids)
    kept = columns >= 0
    users, rows = np.unique(train[user].astype(str).to_numpy()[kept], return_inverse=True)
    matrix = sparse.csr_matrix((np.ones(int(kept.sum())), (rows, columns[kept])),
                               shape=(len(users), len(catalog_ids)))
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return list(users), matrix


def ptopfreq(train: pd.DataFrame, catalog_ids: Sequence[str], user: str, item: str,
             train_counts: np.ndarray) -> UserScores:
    """P-TopFreq from training counts: each user's bought items by count, then popularity."""
    tie = popularity_order(train_counts)
    users, counts = interaction_matrix(train, catalog_ids, user, item, binary=False)
    return UserScores(users, frequency_scores(counts.toarray(), tie), _UNSEEN + tie)


def asof_scorer(train: pd.DataFrame, evaluation: pd.DataFrame, catalog_ids: Sequence[str],
                user: str, item: str, time: str, train_counts: np.ndarray,
                half_life_days: Optional[float] = None
                ) -> Callable[[pd.DataFrame], np.ndarray]:
    """P-TopFreq as of each scored event: counts of the user's events strictly before it.

    Args:
      train, evaluation: Every event that may precede a scored one (rows of `evaluation`
        are scored; they also count for the user's later events).
      half_life_days: Each earlier event weighs 0.5^(age / half-life); None: all weigh 1.

    Returns:
      A scorer of eval rows ([b] rows -> [b, N] scores), as history_eval.evaluate takes.
    """
    tie = popularity_order(train_counts)
    events = pd.concat([train[[user, item, time]], evaluation[[user, item, time]]],
                       ignore_index=True)
    events = events.assign(_column=positions(events[item], catalog_ids))
    events = events[events["_column"] >= 0].sort_values(time, kind="stable")
    by_user = {str(key): (group[time].to_numpy(np.float64), group["_column"].to_numpy())
               for key, group in events.groupby(user, sort=False)}
    empty = (np.zeros(0), np.zeros(0, np.int64))

    def score(rows: pd.DataFrame) -> np.ndarray:
        weights = np.zeros((len(rows), len(catalog_ids)))
        for row, (key, moment) in enumerate(zip(rows[user].astype(str), rows[time])):
            times, columns = by_user.get(key, empty)
            before = int(np.searchsorted(times, float(moment), side="left"))
            if not before:
                continue
            if half_life_days is None:
                weight = np.ones(before)
            else:
                age = (float(moment) - times[:before]) / (half_life_days * SECONDS_PER_DAY)
                weight = np.exp2(-age)
            np.add.at(weights[row], columns[:before], weight)
        return frequency_scores(weights, tie)
    return score


def ease_weights(matrix: sparse.csr_matrix, l2: float) -> np.ndarray:
    """[n, n] EASE^R weights B of a [U, n] binary interaction matrix (module docstring)."""
    if matrix.shape[1] > EASE_MAX_ITEMS:
        raise ValueError(f"EASE inverts an [n, n] matrix: {matrix.shape[1]:,} items is above "
                         f"{EASE_MAX_ITEMS:,}")
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[np.newaxis, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


@dataclasses.dataclass
class Ease:
    """EASE^R over the catalogue items with training events (an item without any has a
    zero row and column in B, so leaving it out changes no score).

    Attributes:
      columns: [n] catalogue indices of the items with training events.
      weights: [n, n] B over those items.
      tie: [N] popularity_order, added to break ties (and to rank the other items).
    """

    columns: np.ndarray
    weights: np.ndarray
    tie: np.ndarray

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """[b, N] scores of [b, N] binary user vectors."""
        out = np.zeros(vectors.shape)
        out[:, self.columns] = vectors[:, self.columns] @ self.weights
        return out + _TIE * self.tie


def trained_items(train: pd.DataFrame, catalog_ids: Sequence[str], item: str) -> int:
    """How many catalogue items have training events (EASE's matrix size)."""
    columns = positions(train[item], catalog_ids)
    return len(np.unique(columns[columns >= 0]))


def ease(train: pd.DataFrame, catalog_ids: Sequence[str], user: str, item: str,
         train_counts: np.ndarray, l2: float) -> tuple[UserScores, Ease]:
    """EASE^R scores of the training users (ties and unknown users by popularity), and
    the fitted model."""
    tie = popularity_order(train_counts)
    users, matrix = interaction_matrix(train, catalog_ids, user, item, binary=True)
    columns = np.unique(matrix.indices)
    model = Ease(columns, ease_weights(matrix[:, columns], l2), tie)
    return UserScores(users, model.scores(matrix.toarray()), tie), model


def ease_history_scorer(model: Ease, catalog_ids: Sequence[str], had: pd.Series
                        ) -> Callable[[pd.DataFrame], np.ndarray]:
    """EASE^R as of each scored event: x B for x the items the user had before it
    (`had`: lists of item ids indexed like the scored rows)."""
    index = pd.Index(list(catalog_ids))

    def score(rows: pd.DataFrame) -> np.ndarray:
        vectors = np.zeros((len(rows), len(catalog_ids)))
        for row, items in enumerate(had.loc[rows.index]):
            columns = index.get_indexer([str(value) for value in items])
            vectors[row, columns[columns >= 0]] = 1.0
        return model.scores(vectors)
    return score


def event_recall(score_rows: Callable[[pd.DataFrame], np.ndarray], train: pd.DataFrame,
                 evaluation: pd.DataFrame, catalog_ids: Sequence[str], user: str, item: str,
                 exclude_train: bool, k: int = 10, chunk: int = 1024) -> float:
    """recall@k over the events of `evaluation` (the share whose item ranks in the top k),
    the user's training items removed first (never the true one) if `exclude_train`: the
    measure the baselines' settings are chosen by on a validation split."""
    truth = positions(evaluation[item], catalog_ids)
    trained: dict[str, np.ndarray] = {}
    if exclude_train:
        columns = positions(train[item], catalog_ids)
        for key, rows in pd.Series(columns).groupby(train[user].astype(str).to_numpy()):
            trained[str(key)] = rows.to_numpy()[rows.to_numpy() >= 0]
    hits = 0
    empty = np.zeros(0, np.int64)
    for start in range(0, len(evaluation), chunk):
        rows = evaluation.iloc[start:start + chunk]
        excluded = [trained.get(key, empty) for key in rows[user].astype(str)]
        rank = history_eval.ranks(score_rows(rows), truth[start:start + chunk], excluded)
        hits += int(np.sum(rank < k))
    return hits / max(len(evaluation), 1)


def choose(candidates: Sequence[float], measure: Callable[[float], float]
           ) -> tuple[float, dict[str, float]]:
    """The candidate with the highest measure (the first on a tie), and every measure."""
    found = {f"{candidate:g}": measure(candidate) for candidate in candidates}
    best = max(candidates, key=lambda candidate: found[f"{candidate:g}"])
    return best, found
