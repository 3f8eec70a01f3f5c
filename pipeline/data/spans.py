"""Splits an interaction table into span folders, as a daily or weekly log would arrive.

`twotower data split-spans` writes one folder per span, named so TFX's span resolution
finds them (components/ingestion/spans.py):

  --every day|week  ->  OUT/YYYY-MM-DD/interactions.<fmt>  (pattern {YYYY}-{MM}-{DD}/...)
                        one folder per UTC day, or per week named by its Monday;
  --spans N         ->  OUT/span-K/interactions.<fmt>      (pattern span-{SPAN}/...)
                        N spans of equal row counts in event-time order, K = 1..N.

Rows inside a span keep their order; the items (and users) tables are copied beside the
folders unchanged. The event-time column is the contract's `event_time`.
"""
from __future__ import annotations

import dataclasses
import pathlib
import shutil
from typing import Literal, Optional

import numpy as np
import pandas as pd

from pipeline.data import tables
from twotower.errors import ConfigError

DATE_PATTERN = "{YYYY}-{MM}-{DD}"
NUMBER_PATTERN = "span-{SPAN}"
Period = Literal["day", "week"]


@dataclasses.dataclass(frozen=True)
class SpanLayout:
    """What split-spans wrote: the interactions pattern to configure, and rows per span."""

    interactions_pattern: str
    rows: dict[str, int]


def read_table(path: pathlib.Path) -> pd.DataFrame:
    """Reads a CSV or Parquet table.

    Raises:
      ConfigError: the file is missing or of another format.
    """
    if not path.is_file():
        raise ConfigError(f"{path} not found; pass the interactions table written by "
                          "`twotower data ...`")
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, dtype=str)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    raise ConfigError(f"{path}: expected a .csv or .parquet file")


def span_names(times: pd.Series, every: Optional[Period], spans: Optional[int]) -> np.ndarray:
    """Each row's span folder name.

    Args:
      times: Event times in seconds since the epoch (UTC), [N].
      every: `day` or `week` (date-named folders), or None.
      spans: Number of equal-count spans (numbered folders), or None.

    Returns:
      [N] folder names.

    Raises:
      ConfigError: not exactly one of every and spans, or spans out of range.
    """
    if (every is None) == (spans is None):
        raise ConfigError("pass exactly one of --every day|week and --spans N")
    seconds = pd.to_numeric(times).to_numpy(dtype=np.int64)
    if every is not None:
        days = pd.to_datetime(seconds, unit="s", utc=True).normalize()
        if every == "week":
            days = days - pd.to_timedelta(days.dayofweek, unit="D")
        return np.asarray(days.strftime("%Y-%m-%d"))
    if not 1 <= spans <= len(seconds):
        raise ConfigError(f"--spans must be from 1 to the number of rows ({len(seconds)}), "
                          f"got {spans}")
    order = np.argsort(seconds, kind="stable")
    span_of_rank = np.arange(len(seconds)) * spans // len(seconds) + 1
    names = np.empty(len(seconds), dtype=object)
    names[order] = [f"span-{k}" for k in span_of_rank]
    return names


def split(interactions: pathlib.Path, out_dir: pathlib.Path, time_column: str,
          every: Optional[Period] = None, spans: Optional[int] = None,
          extra_tables: tuple[pathlib.Path, ...] = ()) -> SpanLayout:
    """Writes the interactions as span folders under out_dir (module docstring).

    Args:
      interactions: The interaction table (.csv or .parquet).
      out_dir: Output folder.
      time_column: The event-time column (seconds since the epoch).
      every: `day` or `week`, for date-named spans.
      spans: A number of equal-count spans instead.
      extra_tables: Tables copied into out_dir unchanged (items, users).

    Returns:
      The pattern for data.interactions and the rows written per span.

    Raises:
      ConfigError: a bad argument or a missing column, naming the fix.
    """
    frame = read_table(interactions)
    if time_column not in frame.columns:
        raise ConfigError(f"{interactions} has no column {time_column!r} (the contract's "
                          f"event_time); columns: {list(frame.columns)}")
    names = span_names(frame[time_column], every, spans)
    output_format: tables.OutputFormat = "parquet" if interactions.suffix == ".parquet" else "csv"
    rows = {}
    for name in sorted(set(names)):
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        part = frame[names == name]
        tables.write_table(part, folder / interactions.name, output_format)
        rows[name] = len(part)
    for table in extra_tables:
        shutil.copyfile(table, out_dir / table.name)
    folder_pattern = DATE_PATTERN if every is not None else NUMBER_PATTERN
    return SpanLayout(str(out_dir / folder_pattern / interactions.name), rows)
