"""Event times in the forms logs carry them, read as integer Unix seconds.

A contract's event_time column declares its `format` (features.yaml; `twotower schema init`
detects it from a sample):
  * `seconds` (the default): integer (or fractional, floored) Unix seconds;
  * `milliseconds`: integer Unix milliseconds;
  * `iso8601`: `2024-06-01`, `2024-06-01T12:30:00`, `2024-06-01 12:30:00.5`, with or without
    a zone (`Z`, `+02:00`, `+0200`);
  * a `strptime` pattern holding `%`, e.g. `%d/%m/%Y %H:%M`.
Times without a zone are read as UTC. Parquet timestamp columns arrive as datetimes and are
read whatever the format says.
"""
from __future__ import annotations

import calendar
import datetime
import math
import re
from typing import Any, Optional, Sequence

SECONDS, MILLISECONDS, ISO8601 = "seconds", "milliseconds", "iso8601"
NAMED_FORMATS = (SECONDS, MILLISECONDS, ISO8601)
SECONDS_RANGE = (1e8, 4.1e9)  # 1973 .. 2100
MILLISECONDS_RANGE = (1e11, 4.1e12)
# Date forms tried after ISO-8601, in this order; where a sample fits several (every day
# <= 12), the first wins and the guess is reported (`detect`).
DATE_FORMATS = ("%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y",
                "%Y%m%d", "%d %b %Y", "%b %d %Y", "%d-%b-%Y")
TIME_SUFFIXES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
DETECT_SAMPLE = 1000
_ZONE = re.compile(r"([+-]\d\d)(\d\d)$")
_FRACTION = re.compile(r"\.(\d+)")  # 3.10 reads only 3 or 6 digits of a second's fraction


def describe(form: str) -> str:
    """A format in words, for messages."""
    return {SECONDS: "integer Unix seconds", MILLISECONDS: "integer Unix milliseconds",
            ISO8601: "ISO-8601 dates/times (no zone: UTC)"}.get(form, f"dates as {form!r}")


def check_format(form: Any) -> Optional[str]:
    """Why `form` is not a format (None when it is one)."""
    if form in NAMED_FORMATS:
        return None
    if not isinstance(form, str) or "%" not in form:
        return (f"format {form!r} is not one of {list(NAMED_FORMATS)} or a strptime pattern "
                "such as '%d/%m/%Y %H:%M'")
    try:
        datetime.datetime.now().strftime(form)
    except ValueError as e:
        return f"format {form!r} is not a valid strptime pattern ({e})"
    return None


def _utc_seconds(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        return calendar.timegm(moment.timetuple())
    return math.floor(moment.timestamp())


def _iso(text: str) -> datetime.datetime:
    """datetime.fromisoformat with the spellings Python 3.10 lacks (Z, +0200, .5)."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _ZONE.sub(r"\1:\2", text) if "T" in text or " " in text else text
    text = _FRACTION.sub(lambda found: "." + (found.group(1) + "000000")[:6], text)
    return datetime.datetime.fromisoformat(text)


def to_seconds(value: Any, form: str = SECONDS) -> int:
    """One event time as integer Unix seconds.

    Args:
      value: Text or bytes as read from a file, a number, or a datetime (Parquet).
      form: The declared format (module docstring).

    Raises:
      ValueError: if the value is empty or not in the format; the message names the format.
    """
    if isinstance(value, datetime.datetime):
        return _utc_seconds(value)
    if isinstance(value, datetime.date):
        return calendar.timegm(value.timetuple())
    text = value.decode() if isinstance(value, bytes) else str(value)
    if not text.strip():
        raise ValueError("empty")
    try:
        if form in (SECONDS, MILLISECONDS):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            if isinstance(value, int) or re.fullmatch(r"\s*[+-]?\d+\s*", text):
                number = int(text)
            return math.floor(number / 1000) if form == MILLISECONDS else math.floor(number)
        if form == ISO8601:
            return _utc_seconds(_iso(text))
        return _utc_seconds(datetime.datetime.strptime(text.strip(), form))
    except (ValueError, OverflowError) as e:
        raise ValueError(f"not {describe(form)}") from e


def parses(values: Sequence[str], form: str) -> list[str]:
    """The values of `values` that `form` does not read (empty: all read)."""
    failed = []
    for value in values:
        try:
            to_seconds(value, form)
        except ValueError:
            failed.append(value)
    return failed


def detect(values: Sequence[str], integers_allowed: bool) -> tuple[Optional[str], str, list[str]]:
    """Guesses the format of a sample of non-empty event times.

    Args:
      values: Sample values as text.
      integers_allowed: Whether integer forms count (only for columns named like a time: an
        integer column of the right size could be anything).

    Returns:
      (format or None, why, distinct values the format does not read). The format is the
      first that reads the most of up to DETECT_SAMPLE distinct values spread over the sorted
      sample (at least 90% of them); `why` says when another format read as many (e.g.
      day/month against month/day), which is then a guess.
    """
    distinct = sorted(set(values))
    if not distinct:
        return None, "no values", []
    values = distinct[::max(1, len(distinct) // DETECT_SAMPLE)]
    candidates: list[str] = []
    if integers_allowed and all(re.fullmatch(r"\s*\d+\s*", v) for v in values):
        numbers = [int(v) for v in values]
        if all(SECONDS_RANGE[0] <= n <= SECONDS_RANGE[1] for n in numbers):
            return SECONDS, describe(SECONDS), []
        if all(MILLISECONDS_RANGE[0] <= n <= MILLISECONDS_RANGE[1] for n in numbers):
            return MILLISECONDS, describe(MILLISECONDS), []
        candidates = ["%Y%m%d"] if all(19000101 <= n <= 21001231 for n in numbers) else []
    elif not all(re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", v) for v in values):
        candidates = [ISO8601] + [day + clock for day in DATE_FORMATS if day != "%Y%m%d"
                                  for clock in TIME_SUFFIXES]
    best: list[tuple[int, str, list[str]]] = []
    for form in candidates:
        failed = parses(values, form)
        if len(failed) <= 0.1 * len(values):
            best.append((len(failed), form, failed))
    if not best:
        return None, "no known date format reads 90% of the values", []
    fewest = min(count for count, _, _ in best)
    ties = [form for count, form, _ in best if count == fewest]
    form = ties[0]
    failed = parses(distinct, form)
    why = describe(form)
    if len(ties) > 1:
        why += (f"; a guess: the sample also reads as {', '.join(map(repr, ties[1:3]))} "
                "(pass --time-format to choose)")
    return form, why, failed
