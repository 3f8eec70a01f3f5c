"""Drift between two spans' statistics, measured with TFDV's drift comparators.

Categorical (string) features are compared by the L-infinity distance of their value
shares, numeric ones by the Jensen-Shannon divergence of their histograms; each feature
named in spans.drift_thresholds is measured and fails when above its threshold.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from twotower.errors import DataValidationError

L_INFINITY = "L-infinity distance"
JENSEN_SHANNON = "Jensen-Shannon divergence"
_MEASURES = {anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: L_INFINITY,
             anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JENSEN_SHANNON}
_STRING_TYPES = (statistics_pb2.FeatureNameStatistics.STRING,
                 statistics_pb2.FeatureNameStatistics.BYTES)


@dataclasses.dataclass(frozen=True)
class Drift:
    """One feature's distance between the previous span and this one."""

    feature: str
    measure: str
    distance: float
    threshold: float

    @property
    def exceeded(self) -> bool:
        return self.distance > self.threshold


def _feature_types(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, int]:
    types = {}
    for dataset in statistics.datasets:
        for feature in dataset.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            types[name] = feature.type
    return types


def drift_schema(statistics: statistics_pb2.DatasetFeatureStatisticsList,
                 thresholds: Mapping[str, float]) -> schema_pb2.Schema:
    """A schema holding only the drift comparators of the thresholded features.

    Raises:
      DataValidationError: a thresholded feature is not in the statistics (names them).
    """
    types = _feature_types(statistics)
    schema = schema_pb2.Schema()
    for name, threshold in sorted(thresholds.items()):
        if name not in types:
            raise DataValidationError(f"spans.drift_thresholds names {name!r}, which the data "
                                      f"does not have; features: {sorted(types)}")
        feature = schema.feature.add(name=name)
        if types[name] in _STRING_TYPES:
            feature.type = schema_pb2.BYTES
            feature.drift_comparator.infinity_norm.threshold = threshold
        else:
            feature.type = (schema_pb2.INT if types[name] == statistics_pb2.FeatureNameStatistics.INT
                            else schema_pb2.FLOAT)
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
    return schema


def measure(current: statistics_pb2.DatasetFeatureStatisticsList,
            previous: statistics_pb2.DatasetFeatureStatisticsList,
            thresholds: Mapping[str, float]) -> list[Drift]:
    """Each thresholded feature's distance from previous to current, sorted by feature."""
    if not thresholds:
        return []
    anomalies = tfdv.validate_statistics(current, drift_schema(current, thresholds),
                                         previous_statistics=previous)
    found = []
    for info in anomalies.drift_skew_info:
        name = info.path.step[0]
        for measurement in info.drift_measurements:
            found.append(Drift(name, _MEASURES.get(measurement.type, str(measurement.type)),
                               float(measurement.value), float(measurement.threshold)))
    return sorted(found, key=lambda drift: drift.feature)
