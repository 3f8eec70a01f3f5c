"""Raw features of the two towers: parsing tf.Examples into tensors.

Query (user) features: user_id, age, gender, occupation, zip.
Candidate (item) features: item_id, title, genres ("|"-joined), release_year.
Missing values get a default ("" or 0), which the towers treat as their own token/bucket.
"""
from __future__ import annotations

from typing import Mapping, Optional

import tensorflow as tf

QUERY_FEATURES = ("user_id", "age", "gender", "occupation", "zip")
CANDIDATE_FEATURES = ("item_id", "title", "genres", "release_year")
INT_FEATURES = ("age", "release_year")


def feature_spec(names: tuple[str, ...]) -> dict[str, tf.io.FixedLenFeature]:
    """tf.io parsing spec with defaults for missing values."""
    return {name: tf.io.FixedLenFeature([], tf.int64, default_value=0) if name in INT_FEATURES
            else tf.io.FixedLenFeature([], tf.string, default_value="") for name in names}


ALL_SPEC = feature_spec(QUERY_FEATURES + CANDIDATE_FEATURES)


def parse_examples(serialized: tf.Tensor, names: tuple[str, ...] = QUERY_FEATURES
                   + CANDIDATE_FEATURES) -> dict[str, tf.Tensor]:
    """Parses a batch of serialised tf.Examples.

    Args:
      serialized: [B] string.
      names: Features to parse.

    Returns:
      name -> [B] tensor (int64 for age and release_year, string otherwise).
    """
    return tf.io.parse_example(serialized, {name: ALL_SPEC[name] for name in names})


def select(features: Mapping[str, tf.Tensor], names: tuple[str, ...]) -> dict[str, tf.Tensor]:
    """The subset of a feature dict a tower needs."""
    return {name: features[name] for name in names}


def dataset(file_pattern: str, batch_size: int, shuffle: bool, seed: int,
            names: tuple[str, ...] = QUERY_FEATURES + CANDIDATE_FEATURES,
            max_rows: Optional[int] = None) -> tf.data.Dataset:
    """Batches of parsed features from gzipped TFRecords of tf.Examples.

    Args:
      file_pattern: Glob of the split's files.
      batch_size: Rows per batch; the last partial batch is dropped when shuffling
        (in-batch negatives need full batches).
      shuffle: Shuffle files and rows (training).
      seed: Shuffle seed.
      names: Features to parse.
      max_rows: Only the first max_rows records (in file order); None reads all.
    """
    files = tf.data.Dataset.list_files(file_pattern, shuffle=shuffle, seed=seed)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if max_rows is not None:
        records = records.take(max_rows)
    if shuffle:
        records = records.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    return (records.batch(batch_size, drop_remainder=shuffle)
            .map(lambda batch: parse_examples(batch, names), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))
