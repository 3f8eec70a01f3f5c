"""The blessing decision by hand."""
import dataclasses

import numpy as np

from components.model_validator import gating
from twotower.config import ValidationConfig

CONFIG = ValidationConfig(k=100, min_recall=0.1, max_relative_regression=0.05,
                          min_scann_recall=0.95)
INDEX = {"k": 100, "scann_recall": 0.97}


def _names(checks):
    return {check.name: check.passed for check in checks}


MOSTPOP = {"filtered_recall_at_100": 0.25, "tfrs_recall_at_100": 0.04}


def test_first_model_gets_only_absolute_checks():
    checks = gating.decide({"filtered_recall_at_100": 0.30}, None, INDEX, CONFIG, MOSTPOP)
    assert _names(checks) == {"min_recall": True, "beats_mostpop": True,
                              "min_scann_recall": True}


def test_a_model_must_be_above_mostpop_by_the_margin():
    at_mostpop = gating.decide({"filtered_recall_at_100": 0.25}, None, INDEX, CONFIG, MOSTPOP)
    check = next(c for c in at_mostpop if c.name == "beats_mostpop")
    assert not check.passed and check.message == (
        "filtered_recall_at_100 0.2500 vs MostPop 0.2500 (must be above)")
    lifted = dataclasses.replace(CONFIG, min_lift_over_mostpop=0.1)
    # Floor 0.25 * 1.1 = 0.275.
    assert not _names(gating.decide({"filtered_recall_at_100": 0.27}, None, INDEX, lifted,
                                    MOSTPOP))["beats_mostpop"]
    assert _names(gating.decide({"filtered_recall_at_100": 0.28}, None, INDEX, lifted,
                                MOSTPOP))["beats_mostpop"]
    off = dataclasses.replace(CONFIG, min_lift_over_mostpop=-1.0)
    assert "beats_mostpop" not in _names(gating.decide({"filtered_recall_at_100": 0.1}, None,
                                                       INDEX, off, MOSTPOP))


def test_the_cut_off_is_at_most_a_tenth_of_the_catalogue():
    assert gating.capped(CONFIG, 200).k == 20
    assert gating.capped(CONFIG, 1682).k == 100
    assert gating.capped(CONFIG, 5).k == 1


def test_regression_beyond_the_allowed_drop_fails():
    baseline = {"filtered_recall_at_100": 0.30}
    # Allowed floor: 0.30 * 0.95 = 0.285.
    assert _names(gating.decide({"filtered_recall_at_100": 0.286}, baseline, INDEX,
                                CONFIG, MOSTPOP))["max_relative_regression"]
    failed = gating.decide({"filtered_recall_at_100": 0.284}, baseline, INDEX, CONFIG, MOSTPOP)
    check = next(c for c in failed if c.name == "max_relative_regression")
    assert not check.passed and abs(check.threshold - 0.285) < 1e-12
    assert "baseline 0.3000" in check.message


def _paired(candidate_hits, baseline_hits, users):
    candidate = {"filtered_recall_at_100": float(np.mean(candidate_hits))}
    baseline = {"filtered_recall_at_100": float(np.mean(baseline_hits))}
    paired = gating.Paired(np.array(candidate_hits, float), np.array(baseline_hits, float),
                           None if users is None else np.array(users))
    check = next(c for c in gating.decide(candidate, baseline, INDEX, CONFIG, MOSTPOP, paired)
                 if c.name == "max_relative_regression")
    return check


def test_the_paired_regression_check_blocks_only_beyond_the_noise():
    # 20 events; the candidate loses 2 of the baseline's 10 hits: 0.40 vs 0.50, below the
    # floor 0.475. Margins c - 0.95 b: -0.95 on 2 events, 0.05 on 8, 0 on 10; mean -0.075.
    baseline = [1] * 10 + [0] * 10
    candidate = [0, 0] + [1] * 8 + [0] * 10
    noisy = _paired(candidate, baseline, None)
    margin = np.array(candidate) - 0.95 * np.array(baseline)
    half = 1.959964 * margin.std(ddof=1) / np.sqrt(20)
    assert half > 0.075 and noisy.passed  # 20 events cannot tell -0.075 from 0
    assert "paired over 20 events: -0.0750 ±" in noisy.message
    assert "(fails only when the whole 95% interval is below the floor)" in noisy.message
    # The same loss on 100 times the events is beyond the noise.
    assert not _paired(candidate * 100, baseline * 100, None).passed
    # Clustered by user: the two lost hits belong to one user of 10 with two events each.
    users = [i // 2 for i in range(20)]
    clustered = _paired(candidate * 100, baseline * 100, users * 100)
    assert clustered.passed  # 10 users: the same 2,000 events tell far less


def test_floor_and_scann_recall_fail_by_name():
    checks = gating.decide({"tfrs_recall_at_100": 0.05}, None, {"k": 100, "scann_recall": 0.9},
                           ValidationConfig(protocol="tfrs", min_recall=0.1), MOSTPOP)
    assert _names(checks) == {"min_recall": False, "beats_mostpop": True,
                              "min_scann_recall": False}
