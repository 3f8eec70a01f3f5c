"""Train, evaluate and export one two-tower model (plain function; the TFX run_fn wraps it)."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Mapping, Optional, Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf

from twotower import logs as twotower_logs
from twotower import records
from components.negative_pool import artifact_io
from components.trainer import (eval_events, eval_sample, export, features, metrics,
                                optimizers, prior, towers, train_history, warm_start)
from components.trainer import distribution
from components.trainer import model as model_lib
from twotower.config import PipelineConfig, TrainingConfig
from twotower.errors import ConfigError
from twotower.contract import Contract

CATALOG_BATCH = 4096


@dataclasses.dataclass
class TrainResult:
    """The trained model, its catalogue embeddings and what evaluation needs.

    Attributes:
      model: The trained model.
      contract: The feature set it was trained on.
      catalog_ids: [N] catalogue item ids.
      catalog_embeddings: [N, D] candidate-tower outputs.
      log_popularity: [N] log p_freq (for the popularity prior).
      train_counts: [N] training interactions per item.
      seen: Training history per user (train_history.TrainHistory.seen).
      metrics: Eval metrics (see metrics.evaluate) plus training figures.
    """

    model: model_lib.TwoTowerModel
    contract: Contract
    catalog_ids: list[str]
    catalog_embeddings: np.ndarray
    log_popularity: np.ndarray
    train_counts: np.ndarray
    seen: tuple[tf.keras.layers.StringLookup, tf.RaggedTensor]
    metrics: dict[str, float]

    @property
    def temperature(self) -> float:
        return float(self.model.temperature.numpy())

    def index_vectors(self, prior_weight: float) -> np.ndarray:
        """[N, D] or [N, D + 1] item vectors of the retrieval index (prior.py)."""
        return prior.item_vectors(self.catalog_embeddings, self.log_popularity, prior_weight,
                                  self.temperature)

    def query_vectors(self, features_batch: Mapping[str, tf.Tensor],
                      prior_weight: float) -> tf.Tensor:
        """Raw query features -> [B, D] or [B, D + 1] query vectors of the index."""
        return prior.query_vectors(self.model(features_batch), prior_weight)

    def evaluate(self, eval_pattern: Union[str, Sequence[str]], prior_weight: float,
                 sample: Optional[int] = None) -> dict[str, float]:
        """The metrics of evaluate_events."""
        return self.evaluate_events(eval_pattern, prior_weight, sample).metrics

    def evaluate_events(self, eval_pattern: Union[str, Sequence[str]], prior_weight: float,
                        sample: Optional[int] = None) -> metrics.Evaluation:
        """metrics.evaluate_events on an eval split (about `sample` of its rows,
        eval_sample; None: all), scoring with popularity prior weight β."""
        rate = eval_sample.sample_rate(eval_pattern, sample)
        return metrics.evaluate_events(lambda batch: self.query_vectors(batch, prior_weight),
                                features.dataset(eval_pattern,
                                                 metrics.eval_rows(len(self.catalog_ids)),
                                                 False, 0, self.contract,
                                                 features.interaction_names(self.contract),
                                                 rate=rate),
                                self.catalog_ids, tf.constant(self.index_vectors(prior_weight)),
                                self.seen, self.train_counts, self.contract,
                                expected_rows=eval_sample.expected_rows(eval_pattern, sample))


class EpochTimer(tf.keras.callbacks.Callback):
    """Wall time and steps of each epoch (logged), for a steady-state throughput."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.steps: list[int] = []
        self._started = 0.0
        self._first_step = 0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._started = time.perf_counter()
        self._first_step = int(self.model.step.numpy())

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.steps.append(int(self.model.step.numpy()) - self._first_step)
        twotower_logs.progress("epoch %d: %d steps in %.1fs, loss %.4f", epoch + 1,
                               self.steps[-1], self.seconds[-1],
                               (logs or {}).get("loss", float("nan")))

    def examples_per_sec(self, batch_size: int) -> float:
        """Training examples per second, leaving out the first epoch (graph tracing) when
        there are several."""
        seconds, steps = (self.seconds[1:], self.steps[1:]) if len(self.seconds) > 1 else (
            self.seconds, self.steps)
        return sum(steps) * batch_size / max(sum(seconds), 1e-9)


def make_optimizer(config: PipelineConfig) -> tf.keras.optimizers.Optimizer:
    training = config.training
    if training.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(training.learning_rate)
    if training.optimizer == "lazy_adam":
        return optimizers.LazyAdam(training.learning_rate)
    return tf.keras.optimizers.Adam(training.learning_rate)


def read_preprocessing(pool_uri: str, contract: Contract) -> towers.Preprocessing:
    """The vocabularies and numeric statistics the NegativePoolBuilder computed."""
    vocabularies = {feature.name: [value for value, _ in artifact_io.read_vocabulary(
        pool_uri, feature.name)] for feature in contract.features if feature.has_vocabulary}
    if contract.history is not None:  # a history's values are item ids
        vocabularies[contract.history.name] = vocabularies[contract.item_id]
    numeric = {name: towers.NumericStats(tuple(entry["boundaries"]), entry["mean"], entry["std"])
               for name, entry in artifact_io.read_numeric(pool_uri).items()}
    for feature in contract.features:
        if feature.is_numeric and feature.name not in numeric:
            logging.warning("numeric feature %s has no values in the data; it gets one bucket",
                            feature.name)
            numeric[feature.name] = towers.NumericStats((), 0.0, 1.0)
    return towers.Preprocessing(vocabularies, numeric)


