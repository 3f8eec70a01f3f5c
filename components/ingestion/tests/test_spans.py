"""Span resolution (spans.py, driver.py) and windows of validated spans (window.py)."""
import datetime

import pytest
from tfx import types
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from twotower import keys
from components.ingestion import component, driver, spans, window
from twotower.errors import IngestionError

DATE_PATTERN = "{YYYY}-{MM}-{DD}/interactions.csv"


def _touch(base, relative):
    path = base / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("user_id\n1\n")


def test_span_numbers_follow_tfx_convention():
    assert spans.span_number("latest", DATE_PATTERN) is None
    assert spans.span_number("7", "span-{SPAN}/x.csv") == 7
    days = (datetime.date(2026, 1, 2) - datetime.date(1970, 1, 1)).days
    assert spans.span_number("2026-01-02", DATE_PATTERN) == days
    assert spans.describe(days, DATE_PATTERN) == f"2026-01-02 (span {days})"
    with pytest.raises(IngestionError, match="takes 'latest' or a span number"):
        spans.span_number("2026-01-02", "span-{SPAN}/x.csv")
    assert spans.has_placeholders(DATE_PATTERN) and spans.has_placeholders("s-{SPAN}.csv")
    assert not spans.has_placeholders("interactions.csv")


def test_resolve_finds_latest_or_asked_span(tmp_path):
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        _touch(tmp_path, f"{day}/interactions.csv")
    latest, pattern = spans.resolve(str(tmp_path), DATE_PATTERN, None)
    assert pattern == "2026-01-03/interactions.csv"
    asked = spans.span_number("2026-01-02", DATE_PATTERN)
    assert spans.resolve(str(tmp_path), DATE_PATTERN, asked) == (
        asked, "2026-01-02/interactions.csv")
    assert latest == asked + 1


def test_missing_span_fails_after_waiting_with_its_date(tmp_path):
    _touch(tmp_path, "2026-01-01/interactions.csv")
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
    missing = spans.span_number("2026-01-05", DATE_PATTERN)
    with pytest.raises(IngestionError, match=r"no input for 2026-01-05 .*spans.wait_minutes"):
        spans.resolve(str(tmp_path), DATE_PATTERN, missing, wait_minutes=1.0, sleep=sleep,
                      clock=lambda: now[0])
    assert sleeps == [spans.POLL_SECONDS, spans.POLL_SECONDS]


def test_wait_returns_once_the_span_arrives(tmp_path):
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        _touch(tmp_path, "2026-01-05/interactions.csv")
    asked = spans.span_number("2026-01-05", DATE_PATTERN)
    assert spans.resolve(str(tmp_path), DATE_PATTERN, asked, wait_minutes=5.0, sleep=sleep,
                         clock=lambda: 0.0)[0] == asked
    assert len(calls) == 1


def _exec_properties(base, pattern, span):
    config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split",
                                                                      pattern=pattern)])
    return {standard_component_specs.INPUT_BASE_KEY: str(base),
            standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(config),
            keys.SPAN_KEY: span, keys.SPAN_WAIT_MINUTES_KEY: 0}


def test_driver_asks_tfx_for_the_requested_span_only(tmp_path):
    for day in ("2026-01-01", "2026-01-02"):
        _touch(tmp_path, f"{day}/interactions.csv")
    properties = _exec_properties(tmp_path, DATE_PATTERN, "2026-01-01")
    driver.request_range(properties)
    asked = spans.span_number("2026-01-01", DATE_PATTERN)
    requested = range_config_pb2.RangeConfig()
    proto_utils.json_to_proto(properties[standard_component_specs.RANGE_CONFIG_KEY], requested)
    assert requested == spans.static_range(asked)
    latest = _exec_properties(tmp_path, DATE_PATTERN, "latest")
    driver.request_range(latest)
    assert standard_component_specs.RANGE_CONFIG_KEY not in latest


def test_component_refuses_a_date_for_a_numbered_pattern():
    with pytest.raises(IngestionError, match="span number"):
        component.SchemaExampleGen(input_base="/data", pattern="span-{SPAN}/i.csv",
                                   schema=types.Channel(type=standard_artifacts.Schema),
                                   split_method="hash", span="2026-01-01")


