"""Gzipped TFRecord files of tf.Examples read as whole numpy columns.

Reading a million small records one proto at a time in Python takes minutes; parsing them in
batches with tf.io.parse_example takes seconds. Use this for tables that are read whole
anyway (a catalogue's frequency table, pool or embeddings), never for a split.
"""
from __future__ import annotations

from typing import Mapping, Union

import numpy as np
import tensorflow as tf

Feature = Union[tf.io.FixedLenFeature, tf.io.RaggedFeature]
READ_BATCH = 65536


def read_columns(file_pattern: str, spec: Mapping[str, Feature],
                 batch_size: int = READ_BATCH) -> dict[str, np.ndarray]:
    """Every record of the files matching `file_pattern` (in sorted file order), parsed.

    Args:
      file_pattern: Glob of gzipped TFRecord files.
      spec: tf.io parsing spec; a RaggedFeature column is padded to its longest row.

    Returns:
      name -> [R] (or [R, D] for ragged features) array; strings stay bytes.

    Raises:
      FileNotFoundError: if no file matches.
    """
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"no files match {file_pattern}")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in spec}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    for batch in records.map(lambda rows: tf.io.parse_example(rows, dict(spec))):
        for name, value in batch.items():
            dense = value.to_tensor() if isinstance(value, tf.RaggedTensor) else value
            parts[name].append(dense.numpy())
    return {name: np.concatenate(values) if values else _empty(spec[name])
            for name, values in parts.items()}


def _empty(feature: Feature) -> np.ndarray:
    """A column of no rows (the files hold no records)."""
    dtype = object if feature.dtype == tf.string else feature.dtype.as_numpy_dtype
    return np.zeros((0,) if isinstance(feature, tf.io.FixedLenFeature) else (0, 0), dtype)
