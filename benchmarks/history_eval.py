"""The evaluation protocol for models with the user's history (docs/benchmarks.md).

On the temporal split, each eval event is scored with the query as of that moment: its own
row's query features, including the history of the user's earlier events (train or eval,
the same `histories` function ingestion uses). Items the user already had before the event
(train or earlier eval) do not compete; the true item never is removed. recall@K is the share
of eval events whose item ranks in the top K, NDCG@10 averages 1 / log2(rank + 2) for
ranks < 10; both also for warm users (with training events) and cold users (without).
Reference rows computed the same way: MostPop (training counts, as of the cutoff) and
ItemKNN-history (cosine similarity of items' training co-occurrence over users; an item's
score is its summed similarity to the user's last 50 items before the event).
On repeat-purchase data (`evaluate` given no exclusions) every item is ranked, as served.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import sparse


KS = (10, 100)
ITEMKNN_HISTORY = 50
CHUNK = 1024


def add_histories(frame: pd.DataFrame, user: str, item: str, time: str, name: str,
                  length: int) -> pd.DataFrame:
    """The frame with column `name`: each row's user's last `length` items strictly before
    it (a list of str, most recent last), as ingestion computes it."""
    from components.ingestion import history as history_lib  # pylint: disable=import-outside-toplevel (imports Beam)
    values: list[list[str]] = [[] for _ in range(len(frame))]
    times, items = frame[time].to_numpy(), frame[item].astype(str).to_numpy()
    # One str per distinct item: 300k rows x 500-item histories are 150M references, which
    # as separate strings took the 24 GB machine's memory.
    names: dict[bytes, str] = {}
    for rows in frame.groupby(user, sort=False).indices.values():
        events = [(int(times[row]), items[row].encode()) for row in rows]
        for row, found in zip(rows, history_lib.histories(events, length)):
            values[row] = [names.setdefault(value, value.decode()) for value in found]
    return frame.assign(**{name: values})


def training_histories(train: pd.DataFrame, evaluation: pd.DataFrame, user: str, item: str,
                       time: str, length: int) -> list[list[str]]:
    """For each eval row (in order), its user's last `length` training items (most recent
    last, as ingestion orders a history): what a model serving from the training data alone
    knows of the user at the cutoff; [] for a user without training events."""
    from components.ingestion import history as history_lib  # pylint: disable=import-outside-toplevel (imports Beam)
    times, items = train[time].to_numpy(), train[item].astype(str).to_numpy()
    known: dict[Any, list[str]] = {}
    for user_id, rows in train.groupby(user, sort=False).indices.items():
        events = [(int(times[row]), items[row].encode()) for row in rows]
        after = (max(event_time for event_time, _ in events) + 1, b"")
        known[user_id] = [value.decode()
                          for value in history_lib.histories(events + [after], length)[-1]]
    empty: list[str] = []
    return [known.get(user_id, empty) for user_id in evaluation[user]]


def earlier_items(train: pd.DataFrame, evaluation: pd.DataFrame, user: str, item: str,
                  time: str) -> list[list[str]]:
    """For each eval row (in order), every item its user had strictly before it."""
    everything = pd.concat([train[[user, item, time]], evaluation[[user, item, time]]],
                           ignore_index=True)
    had = add_histories(everything, user, item, time, "_had", 1 << 30)["_had"]
    return had.iloc[len(train):].tolist()


def ranks(scores: np.ndarray, truth: np.ndarray, excluded: Sequence[Sequence[int]]
          ) -> np.ndarray:
    """[b] rank of each row's true item among items not excluded (the true one never is);
    a true index of -1 (not in the catalogue) is a miss at every K."""
    scores = scores.astype(np.float64, copy=True)
    for row, items in enumerate(excluded):
        keep = [index for index in items if index != truth[row]]
        scores[row, keep] = -np.inf
    safe = np.maximum(truth, 0)
    true_scores = scores[np.arange(len(truth)), safe][:, np.newaxis]
    rank = (scores > true_scores).sum(axis=1)
    return np.where(truth >= 0, rank, np.iinfo(np.int64).max)


def summarise(all_ranks: np.ndarray, warm: np.ndarray) -> dict[str, float]:
    """history_recall_at_K, history_ndcg_at_10, each also _warm / _cold, and the counts."""
    out: dict[str, float] = {}
    for suffix, rows in (("", np.ones_like(warm)), ("_warm", warm), ("_cold", ~warm)):
        chosen = all_ranks[rows]
        if not len(chosen):
            continue
        for k in KS:
            out[f"history_recall_at_{k}{suffix}"] = float(np.mean(chosen < k))
        hit = chosen < 10
        gains = np.zeros(len(chosen))
        gains[hit] = 1.0 / np.log2(chosen[hit] + 2.0)
        out[f"history_ndcg_at_10{suffix}"] = float(np.mean(gains))
    out["history_events"], out["history_events_cold"] = float(len(warm)), float((~warm).sum())
    return out


def evaluate(score_rows: Callable[[pd.DataFrame], np.ndarray], train: pd.DataFrame,
             evaluation: pd.DataFrame, catalog_ids: Sequence[str], user: str, item: str,
             time: str, had: Optional[list[list[str]]] = None) -> dict[str, float]:
    """The protocol's metrics for a scorer of eval rows ([b] rows -> [b, N] scores)."""
    return summarise(*event_ranks(score_rows, train, evaluation, catalog_ids, user, item,
                                  time, had))


