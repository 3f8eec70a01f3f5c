"""The train split's counts and histories, read once and shared by every model the
ModelValidator scores on one eval split (evaluation.TrainHistory)."""
import numpy as np
import tensorflow as tf

from components.model_validator import evaluation
from components.trainer import features, metrics
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
    history = evaluation.read_train_history(train, evals, None, ["a", "b", "c"], CONTRACT)
    np.testing.assert_array_equal(history.counts(["a", "b", "c"]), [3, 1, 1])
    # Another model's catalogue: "z" was counted outside the reference, "y" never trained.
    np.testing.assert_array_equal(history.counts(["z", "c", "y", "a"]), [1, 1, 0, 3])


def test_seen_items_match_a_pass_of_their_own_for_the_sampled_users(tmp_path):
    train, evals = _split(tmp_path)
    history = evaluation.read_train_history(train, evals, None, ["a", "b", "c"], CONTRACT)
    assert sorted(history.users.tolist()) == [b"u1", b"u2"]  # u3 has no eval row
    catalogue = ["c", "b", "a"]
    shared = history.seen(catalogue)
    own = metrics.seen_items(
        features.dataset(train, 4, False, 0, CONTRACT, ("user", "item")), catalogue,
        np.array([b"u1", b"u2"], dtype=object), CONTRACT)
    for user in ("u1", "u2", "u3"):
        assert _rows(shared, user) == _rows(own, user)
    assert _rows(shared, "u1") == [1, 2]  # b and a, each once
    assert _rows(shared, "u3") == []  # not sampled: unknown, row 0


def test_an_anonymous_split_counts_items_and_filters_nothing(tmp_path):
    train, evals = _split(tmp_path)
    history = evaluation.read_train_history(train, evals, None, ["a", "b"], ANONYMOUS)
    assert history.users is None
    np.testing.assert_array_equal(history.counts(["a", "b", "c"]), [3, 1, 1])
    lookup, rows = history.seen(["a", "b"])
    assert rows.nrows() == 2 and rows.values.shape[0] == 0
    assert history.serves(ANONYMOUS) and not history.serves(CONTRACT)


def test_scoring_with_the_shared_history_reads_the_train_split_once(tmp_path, monkeypatch):
    train, evals = _split(tmp_path)
    reads = []
    dataset = features.dataset

    def counting(pattern, *args, **kwargs):
        reads.append(pattern)
        return dataset(pattern, *args, **kwargs)
    monkeypatch.setattr(features, "dataset", counting)
    ids = ["a", "b", "c", "z"]

    def mostpop(history=None):
        return evaluation.evaluate_catalogue(
            lambda batch: evaluation.mostpop_queries(batch["item"]), ids,
            evaluation.mostpop_vectors, CONTRACT, train, evals, (1, 2), None,
            same_for_all=True, history=history).metrics
    alone = mostpop()
    assert reads.count(train) == 1
    reads.clear()
    history = evaluation.read_train_history(train, evals, None, ids, CONTRACT)
    shared = [mostpop(history), mostpop(history)]
    assert reads.count(train) == 1
    assert shared == [alone, alone]
    # Hand-worked: popularity a > b = c = z (ties by catalogue order); u1 saw a, b and
    # wants c: rank 0 after its history is removed; u2 saw c, wants a (rank 0) and b (1).
    assert alone["filtered_recall_at_1"] == 2 / 3 and alone["filtered_recall_at_2"] == 1.0


def test_a_history_read_with_other_id_features_is_not_used(tmp_path):
    train, evals = _split(tmp_path)
    anonymous = evaluation.read_train_history(train, evals, None, ["a"], ANONYMOUS)
    evaluated = evaluation.evaluate_catalogue(
        lambda batch: evaluation.mostpop_queries(batch["item"]), ["a", "b", "c"],
        evaluation.mostpop_vectors, CONTRACT, train, evals, (1,), None, same_for_all=True,
        history=anonymous).metrics
    assert evaluated["filtered_recall_at_1"] == 2 / 3  # the users' histories were read
