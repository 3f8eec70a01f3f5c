"""Time and hash splits."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pytest
import tensorflow as tf

from components.ingestion import splits
from twotower.errors import IngestionError


def _example(t: int, user: str = "u") -> tf.train.Example:
    example = tf.train.Example()
    example.features.feature["timestamp"].int64_list.value.append(t)
    example.features.feature["user_id"].bytes_list.value.append(user.encode())
    return example


def _times(collection, label):
    return collection | f"Times{label}" >> beam.Map(lambda e: e.features.feature["timestamp"].int64_list.value[0])


def test_pick_quantile():
    quantiles = list(range(0, 1001))
    assert list(splits.pick_quantile(quantiles, 0.8)) == [800]
    assert list(splits.pick_quantile([5, 7, 9], 0.5)) == [7]
    assert not list(splits.pick_quantile([], 0.8))


def test_time_split_by_quantile_puts_the_cutoff_and_later_in_eval():
    # 100 distinct times 100..199: the 0.8 quantile is the value at rank round(0.8 * 99) = 79,
    # i.e. 179; train holds 100..178 and eval 179..199.
    examples = [_example(t) for t in range(100, 200)]
    with TestPipeline() as p:
        train, evaluation = (p | beam.Create(examples)
                             | splits.TimeSplit("timestamp", 0.8, None))  # pylint: disable=no-value-for-parameter
        assert_that(_times(train, "train"), equal_to(list(range(100, 179))), label="train")
        assert_that(_times(evaluation, "eval"), equal_to(list(range(179, 200))), label="eval")


def test_the_cutoff_from_raw_rows_equals_the_one_from_examples():
    # Text (CSV), Python ints (Parquet) and bytes; rows whose time is not an integer give
    # no time here and fail the split itself (event_time names them).
    rows = ([{"timestamp": str(t)} for t in range(100, 150)]
            + [{"timestamp": t} for t in range(150, 190)]
            + [{"timestamp": str(t).encode()} for t in range(190, 200)]
            + [{"timestamp": ""}, {"timestamp": "1.5"}, {"other": "1"}])
    assert list(splits.row_event_time({"timestamp": " 7"}, "timestamp")) == [7]
    assert not list(splits.row_event_time({"timestamp": "x"}, "timestamp"))
    with TestPipeline() as p:
        from_rows = (p | "Rows" >> beam.Create(rows)
                     | "FromRows" >> splits.RowQuantileCutoff("timestamp", 0.8))  # pylint: disable=no-value-for-parameter
        from_examples = (p | "Examples" >> beam.Create([_example(t) for t in range(100, 200)])
                         | "FromExamples" >> splits.QuantileCutoff("timestamp", 0.8))  # pylint: disable=no-value-for-parameter
        assert_that(from_rows, equal_to([179]), label="rows")
        assert_that(from_examples, equal_to([179]), label="examples")


def test_time_split_explicit_cutoff_sends_ties_to_eval():
    examples = [_example(t) for t in (1, 5, 5, 9)]
    with TestPipeline() as p:
        train, evaluation = (p | beam.Create(examples)
                             | splits.TimeSplit("timestamp", 0.5, 5))  # pylint: disable=no-value-for-parameter
        assert_that(_times(train, "train"), equal_to([1]), label="train")
        assert_that(_times(evaluation, "eval"), equal_to([5, 5, 9]), label="eval")


def test_event_time_errors_name_the_feature():
    bad = tf.train.Example()
    bad.features.feature["timestamp"].bytes_list.value.append(b"yesterday")
    with pytest.raises(IngestionError, match="'timestamp' is not an integer"):
        splits.event_time(bad, "timestamp")
    with pytest.raises(IngestionError, match="'ts' is missing"):
        splits.event_time(_example(1), "ts")


def test_hash_split_is_deterministic_and_near_the_requested_share():
    examples = [_example(t, f"user{t}") for t in range(2000)]
    expected_eval = sorted(t for t, e in zip(range(2000), examples) if splits.hash_bucket(e) < 20)
    assert 300 < len(expected_eval) < 500
    with TestPipeline() as p:
        train, evaluation = (p | beam.Create(examples) | splits.HashSplit(20))  # pylint: disable=no-value-for-parameter
        assert_that(_times(evaluation, "eval"), equal_to(expected_eval), label="eval")
        assert_that(_times(train, "train") | beam.combiners.Count.Globally(),
                    equal_to([2000 - len(expected_eval)]), label="train")
