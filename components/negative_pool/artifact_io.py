"""Reads the files of a NegativePool artifact (layout in this folder's README)."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from twotower import keys, records
from twotower import contract as contract_lib


def records_pattern(uri: str, folder: str) -> str:
    return os.path.join(uri, folder, f"*{keys.POOL_RECORD_SUFFIX}")


def read_stats(uri: str) -> dict[str, Any]:
    """stats.json: catalogue size, never-seen items, unknown ids, pool size, settings."""
    with tf.io.gfile.GFile(os.path.join(uri, keys.POOL_STATS_FILE)) as f:
        return json.load(f)


def read_vocabulary(uri: str, feature: str) -> list[tuple[str, int]]:
    """(value, count) pairs of `vocab/<feature>.tsv` in index order; empty when the feature
    had no values (no file)."""
    path = os.path.join(uri, keys.POOL_VOCAB_DIR, f"{feature}.tsv")
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        pairs = [line.rstrip("\n").rsplit("\t", 1) for line in f if line.strip("\n")]
    return [(identifier, int(count)) for identifier, count in pairs]


def write_contract(contract: contract_lib.Contract, folder: str) -> None:
    """Writes the feature set to <folder>/contract.json (a pool artifact or a model export)."""
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, keys.CONTRACT_FILE), "w") as f:
        f.write(json.dumps(contract.to_dict(), indent=2) + "\n")


def read_contract(folder: str) -> contract_lib.Contract:
    """The feature set a pool was built for, or a model was trained on."""
    path = os.path.join(folder, keys.CONTRACT_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} is missing: the artifact predates declared feature "
                                "sets; re-run the pipeline without warm start or caching")
    with tf.io.gfile.GFile(path) as f:
        return contract_lib.from_dict(json.load(f))


def read_numeric(uri: str) -> dict[str, dict[str, Any]]:
    """numeric.json: feature -> {boundaries, mean, std, count}; features without values
    are absent."""
    path = os.path.join(uri, keys.POOL_NUMERIC_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class Frequencies:
    """The item frequency table as columns, sorted by item id.

    Attributes:
      item_ids: [T] ids (str).
      counts: [T] training interactions.
      in_catalog: [T] bool.
      probability: [T] smoothed in-batch sampling probability p_freq.
      pool_probability: [T] pool sampling probability (0 outside the pool).
    """

    item_ids: np.ndarray
    counts: np.ndarray
    in_catalog: np.ndarray
    probability: np.ndarray
    pool_probability: np.ndarray

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """[N] row of each id in this table, -1 for ids it does not hold."""
        return pd.Index(self.item_ids).get_indexer(list(ids))


FREQUENCY_SPEC = {
    keys.POOL_ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    keys.POOL_COUNT: tf.io.FixedLenFeature([], tf.int64),
    keys.POOL_IN_CATALOG: tf.io.FixedLenFeature([], tf.int64),
    keys.POOL_PROBABILITY: tf.io.FixedLenFeature([], tf.float32),
    keys.POOL_POOL_PROBABILITY: tf.io.FixedLenFeature([], tf.float32),
}


def read_frequencies(uri: str) -> Frequencies:
    """item_frequencies/: train count, in-catalogue flag, p_freq and P_pool of every id."""
    columns = records.read_columns(records_pattern(uri, keys.POOL_FREQUENCIES_DIR),
                                   FREQUENCY_SPEC)
    ids = np.array([value.decode() for value in columns[keys.POOL_ITEM_ID]], dtype=object)
    order = np.argsort(ids, kind="stable")
    return Frequencies(ids[order], columns[keys.POOL_COUNT][order],
                       columns[keys.POOL_IN_CATALOG][order].astype(bool),
                       columns[keys.POOL_PROBABILITY][order],
                       columns[keys.POOL_POOL_PROBABILITY][order])


def read_pool(uri: str, spec: Mapping[str, tf.io.FixedLenFeature]) -> dict[str, np.ndarray]:
    """pool/: the pool rows' columns named in `spec` (catalogue features, train_count,
    pool_probability), in file order."""
    return records.read_columns(records_pattern(uri, keys.POOL_POOL_DIR), spec)
