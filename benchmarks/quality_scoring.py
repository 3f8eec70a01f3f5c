"""How `twotower bench quality` turns a scorer into report keys: the raw query batch of
some rows, the temporal and TFRS protocols' keys from metrics.evaluate, and the RecBole
protocol's per-user metrics."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd


def query_batch(frame: pd.DataFrame, contract: Any) -> dict[str, Any]:
    """Raw query features {name: [U]} of some rows, missing values as the parser's."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from components.trainer import features  # pylint: disable=import-outside-toplevel
    batch = {}
    for name in contract.query_names:
        feature = contract.by_name(name)
        column = frame[name]
        if feature.is_history:
            width = max(1, max(len(items) for items in column))
            batch[name] = tf.constant([list(items) + [""] * (width - len(items))
                                       for items in column], tf.string)
            continue
        values = column.where(column.notna(), features.missing_value(feature))
        batch[name] = tf.constant(values.to_numpy().astype(
            object if feature.dtype == "string" else feature.dtype), features.tf_dtype(feature))
    return batch


def protocol_metrics(prepared: Any, scores: dict[str, float]) -> dict[str, float]:
    """The report keys of one protocol from metrics.evaluate's output."""
    if prepared.name == "tfrs":
        return {f"tfrs_top_{k}": scores[f"tfrs_recall_at_{k}"] for k in (10, 50, 100)}
    if prepared.name == "temporal":
        out = {f"temporal_recall_at_{k}": scores[f"filtered_recall_at_{k}"] for k in (10, 50, 100)}
        out["temporal_ndcg_at_10"] = scores["filtered_ndcg_at_10"]
        out.update({f"temporal_unfiltered_recall_at_{k}": scores[f"tfrs_recall_at_{k}"]
                    for k in (10, 100)})
        out["temporal_unfiltered_ndcg_at_10"] = scores["tfrs_ndcg_at_10"]
        out["temporal_coverage_at_100"] = scores["coverage_at_100"]
        out["temporal_popularity_at_100"] = scores["popularity_at_100"]
        out["temporal_tail_share_at_100"] = scores["tail_share_at_100"]
        return out
    return {}


def recbole_metrics(prepared: Any, catalog_ids: Sequence[str], item_vectors: np.ndarray,
                    query_vectors: Any, contract: Any) -> dict[str, float]:
    """Per-user recall@10 / NDCG@10 on RecBole's test part, train and valid items masked.

    Args:
      prepared: The recbole protocol's data.
      catalog_ids: [N] ids in the row order of item_vectors.
      item_vectors: [N, D] index vectors.
      query_vectors: Raw query features {name: [U]} -> [U, D].
      contract: Names the columns.
    """
    from components.trainer import metrics  # pylint: disable=import-outside-toplevel
    user, item = contract.user_id, contract.item_id
    position = {item: index for index, item in enumerate(catalog_ids)}
    test = prepared.split.eval.groupby(user)[item].apply(list)
    history = pd.concat([prepared.split.train, prepared.split.valid]).groupby(user)[item]
    masked = {user: [position[i] for i in items if i in position] for user, items in history}
    users = test.index.tolist()
    first = prepared.split.eval.drop_duplicates(user).set_index(user, drop=False).loc[users]
    batch = query_batch(first, contract)
    relevant = [[position[i] for i in items if i in position] for items in test.tolist()]
    scores = metrics.per_user_metrics(np.asarray(query_vectors(batch)), item_vectors, relevant,
                                      [masked.get(user, []) for user in users])
    return {"recbole_recall_at_10": scores["recall_at_10"],
            "recbole_ndcg_at_10": scores["ndcg_at_10"], "recbole_users": scores["users"]}
