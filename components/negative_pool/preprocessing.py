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


def decoded_features(features: Sequence[FeatureSpec]) -> dict[str, int]:
    """name -> TFMD type of the features whose statistics are computed (for `Decode`)."""
    return {feature.name: _SCHEMA_TYPES[feature.dtype] for feature in features}


class _FeatureStats(beam.DoFn):
    """Per record batch: (feature, (token, count) table) pre-aggregated over a bundle, and
    (feature, [values]) batches of numeric values (tagged NUMBERS)."""

    NUMBERS = "numbers"

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        self._features = list(features)
        self._counts: dict[str, list[pa.StructArray]] = {}

    def start_bundle(self) -> None:
        self._counts = {}

    def process(self, decoded: pa.RecordBatch) -> Iterator[Any]:
        for feature in self._features:
            column = decoded.column(decoded.schema.get_field_index(feature.name))
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
            summed = counting.sum_counts(parts)
            if summed.num_rows:
                yield counting.global_window_value((name, summed))
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
      interactions: Record batches of the train split (counting.Decode) holding at least
        the query features of `tower_features`.
      catalog: Record batches of the catalogue holding at least its candidate features.
      contract: The feature set.
      vocabulary_lines: pool.vocabulary_lines(counts table, min_count, max_tokens).
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
    numbers = [stream[_FeatureStats.NUMBERS] for stream in streams] | "FlattenNumbers" >> (
        beam.Flatten())
    specs = {feature.name: feature for feature in contract.features}

    def lines(name: str, parts: Sequence[pa.Table]) -> tuple[str, list[str]]:
        feature = specs[name]
        return name, vocabulary_lines(counting.merge_counts(list(parts)),
                                      feature.min_count or 1, feature.max_tokens)

    vocabularies = ([stream.counts for stream in streams]
                    | "FlattenCounts" >> beam.Flatten()
                    | "GroupTokens" >> beam.GroupByKey()
                    | "VocabularyLines" >> beam.MapTuple(lines))
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
