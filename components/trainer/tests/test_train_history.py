"""The train split's counts and histories, read in one pass (train_history.TrainHistory)."""
import numpy as np
import tensorflow as tf

from components.trainer import train_history
from twotower.contract import Contract, FeatureSpec

CONTRACT = Contract((FeatureSpec("user", "user_id", "id", dtype="string"),
                     FeatureSpec("item", "item_id", "id", dtype="string")))
ANONYMOUS = Contract((FeatureSpec("item", "item_id", "id", dtype="string"),))
TRAIN = [("u1", "a"), ("u1", "a"), ("u1", "b"), ("u2", "c"), ("u3", "a"), ("u3", "z")]
EVAL = [("u1", "c"), ("u2", "a"), ("u2", "b")]


def _write(pairs, path) -> str:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for user, item in pairs:
            example = tf.train.Example()
            example.features.feature["user"].bytes_list.value.append(user.encode())
            example.features.feature["item"].bytes_list.value.append(item.encode())
            writer.write(example.SerializeToString())
    return str(path)


def _split(tmp_path):
    return _write(TRAIN, tmp_path / "train.gz"), _write(EVAL, tmp_path / "eval.gz")


def _rows(seen, user):
    lookup, history = seen
    return sorted(history[int(lookup(tf.constant([user]))[0])].numpy().tolist())


def test_counts_map_to_any_catalogue_including_items_outside_the_reference(tmp_path):
    train, evals = _split(tmp_path)
    history = train_history.read_train_history(train, evals, None, ["a", "b", "c"], CONTRACT)
    np.testing.assert_array_equal(history.counts(["a", "b", "c"]), [3, 1, 1])
    # Another model's catalogue: "z" was counted outside the reference, "y" never trained.
    np.testing.assert_array_equal(history.counts(["z", "c", "y", "a"]), [1, 1, 0, 3])


def test_seen_items_are_the_sampled_users_training_items_in_the_catalogue(tmp_path):
    train, evals = _split(tmp_path)
    history = train_history.read_train_history(train, evals, None, ["a", "b", "c"], CONTRACT)
    assert sorted(history.users.tolist()) == [b"u1", b"u2"]  # u3 has no eval row
    shared = history.seen(["c", "b", "a"])
    assert _rows(shared, "u1") == [1, 2]  # b and a, each once
    assert _rows(shared, "u2") == [0]  # c
    assert _rows(shared, "u3") == []  # not sampled: unknown, row 0
    # Another catalogue: the items outside it are left out ("z" would be u3's).
    assert _rows(history.seen(["a"]), "u1") == [0]


def test_an_anonymous_split_counts_items_and_filters_nothing(tmp_path):
    train, evals = _split(tmp_path)
    history = train_history.read_train_history(train, evals, None, ["a", "b"], ANONYMOUS)
    assert history.users is None
    np.testing.assert_array_equal(history.counts(["a", "b", "c"]), [3, 1, 1])
    lookup, rows = history.seen(["a", "b"])
    assert rows.nrows() == 2 and rows.values.shape[0] == 0
    assert history.serves(ANONYMOUS) and not history.serves(CONTRACT)