def build_model(pool_uri: str, config: PipelineConfig) -> model_lib.TwoTowerModel:
    """Towers over the pool artifact's feature set and statistics, and the model around
    them (its tables' memory checked before they are allocated: check_memory).

    Raises:
      ConfigError: when the embedding tables cannot fit this machine.
    """
    contract = artifact_io.read_contract(pool_uri)
    pool = model_lib.load_pool_data(pool_uri, contract)
    preprocessing = read_preprocessing(pool_uri, contract)
    tf.keras.utils.set_random_seed(config.training.seed)
    # Under a strategy each replica gets batch_size / replicas rows of the global batch and
    # draws its own share of the pool negatives.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    model = model_lib.TwoTowerModel(towers.query_tower(contract, preprocessing, config.model),
                                    towers.candidate_tower(contract, preprocessing, config.model),
                                    pool, config.model, config.loss,
                                    max(1, config.training.batch_size // replicas),
                                    config.training.seed, contract)
    logging.info("Embedding tables: ~%.1f MiB with optimizer state",
                 check_memory(model, config) / 2**20)
    return model


def warm_start_towers(model: model_lib.TwoTowerModel, base_model_dir: str) -> dict[str, float]:
    """Initialises both towers from a previous export (warm_start.py).

    Returns:
      warm_start_known_<tower> and warm_start_new_<tower> id counts (query: users,
      candidate: items).
    """
    counts = {}
    for tower, label in ((model.query_tower, "users"), (model.candidate_tower, "items")):
        warm_start.build(tower)
        stats = warm_start.restore(tower, export.warm_start_path(base_model_dir, tower.name))
        counts[f"warm_start_known_{label}"] = float(stats.known_ids)
        counts[f"warm_start_new_{label}"] = float(stats.new_ids)
    return counts


# Optimizer state per weight besides the weight: Adam's two moments, Adagrad's accumulator.
OPTIMIZER_SLOTS = {"adam": 2, "lazy_adam": 2, "adagrad": 1}
MAX_MEMORY_SHARE = 0.8


def machine_memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(model: tf.Module, config: PipelineConfig,
                 memory_bytes: Optional[int] = None) -> int:
    """Estimates the embedding tables' memory (rows x dimension x 4 bytes, times 1 + the
    optimizer's slots) before any is allocated; returns the estimate in bytes.

    Raises:
      ConfigError: when it exceeds MAX_MEMORY_SHARE of the machine's memory, naming the
        largest table and the settings that shrink it.
    """
    tables = {id(layer): layer for layer in model.submodules
              if isinstance(layer, tf.keras.layers.Embedding)}.values()
    if not tables:
        return 0
    weights = sum(layer.input_dim * layer.output_dim for layer in tables)
    estimate = weights * 4 * (1 + OPTIMIZER_SLOTS[config.training.optimizer])
    available = memory_bytes or machine_memory_bytes()
    if estimate > MAX_MEMORY_SHARE * available:
        largest = max(tables, key=lambda layer: layer.input_dim * layer.output_dim)
        raise ConfigError(
            f"the embedding tables need ~{estimate / 2**30:.1f} GiB ({weights:,} weights x 4 "
            f"bytes x (1 + {OPTIMIZER_SLOTS[config.training.optimizer]} "
            f"{config.training.optimizer} slots); the largest, {largest.name}, is "
            f"{largest.input_dim:,} rows x {largest.output_dim}), more than "
            f"{MAX_MEMORY_SHARE:.0%} of this machine's {available / 2**30:.1f} GiB: lower "
            "model.embedding_dim / id_embedding_dim / feature_embedding_dim, or cap the "
            "vocabularies in features.yaml (max_tokens, min_count, hash_bins)")
    return estimate


def check_enough_rows(train_rows: int, batch_size: int) -> None:
    """Raises ConfigError when the train split cannot fill one batch (training drops the
    last partial batch: in-batch negatives need full ones)."""
    if train_rows < batch_size:
        raise ConfigError(f"the train split has {train_rows} rows, fewer than one batch of "
                          f"training.batch_size {batch_size}: lower training.batch_size, or "
                          "train on more data (with spans: a larger spans.window_spans)")


