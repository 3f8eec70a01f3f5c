"""Preprocessing statistics of the declared features, computed with Beam (docs/architecture.md).

For every feature of a tower (twotower/contract.py) except the two ids (whose vocabularies
pool.py builds from the id counts):
  * categorical, multi_categorical, text (unless hashed): a vocabulary of its values or
    tokens, most frequent first, capped by `max_tokens`, values below `min_count` left out;
  * numeric: percentiles (approximate, Beam's ApproximateQuantiles), mean and std, from which
    each feature's `buckets` quantile boundaries are taken.
Query features are counted over the train interactions, candidate features over the
catalogue (one row per item). Values are decoded in C++ (tfx_bsl) and tokenised with Arrow
compute, matching the towers' TF tokenisation (components/trainer/towers.py).
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Iterator, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from components.negative_pool import counting
from twotower.contract import (CANDIDATE, CATEGORICAL, NUMERIC, QUERY, TEXT, Contract,
                               FeatureSpec)

PERCENTILES = 101  # 0th..100th
_SCHEMA_TYPES = {"string": schema_pb2.BYTES, "int64": schema_pb2.INT, "float32": schema_pb2.FLOAT}


def tower_features(contract: Contract, role: str) -> list[FeatureSpec]:
    """The non-id features of one role that need statistics (vocabulary or numeric)."""
    return [feature for feature in contract.features if feature.role == role
            and (feature.has_vocabulary or feature.kind == NUMERIC)]


def tokens(column: pa.Array, feature: FeatureSpec) -> pa.Array:
    """The values or tokens of one decoded column (a list array) that its vocabulary counts.

    Mirrors towers.split_tokens / towers.categorical_value: text is lower-cased and split
    on ASCII whitespace, multi_categorical split on its separator, categorical cut to its
    prefix; empty tokens are dropped.
    """
    values = pc.cast(pc.list_flatten(column), pa.large_string())
    if feature.kind == TEXT:
        values = pc.list_flatten(pc.ascii_split_whitespace(pc.utf8_lower(values)))
    elif feature.kind == CATEGORICAL and feature.prefix:
        values = pc.utf8_slice_codeunits(values, 0, feature.prefix)
    elif feature.separator:
        values = pc.list_flatten(pc.split_pattern(values, pattern=feature.separator))
    if feature.kind != CATEGORICAL:
        values = pc.filter(values, pc.not_equal(values, ""))
    return pc.cast(values, pa.large_binary())


class _FeatureStats(beam.DoFn):
    """Per record batch: ((feature, token), count) pairs pre-aggregated over a bundle, and
    (feature, [values]) batches of numeric values (tagged NUMBERS)."""

    NUMBERS = "numbers"

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        self._features = list(features)
        self._decoder = None
        self._counts: dict[str, list[pa.StructArray]] = {}

    def setup(self) -> None:
        schema = schema_pb2.Schema(feature=[
            schema_pb2.Feature(name=feature.name, type=_SCHEMA_TYPES[feature.dtype])
            for feature in self._features])
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString())

    def start_bundle(self) -> None:
        self._counts = {}

    def process(self, batch: list[bytes]) -> Iterator[Any]:
        decoded = self._decoder.DecodeBatch(batch)
        for feature in self._features:
            index = decoded.schema.get_field_index(feature.name)
            if index < 0:
                continue
            column = decoded.column(index)
            if feature.kind == NUMERIC:
                values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
                values = values[np.isfinite(values.astype(np.float64))]
                if len(values):
                    yield beam.pvalue.TaggedOutput(self.NUMBERS, (feature.name, values.tolist()))
            else:
                self._counts.setdefault(feature.name, []).append(
                    pc.value_counts(tokens(column, feature)))

    def finish_bundle(self) -> Iterator[Any]:
        for name, parts in self._counts.items():
            for token, count in counting.sum_counts(parts):
                yield counting.global_window_value(((name, token), count))
        self._counts = {}


class _Moments(beam.CombineFn):
    """(count, sum, sum of squares) of batches of numbers."""

    def create_accumulator(self) -> tuple[int, float, float]:
        return 0, 0.0, 0.0

    def add_input(self, accumulator, values):
        n, total, squares = accumulator
        array = np.asarray(values, np.float64)
        return n + len(array), total + float(array.sum()), squares + float((array ** 2).sum())

    def merge_accumulators(self, accumulators):
        n, total, squares = 0, 0.0, 0.0
        for other_n, other_total, other_squares in accumulators:
            n, total, squares = n + other_n, total + other_total, squares + other_squares
        return n, total, squares

    def extract_output(self, accumulator):
        return accumulator


def boundaries(percentiles: Sequence[float], buckets: int) -> list[float]:
    """`buckets` quantile buckets from 0th..100th percentiles: the inner cut points at
    j/buckets (j = 1..buckets-1), duplicates dropped (a value held by many rows)."""
    cuts = [float(percentiles[round(j * (len(percentiles) - 1) / buckets)])
            for j in range(1, buckets)]
    return sorted(set(cuts))


def numeric_entry(name: str, percentiles: Sequence[float], moments: tuple[int, float, float],
                  buckets: int) -> dict[str, Any]:
    """The preprocessing.json entry of one numeric feature."""
    n, total, squares = moments
    mean = total / n if n else 0.0
    variance = max(squares / n - mean * mean, 0.0) if n else 0.0
    return {"boundaries": boundaries(percentiles, buckets) if len(percentiles) else [],
            "mean": mean, "std": math.sqrt(variance), "count": n}


@dataclasses.dataclass
class FeatureOutputs:
    """vocabularies: (feature, [lines]) per vocabulary feature; numeric: the numeric
    features' preprocessing.json entries as one dict."""

    vocabularies: beam.PCollection
    numeric: beam.PCollection


