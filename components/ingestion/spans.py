"""Which span of a `{SPAN}` or `{YYYY}{MM}{DD}` input pattern a run ingests.

TFX's convention: a `{SPAN}` pattern's span is the number in the path; a date pattern's
span is the number of days from 1970-01-01 to the date. A run asks for `latest` (the
highest span present), a span number, or a date (date patterns only).
"""
from __future__ import annotations

import datetime
import re
import time
from typing import Callable, Optional

from absl import logging
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2, range_config_pb2

from twotower.errors import IngestionError

LATEST = "latest"
AIRFLOW_LOGICAL_DATE = "{{ ds }}"  # rendered by Airflow into the run's logical date
POLL_SECONDS = 30.0


def has_placeholders(pattern: str) -> bool:
    """Whether a pattern names spans: `{SPAN}` or all of `{YYYY}`, `{MM}`, `{DD}`."""
    return bool(re.search(utils.SPAN_FULL_REGEX, pattern)) or is_date_pattern(pattern)


def is_date_pattern(pattern: str) -> bool:
    return all(spec in pattern for spec in utils.DATE_SPECS)


def span_number(span: str, pattern: str) -> Optional[int]:
    """The span asked for: None for `latest`.

    Raises:
      IngestionError: the value is neither `latest`, a span number nor a date of a date
        pattern.
    """
    if span == LATEST:
        return None
    if re.fullmatch(r"\d+", span):
        return int(span)
    try:
        date = datetime.date.fromisoformat(span)
    except ValueError:
        date = None
    if date is None or not is_date_pattern(pattern):
        expected = "a date YYYY-MM-DD" if is_date_pattern(pattern) else "a span number"
        raise IngestionError(f"spans.span is {span!r}; the pattern {pattern} takes 'latest' or "
                             f"{expected}")
    return utils.date_to_span_number(date.year, date.month, date.day)


def describe(span: int, pattern: str) -> str:
    """A span as users name it: its date for date patterns, else its number."""
    if is_date_pattern(pattern):
        return "%04d-%02d-%02d (span %d)" % (*utils.span_number_to_date(span), span)
    return f"span {span}"


def static_range(span: int) -> range_config_pb2.RangeConfig:
    return range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
        start_span_number=span, end_span_number=span))


def resolve(input_base: str, pattern: str, span: Optional[int], wait_minutes: float = 0.0,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> tuple[int, str]:
    """Finds the files of a span, waiting up to wait_minutes for them to arrive.

    Args:
      input_base: The input folder.
      pattern: The pattern with placeholders, relative to input_base.
      span: The span asked for; None: the latest one present.
      wait_minutes: How long to poll (every POLL_SECONDS) before giving up.
      sleep: Sleeps (tests pass a fake).
      clock: Monotonic seconds (tests pass a fake).

    Returns:
      (span, the pattern with the span filled in).

    Raises:
      IngestionError: no files for the span after waiting, naming the span and the pattern.
    """
    deadline = clock() + 60.0 * wait_minutes
    while True:
        split = example_gen_pb2.Input.Split(name="single_split", pattern=pattern)
        try:
            _, found, _ = utils.calculate_splits_fingerprint_span_and_version(
                input_base, [split], None if span is None else static_range(span))
            return found, split.pattern
        except ValueError as e:
            if clock() >= deadline:
                wanted = "any span" if span is None else describe(span, pattern)
                raise IngestionError(
                    f"no input for {wanted}: nothing under {input_base} matches {pattern} "
                    f"({e}). The data of that span has not arrived: re-run when it has, or "
                    "set spans.wait_minutes to wait for it") from e
            logging.info("Waiting for %s/%s: %s", input_base, pattern, e)
            sleep(POLL_SECONDS)