def train_dataset(train_pattern: Union[str, Sequence[str]], catalog_pattern: str,
                  contract: Contract, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled full training batches, each row with its item's catalogue features.

    Under several workers each takes its part of every global batch (auto-shard by data:
    a split may be one file, and the seeded shuffle gives every worker the same order, so
    the parts are disjoint).
    """
    catalog = features.CatalogLookup(contract, records.read_columns(
        catalog_pattern, features.parse_spec(contract, contract.candidate_names)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return features.dataset(train_pattern, batch_size, True, seed, contract,
                            features.interaction_names(contract),
                            catalog=catalog).with_options(options)


def _fit(model: model_lib.TwoTowerModel, data: tf.data.Dataset, training: TrainingConfig,
         train_rows: int, strategy: tf.distribute.Strategy, timer: EpochTimer,
         incremental: bool) -> tf.keras.callbacks.History:
    """model.fit for training.train_steps steps, or its epochs (incremental_epochs when
    warm-started and set)."""
    if training.train_steps is not None:
        return model.fit(data.repeat(), epochs=1, steps_per_epoch=training.train_steps,
                         verbose=0, callbacks=[timer])
    epochs = training.epochs
    if incremental and training.incremental_epochs is not None:
        epochs = training.incremental_epochs
    if distribution.is_multi_worker(strategy):
        # Every worker takes the same number of steps (a sharded finite dataset could end
        # one step earlier on one worker and leave the other waiting).
        return model.fit(data.repeat(), epochs=epochs, verbose=0, callbacks=[timer],
                         steps_per_epoch=train_rows // training.batch_size)
    return model.fit(data, epochs=epochs, verbose=0, callbacks=[timer])


def train_and_evaluate(train_pattern: Union[str, Sequence[str]],
                       eval_pattern: Union[str, Sequence[str]], catalog_pattern: str,
                       pool_uri: str, config: PipelineConfig,
                       serving_dir: Optional[str] = None,
                       strategy: Optional[tf.distribute.Strategy] = None,
                       base_model_dir: Optional[str] = None) -> Optional[TrainResult]:
    """Trains on the train split, evaluates on eval against the whole catalogue, exports.

    With TF_CONFIG naming several processes (distribution.py) each trains its share of
    every global batch under MultiWorkerMirroredStrategy; only the chief evaluates and
    exports, the others return None.

    Args:
      train_pattern: Files of the train split (gzipped tf.Examples), or a list of patterns
        (a window of spans).
      eval_pattern: Files of the eval split (or a list of patterns).
      catalog_pattern: Files of the item catalogue.
      pool_uri: NegativePool artifact.
      config: The pipeline config (model, loss, training sections).
      serving_dir: Where to export (see export.py); None skips the export.
      strategy: A tf.distribute strategy; None: distribution.strategy_from_environment().
      base_model_dir: A previous export (serving dir) to warm-start the towers from; then
        training.incremental_epochs (when set) replaces training.epochs.

    Returns:
      The model, catalogue embeddings and metrics (plus examples_per_sec); None on a
      worker that is not the chief.
    """
    strategy = strategy or distribution.strategy_from_environment()
    training = config.training
    train_rows = artifact_io.read_stats(pool_uri)["train_interactions"]
    check_enough_rows(train_rows, training.batch_size)
    with strategy.scope():
        model = build_model(pool_uri, config)
        warm = warm_start_towers(model, base_model_dir) if base_model_dir else {}
        model.compile(optimizer=make_optimizer(config))
    contract = artifact_io.read_contract(pool_uri)
    data = train_dataset(train_pattern, catalog_pattern, contract, training.batch_size,
                         training.seed)
    timer = EpochTimer()
    with distribution.lost_workers_fail_clearly(strategy):
        history = _fit(model, data, training, train_rows, strategy, timer,
                       incremental=bool(base_model_dir))
    steps = int(model.step.numpy())
    logging.info("Trained %d steps in %.1fs; loss %s", steps, sum(timer.seconds),
                 history.history["loss"])
    if not distribution.is_chief(strategy):
        logging.info("Not the chief: the chief evaluates and exports")
        return None

    ids, embeddings = export.catalog_embeddings(model.candidate_tower, iter(features.dataset(
        catalog_pattern, CATALOG_BATCH, False, 0, contract, contract.candidate_names)))
    seen = metrics.no_history()
    if contract.user_id is not None:
        seen = train_history.read_train_history(
            train_pattern, eval_pattern, config.validation.max_eval_interactions, ids,
            contract).seen(ids)
    table = artifact_io.read_frequencies(pool_uri)
    rows = table.positions(ids)
    counts = np.where(rows >= 0, table.counts[np.maximum(rows, 0)], 0).astype(np.float64)
    trained = TrainResult(model, contract, ids, embeddings, prior.log_popularity(ids, table),
                          counts, seen, {})
    weight = config.model.popularity_prior
    sample = config.validation.max_eval_interactions
    scored = trained.evaluate_events(eval_pattern, weight, sample)
    trained.metrics.update(scored.metrics)
    trained.metrics.update(
        examples_per_sec=timer.examples_per_sec(training.batch_size),
        train_seconds=sum(timer.seconds), final_loss=float(history.history["loss"][-1]),
        temperature=trained.temperature, popularity_prior=weight, **warm)
    logging.info("Eval metrics: %s", trained.metrics)
    if serving_dir:
        export.export_all(model.query_tower, model.candidate_tower, contract, ids,
                          trained.index_vectors(weight), trained.metrics, serving_dir, weight,
                          (scored, eval_events.key(train_pattern, eval_pattern, sample,
                                                   scored.top.shape[1])))
    return trained
