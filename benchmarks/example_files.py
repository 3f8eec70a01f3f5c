"""Writes pandas tables as ExampleGen-style split folders of gzipped tf.Example records.

Benchmarks of stages after ingestion use this to make large inputs quickly: columns are
converted to Arrow in bulk and encoded by tfx_bsl's C++ encoder, not one proto at a time.
"""
from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import tensorflow as tf
from tfx_bsl.coders import example_coder

from twotower import keys
from twotower.contract import IGNORED, INT64, STRING

if TYPE_CHECKING:
    from twotower.contract import Contract
    from twotower.config import PoolConfig
    from tfx.types import standard_artifacts

def _list_column(series: pd.Series) -> pa.Array:
    """A list of strings per row (a history) as a large_list of binary; empty lists become
    null rows (the feature is absent, as ingestion writes it)."""
    lengths = series.map(len).to_numpy()
    flat = [value.encode("utf-8") for values in series for value in values]
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    return pa.LargeListArray.from_arrays(offsets, pa.array(flat, type=pa.large_binary()),
                                         mask=pa.array(lengths == 0))


def _column(series: pd.Series) -> pa.Array:
    """One value per row as a large_list array; missing values become null rows."""
    if series.dtype == object and len(series) and isinstance(series.iloc[0], list):
        return _list_column(series)
    present = series.notna().to_numpy()
    values = series[present]
    if series.dtype == object:
        array = pa.array(values.astype(str).str.encode("utf-8").tolist(), type=pa.large_binary())
    elif series.dtype.kind == "f":
        array = pa.array(values.to_numpy(dtype=np.float32), type=pa.float32())
    else:
        array = pa.array(values.to_numpy(dtype=np.int64), type=pa.int64())
    offsets = pa.array(np.concatenate([[0], np.cumsum(present)]).astype(np.int64))
    return pa.LargeListArray.from_arrays(offsets, array, mask=pa.array(~present))


def typed_frame(frame: pd.DataFrame, contract: "Contract") -> pd.DataFrame:
    """The frame with every declared column typed as the contract says (string, nullable
    int64, float32), so `frame_to_examples` writes what ExampleGen would; empty strings and
    NaN are missing values."""
    typed = frame.copy()
    for feature in contract.features:
        if feature.name not in typed or feature.role == IGNORED or feature.is_history:
            continue
        column = typed[feature.name].replace("", np.nan)
        if feature.dtype == STRING:
            typed[feature.name] = column.map(lambda v: v if pd.isna(v) else str(v)).astype(object)
        elif feature.dtype == INT64:
            typed[feature.name] = pd.to_numeric(column).astype("Int64")
        else:
            typed[feature.name] = pd.to_numeric(column).astype(np.float64)
    return typed


def frame_to_examples(frame: pd.DataFrame) -> list[bytes]:
    """Serialised tf.Examples, one per row (strings as bytes, floats as float32)."""
    batch = pa.RecordBatch.from_arrays([_column(frame[c]) for c in frame.columns],
                                       list(frame.columns))
    return example_coder.RecordBatchToExamples(batch)


def write_split(frames: Iterable[pd.DataFrame], examples_dir: pathlib.Path, split: str) -> int:
    """Writes `<examples_dir>/Split-<split>/data_tfrecord-NNNNN.gz`, one file per frame (as
    ExampleGen shards large splits); returns the row count."""
    folder = examples_dir / f"Split-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for shard, frame in enumerate(frames):
        path = os.path.join(folder, f"data_tfrecord-{shard:05d}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for record in frame_to_examples(frame):
                writer.write(record)
        rows += len(frame)
    return rows


def examples_artifact(uri: pathlib.Path, splits: Iterable[str]) -> "standard_artifacts.Examples":
    """An Examples artifact over a folder written by `write_split`."""
    from tfx.types import artifact_utils, standard_artifacts  # pylint: disable=import-outside-toplevel
    artifact = standard_artifacts.Examples()
    artifact.uri = str(uri)
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
    return artifact


def build_pool_artifact(interactions_dir: pathlib.Path, items_dir: pathlib.Path,
                        out_dir: pathlib.Path, settings: "PoolConfig", contract: "Contract",
                        beam_args: Sequence[str] = ()) -> str:
    """Runs the NegativePoolBuilder executor (in this process) on folders with a `train` and
    a `catalog` split; returns the NegativePool artifact's URI.

    Args:
      interactions_dir: Examples folder with Split-train.
      items_dir: Examples folder with Split-catalog.
      out_dir: The artifact's folder.
      settings: The builder's parameters.
      contract: The feature set.
      beam_args: Beam pipeline arguments (default: Beam's in-process DirectRunner).
    """
    from tfx.dsl.components.base import base_beam_executor  # pylint: disable=import-outside-toplevel
    from components.negative_pool import executor  # pylint: disable=import-outside-toplevel
    from components.negative_pool.component import NegativePool  # pylint: disable=import-outside-toplevel
    pool = NegativePool()
    pool.uri = str(out_dir)
    os.makedirs(pool.uri, exist_ok=True)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args))
    executor.Executor(context).Do(
        {keys.INTERACTIONS_KEY: [examples_artifact(interactions_dir, [keys.TRAIN_SPLIT])],
         keys.ITEMS_KEY: [examples_artifact(items_dir, [keys.CATALOG_SPLIT])]},
        {keys.NEGATIVE_POOL_KEY: [pool]}, executor.properties_from_config(settings, contract))
    return pool.uri