def event_ranks(score_rows: Callable[[pd.DataFrame], np.ndarray], train: pd.DataFrame,
                evaluation: pd.DataFrame, catalog_ids: Sequence[str], user: str, item: str,
                time: str, had: Optional[list[list[str]]] = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """([n] rank of each eval event's true item, [n] whether its user has training events),
    in the eval rows' order: what `evaluate` summarises, kept per event for paired
    comparisons of two scorers."""
    position = {value: index for index, value in enumerate(catalog_ids)}
    had = had if had is not None else earlier_items(train, evaluation, user, item, time)
    truth = np.array([position.get(str(value), -1) for value in evaluation[item]])
    excluded = [[position[value] for value in items if value in position] for items in had]
    parts = []
    for start in range(0, len(evaluation), CHUNK):
        stop = start + CHUNK
        parts.append(ranks(score_rows(evaluation.iloc[start:stop]), truth[start:stop],
                           excluded[start:stop]))
    warm = evaluation[user].isin(set(train[user])).to_numpy()
    return np.concatenate(parts), warm


def itemknn_similarity(train: pd.DataFrame, catalog_ids: Sequence[str], user: str,
                       item: str) -> sparse.csr_matrix:
    """[N, N] cosine similarity of items' user vectors (binary, training), no self-similarity."""
    position = {value: index for index, value in enumerate(catalog_ids)}
    pairs = train[[user, item]].drop_duplicates()
    pairs = pairs[pairs[item].astype(str).isin(position)]
    users, user_rows = np.unique(pairs[user].astype(str), return_inverse=True)
    columns = pairs[item].astype(str).map(position).to_numpy()
    matrix = sparse.csr_matrix((np.ones(len(pairs)), (user_rows, columns)),
                               shape=(len(users), len(catalog_ids)))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0))).ravel()
    normalised = matrix.multiply(1.0 / np.maximum(norms, 1e-12)[np.newaxis, :]).tocsc()
    similarity = (normalised.T @ normalised).tocsr()
    similarity = (similarity - sparse.diags(similarity.diagonal())).tocsr()
    similarity.eliminate_zeros()
    return similarity


def itemknn_scorer(similarity: sparse.csr_matrix, catalog_ids: Sequence[str],
                   histories: pd.Series) -> Callable[[pd.DataFrame], np.ndarray]:
    """Scores eval rows by summed similarity to their last ITEMKNN_HISTORY items
    (`histories` indexed like the eval rows)."""
    position = {value: index for index, value in enumerate(catalog_ids)}

    def score(rows: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(rows), len(catalog_ids)))
        for row, items in enumerate(histories.loc[rows.index]):
            indices = [position[value] for value in items[-ITEMKNN_HISTORY:] if value in position]
            if indices:
                out[row] = np.asarray(similarity[indices].sum(axis=0)).ravel()
        return out
    return score
