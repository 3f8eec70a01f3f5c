"""The blessing decision: absolute floor, above MostPop, regression against the baseline,
ScaNN recall; the gated recall's cut-off capped relative to the catalogue.

The regression check is paired: candidate and baseline are scored on the same eval events,
and the candidate fails only if the 95% interval of its per-event margin over the floor
(hit - (1 - max_relative_regression) x baseline hit, clustered by user) lies wholly below
zero. A difference within the noise of the sample does not block a model; a blessed model is
then at most the tolerance plus the interval's half-width below the baseline (both printed).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np

from components.trainer import eval_sample
from twotower.config import ValidationConfig

MAX_K_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class Check:
    """One threshold: its name, the measured value, the threshold and the verdict."""

    name: str
    passed: bool
    value: float
    threshold: float
    message: str


@dataclasses.dataclass(frozen=True)
class Paired:
    """The gated recall event by event, candidate and baseline on the same eval events.

    Attributes:
      candidate: [n] 1.0 where the candidate's top k holds the event's item.
      baseline: [n] the same for the baseline.
      users: [n] the events' users (the interval's clusters), or None.
    """

    candidate: np.ndarray
    baseline: np.ndarray
    users: Optional[np.ndarray]


def metric_key(config: ValidationConfig) -> str:
    """The gated metric, e.g. filtered_recall_at_100."""
    return f"{config.protocol}_recall_at_{config.k}"


def capped(config: ValidationConfig, catalog_size: int) -> ValidationConfig:
    """The config with k at most MAX_K_SHARE of the catalogue (at least 1): recall@100 of
    a 200-item catalogue ranks half of it, which almost any model passes."""
    return dataclasses.replace(config, k=max(1, min(config.k, int(MAX_K_SHARE * catalog_size))))


def regression_check(value: float, baseline: float, config: ValidationConfig,
                     paired: Optional[Paired]) -> Check:
    """At most max_relative_regression below the baseline: by the point values, or, with
    the events paired, unless the whole interval of the margin is below (module docstring)."""
    key = metric_key(config)
    floor = baseline * (1.0 - config.max_relative_regression)
    message = (f"{key} {value:.4f} vs baseline {baseline:.4f} minus "
               f"{config.max_relative_regression:.0%} = {floor:.4f}")
    if paired is None:
        return Check("max_relative_regression", value >= floor, value, floor, message)
    margin = paired.candidate - (1.0 - config.max_relative_regression) * paired.baseline
    gap, half = float(margin.mean()), eval_sample.ci95(margin, paired.users)
    return Check("max_relative_regression", gap + half >= 0.0, value, floor,
                 f"{message}; paired over {len(margin)} events: {gap:+.4f} ±{half:.4f} "
                 "(fails only when the whole 95% interval is below the floor)")


def decide(candidate: Mapping[str, float], baseline: Optional[Mapping[str, float]],
           index_report: Mapping[str, Any], config: ValidationConfig,
           mostpop: Mapping[str, float], paired: Optional[Paired] = None) -> list[Check]:
    """Every check of the candidate; it is blessed iff all pass.

    Args:
      candidate: The candidate's metrics on the eval split.
      baseline: The latest blessed model's metrics on the same split, or None (first run:
        only the absolute checks apply).
      index_report: The IndexBuilder's report (scann_recall against exact search).
      config: Thresholds (validation section), k already capped.
      mostpop: MostPop's metrics on the same split and catalogue: the candidate must be
        above them by config.min_lift_over_mostpop, first run or not.
      paired: The gated recall of candidate and baseline event by event, for the paired
        regression check; None compares the point values.
    """
    key = metric_key(config)
    value = candidate[key]
    checks = [Check("min_recall", value >= config.min_recall, value, config.min_recall,
                    f"{key} {value:.4f} vs floor {config.min_recall:.4f}")]
    if config.min_lift_over_mostpop > -1.0:
        floor = mostpop[key] * (1.0 + config.min_lift_over_mostpop)
        checks.append(Check(
            "beats_mostpop", value > floor, value, floor,
            f"{key} {value:.4f} vs MostPop {mostpop[key]:.4f}"
            + (f" plus {config.min_lift_over_mostpop:.0%} = {floor:.4f}"
               if config.min_lift_over_mostpop else "") + " (must be above)"))
    if baseline is not None:
        checks.append(regression_check(value, baseline[key], config, paired))
    recall = float(index_report["scann_recall"])
    checks.append(Check("min_scann_recall", recall >= config.min_scann_recall, recall,
                        config.min_scann_recall,
                        f"ScaNN recall@{index_report['k']} against exact search {recall:.4f} vs "
                        f"{config.min_scann_recall:.4f}"))
    return checks
