"""The ModelValidator scores on the Trainer's division of a window of spans."""
from tfx.types import standard_artifacts

from components.model_validator import evaluation
from components.model_validator import executor as validator_executor
from twotower.config import ValidationConfig


def _span(tmp_path, span):
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / f"s{span}")
    artifact.span = span
    artifact.split_names = '["train", "eval"]'
    return artifact


def test_filtered_history_is_the_whole_window_and_the_newest_eval_is_scored(tmp_path,
                                                                            monkeypatch):
    calls = []
    monkeypatch.setattr(evaluation, "evaluate_export",
                        lambda *args, **kwargs: calls.append(args) or {"recall_at_100": 0.5})
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    validator_executor._score(model, [_span(tmp_path, 2), _span(tmp_path, 1)],
                              ValidationConfig())
    (_, train, evaluated, _, _), = calls
    assert [p.split(str(tmp_path))[1] for p in train] == [
        "/s1/Split-train/*", "/s2/Split-train/*", "/s1/Split-eval/*"]
    assert evaluated.split(str(tmp_path))[1] == "/s2/Split-eval/*"
    validator_executor._score(model, [_span(tmp_path, 3)], ValidationConfig())
    assert [p.split(str(tmp_path))[1] for p in calls[1][1]] == ["/s3/Split-train/*"]
