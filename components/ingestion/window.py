"""Rolling windows of validated spans, resolved from ML Metadata (no span is read twice).

A span is *validated* when its ValidationGate published a report for it: ExampleGen's
Examples of a span whose gate failed (anomalies, drift) are in ML Metadata too, and must
never reach training. The gate writes the span onto its report (custom property `span`);
an Examples or statistics artifact of span s counts as validated when a report of span s
was created after it (a re-ingested span whose gate failed falls back to the earlier,
validated ingestion of that span).

Two resolver strategies use this, for Resolver nodes in pipeline/pipeline.py (each returns
its other inputs unchanged: TFX's resolver node publishes every input key):

  ValidatedWindowStrategy: the newest `window` validated spans' Examples up to the span
    this run ingested (the NegativePoolBuilder's and the Trainer's input).
  PreviousSpanStatisticsStrategy: the statistics of the newest validated span before the
    one this run ingested (the drift gate's baseline; none on the first span).
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from tfx import types
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils
from tfx.utils import io_utils

import ml_metadata as mlmd

from twotower import keys


def span_of(artifact: types.Artifact) -> int:
    """The span of an Examples / statistics artifact, or the one a gate wrote on its report."""
    if artifact.has_custom_property(keys.SPAN_PROPERTY):
        return int(artifact.get_int_custom_property(keys.SPAN_PROPERTY))
    return int(artifact.span)


def source_of(artifact: types.Artifact) -> str:
    """The unresolved input path (`.../{YYYY}-{MM}-{DD}/x.csv`) an artifact's span came
    from: spans of other inputs of the same pipeline (a run over one file, another data
    folder) never mix into a window."""
    if artifact.has_custom_property(keys.SPAN_SOURCE_PROPERTY):
        return artifact.get_string_custom_property(keys.SPAN_SOURCE_PROPERTY)
    return ""


def copy_source(source: types.Artifact, target: types.Artifact) -> None:
    """Passes the span's input path on to a derived artifact (statistics, report)."""
    target.set_string_custom_property(keys.SPAN_SOURCE_PROPERTY, source_of(source))


def _created(artifact: types.Artifact) -> tuple[int, int]:
    return artifact.mlmd_artifact.create_time_since_epoch, artifact.id


def validated_by_span(artifacts: Iterable[types.Artifact],
                      reports: Iterable[types.Artifact]) -> dict[int, types.Artifact]:
    """Span -> the newest artifact of that span created before a report of that span."""
    last_report: dict[int, tuple[int, int]] = {}
    for report in reports:
        span = span_of(report)
        last_report[span] = max(last_report.get(span, (-1, -1)), _created(report))
    chosen: dict[int, types.Artifact] = {}
    for artifact in artifacts:
        span = span_of(artifact)
        if span in last_report and _created(artifact) <= last_report[span]:
            if span not in chosen or _created(artifact) > _created(chosen[span]):
                chosen[span] = artifact
    return chosen


def current_span(current: Sequence[types.Artifact]) -> tuple[str, Optional[int]]:
    """The input and span this run ingested, from this run's Examples or statistics (the
    newest one when an orchestrator hands over every run's, as TFX's legacy Airflow driver
    does); ("", None) without one."""
    if not current:
        return "", None
    newest = max(current, key=_created)
    return source_of(newest), span_of(newest)


def _same_source(artifacts: Iterable[types.Artifact], source: str) -> list[types.Artifact]:
    return [artifact for artifact in artifacts if source_of(artifact) == source]


def window(examples: Iterable[types.Artifact], reports: Iterable[types.Artifact],
           current: Sequence[types.Artifact], size: int) -> list[types.Artifact]:
    """The newest `size` validated spans' Examples of this run's input, up to its span,
    oldest first."""
    source, upto = current_span(current)
    chosen = validated_by_span(_same_source(examples, source), _same_source(reports, source))
    spans = sorted(span for span in chosen if upto is None or span <= upto)[-size:]
    return [chosen[span] for span in spans]


def previous_statistics(statistics: Iterable[types.Artifact], reports: Iterable[types.Artifact],
                        current: Sequence[types.Artifact]) -> list[types.Artifact]:
    """[The statistics of the newest validated span of this run's input before the current
    one], or []."""
    source, upto = current_span(current)
    chosen = validated_by_span(_same_source(statistics, source), _same_source(reports, source))
    earlier = [span for span in chosen if upto is None or span < upto]
    return [chosen[max(earlier)]] if earlier else []


class ValidatedWindowStrategy(resolver.ResolverStrategy):
    """Resolves `examples` to the newest `window` validated spans (see module docstring).

    Inputs: `examples` (every ExampleGen output), `report` (every gate report) and
    `current` (this run's statistics; a channel of another producer than the first two,
    as TFX's compiler merges channels of one producer and output).
    """

    def __init__(self, window: int):  # pylint: disable=redefined-outer-name
        self._window = window

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: dict[str, list[types.Artifact]]
                          ) -> Optional[dict[str, list[types.Artifact]]]:
        del store
        return {**input_dict,
                keys.EXAMPLES_KEY: window(input_dict[keys.EXAMPLES_KEY],
                                          input_dict[keys.REPORT_KEY],
                                          input_dict[keys.CURRENT_KEY], self._window)}


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Resolves `statistics` to the previous validated span's statistics (or none).

    Inputs: `statistics` (every StatisticsGen output), `report` (every gate report) and
    `current` (this run's Examples).
    """

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: dict[str, list[types.Artifact]]
                          ) -> Optional[dict[str, list[types.Artifact]]]:
        del store
        return {**input_dict, keys.STATISTICS_KEY: previous_statistics(input_dict[keys.STATISTICS_KEY],
                                                         input_dict[keys.REPORT_KEY],
                                                         input_dict[keys.CURRENT_KEY])}


def training_patterns(examples: Sequence[types.Artifact]) -> tuple[list[str], list[str]]:
    """File patterns a window trains and evaluates on.

    Training reads every span's train split and the eval split of every span but the
    newest; eval is the newest span's eval split (the held-out part of the data the run
    ingested), so no row of a window is left unused and none is both trained and scored.

    Args:
      examples: The window's Examples artifacts (any order; one artifact: no window).

    Returns:
      (train patterns, eval patterns), of the splits the artifacts have.
    """
    ordered = sorted(examples, key=lambda artifact: (span_of(artifact), _created(artifact)))
    newest = ordered[-1]

    def patterns(artifacts: Sequence[types.Artifact], split: str) -> list[str]:
        return [io_utils.all_files_pattern(artifact_utils.get_split_uri([artifact], split))
                for artifact in artifacts
                if split in artifact_utils.decode_split_names(artifact.split_names)]
    train = patterns(ordered, keys.TRAIN_SPLIT) + patterns(ordered[:-1], keys.EVAL_SPLIT)
    return train, patterns([newest], keys.EVAL_SPLIT)
