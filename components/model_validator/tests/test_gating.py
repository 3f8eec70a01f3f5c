"""The blessing decision by hand."""
from components.model_validator import gating
from pipeline.config import ValidationConfig

CONFIG = ValidationConfig(k=100, min_recall=0.1, max_relative_regression=0.05,
                          min_scann_recall=0.95)
INDEX = {"k": 100, "scann_recall": 0.97}


def _names(checks):
    return {check.name: check.passed for check in checks}


def test_first_model_gets_only_absolute_checks():
    checks = gating.decide({"filtered_recall_at_100": 0.30}, None, INDEX, CONFIG)
    assert _names(checks) == {"min_recall": True, "min_scann_recall": True}


def test_regression_beyond_the_allowed_drop_fails():
    baseline = {"filtered_recall_at_100": 0.30}
    # Allowed floor: 0.30 * 0.95 = 0.285.
    assert _names(gating.decide({"filtered_recall_at_100": 0.286}, baseline, INDEX,
                                CONFIG))["max_relative_regression"]
    failed = gating.decide({"filtered_recall_at_100": 0.284}, baseline, INDEX, CONFIG)
    check = next(c for c in failed if c.name == "max_relative_regression")
    assert not check.passed and abs(check.threshold - 0.285) < 1e-12
    assert "baseline 0.3000" in check.message


def test_floor_and_scann_recall_fail_by_name():
    checks = gating.decide({"tfrs_recall_at_100": 0.05}, None, {"k": 100, "scann_recall": 0.9},
                           ValidationConfig(protocol="tfrs", min_recall=0.1))
    assert _names(checks) == {"min_recall": False, "min_scann_recall": False}
