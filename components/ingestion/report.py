"""Turns ExampleValidator anomalies and split statistics into a readable verdict."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from components.ingestion import drift as drift_lib


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem found in one split.

    Attributes:
      split: Split name.
      feature: Feature name, or "" for a problem with the whole split.
      problem: Short description (e.g. "Unexpected data type").
      detail: Long description from TFDV or the gate.
    """

    split: str
    feature: str
    problem: str
    detail: str

    def describe(self) -> str:
        where = f"feature '{self.feature}'" if self.feature else "split"
        return f"  [{self.split}] {where}: {self.problem}. {self.detail}"


def anomaly_problems(split: str, anomalies: anomalies_pb2.Anomalies) -> list[Problem]:
    """Lists one Problem per anomaly reason, sorted by feature name."""
    problems = []
    for feature in sorted(anomalies.anomaly_info):
        info = anomalies.anomaly_info[feature]
        reasons = info.reason or [info]
        for reason in reasons:
            problems.append(Problem(split, feature, reason.short_description or "Anomaly",
                                    reason.description or info.description))
    dataset_info = anomalies.dataset_anomaly_info
    for reason in dataset_info.reason:
        problems.append(Problem(split, "", reason.short_description, reason.description))
    return problems


@dataclasses.dataclass
class DatasetReport:
    """The validation verdict of one data set (interactions or items) across its splits."""

    dataset: str
    examples: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    drift: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add_drift(self, split: str, drifts: Sequence[drift_lib.Drift], baseline: str) -> None:
        """Records each measured feature; one problem per feature above its threshold.

        Args:
          split: The split compared.
          drifts: The measurements (drift.measure).
          baseline: The span compared with, as users name it.
        """
        for found in drifts:
            self.drift.append({"split": split, "baseline": baseline,
                               **dataclasses.asdict(found)})
            if found.exceeded:
                self.problems.append(Problem(
                    split, found.feature, "Drift",
                    f"{found.measure} {found.distance:.4g} from the previous validated span "
                    f"({baseline}) is above the threshold {found.threshold:g} "
                    "(spans.drift_thresholds). If the change is real, accept this span "
                    "for one run with --set spans.drift_thresholds={} or raise the "
                    "threshold."))

    def add_split(self, split: str, statistics: statistics_pb2.DatasetFeatureStatisticsList,
                  anomalies: anomalies_pb2.Anomalies) -> None:
        count = sum(dataset.num_examples for dataset in statistics.datasets)
        self.examples[split] = count
        if count == 0:
            self.problems.append(Problem(
                split, "", "Empty split",
                "It has no rows: check the input files, or the split settings "
                "(data.cutoff_quantile / data.cutoff_timestamp / data.eval_percent)."))
        self.problems.extend(anomaly_problems(split, anomalies))

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        sizes = ", ".join(f"{split}={count}" for split, count in self.examples.items())
        if self.ok:
            return f"{self.dataset}: {sizes}; no anomalies"
        lines = [f"{self.dataset} failed validation ({sizes}); {len(self.problems)} problem(s):"]
        lines += [problem.describe() for problem in self.problems]
        lines.append("Fix the data, or update the curated schema in the contract folder "
                     "(data.schema_dir) if the change is intended. Nothing downstream ran.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "ok": self.ok, "examples": self.examples,
                "problems": [dataclasses.asdict(problem) for problem in self.problems],
                "drift": self.drift}
