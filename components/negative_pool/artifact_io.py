"""Reads the files of a NegativePool artifact (layout in this folder's README)."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

import tensorflow as tf

from components import keys


def records_pattern(uri: str, folder: str) -> str:
    return os.path.join(uri, folder, f"*{keys.POOL_RECORD_SUFFIX}")


def read_stats(uri: str) -> dict[str, Any]:
    """stats.json: catalogue size, never-seen items, unknown ids, pool size, settings."""
    with tf.io.gfile.GFile(os.path.join(uri, keys.POOL_STATS_FILE)) as f:
        return json.load(f)


def read_vocabulary(uri: str, feature: str) -> list[tuple[str, int]]:
    """(id, count) pairs of `vocab/<feature>.tsv` in index order."""
    with tf.io.gfile.GFile(os.path.join(uri, keys.POOL_VOCAB_DIR, f"{feature}.tsv")) as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip("\n")]
    return [(identifier, int(count)) for identifier, count in pairs]


def iter_examples(pattern: str) -> Iterator[tf.train.Example]:
    """Every tf.Example in the gzipped TFRecord files matching `pattern`."""
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
            yield tf.train.Example.FromString(record)


def read_frequencies(uri: str) -> dict[str, dict[str, float]]:
    """item_id -> {train_count, in_catalog, probability, pool_probability}."""
    table = {}
    for example in iter_examples(records_pattern(uri, keys.POOL_FREQUENCIES_DIR)):
        features = example.features.feature
        table[features[keys.POOL_ITEM_ID].bytes_list.value[0].decode()] = {
            keys.POOL_COUNT: features[keys.POOL_COUNT].int64_list.value[0],
            keys.POOL_IN_CATALOG: features[keys.POOL_IN_CATALOG].int64_list.value[0],
            keys.POOL_PROBABILITY: features[keys.POOL_PROBABILITY].float_list.value[0],
            keys.POOL_POOL_PROBABILITY: features[keys.POOL_POOL_PROBABILITY].float_list.value[0],
        }
    return table


def read_pool(uri: str) -> list[tf.train.Example]:
    """The pool rows: catalogue features plus train_count and pool_probability."""
    return list(iter_examples(records_pattern(uri, keys.POOL_POOL_DIR)))
