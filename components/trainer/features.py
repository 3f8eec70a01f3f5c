"""Raw features of the two towers, as the data contract declares them (twotower/contract.py).

Parsing: every declared feature is a scalar per row with the contract's dtype (string,
int64, float32), except a history: a list of item ids, batched as [B, L] strings padded
with "". A missing value gets MISSING_STRING / MISSING_INT / MISSING_FLOAT, which the
towers treat as its own token or bucket (requests may send the same values).

Training rows take their query features (user attributes and per-event context) from the
interaction row and their candidate features from the catalogue row of the item
(`CatalogLookup`), so interaction logs need not carry item features and training sees the
same item features the index is built from.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from components.trainer import eval_sample
from twotower.contract import FLOAT32, INT64, Contract, FeatureSpec

MISSING_STRING = ""
MISSING_INT = np.iinfo(np.int64).min
MISSING_FLOAT = float("nan")
DTYPES = {"string": tf.string, INT64: tf.int64, FLOAT32: tf.float32}


def missing_value(feature: FeatureSpec):
    """The value a missing `feature` is parsed as."""
    return {INT64: MISSING_INT, FLOAT32: MISSING_FLOAT}.get(feature.dtype, MISSING_STRING)


def tf_dtype(feature: FeatureSpec) -> tf.DType:
    return DTYPES[feature.dtype]


def parse_spec(contract: Contract, names: Sequence[str]) -> dict[str, Any]:
    """tf.io parsing spec of some declared features, with their missing values (a history
    is a variable-length list)."""
    spec: dict[str, Any] = {}
    for name in names:
        feature = contract.by_name(name)
        if feature.is_history:
            spec[name] = tf.io.RaggedFeature(tf.string)
        else:
            spec[name] = tf.io.FixedLenFeature([], tf_dtype(feature),
                                               default_value=missing_value(feature))
    return spec


def spec_of(feature: FeatureSpec) -> tf.TensorSpec:
    """Serving input of one feature: [B], or [B, L] strings padded with "" for a history."""
    shape = [None, None] if feature.is_history else [None]
    return tf.TensorSpec(shape, tf_dtype(feature), name=feature.name)


def input_specs(contract: Contract, names: Sequence[str]) -> dict[str, tf.TensorSpec]:
    """Serving input signature: one tensor per feature, named as the feature."""
    return {name: spec_of(contract.by_name(name)) for name in names}


def default_inputs(specs: Mapping[str, tf.TensorSpec], rows: int = 1) -> dict[str, tf.Tensor]:
    """`rows` rows of missing values for every input (to build a model's weights)."""
    values = {tf.string: MISSING_STRING, tf.int64: MISSING_INT, tf.float32: MISSING_FLOAT}
    return {name: tf.fill([rows] + [1] * (len(spec.shape) - 1),
                          tf.constant(values[spec.dtype], spec.dtype))
            for name, spec in specs.items()}


def densify(batch: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    """Ragged lists (histories) -> [B, L] strings padded with "" (at least one column), the
    form the serving signature takes."""
    out = {}
    for name, values in batch.items():
        if isinstance(values, tf.RaggedTensor):
            dense = values.to_tensor(default_value=MISSING_STRING)
            values = tf.pad(dense, [[0, 0], [0, tf.maximum(1 - tf.shape(dense)[1], 0)]],
                            constant_values=MISSING_STRING)
        out[name] = values
    return out


def select(features: Mapping[str, tf.Tensor], names: Sequence[str]) -> dict[str, tf.Tensor]:
    """The subset of a feature dict a tower needs."""
    return {name: features[name] for name in names}


class CatalogLookup:
    """Item id -> the item's candidate features, from catalogue columns held in memory.

    Ids missing from the catalogue get missing values (their id still reaches the tower).
    """

    def __init__(self, contract: Contract, columns: Mapping[str, np.ndarray]) -> None:
        """Args: contract: the feature set; columns: catalogue columns {name: [N]} holding
        at least the candidate features (item id included)."""
        self.item_id = contract.item_id
        self.names = [name for name in contract.candidate_names if name != self.item_id]
        ids = columns[self.item_id]
        self.index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids, tf.string),
                                                tf.range(len(ids), dtype=tf.int64)),
            default_value=len(ids))
        self.values = {}
        for name in self.names:
            feature = contract.by_name(name)
            padded = np.append(np.asarray(columns[name]), np.array(
                [missing_value(feature)], dtype=np.asarray(columns[name]).dtype))
            self.values[name] = tf.constant(padded, tf_dtype(feature))

    def __call__(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Adds the candidate features of batch[item_id] ([B] each) to a batch."""
        rows = self.index.lookup(batch[self.item_id])
        return {**batch, **{name: tf.gather(values, rows) for name, values in self.values.items()}}


def dataset(file_pattern: Union[str, Sequence[str]], batch_size: int, shuffle: bool, seed: int,
            contract: Contract, names: Sequence[str], max_rows: Optional[int] = None,
            catalog: Optional[CatalogLookup] = None, rate: float = 1.0) -> tf.data.Dataset:
    """Batches of parsed features from gzipped TFRecords of tf.Examples.

    Args:
      file_pattern: Glob of the split's files, or a list of globs (a window of spans).
      batch_size: Rows per batch; the last partial batch is dropped when shuffling
        (in-batch negatives need full batches).
      shuffle: Shuffle files and rows (training).
      seed: Shuffle seed.
      contract: The feature set.
      names: Features to parse from the records.
      max_rows: Only the first max_rows records (in file order); None reads all.
      catalog: Adds each row's candidate features from the catalogue (training).
      rate: Keep this share of the records, the same ones on every read
        (eval_sample.keep: the bounded evaluation's sample).

    Returns:
      Batches {name: [B]} of `names` (plus the candidate features with `catalog`).
    """
    spec = parse_spec(contract, names)
    files = tf.data.Dataset.list_files(file_pattern, shuffle=shuffle, seed=seed)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    records = eval_sample.keep(records, rate)
    if max_rows is not None:
        records = records.take(max_rows)
    if shuffle:
        records = records.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    parsed = records.batch(batch_size, drop_remainder=shuffle).map(
        lambda batch: densify(tf.io.parse_example(batch, spec)),
        num_parallel_calls=tf.data.AUTOTUNE)
    if catalog is not None:
        parsed = parsed.map(catalog, num_parallel_calls=tf.data.AUTOTUNE)
    return parsed.prefetch(tf.data.AUTOTUNE)


def interaction_names(contract: Contract) -> tuple[str, ...]:
    """What a training/eval row is parsed for: the query inputs and the item id."""
    return contract.query_names + (contract.item_id,)
