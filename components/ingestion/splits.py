"""Beam transforms that split tf.Examples into train and eval.

* `TimeSplit`: train holds events strictly before the cutoff, eval the events at or after
  it; the cutoff is an explicit timestamp or a quantile of the event times (computed with
  Beam's ApproximateQuantiles, exact for small inputs). This is how a retrieval model is
  used: trained on the past, asked about the future. A cutoff computed in the same
  pipeline is a side input of the partition, which makes a runner hold every Example until
  the quantile is known; ExampleGen therefore computes it in a pass of its own (with the
  column kinds: `RowQuantileCutoff` on raw rows) and splits with a fixed timestamp.
* `HashSplit`: a row goes to eval when a sha256 bucket of its serialised content is below
  `eval_percent`; deterministic across runs and runners.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterator, Mapping, Optional

from absl import logging
import apache_beam as beam
import tensorflow as tf

from components.ingestion import rows
from twotower.errors import IngestionError

QUANTILE_RESOLUTION = 1000


def event_time(example: tf.train.Example, time_feature: str) -> int:
    """Reads the integer event time of an Example.

    Raises:
      IngestionError: if the feature is missing or not an INT in this row.
    """
    feature = example.features.feature.get(time_feature)
    if feature is None or not feature.int64_list.value:
        kind = "missing" if feature is None else f"not an integer ({feature})"
        raise IngestionError(
            f"time split: feature '{time_feature}' is {kind.strip()} in a row; every row needs "
            f"an integer '{time_feature}' (or set data.split: hash)")
    return int(feature.int64_list.value[0])


def pick_quantile(quantiles: list[int], quantile: float) -> Iterator[int]:
    """Yields the value at `quantile` of ApproximateQuantiles' evenly spaced output.

    Yields nothing for an empty input (the empty split is reported by the ValidationGate).
    """
    if quantiles:
        yield int(quantiles[round(quantile * (len(quantiles) - 1))])


def is_eval_by_time(example: tf.train.Example, time_feature: str, cutoff: int) -> bool:
    return event_time(example, time_feature) >= cutoff


def hash_bucket(example: tf.train.Example, buckets: int = 100) -> int:
    """A stable bucket in [0, buckets) from the Example's deterministic serialisation."""
    digest = hashlib.sha256(example.SerializeToString(deterministic=True)).hexdigest()
    return int(digest, 16) % buckets


def row_event_time(row: Mapping[str, Any], time_feature: str) -> Iterator[int]:
    """The event time of a raw row (text or Python values) when it is an integer; nothing
    otherwise: such a row fails the split itself with event_time's message."""
    value = row.get(time_feature)
    if rows.value_kind(value) == rows.INT:
        yield int(value.decode() if isinstance(value, bytes) else value)


@beam.ptransform_fn
def TimeQuantile(times: beam.PCollection, quantile: float) -> beam.PCollection:  # pylint: disable=invalid-name
    """The value at `quantile` of integer event times: one element (none for no times)."""
    return (times
            | "Quantiles" >> beam.ApproximateQuantiles.Globally(QUANTILE_RESOLUTION + 1)
            | "PickCutoff" >> beam.FlatMap(pick_quantile, quantile))


@beam.ptransform_fn
def QuantileCutoff(examples: beam.PCollection, time_feature: str,  # pylint: disable=invalid-name
                   quantile: float) -> beam.PCollection:
    """The event time at `quantile` of Examples: one element (none for no Examples)."""
    return (examples
            | "EventTimes" >> beam.Map(event_time, time_feature)
            | "TimeQuantile" >> TimeQuantile(quantile))  # pylint: disable=no-value-for-parameter


@beam.ptransform_fn
def RowQuantileCutoff(raw_rows: beam.PCollection, time_feature: str,  # pylint: disable=invalid-name
                      quantile: float) -> beam.PCollection:
    """QuantileCutoff over raw rows (before typing, so it can share typing's first pass)."""
    return (raw_rows
            | "RowEventTimes" >> beam.FlatMap(row_event_time, time_feature)
            | "TimeQuantile" >> TimeQuantile(quantile))  # pylint: disable=no-value-for-parameter


@beam.ptransform_fn
def TimeSplit(examples: beam.PCollection, time_feature: str, quantile: float,  # pylint: disable=invalid-name
              cutoff_timestamp: Optional[int]) -> tuple[beam.PCollection, beam.PCollection]:
    """Splits Examples by event time; returns (train, eval)."""
    if cutoff_timestamp is not None:
        cutoff = examples.pipeline | "Cutoff" >> beam.Create([cutoff_timestamp])
    else:
        cutoff = examples | "QuantileCutoff" >> QuantileCutoff(time_feature, quantile)  # pylint: disable=no-value-for-parameter
    cutoff | "LogCutoff" >> beam.Map(_log_cutoff, time_feature)  # pylint: disable=expression-not-assigned
    train, evaluation = examples | "PartitionByTime" >> beam.Partition(
        lambda example, _, at: int(is_eval_by_time(example, time_feature, at)), 2,
        at=beam.pvalue.AsSingleton(cutoff))
    return train, evaluation


def _log_cutoff(cutoff: int, time_feature: str) -> None:
    logging.info("Time split: train has %s < %d, eval has %s >= %d",
                 time_feature, cutoff, time_feature, cutoff)


@beam.ptransform_fn
def HashSplit(examples: beam.PCollection, eval_percent: int  # pylint: disable=invalid-name
              ) -> tuple[beam.PCollection, beam.PCollection]:
    """Splits Examples by a content hash; returns (train, eval)."""
    train, evaluation = examples | "PartitionByHash" >> beam.Partition(
        lambda example, _: int(hash_bucket(example) < eval_percent), 2)
    return train, evaluation