class _Clock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        self.now += 1
        return self.now


def _artifact(kind, span, created, custom=True):
    artifact = kind()
    artifact.id = created
    artifact.mlmd_artifact.create_time_since_epoch = created
    if custom:
        artifact.set_int_custom_property(keys.SPAN_PROPERTY, span)
    else:
        artifact.span = span
    return artifact


def _report(span, created):
    return _artifact(component.DataValidationReport, span, created)


def test_window_keeps_validated_spans_up_to_the_current_one():
    examples = [_artifact(standard_artifacts.Examples, span, created)
                for span, created in ((1, 1), (2, 3), (3, 5), (4, 7), (5, 9))]
    # Span 4 failed its gate (no report); span 5 is the current run's.
    reports = [_report(1, 2), _report(2, 4), _report(3, 6), _report(5, 10)]
    current = [_artifact(standard_artifacts.ExampleStatistics, 5, 10, custom=False)]
    chosen = window.window(examples, reports, current, 3)
    assert [window.span_of(a) for a in chosen] == [2, 3, 5]
    # A backfill of span 3 sees only spans up to 3.
    back = [_artifact(standard_artifacts.ExampleStatistics, 3, 11, custom=False)]
    assert [window.span_of(a) for a in window.window(examples, reports, back, 3)] == [1, 2, 3]


def test_reingested_span_whose_gate_failed_falls_back_to_the_validated_one():
    first = _artifact(standard_artifacts.Examples, 1, 1)
    again = _artifact(standard_artifacts.Examples, 1, 5)  # re-ingested, gate failed
    chosen = window.validated_by_span([first, again], [_report(1, 2)])
    assert chosen[1] is first
    fixed = window.validated_by_span([first, again], [_report(1, 2), _report(1, 6)])
    assert fixed[1] is again


def test_previous_statistics_is_the_newest_validated_earlier_span():
    stats = [_artifact(standard_artifacts.ExampleStatistics, span, created, custom=False)
             for span, created in ((1, 1), (2, 3), (3, 5))]
    reports = [_report(1, 2), _report(2, 4)]
    current = [_artifact(standard_artifacts.Examples, 3, 5)]
    assert [window.span_of(a) for a in window.previous_statistics(stats, reports, current)] \
        == [2]
    first = [_artifact(standard_artifacts.Examples, 1, 1)]
    assert window.previous_statistics(stats, reports, first) == []


def test_training_patterns_hold_out_only_the_newest_eval_split(tmp_path):
    artifacts = []
    for span in (2, 1):
        artifact = _artifact(standard_artifacts.Examples, span, span)
        artifact.uri = str(tmp_path / f"s{span}")
        artifact.split_names = '["train", "eval"]'
        artifacts.append(artifact)
    train, evaluation = window.training_patterns(artifacts)
    assert [p.split(str(tmp_path))[1] for p in train] == [
        "/s1/Split-train/*", "/s2/Split-train/*", "/s1/Split-eval/*"]
    assert [p.split(str(tmp_path))[1] for p in evaluation] == ["/s2/Split-eval/*"]


def test_window_ignores_spans_of_another_input_of_the_same_pipeline():
    def tagged(artifact, source):
        artifact.set_string_custom_property(keys.SPAN_SOURCE_PROPERTY, source)
        return artifact
    daily = "/data/{YYYY}-{MM}-{DD}/interactions.csv"
    whole_file = "/data/interactions.csv"  # a run without spans: span 0, all the data
    examples = [tagged(_artifact(standard_artifacts.Examples, 0, 1), whole_file),
                tagged(_artifact(standard_artifacts.Examples, 20454, 3), daily)]
    reports = [tagged(_report(0, 2), whole_file), tagged(_report(20454, 4), daily)]
    current = [tagged(_artifact(standard_artifacts.ExampleStatistics, 20454, 4, custom=False),
                      daily)]
    assert window.window(examples, reports, current, 4) == [examples[1]]
    assert window.previous_statistics(examples, reports, current) == []
