"""The blessing decision: absolute floor, above MostPop, regression against the baseline,
ScaNN recall; the gated recall's cut-off capped relative to the catalogue."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from pipeline.config import ValidationConfig

MAX_K_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class Check:
    """One threshold: its name, the measured value, the threshold and the verdict."""

    name: str
    passed: bool
    value: float
    threshold: float
    message: str


def metric_key(config: ValidationConfig) -> str:
    """The gated metric, e.g. filtered_recall_at_100."""
    return f"{config.protocol}_recall_at_{config.k}"


def capped(config: ValidationConfig, catalog_size: int) -> ValidationConfig:
    """The config with k at most MAX_K_SHARE of the catalogue (at least 1): recall@100 of
    a 200-item catalogue ranks half of it, which almost any model passes."""
    return dataclasses.replace(config, k=max(1, min(config.k, int(MAX_K_SHARE * catalog_size))))


def decide(candidate: Mapping[str, float], baseline: Optional[Mapping[str, float]],
           index_report: Mapping[str, Any], config: ValidationConfig,
           mostpop: Mapping[str, float]) -> list[Check]:
    """Every check of the candidate; it is blessed iff all pass.

    Args:
      candidate: The candidate's metrics on the eval split.
      baseline: The latest blessed model's metrics on the same split, or None (first run:
        only the absolute checks apply).
      index_report: The IndexBuilder's report (scann_recall against exact search).
      config: Thresholds (validation section), k already capped.
      mostpop: MostPop's metrics on the same split and catalogue: the candidate must be
        above them by config.min_lift_over_mostpop, first run or not.
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
        floor = baseline[key] * (1.0 - config.max_relative_regression)
        checks.append(Check(
            "max_relative_regression", value >= floor, value, floor,
            f"{key} {value:.4f} vs baseline {baseline[key]:.4f} minus "
            f"{config.max_relative_regression:.0%} = {floor:.4f}"))
    recall = float(index_report["scann_recall"])
    checks.append(Check("min_scann_recall", recall >= config.min_scann_recall, recall,
                        config.min_scann_recall,
                        f"ScaNN recall@{index_report['k']} against exact search {recall:.4f} vs "
                        f"{config.min_scann_recall:.4f}"))
    return checks
