"""The drift gate: TFDV distances between two spans' statistics (drift.py, report.py)."""
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from components.ingestion import drift, report
from twotower.errors import DataValidationError


def _statistics(genres, ages):
    return tfdv.generate_statistics_from_dataframe(pd.DataFrame({"genre": genres,
                                                                 "age": ages}))


def test_category_share_jump_is_measured_as_l_infinity():
    before = _statistics(["a"] * 60 + ["b"] * 40, [30.0] * 100)
    after = _statistics(["a"] * 20 + ["b"] * 80, [30.0] * 100)
    found = drift.measure(after, before, {"genre": 0.1})
    assert len(found) == 1
    assert found[0].feature == "genre" and found[0].measure == drift.L_INFINITY
    assert found[0].distance == pytest.approx(0.4)  # |0.8 - 0.4| for "b", by hand
    assert found[0].exceeded


def test_unchanged_span_passes_and_numeric_uses_jensen_shannon():
    same = _statistics(["a"] * 50 + ["b"] * 50, [float(i % 40) for i in range(100)])
    found = drift.measure(same, same, {"genre": 0.1, "age": 0.1})
    assert [(d.feature, d.measure) for d in found] == [("age", drift.JENSEN_SHANNON),
                                                        ("genre", drift.L_INFINITY)]
    assert all(d.distance == pytest.approx(0.0, abs=1e-9) and not d.exceeded for d in found)


def test_unknown_feature_names_the_features():
    stats = _statistics(["a"], [1.0])
    with pytest.raises(DataValidationError, match=r"'colour'.*\['age', 'genre'\]"):
        drift.measure(stats, stats, {"colour": 0.1})


def test_report_fails_with_feature_distance_threshold_and_the_waiver():
    found = report.DatasetReport(dataset="interactions")
    found.add_drift("train", [drift.Drift("genre", drift.L_INFINITY, 0.4, 0.1),
                              drift.Drift("age", drift.JENSEN_SHANNON, 0.01, 0.1)], "span 3")
    assert not found.ok and len(found.problems) == 1
    text = found.describe()
    assert "feature 'genre': Drift. L-infinity distance 0.4 " in text
    assert "threshold 0.1" in text and "span 3" in text
    assert "--set spans.drift_thresholds={}" in text
    assert [row["feature"] for row in found.to_dict()["drift"]] == ["genre", "age"]
