"""Train, evaluate and export one two-tower model (plain function; the TFX run_fn wraps it)."""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from components import keys
from components.negative_pool import artifact_io
from components.trainer import export, features, metrics, towers
from components.trainer import model as model_lib
from pipeline.config import PipelineConfig

EVAL_BATCH = 1024
CATALOG_BATCH = 4096


@dataclasses.dataclass
class TrainResult:
    """The trained model, its catalogue embeddings and its metrics."""

    model: model_lib.TwoTowerModel
    catalog_ids: list[str]
    catalog_embeddings: np.ndarray
    metrics: dict[str, float]


def make_optimizer(config: PipelineConfig) -> tf.keras.optimizers.Optimizer:
    training = config.training
    if training.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(training.learning_rate)
    return tf.keras.optimizers.Adam(training.learning_rate)


def build_model(pool_uri: str, config: PipelineConfig) -> model_lib.TwoTowerModel:
    """Towers over the pool artifact's vocabularies, and the model around them."""
    pool = model_lib.load_pool_data(pool_uri)
    users = [user for user, _ in artifact_io.read_vocabulary(pool_uri, "user_id")]
    items = [item for item, _ in artifact_io.read_vocabulary(pool_uri, "item_id")]
    tf.keras.utils.set_random_seed(config.training.seed)
    return model_lib.TwoTowerModel(towers.query_tower(users, config.model),
                                   towers.candidate_tower(items, config.model), pool,
                                   config.model, config.loss, config.training.batch_size,
                                   config.training.seed)


def train_and_evaluate(train_pattern: str, eval_pattern: str, catalog_pattern: str,
                       pool_uri: str, config: PipelineConfig,
                       serving_dir: Optional[str] = None,
                       strategy: Optional[tf.distribute.Strategy] = None) -> TrainResult:
    """Trains on the train split, evaluates on eval against the whole catalogue, exports.

    Args:
      train_pattern: Files of the train split (gzipped tf.Examples).
      eval_pattern: Files of the eval split.
      catalog_pattern: Files of the item catalogue.
      pool_uri: NegativePool artifact.
      config: The pipeline config (model, loss, training sections).
      serving_dir: Where to export (see export.py); None skips the export.
      strategy: A tf.distribute strategy; None uses the default.

    Returns:
      The model, catalogue embeddings and metrics (plus examples_per_sec).
    """
    training = config.training
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(pool_uri, config)
        model.compile(optimizer=make_optimizer(config))
    data = features.dataset(train_pattern, training.batch_size, shuffle=True, seed=training.seed)
    started = time.time()
    if training.train_steps is not None:
        history = model.fit(data.repeat(), epochs=1, steps_per_epoch=training.train_steps,
                            verbose=2)
        steps = training.train_steps
    else:
        history = model.fit(data, epochs=training.epochs, verbose=2)
        steps = int(model.step.numpy())
    seconds = time.time() - started
    logging.info("Trained %d steps in %.1fs; loss %s", steps, seconds, history.history["loss"])

    ids, embeddings = export.catalog_embeddings(model.candidate_tower, iter(features.dataset(
        catalog_pattern, CATALOG_BATCH, False, 0, features.CANDIDATE_FEATURES)))
    seen = metrics.seen_items(features.dataset(train_pattern, 8192, False, 0,
                                               ("user_id", "item_id")), ids)
    table = artifact_io.read_frequencies(pool_uri)
    counts = np.array([table.get(item, {}).get(keys.POOL_COUNT, 0) for item in ids], np.float64)
    result = metrics.evaluate(model, features.dataset(eval_pattern, EVAL_BATCH, False, 0),
                              ids, tf.constant(embeddings), seen, counts)
    result["examples_per_sec"] = steps * training.batch_size / seconds
    result["final_loss"] = float(history.history["loss"][-1])
    result["temperature"] = float(model.temperature.numpy())
    logging.info("Eval metrics: %s", result)
    if serving_dir:
        export.export_all(model.query_tower, model.candidate_tower, ids, embeddings, result,
                          serving_dir)
    return TrainResult(model, ids, embeddings, result)
