"""Beam transforms that read raw tables and turn rows into tf.Examples typed by the schema.

Typing is schema-guided and decided per column over the whole input, in two passes (two
pipelines: as a side input of the second, the kinds would make a runner hold every row
until they are known):
  1. `TargetKinds` finds each column's widest kind over its non-empty values
     (INT < FLOAT < BYTES) and the kind to write given the schema (`target_kinds`);
  2. `RowsToExamples` writes every value with the column's target type:
     a BYTES column in the schema is always written as bytes (so ids like "196" stay
     strings); an INT/FLOAT column is written as numbers when every value parses, and
     otherwise as bytes, which ExampleValidator then reports as a type anomaly naming the
     column. Columns not in the schema keep their widest kind (ExampleValidator reports
     them as new columns).
Empty values are omitted from the Example (the feature is missing in that row).
The event time column is read as integer seconds in its declared format (pipeline/
event_times.py) as rows are read, before pass 1; a row whose time is missing or not in the
format stops the run with the file, line, column, value and the fix.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any, Iterable, Mapping, Optional

import apache_beam as beam
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from twotower import event_times
from twotower.errors import IngestionError

INT, FLOAT, BYTES = 0, 1, 2
KIND_NAMES = {INT: "INT", FLOAT: "FLOAT", BYTES: "BYTES"}
Row = Mapping[str, Any]


def value_kind(value: Any) -> Optional[int]:
    """The narrowest kind that holds `value`; None for a missing value.

    >>> value_kind("12"), value_kind("1.5"), value_kind("x"), value_kind("")
    (0, 1, 2, None)
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return INT
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return None if value != value else FLOAT
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        int(text)
        return INT
    except ValueError:
        pass
    try:
        float(text)
        return FLOAT
    except ValueError:
        return BYTES


def target_kinds(widest: Mapping[str, int], schema: schema_pb2.Schema) -> dict[str, int]:
    """Chooses each column's output kind from its widest kind and the schema.

    Args:
      widest: column -> widest kind seen in the data.
      schema: The curated schema.

    Returns:
      column -> kind to write.
    """
    declared = {feature.name: feature.type for feature in schema.feature}
    kinds = {}
    for column, kind in widest.items():
        wanted = declared.get(column)
        if wanted == schema_pb2.BYTES:
            kinds[column] = BYTES
        elif wanted == schema_pb2.INT:
            kinds[column] = INT if kind == INT else BYTES
        elif wanted == schema_pb2.FLOAT:
            kinds[column] = FLOAT if kind in (INT, FLOAT) else BYTES
        else:
            kinds[column] = kind
    return kinds


def row_to_example(row: Row, kinds: Mapping[str, int]) -> tf.train.Example:
    """Builds a tf.Example with one value per non-empty column, typed by `kinds`."""
    example = tf.train.Example()
    features = example.features.feature
    for column, value in row.items():
        if value_kind(value) is None:
            continue
        kind = kinds.get(column, BYTES)
        if kind == INT:
            features[column].int64_list.value.append(int(value))
        elif kind == FLOAT:
            features[column].float_list.value.append(float(value))
        else:
            text = value if isinstance(value, bytes) else str(value).encode("utf-8")
            features[column].bytes_list.value.append(text)
    return example


@dataclasses.dataclass(frozen=True)
class EventTime:
    """The event time column and its declared format (twotower/event_times.py)."""

    column: str
    form: str = event_times.SECONDS


def line_number(path: str, line: str) -> Optional[int]:
    """The 1-based number of the first line of `path` equal to `line` (an error's row: a
    whole-file scan, only on the error path)."""
    with tf.io.gfile.GFile(path) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip("\r\n") == line:
                return number
    return None


def where(source: str, line: Optional[str]) -> str:
    """`file:line` of a CSV record (the record itself when it cannot be found), or the
    source alone."""
    if line is None:
        return source
    number = line_number(source, line)
    return f"{source}:{number}" if number else f"{source}, row {line[:200]!r}"


def with_event_seconds(row: dict[str, Any], time: EventTime, source: str,
                       line: Optional[str] = None) -> dict[str, Any]:
    """The row with its event time as integer seconds.

    Raises:
      IngestionError: naming the file and line (`line`: the raw CSV record), the column, the
        value and the fix, when the time is missing or not in the declared format.
    """
    value = row.get(time.column)
    if value is None or value == "" or value == b"":
        problem = "no such column" if time.column not in row else "an empty value"
        raise IngestionError(
            f"{where(source, line)}: column '{time.column}' (the event time): {problem}; "
            "every event needs its time: fill or drop the row")
    try:
        seconds = event_times.to_seconds(value, time.form)
    except ValueError as e:
        raise IngestionError(
            f"{where(source, line)}: column '{time.column}' (the event time): value "
            f"{str(value)[:100]!r} is {e}; fix or drop the row, or declare the column's format "
            f"in features.yaml (format: {'|'.join(event_times.NAMED_FORMATS)} or a strptime "
            "pattern)") from None
    return {**row, time.column: seconds}


