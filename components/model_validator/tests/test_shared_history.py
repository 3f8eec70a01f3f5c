"""The ModelValidator reads its eval split's train history once and shares it between the
models it scores there (train_history.TrainHistory)."""
from components.model_validator import evaluation
from components.trainer import features, train_history
from components.trainer.tests.test_train_history import ANONYMOUS, CONTRACT, _split


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
    history = train_history.read_train_history(train, evals, None, ids, CONTRACT)
    shared = [mostpop(history), mostpop(history)]
    assert reads.count(train) == 1
    assert shared == [alone, alone]
    # Hand-worked: popularity a > b = c = z (ties by catalogue order); u1 saw a, b and
    # wants c: rank 0 after its history is removed; u2 saw c, wants a (rank 0) and b (1).
    assert alone["filtered_recall_at_1"] == 2 / 3 and alone["filtered_recall_at_2"] == 1.0


def test_a_history_read_with_other_id_features_is_not_used(tmp_path):
    train, evals = _split(tmp_path)
    anonymous = train_history.read_train_history(train, evals, None, ["a"], ANONYMOUS)
    evaluated = evaluation.evaluate_catalogue(
        lambda batch: evaluation.mostpop_queries(batch["item"]), ["a", "b", "c"],
        evaluation.mostpop_vectors, CONTRACT, train, evals, (1,), None, same_for_all=True,
        history=anonymous).metrics
    assert evaluated["filtered_recall_at_1"] == 2 / 3  # the users' histories were read