def build_feature_stats(interactions: beam.PCollection, catalog: beam.PCollection,
                        contract: Contract, vocabulary_lines: Any) -> FeatureOutputs:
    """Vocabularies and numeric statistics of every non-id tower feature.

    Args:
      interactions: Lists of serialised train tf.Examples (query features).
      catalog: Lists of serialised catalogue tf.Examples (candidate features).
      contract: The feature set.
      vocabulary_lines: pool.vocabulary_lines(counts, min_count, max_tokens).
    """
    streams = []
    for role, source, label in ((QUERY, interactions, "Query"), (CANDIDATE, catalog, "Item")):
        features = tower_features(contract, role)
        if features:
            streams.append(source | f"{label}FeatureStats" >> beam.ParDo(
                _FeatureStats(features)).with_outputs(_FeatureStats.NUMBERS, main="counts"))
    pipeline = interactions.pipeline
    if not streams:
        empty = pipeline | "NoFeatures" >> beam.Create([])
        return FeatureOutputs(empty, pipeline | "NoNumeric" >> beam.Create([{}]))
    counts = ([stream.counts for stream in streams] | "FlattenCounts" >> beam.Flatten()
              | "SumTokens" >> beam.CombinePerKey(sum))
    numbers = [stream[_FeatureStats.NUMBERS] for stream in streams] | "FlattenNumbers" >> (
        beam.Flatten())
    specs = {feature.name: feature for feature in contract.features}

    def lines(element: tuple[str, list]) -> tuple[str, list[str]]:
        name, pairs = element
        feature = specs[name]
        return name, vocabulary_lines(pairs, feature.min_count or 1, feature.max_tokens)

    vocabularies = (counts
                    | "ByFeature" >> beam.Map(lambda pair: (pair[0][0], (pair[0][1], pair[1])))
                    | "GroupTokens" >> beam.GroupByKey()
                    | "VocabularyLines" >> beam.Map(lambda element: lines(
                        (element[0], list(element[1])))))
    quantiles = numbers | "Percentiles" >> beam.ApproximateQuantiles.PerKey(
        PERCENTILES, input_batched=True)
    moments = numbers | "Moments" >> beam.CombinePerKey(_Moments())
    numeric = ({"quantiles": quantiles, "moments": moments}
               | "JoinNumeric" >> beam.CoGroupByKey()
               | "NumericEntry" >> beam.Map(lambda element: {element[0]: numeric_entry(
                   element[0], element[1]["quantiles"][0] if element[1]["quantiles"] else [],
                   element[1]["moments"][0], specs[element[0]].buckets)})
               | "NumericToList" >> beam.combiners.ToList()
               | "NumericDict" >> beam.Map(lambda parts: {k: v for part in parts
                                                          for k, v in part.items()}))
    return FeatureOutputs(vocabularies, numeric)


def numeric_json(entries: dict[str, Any]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True)