def parse_csv_line(record: tuple[str, str], header: list[str],
                   time: Optional[EventTime] = None) -> dict[str, Any]:
    """Parses one CSV record into a column -> text mapping (the event time as seconds).

    Args:
      record: (file name, line) as ReadFromTextWithFilename yields them.
      header: The files' column names.
      time: The event time column, read with with_event_seconds.

    Raises:
      IngestionError: if the record's field count differs from the header's, or its event
        time is missing or unreadable; naming the file and line.
    """
    source, line = record
    fields = next(csv.reader(io.StringIO(line)))
    if len(fields) != len(header):
        raise IngestionError(
            f"{where(source, line)}: a row has {len(fields)} fields but the header has "
            f"{len(header)} ({','.join(header)}). Quote fields that contain commas and keep "
            "one record per line.")
    row = dict(zip(header, fields))
    return with_event_seconds(row, time, source, line) if time else row


def read_csv_header(pattern: str) -> tuple[list[str], list[str]]:
    """Returns the files matching `pattern` and their common header.

    Raises:
      IngestionError: if no file matches, a file is empty, or headers differ.
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise IngestionError(f"no input files match {pattern}; check data.interactions / "
                             "data.items in the config")
    header: Optional[list[str]] = None
    for path in files:
        with tf.io.gfile.GFile(path) as f:
            first = f.readline().strip("\r\n")
        if not first:
            raise IngestionError(f"{path} is empty; a CSV input needs a header line")
        columns = next(csv.reader(io.StringIO(first)))
        if len(set(columns)) != len(columns):
            raise IngestionError(f"{path}: duplicate column names in header {columns}")
        if header is not None and columns != header:
            raise IngestionError(f"{path}: header {columns} differs from {files[0]}'s {header}")
        header = columns
    assert header is not None
    return files, header


@beam.ptransform_fn
def ReadCsvRows(pipeline: beam.Pipeline, pattern: str,  # pylint: disable=invalid-name
                time: Optional[EventTime] = None) -> beam.PCollection:
    """Reads CSV files with a common header into dict rows of text values (the event time,
    if given, as integer seconds).

    Raises:
      IngestionError: as read_csv_header, or when the header lacks the event time column.
    """
    files, header = read_csv_header(pattern)
    if time and time.column not in header:
        raise IngestionError(f"{files[0]}: no column '{time.column}' (the contract's event "
                             f"time) in the header {header}; add it, or rename it in "
                             "features.yaml and the schemas")
    return (pipeline
            | "ReadLines" >> beam.io.ReadFromTextWithFilename(pattern, skip_header_lines=1)
            | "DropBlank" >> beam.Filter(lambda record: bool(record[1].strip()))
            | "ParseCsv" >> beam.Map(parse_csv_line, header, time))


@beam.ptransform_fn
def ReadParquetRows(pipeline: beam.Pipeline, pattern: str,  # pylint: disable=invalid-name
                    time: Optional[EventTime] = None) -> beam.PCollection:
    """Reads Parquet files into dict rows of Python values (the event time, if given, as
    integer seconds)."""
    if not tf.io.gfile.glob(pattern):
        raise IngestionError(f"no input files match {pattern}; check the data paths in the config")
    found = pipeline | "ReadParquet" >> beam.io.ReadFromParquet(pattern)
    if time is None:
        return found
    return found | "EventSeconds" >> beam.Map(with_event_seconds, time, pattern)


def _widest(kinds: Iterable[int]) -> int:
    return max(kinds, default=INT)


@beam.ptransform_fn
def ColumnKinds(rows: beam.PCollection) -> beam.PCollection:  # pylint: disable=invalid-name
    """Computes (column, widest kind) over all non-empty values of each column."""
    def kinds(row: Row) -> Iterable[tuple[str, int]]:
        for column, value in row.items():
            kind = value_kind(value)
            yield column, (INT if kind is None else kind)
    return (rows
            | "KindPerValue" >> beam.FlatMap(kinds)
            | "WidestPerColumn" >> beam.CombinePerKey(_widest))


@beam.ptransform_fn
def TargetKinds(rows: beam.PCollection, schema: schema_pb2.Schema) -> beam.PCollection:  # pylint: disable=invalid-name
    """Pass 1: one element, column -> kind to write (see module docstring)."""
    return (rows
            | "ColumnKinds" >> ColumnKinds()  # pylint: disable=no-value-for-parameter
            | "ToDict" >> beam.combiners.ToDict()
            | "ApplySchema" >> beam.Map(target_kinds, schema))


@beam.ptransform_fn
def RowsToExamples(rows: beam.PCollection, kinds: Mapping[str, int]) -> beam.PCollection:  # pylint: disable=invalid-name
    """Pass 2: rows -> tf.Examples typed by the kinds of pass 1."""
    return rows | "ToExample" >> beam.Map(row_to_example, dict(kinds))
