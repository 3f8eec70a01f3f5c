"""Schema-guided typing of raw rows into tf.Examples."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.ingestion import rows
from twotower.errors import IngestionError

SCHEMA = schema_pb2.Schema(feature=[
    schema_pb2.Feature(name="user_id", type=schema_pb2.BYTES),
    schema_pb2.Feature(name="age", type=schema_pb2.INT),
    schema_pb2.Feature(name="rating", type=schema_pb2.FLOAT),
])


def _values(example: tf.train.Example) -> dict:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value))
    return out


@pytest.mark.parametrize("value, kind", [("12", rows.INT), ("-3", rows.INT), ("1.5", rows.FLOAT),
                                         ("1e3", rows.FLOAT), ("abc", rows.BYTES), ("", None),
                                         (None, None), (7, rows.INT), (2.5, rows.FLOAT),
                                         (float("nan"), None), (b"x", rows.BYTES)])
def test_value_kind(value, kind):
    assert rows.value_kind(value) == kind


def test_target_kinds_follow_schema_and_flag_mismatches_as_bytes():
    widest = {"user_id": rows.INT, "age": rows.BYTES, "rating": rows.INT, "extra": rows.FLOAT}
    assert rows.target_kinds(widest, SCHEMA) == {
        "user_id": rows.BYTES,   # ids stay strings even when they look numeric
        "age": rows.BYTES,       # a non-int value in an INT column: ExampleValidator reports it
        "rating": rows.FLOAT,    # ints widen to FLOAT
        "extra": rows.FLOAT,     # not in schema: keeps its inferred kind
    }
    assert rows.target_kinds({"age": rows.FLOAT}, SCHEMA) == {"age": rows.BYTES}


def test_row_to_example_skips_missing_values():
    example = rows.row_to_example(
        {"user_id": "196", "age": "24", "rating": "", "title": "Toy Story, The"},
        {"user_id": rows.BYTES, "age": rows.INT, "rating": rows.FLOAT, "title": rows.BYTES})
    assert _values(example) == {"user_id": ("bytes_list", [b"196"]), "age": ("int64_list", [24]),
                                "title": ("bytes_list", [b"Toy Story, The"])}


def test_parse_csv_line_handles_quotes_and_rejects_wrong_field_count(tmp_path):
    header = ["a", "b", "c"]
    path = tmp_path / "f.csv"
    path.write_text('a,b,c\n1,"x, y",z\n1,2\n')
    assert rows.parse_csv_line((str(path), '1,"x, y",z'), header) == {"a": "1", "b": "x, y",
                                                                      "c": "z"}
    with pytest.raises(IngestionError, match=f"{path}:3: a row has 2 fields but the header "
                                             "has 3"):
        rows.parse_csv_line((str(path), "1,2"), header)


def test_event_times_are_read_as_seconds_and_bad_ones_named_with_file_line_and_value(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,ts\nu1,2024-06-01T00:00:00Z\nu2,not-a-time\nu3,\n")
    iso = rows.EventTime("ts", "iso8601")
    assert rows.parse_csv_line((str(path), "u1,2024-06-01T00:00:00Z"), ["user", "ts"], iso) == {
        "user": "u1", "ts": 1_717_200_000}
    with pytest.raises(IngestionError) as bad:
        rows.parse_csv_line((str(path), "u2,not-a-time"), ["user", "ts"], iso)
    assert str(bad.value).startswith(
        f"{path}:3: column 'ts' (the event time): value 'not-a-time' is not ISO-8601 "
        "dates/times (no zone: UTC); fix or drop the row, or declare the column's format in "
        "features.yaml (format: seconds|milliseconds|iso8601 or a strptime pattern)")
    with pytest.raises(IngestionError, match=f"{path}:4: column 'ts' \\(the event time\\): an "
                                             "empty value; every event needs its time"):
        rows.parse_csv_line((str(path), "u3,"), ["user", "ts"], iso)
    with pytest.raises(IngestionError, match="log.parquet: column 'ts' .*no such column"):
        rows.with_event_seconds({"user": "u1"}, iso, "log.parquet")


def test_a_csv_without_the_event_time_column_is_named_at_once(tmp_path):
    (tmp_path / "in.csv").write_text("user_id,title\n1,A\n")
    with pytest.raises(IngestionError, match=r"in.csv: no column 'ts' \(the contract's event "
                                             r"time\) in the header \['user_id', 'title'\]"):
        with TestPipeline() as p:
            _ = p | rows.ReadCsvRows(str(tmp_path / "in.csv"), rows.EventTime("ts"))  # pylint: disable=no-value-for-parameter


def test_read_csv_header_errors(tmp_path):
    with pytest.raises(IngestionError, match="no input files match"):
        rows.read_csv_header(str(tmp_path / "*.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestionError, match="is empty"):
        rows.read_csv_header(str(tmp_path / "empty.csv"))
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    with pytest.raises(IngestionError, match="duplicate column"):
        rows.read_csv_header(str(tmp_path / "dup.csv"))
    (tmp_path / "p1.csv").write_text("a,b\n1,2\n")
    (tmp_path / "p2.csv").write_text("a,c\n1,2\n")
    with pytest.raises(IngestionError, match="differs"):
        rows.read_csv_header(str(tmp_path / "p*.csv"))


def test_rows_to_examples_types_each_column_over_the_whole_input():
    data = [{"user_id": "1", "age": "30", "rating": "4"},
            {"user_id": "2", "age": "x", "rating": "3.5"},
            {"user_id": "3", "age": "", "rating": ""}]
    with TestPipeline() as p:
        kinds = p | beam.Create(data) | rows.TargetKinds(SCHEMA)  # pylint: disable=no-value-for-parameter
        assert_that(kinds, equal_to([{"user_id": rows.BYTES, "age": rows.BYTES,
                                      "rating": rows.FLOAT}]), label="kinds")
    with TestPipeline() as p:
        examples = (p | beam.Create(data)
                    | rows.RowsToExamples({"user_id": rows.BYTES, "age": rows.BYTES,  # pylint: disable=no-value-for-parameter
                                           "rating": rows.FLOAT})
                    | beam.Map(lambda e: sorted(_values(e).items())))
        assert_that(examples, equal_to([
            sorted({"user_id": ("bytes_list", [b"1"]), "age": ("bytes_list", [b"30"]),
                    "rating": ("float_list", [4.0])}.items()),
            sorted({"user_id": ("bytes_list", [b"2"]), "age": ("bytes_list", [b"x"]),
                    "rating": ("float_list", [3.5])}.items()),
            sorted({"user_id": ("bytes_list", [b"3"])}.items()),
        ]))


def test_read_csv_rows(tmp_path):
    (tmp_path / "in.csv").write_text('user_id,title\n1,"A, B"\n\n2,C\n')
    with TestPipeline() as p:
        read = p | rows.ReadCsvRows(str(tmp_path / "in.csv"))  # pylint: disable=no-value-for-parameter
        assert_that(read, equal_to([{"user_id": "1", "title": "A, B"},
                                    {"user_id": "2", "title": "C"}]))
