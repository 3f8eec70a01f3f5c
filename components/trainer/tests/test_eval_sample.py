"""The bounded evaluation: which records the sample keeps, and the clustered interval."""
import numpy as np
import pytest
import tensorflow as tf

from components.trainer import eval_sample
from components.trainer.tests import small_world


def test_the_sample_keeps_about_the_asked_share_and_the_same_records_every_time(tmp_path):
    pattern = small_world.write_records(tmp_path / "eval.gz", 5_000)
    assert eval_sample.count_records(pattern) == 5_000
    assert eval_sample.sample_rate(pattern, None) == 1.0
    assert eval_sample.sample_rate(pattern, 10_000) == 1.0
    rate = eval_sample.sample_rate(pattern, 1_000)
    assert rate == 0.2 and eval_sample.expected_rows(pattern, 1_000) == 1_000

    def kept():
        records = tf.data.TFRecordDataset([pattern], compression_type="GZIP")
        return [r.numpy() for r in eval_sample.keep(records, rate)]
    first = kept()
    assert 900 <= len(first) <= 1_100  # Binomial(5000, 0.2): sd 28
    assert kept() == first
    # Hashed in batches (5,000 records cross a KEEP_BATCH boundary), it keeps exactly the
    # records, in the order, of the rule record by record: a blessed model's metrics stay
    # comparable with a candidate's.
    threshold = int(rate * eval_sample.HASH_BUCKETS)
    one_by_one = [record.numpy() for record in tf.data.TFRecordDataset(
        [pattern], compression_type="GZIP").filter(lambda record: tf.strings.to_hash_bucket_strong(
            record, eval_sample.HASH_BUCKETS, list(eval_sample.HASH_KEY)) < threshold)]
    assert first == one_by_one


def test_interval_by_hand():
    values = np.array([1.0, 0.0, 1.0, 1.0])
    # Independent events: 1.96 x sd(ddof=1) / sqrt(n) = 1.96 x 0.5 / 2.
    assert eval_sample.ci95(values) == pytest.approx(eval_sample.Z95 * 0.25)
    # Two users (a: 1, 0; b: 1, 1), mean 0.75: residual sums a 1 - 1.5, b 2 - 1.5;
    # sqrt(2 / 1 x 0.5) / 4 = 0.25.
    assert eval_sample.ci95(values, np.array(["a", "a", "b", "b"])) == pytest.approx(
        eval_sample.Z95 * 0.25)
    assert eval_sample.ci95(values, np.array(["a"] * 4)) == 0.0
    assert eval_sample.ci95(np.array([1.0])) == 0.0


def test_the_sampled_interval_covers_the_exact_mean_and_widens_for_agreeing_users():
    """Heavy users whose events agree: the sample's clustered interval covers the whole
    split's mean in at least 90% of samples, and is wider than one that takes the events
    as independent (a user's events tell less than as many users would)."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(400), rng.integers(1, 60, 400))
    hits = (rng.random(400)[users] < 0.3).astype(float)  # each user hits all or none
    exact = hits.mean()
    covered, wider = 0, 0
    for _ in range(300):
        picked = rng.random(len(hits)) < 0.2
        clustered = eval_sample.ci95(hits[picked], users[picked])
        covered += abs(hits[picked].mean() - exact) <= clustered
        wider += clustered > 2 * eval_sample.ci95(hits[picked])
    assert covered / 300 >= 0.9 and wider == 300


def test_a_rewritten_split_is_counted_again(tmp_path):
    pattern = small_world.write_records(tmp_path / "eval.gz", 30)
    assert eval_sample.count_records(pattern) == 30
    small_world.write_records(tmp_path / "eval.gz", 70)
    assert eval_sample.count_records(str(tmp_path / "*.gz")) == 70
    assert eval_sample.count_records([pattern]) == 70
