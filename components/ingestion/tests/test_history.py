"""The history feature is point in time: never the event itself, a later event or one at the
same second; the most recent last; at most `length` items."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import tensorflow as tf

from components.ingestion import history


def test_histories_by_hand():
    events = [(30, b"c"), (10, b"a"), (20, b"b"), (20, b"x"), (40, b"d")]
    assert history.histories(events, 10) == [
        [b"a", b"b", b"x"],    # 30: everything before it
        [],                    # 10: the first event
        [b"a"], [b"a"],        # 20: the other event at 20 is not "before"
        [b"a", b"b", b"x", b"c"]]
    assert history.histories(events, 2)[4] == [b"x", b"c"]  # truncated: the last 2


def _example(user, item, time):
    example = tf.train.Example()
    features = example.features.feature
    if user is not None:
        features["customer"].bytes_list.value.append(user.encode())
    features["sku"].bytes_list.value.append(item.encode())
    features["ts"].int64_list.value.append(time)
    return example


def _summary(example):
    features = example.features.feature
    user = features["customer"].bytes_list.value[0].decode() if "customer" in features else None
    return (user, features["sku"].bytes_list.value[0].decode(),
            tuple(v.decode() for v in features["recent"].bytes_list.value))


def test_add_history_per_user_with_a_planted_future_item():
    # "FUTURE" is c1's last event: no row of c1 may see it, and c2 never sees c1's items.
    rows = [_example("c1", "a", 1), _example("c1", "b", 2), _example("c2", "z", 3),
            _example("c1", "FUTURE", 9), _example("c1", "c", 5), _example(None, "q", 4)]
    # A column of the same name in the files is replaced, not appended to.
    rows[1].features.feature["recent"].bytes_list.value.append(b"from-the-file")
    with TestPipeline() as p:
        out = (p | beam.Create(rows)
               | history.AddHistory("customer", "sku", "ts", "recent", 2)  # pylint: disable=no-value-for-parameter
               | beam.Map(_summary))
        assert_that(out, equal_to([
            ("c1", "a", ()), ("c1", "b", ("a",)), ("c1", "c", ("a", "b")),
            ("c1", "FUTURE", ("b", "c")), ("c2", "z", ()), (None, "q", ())]))
