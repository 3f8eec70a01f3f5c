"""The bounded evaluation on real data: the interval of a sampled recall contains the recall
over every eval event, on MovieLens-100K and a sample of The Complete Journey.

The scorer is MostPop through the validator's own evaluation (components/model_validator/
evaluation.py: the same sampling, filter and interval as any model); what is checked is the
sample, not the scorer. Each dataset is split at the 0.8 quantile of time, as runs are."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.model_validator import evaluation
from components.trainer import eval_sample
from twotower.contract import Contract, FeatureSpec
from pipeline.data import completejourney, movielens

pytestmark = pytest.mark.e2e
SAMPLE = 2_000
HASH_KEYS = [(35, key) for key in range(10)]
CJ_HOUSEHOLDS = 300


def _write(frame: pd.DataFrame, user: str, item: str, path) -> str:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for user_id, item_id in zip(frame[user], frame[item]):
            example = tf.train.Example()
            example.features.feature[user].bytes_list.value.append(str(user_id).encode())
            example.features.feature[item].bytes_list.value.append(str(item_id).encode())
            writer.write(example.SerializeToString())
    return str(path)


def _coverage(interactions, catalog, user, item, time, tmp_path, monkeypatch):
    cutoff = interactions[time].quantile(0.8)
    train = _write(interactions[interactions[time] < cutoff], user, item, tmp_path / "train.gz")
    evals = _write(interactions[interactions[time] >= cutoff], user, item, tmp_path / "eval.gz")
    contract = Contract((FeatureSpec(user, "user_id", "id", dtype="string"),
                         FeatureSpec(item, "item_id", "id", dtype="string")))
    ids = [str(value) for value in catalog]

    def mostpop(sample):
        return evaluation.evaluate_catalogue(
            lambda batch: evaluation.mostpop_queries(batch[item]), ids,
            evaluation.mostpop_vectors, contract, train, evals, (10, 100), sample,
            same_for_all=True).metrics
    exact = mostpop(None)
    covered = []
    for key in HASH_KEYS:
        monkeypatch.setattr(eval_sample, "HASH_KEY", key)
        sampled = mostpop(SAMPLE)
        assert abs(sampled["eval_interactions"] - SAMPLE) < 5 * np.sqrt(SAMPLE)
        covered += [abs(sampled[name] - exact[name]) <= sampled[f"{name}_ci95"]
                    for name in ("filtered_recall_at_10", "filtered_recall_at_100")]
    return exact, covered


def test_sampled_intervals_contain_the_exact_recall_on_movielens(tmp_path, monkeypatch):
    raw = movielens.read_archive(movielens.fetch())
    exact, covered = _coverage(raw.ratings, raw.items["item_id"], "user_id", "item_id",
                               "timestamp", tmp_path, monkeypatch)
    assert exact["eval_interactions"] == pytest.approx(20_000, abs=10)
    assert 0.05 < exact["filtered_recall_at_100"] < 0.5
    assert sum(covered) >= 0.85 * len(covered), covered  # 95% intervals: 19 of 20 expected


def test_sampled_intervals_contain_the_exact_recall_on_the_complete_journey(tmp_path,
                                                                            monkeypatch):
    raw = completejourney.sample_households(
        completejourney.read_archive(completejourney.fetch()), CJ_HOUSEHOLDS)
    exact, covered = _coverage(raw.transactions, raw.products[completejourney.ITEM_ID],
                               completejourney.USER_ID, completejourney.ITEM_ID,
                               completejourney.TIME, tmp_path, monkeypatch)
    assert exact["eval_interactions"] > 5 * SAMPLE
    assert sum(covered) >= 0.85 * len(covered), covered
