"""Train, evaluate and export on small planted-cluster data (real Beam pool, real TF)."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import example_files
from components.negative_pool.pool import PoolSettings
from components.trainer import export, training
from pipeline import config as config_lib
from pipeline.data import synthetic

pytestmark = pytest.mark.e2e


@pytest.fixture(name="data", scope="module")
def fixture_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    spec = synthetic.SyntheticSpec(users=200, items=120, interactions=12_000, seed=3, clusters=6,
                                   affinity=0.9)
    world, rng, users, items = synthetic.build(spec)
    frame = next(synthetic.interaction_chunks(world, spec, rng, users, items, spec.interactions))
    cut = int(len(frame) * 0.8)
    example_files.write_split([frame.iloc[:cut]], root / "inter", "train")
    example_files.write_split([frame.iloc[cut:]], root / "inter", "eval")
    example_files.write_split([items], root / "items", "catalog")
    pool_uri = example_files.build_pool_artifact(root / "inter", root / "items", root / "pool",
                                                 PoolSettings(seed=0))
    return root, pool_uri


def _patterns(root):
    return (str(root / "inter" / "Split-train" / "*"), str(root / "inter" / "Split-eval" / "*"),
            str(root / "items" / "Split-catalog" / "*"))


def test_train_evaluate_export(data, tmp_path):
    root, pool_uri = data
    config = config_lib.load(None, ("training.epochs=5", "training.batch_size=128",
                                    "model.embedding_dim=16"))
    serving = str(tmp_path / "serving")
    result = training.train_and_evaluate(*_patterns(root), pool_uri, config, serving)
    metrics = result.metrics
    # Random retrieval of 1 of 120 items gives recall@10 = 10/120 = 0.083; the planted
    # clusters (6, affinity 0.9) are learnable from ids and features.
    assert metrics["filtered_recall_at_10"] > 0.2, metrics
    assert metrics["eval_interactions"] == 2_400
    assert 0 < metrics["coverage_at_10"] <= 1 and metrics["examples_per_sec"] > 0
    ids, embeddings = export.read_embeddings(os.path.join(serving, export.EMBEDDINGS_FILE))
    assert sorted(ids) == sorted(f"i{i}" for i in range(1, 121))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    loaded = tf.saved_model.load(os.path.join(serving, export.QUERY_TOWER_DIR))
    query = {"user_id": tf.constant(["u1", "nobody"]), "age": tf.constant([30, 0], tf.int64),
             "gender": tf.constant(["F", ""]), "occupation": tf.constant(["artist", ""]),
             "zip": tf.constant(["12345", ""])}
    served = loaded.signatures["serving_default"](**query)[export.EMBEDDING_OUTPUT]
    np.testing.assert_allclose(served, result.model.query_tower(query), rtol=1e-5, atol=1e-6)
    assert os.path.exists(os.path.join(serving, export.METRICS_FILE))


def test_loss_choice_and_no_logq_train(data):
    root, pool_uri = data
    base = config_lib.load(None, ("training.epochs=1", "training.batch_size=128"))
    for loss in ("bce", "bpr", "hinge"):
        config = dataclasses.replace(base, loss=dataclasses.replace(
            base.loss, loss=loss, logq_correction=False, num_hard_negatives=8))
        result = training.train_and_evaluate(*_patterns(root), pool_uri, config)
        assert np.isfinite(result.metrics["final_loss"]), loss
