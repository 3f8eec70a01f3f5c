"""What evaluating on one eval split needs of its train split, read in one pass: each item's
training count and the training items of the users in the eval sample (the items the
filtered protocol removes from their rankings). The Trainer's evaluation reads it once; the
ModelValidator reads it once and shares it between every model it scores there."""
from __future__ import annotations

import collections
import dataclasses
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from components.trainer import eval_sample, features, metrics
from twotower.contract import Contract

TRAIN_BATCH = 8192


@dataclasses.dataclass(frozen=True)
class TrainHistory:
    """What scoring one eval split needs of its train split, read in one pass and shared by
    every model scored there (the ModelValidator's candidate, MostPop and baseline): the
    training count of each item and the training items of the users in the eval sample.
    Items are kept by id, so models with different catalogues can share it.

    Attributes:
      id_names: (user id feature or None, item id feature) it was read with.
      reference: [R] item ids (bytes) counted by position: the first model's catalogue.
      reference_counts: [R] training interactions of each reference item.
      other_counts: Training interactions of items outside the reference.
      users: [U] distinct user ids (bytes) of the sampled eval rows; None if anonymous.
      pair_users: [P] user id (bytes) of each training interaction of `users`.
      pair_items: [P] item id (bytes) of the same interactions.
    """
    id_names: tuple[Optional[str], str]
    reference: pd.Index
    reference_counts: np.ndarray
    other_counts: dict[bytes, int]
    users: Optional[np.ndarray]
    pair_users: np.ndarray
    pair_items: np.ndarray

    def counts(self, catalog_ids: Sequence[str]) -> np.ndarray:
        """[N] training counts of `catalog_ids`' items."""
        encoded = [item.encode() for item in catalog_ids]
        position = self.reference.get_indexer(encoded)
        counts = np.where(position >= 0, self.reference_counts[np.maximum(position, 0)], 0.0)
        missing = np.flatnonzero(position < 0)
        if len(missing):
            counts[missing] = pd.Series(self.other_counts, dtype=np.float64).reindex(
                [encoded[index] for index in missing]).fillna(0.0).to_numpy()
        return counts

    def seen(self, catalog_ids: Sequence[str]
             ) -> tuple[tf.keras.layers.StringLookup, tf.RaggedTensor]:
        """metrics.seen_from_pairs of the sampled users' training items in `catalog_ids`."""
        if self.users is None:
            return metrics.no_history()
        items = pd.Index([item.encode() for item in catalog_ids]).get_indexer(self.pair_items)
        return metrics.seen_from_pairs(self.pair_users[items >= 0], items[items >= 0])

    def serves(self, contract: Contract) -> bool:
        """True when a model of `contract` names its ids as this history was read."""
        return self.id_names == (contract.user_id, contract.item_id)


def read_train_history(train_pattern: Union[str, Sequence[str]], eval_pattern: str,
                       sample: Optional[int], catalog_ids: Sequence[str],
                       contract: Contract) -> TrainHistory:
    """TrainHistory of an eval split's sample (eval_sample) and its train split: one pass
    over the sampled eval users, one over the train split.

    Args:
      train_pattern: Train split files, or a list of patterns (a window of spans).
      eval_pattern: Eval split files.
      sample: As evaluate_export's.
      catalog_ids: [R] item ids counted by position (any catalogue; the candidate's).
      contract: Names the id features.
    """
    reference = pd.Index([item.encode() for item in catalog_ids])
    counts = np.zeros(len(reference), np.float64)
    other: collections.Counter = collections.Counter()
    names: tuple[str, ...] = (contract.item_id,)
    users, wanted = None, None
    if contract.user_id is not None:
        names = (contract.user_id, contract.item_id)
        users = metrics.unique_users(
            features.dataset(eval_pattern, TRAIN_BATCH, False, 0, contract, (contract.user_id,),
                             rate=eval_sample.sample_rate(eval_pattern, sample)),
            contract.user_id)
        wanted = pd.Index(users).unique()
    user_parts, item_parts = [], []
    for batch in features.dataset(train_pattern, TRAIN_BATCH, False, 0, contract, names):
        items = batch[contract.item_id].numpy()
        position = reference.get_indexer(items)
        counts += np.bincount(position[position >= 0], minlength=len(reference))
        other.update(items[position < 0].tolist())
        if wanted is not None:
            batch_users = batch[contract.user_id].numpy()
            keep = wanted.get_indexer(batch_users) >= 0
            user_parts.append(batch_users[keep])
            item_parts.append(items[keep])
    empty = np.array([], dtype=object)
    return TrainHistory((contract.user_id, contract.item_id), reference, counts, dict(other),
                        users, np.concatenate(user_parts) if user_parts else empty,
                        np.concatenate(item_parts) if item_parts else empty)
