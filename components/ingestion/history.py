"""The history feature: each interaction's user's last N items before it, point in time.

For every interaction row, `history` lists the item ids of the same user's events whose time
is strictly earlier (an event never sees itself, a later event, or an event at the same
second, such as the rest of its basket), the most recent last, at most `length` of them.
It is computed over the whole log before the split, so a training row's history holds only
training events (they are all earlier than it, hence before the cutoff), and an eval row's
history holds every earlier event, training or eval: the query as of that moment. Rows with
no earlier event get no history value (an empty list).
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import apache_beam as beam
import tensorflow as tf


def _single(example: tf.train.Example, name: str) -> Optional[object]:
    feature = example.features.feature.get(name)
    if feature is None:
        return None
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return values[0] if len(values) else None


def histories(events: Iterable[tuple[int, bytes]], length: int) -> list[list[bytes]]:
    """For events (time, item) in any order, each event's history (same order as given).

    >>> histories([(3, b"c"), (1, b"a"), (2, b"b"), (2, b"x")], 2)
    [[b'b', b'x'], [], [b'a'], [b'a']]
    """
    events = list(events)
    order = sorted(range(len(events)), key=lambda i: events[i][0])
    result: list[list[bytes]] = [[] for _ in events]
    earlier: list[bytes] = []
    position = 0
    while position < len(order):
        time = events[order[position]][0]
        same = []
        while position < len(order) and events[order[position]][0] == time:
            same.append(order[position])
            position += 1
        for index in same:
            result[index] = earlier[-length:] if length else []
        earlier.extend(events[index][1] for index in same)
    return result


def _with_history(element: tuple[bytes, Iterable[tf.train.Example]], item_feature: str,
                  time_feature: str, name: str, length: int) -> Iterator[tf.train.Example]:
    user, examples = element
    examples = list(examples)
    if not user:  # no user id: no history (the validator reports the missing id)
        yield from examples
        return
    events = [(int(_single(example, time_feature) or 0), _single(example, item_feature) or b"")
              for example in examples]
    for example, items in zip(examples, histories(events, length)):
        out = tf.train.Example()
        out.CopyFrom(example)
        if name in out.features.feature:  # a column of that name in the files is replaced
            del out.features.feature[name]
        if items:
            out.features.feature[name].bytes_list.value.extend(items)
        yield out


@beam.ptransform_fn
def AddHistory(examples: beam.PCollection, user_feature: str, item_feature: str,  # pylint: disable=invalid-name
               time_feature: str, name: str, length: int) -> beam.PCollection:
    """Adds the `name` history feature to every tf.Example (module docstring). Rows without
    a user id are passed through with no history."""
    keyed = examples | "KeyByUser" >> beam.Map(
        lambda example: (_single(example, user_feature) or b"", example))
    return (keyed
            | "GroupByUser" >> beam.GroupByKey()
            | "HistoryPerUser" >> beam.FlatMap(_with_history, item_feature, time_feature,
                                               name, length))
