"""The bounded evaluation: a seeded sample of the eval split, and each metric's interval.

Exact full-catalogue scoring costs eval interactions x catalogue size, so by default
evaluation scores about `validation.max_eval_interactions` of them (null: all). A record is
kept iff a keyed hash of its bytes falls below rate = size / N, N being the split's record
count: every user's events are kept at the same rate (a heavy user keeps its share, no
more), and every reader of the same split (the Trainer; the ModelValidator's candidate,
baseline and MostPop) keeps the same records, so their metrics compare on the same events.

Each mean over events (recall@K, NDCG@10) comes with a 95% interval, `ci95` (its
half-width): the events are a sample of the users' behaviour, and one user's events are not
independent, so the standard error is clustered by user (by event without user ids).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import tensorflow as tf

HASH_BUCKETS = 1 << 30
HASH_KEY = (35, 20_000)  # fixed: every stage must keep the same records
KEEP_BATCH = 4096
Z95 = 1.959964


@functools.lru_cache(maxsize=64)
def _count(files: tuple[tuple[str, int, int], ...]) -> int:
    records = tf.data.TFRecordDataset([name for name, _, _ in files], compression_type="GZIP")
    # Counted in batches: a reduce step per record costs ~40 us (16 s for 400,000 records,
    # 0.6 s batched).
    return int(records.batch(KEEP_BATCH).reduce(
        np.int64(0), lambda count, batch: count + tf.shape(batch, out_type=tf.int64)[0]).numpy())


def split_files(file_pattern: Union[str, Sequence[str]]) -> tuple[tuple[str, int, int], ...]:
    """(name, size, modification time) of each file a split's pattern(s) match, sorted."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = []
    for name in sorted({name for pattern in patterns for name in tf.io.gfile.glob(pattern)}):
        stat = tf.io.gfile.stat(name)
        files.append((name, stat.length, stat.mtime_nsec))
    return tuple(files)


def count_records(file_pattern: Union[str, Sequence[str]]) -> int:
    """Records in a split's gzipped TFRecord files (counted once per process for the same
    files: the cache key holds each file's size and modification time)."""
    return _count(split_files(file_pattern))


def sample_rate(file_pattern: Union[str, Sequence[str]], size: Optional[int]) -> float:
    """The share of the split's records to keep for about `size` of them (1.0: all)."""
    if size is None:
        return 1.0
    return min(1.0, size / max(count_records(file_pattern), 1))


def expected_rows(file_pattern: Union[str, Sequence[str]], size: Optional[int]) -> int:
    """About how many records `sample_rate` keeps (for progress lines)."""
    return round(sample_rate(file_pattern, size) * count_records(file_pattern))


def keep(records: tf.data.Dataset, rate: float) -> tf.data.Dataset:
    """The records (serialised strings) whose keyed hash falls below `rate`, in their order.

    Hashed KEEP_BATCH records per op: a per-record `filter` costs ~25 us a record (most of
    a 2M-record eval split's reading time), a batch of hashes ~2 us a record.
    """
    if rate >= 1.0:
        return records
    threshold = tf.constant(int(rate * HASH_BUCKETS), tf.int64)

    def sample(batch: tf.Tensor) -> tf.Tensor:
        """[b] records -> the kept ones."""
        buckets = tf.strings.to_hash_bucket_strong(batch, HASH_BUCKETS, list(HASH_KEY))
        return tf.boolean_mask(batch, buckets < threshold)

    return records.batch(KEEP_BATCH).map(sample, num_parallel_calls=tf.data.AUTOTUNE,
                                         deterministic=True).unbatch()


def ci95(values: np.ndarray, groups: Optional[np.ndarray] = None) -> float:
    """Half-width of the 95% interval of mean(values), clustered by `groups`.

    Args:
      values: [n] per-event values (a hit 0/1, a gain).
      groups: [n] the user of each event, or None (independent events).

    Returns:
      Z95 x the standard error; 0.0 with fewer than two events or groups.
    """
    values = np.asarray(values, np.float64)
    n = len(values)
    if groups is None:
        return float(Z95 * values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    codes, uniques = pd.factorize(np.asarray(groups))
    g = len(uniques)
    if g < 2:
        return 0.0
    residual = (np.bincount(codes, values, minlength=g)
                - values.mean() * np.bincount(codes, minlength=g))
    return float(Z95 * np.sqrt(g / (g - 1) * np.sum(residual ** 2)) / n)
