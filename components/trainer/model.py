"""The two-tower retrieval model (a tfrs.models.Model): towers + mixed negatives + the loss
of docs/architecture.md.

Per training batch of B rows: the positives' candidate embeddings, plus M = round(r·B) pool
items drawn from P_pool (stateless, seeded by (seed, step, replica)) through the same
candidate tower. Under a multi-replica tf.distribute strategy the candidate embeddings,
ids and log q are all-gathered, so every replica scores its queries against the global
batch (TFRS's Retrieval task alone does not), and rolled so this replica's columns come
first (TFRS's own cross-replica layout): row i's positive stays column i.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from twotower import keys
from components.negative_pool import artifact_io, sampling
from components.trainer import features as features_lib
from components.trainer import losses
from twotower.config import LossConfig, ModelConfig
from twotower.contract import Contract

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 1.0


@dataclasses.dataclass
class PoolData:
    """What the model needs from the NegativePool artifact.

    Attributes:
      features: Candidate features of the pool rows, name -> [P].
      probabilities: [P] P_pool of the pool rows.
      item_ids: [T] ids of the frequency table.
      in_batch: [T] p_freq of those ids.
      pool: [T] P_pool of those ids (0 outside the pool).
      floor: p_freq for ids missing from the table (the smallest smoothed probability).
    """

    features: dict[str, tf.Tensor]
    probabilities: tf.Tensor
    item_ids: np.ndarray
    in_batch: np.ndarray
    pool: np.ndarray
    floor: float


def load_pool_data(uri: str, contract: Contract) -> PoolData:
    """Reads the pool rows and the frequency table of a NegativePool artifact."""
    spec = features_lib.parse_spec(contract, contract.candidate_names)
    spec[keys.POOL_POOL_PROBABILITY] = tf.io.FixedLenFeature([], tf.float32)
    parsed = {name: tf.constant(values)
              for name, values in artifact_io.read_pool(uri, spec).items()}
    probabilities = parsed.pop(keys.POOL_POOL_PROBABILITY)
    table = artifact_io.read_frequencies(uri)
    in_batch = table.probability.astype(np.float32)
    positive = in_batch[in_batch > 0]
    floor = float(positive.min()) if positive.size else 1.0 / max(len(table.item_ids), 1)
    return PoolData(parsed, probabilities, table.item_ids, in_batch,
                    table.pool_probability.astype(np.float32), floor)


def id_keys(ids: tf.Tensor) -> tf.Tensor:
    """int64 fingerprints of string ids (62 bits: collisions are negligible)."""
    return tf.strings.to_hash_bucket_fast(ids, 1 << 62)


def num_pool_negatives(pool_ratio: float, batch_size: int) -> int:
    """M = round(r * B)."""
    return int(round(pool_ratio * batch_size))


class TwoTowerModel(tfrs.models.Model):
    """Trains both towers with in-batch + pool negatives; `call` returns query embeddings.

    `compute_loss` is TFRS's hook: sampled softmax runs through tfrs.tasks.Retrieval
    (losses.softmax_loss), BCE/BPR/hinge through losses.pairwise_loss.
    """

    def __init__(self, query_tower: tf.keras.Model, candidate_tower: tf.keras.Model,
                 pool: PoolData, model_config: ModelConfig, loss_config: LossConfig,
                 batch_size: int, seed: int, contract: Contract) -> None:
        super().__init__(name="two_tower")
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.query_names = contract.query_names
        self.candidate_names = contract.candidate_names
        self.item_id = contract.item_id
        self.loss_config = loss_config
        self.task = (losses.softmax_task(loss_config.num_hard_negatives,
                                         loss_config.remove_accidental_hits)
                     if loss_config.loss == "softmax" else None)
        self.num_pool = num_pool_negatives(loss_config.pool_ratio, batch_size)
        self.seed = seed
        self.pool_features = pool.features
        self.pool_probabilities = pool.probabilities
        self.frequency_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(pool.item_ids.astype(str)),
                                                tf.range(len(pool.item_ids), dtype=tf.int64)),
            default_value=len(pool.item_ids))
        self.in_batch_probability = tf.constant(np.append(pool.in_batch, pool.floor).astype(np.float32))
        self.pool_probability = tf.constant(np.append(pool.pool, 0.0).astype(np.float32))
        self.log_temperature = tf.Variable(math.log(model_config.temperature),
                                           trainable=model_config.learnable_temperature,
                                           name="log_temperature", dtype=tf.float32)
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    @property
    def temperature(self) -> tf.Tensor:
        return tf.exp(tf.clip_by_value(self.log_temperature, math.log(MIN_TEMPERATURE),
                                       math.log(MAX_TEMPERATURE)))

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self.query_tower(features_lib.select(inputs, self.query_names))

    def _pool_batch(self, replica: tf.Tensor) -> dict[str, tf.Tensor]:
        seed = tf.stack([tf.cast(self.seed, tf.int64) * 1_000_003 + tf.cast(replica, tf.int64),
                         self.step])
        index = sampling.draw_pool_indices(self.pool_probabilities, self.num_pool, seed)
        return {name: tf.gather(values, index) for name, values in self.pool_features.items()}

    def compute_loss(self, inputs: Mapping[str, tf.Tensor], training: bool = False
                     ) -> tf.Tensor:
        """The loss of one batch (per replica, before cross-replica averaging)."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        replica = context.replica_id_in_sync_group if context else 0
        queries = self.query_tower(features_lib.select(inputs, self.query_names),
                                   training=training)
        positives = features_lib.select(inputs, self.candidate_names)
        if self.num_pool > 0:
            pooled = self._pool_batch(replica)
            candidate_features = {name: tf.concat([positives[name], pooled[name]], axis=0)
                                  for name in self.candidate_names}
        else:
            candidate_features = positives
        candidates = self.candidate_tower(candidate_features, training=training)
        # Collectives do not carry strings: compare ids by a 62-bit fingerprint and look up
        # their frequency rows before gathering.
        candidate_keys = id_keys(candidate_features[self.item_id])
        index = self.frequency_index.lookup(candidate_features[self.item_id])
        batch_size = tf.shape(queries)[0]
        if replicas > 1:
            shift = -replica * (batch_size + self.num_pool)
            candidates, candidate_keys, index = (
                tf.roll(context.all_gather(values, axis=0), shift, axis=0)
                for values in (candidates, candidate_keys, index))
        log_q = (losses.mixture_log_q(tf.gather(self.in_batch_probability, index),
                                      tf.gather(self.pool_probability, index),
                                      batch_size * replicas, self.num_pool * replicas)
                 if self.loss_config.logq_correction else None)
        if self.task is not None:
            return losses.softmax_loss(self.task, queries, candidates, candidate_keys,
                                       self.temperature, log_q, self.loss_config.reduction)
        scores = losses.scaled_scores(queries, candidates, self.temperature)
        if log_q is not None:
            scores = losses.logq_correct(scores, log_q)
        hits = (losses.accidental_hits(candidate_keys[:batch_size], candidate_keys)
                if self.loss_config.remove_accidental_hits else None)
        logits = losses.build_logits(scores, hits)
        if self.loss_config.num_hard_negatives is not None:
            logits = losses.hard_negatives(logits, self.loss_config.num_hard_negatives)
        return losses.pairwise_loss(logits, self.loss_config.loss, self.loss_config.margin,
                                    self.loss_config.reduction)

    def train_step(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, Any]:
        """TFRS's train step (compute_loss plus regularization losses) with two additions:
        the loss is divided by the number of replicas before the gradient (Keras sums the
        replicas' gradients; TFRS's step would take an N-times step on N replicas), and the
        step counter that seeds the pool draws advances."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            total = loss + tf.add_n(self.losses) if self.losses else loss
            scaled = total / replicas
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.step.assign_add(1)
        return {"loss": loss, "temperature": self.temperature}
