"""Exports: query and candidate towers as SavedModels taking raw features, and the
catalogue's candidate embeddings.

Layout under the Trainer's serving model dir:
  query_tower/          SavedModel, serving_default: query features -> {"embedding": [B, D']}
  candidate_tower/      SavedModel, serving_default: item features -> {"embedding": [B, D]}
  contract.json         the feature set (twotower/contract.py): inputs, their kinds and dtypes
  candidate_embeddings.tfrecord.gz   one tf.Example per catalogue item: its id, embedding
                        [D'], the vectors to index
  eval_events.npz       the scored eval events behind metrics.json (eval_events.py)
  metrics.json          eval metrics of this model (see metrics.py)
  warm_start/           query_tower.npz, candidate_tower.npz: weights and id vocabularies
                        for warm-starting the next model (warm_start.py)

D' = D, or D + 1 with a popularity prior (prior.py: the query gets a constant 1, each
indexed item τ·β·log p), so <query, item> is the retrieval score either way.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from twotower import keys, records
from components.negative_pool import artifact_io
from components.trainer import features as features_lib
from components.trainer import eval_events, prior, towers, warm_start
from twotower.contract import Contract

QUERY_TOWER_DIR = "query_tower"
CANDIDATE_TOWER_DIR = "candidate_tower"
EMBEDDINGS_FILE = "candidate_embeddings.tfrecord.gz"
METRICS_FILE = "metrics.json"
EMBEDDING_OUTPUT = "embedding"
EMBEDDING_ID = keys.POOL_ITEM_ID  # the id column of candidate_embeddings (not a data column)


def _signature(tower: towers.Tower, prior_weight: float = 0.0
               ) -> tf.types.experimental.ConcreteFunction:
    specs = dict(tower.serving_specs)

    @tf.function(input_signature=[specs])
    def serve(inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {EMBEDDING_OUTPUT: prior.query_vectors(tower(inputs, training=False),
                                                      prior_weight)}
    return serve.get_concrete_function()


def save_tower(tower: towers.Tower, path: str, prior_weight: float = 0.0) -> None:
    """Saves a tower with a serving_default signature over its raw inputs ([B] each, typed
    by the contract); with a popularity prior weight the output gets prior.py's constant-1
    column."""
    tf.saved_model.save(tower, path, signatures={
        "serving_default": _signature(tower, prior_weight)})


def catalog_embeddings(tower: towers.Tower, batches: Iterator[Mapping[str, tf.Tensor]]
                       ) -> tuple[list[str], np.ndarray]:
    """Embeds every catalogue row: (ids [N], embeddings [N, D])."""
    ids: list[str] = []
    vectors = []
    for batch in batches:
        ids.extend(value.decode() for value in batch[tower.id_feature].numpy())
        vectors.append(tower(features_lib.select(batch, tower.feature_names),
                             training=False).numpy())
    return ids, np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)


def write_embeddings(ids: Sequence[str], embeddings: np.ndarray, path: str) -> None:
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for item_id, vector in zip(ids, embeddings):
            example = tf.train.Example()
            example.features.feature[EMBEDDING_ID].bytes_list.value.append(item_id.encode())
            example.features.feature[EMBEDDING_OUTPUT].float_list.value.extend(vector.tolist())
            writer.write(example.SerializeToString())


def read_embeddings(path: str) -> tuple[list[str], np.ndarray]:
    """The inverse of write_embeddings: ids [N] and embeddings [N, D]."""
    columns = records.read_columns(path, {
        EMBEDDING_ID: tf.io.FixedLenFeature([], tf.string),
        EMBEDDING_OUTPUT: tf.io.RaggedFeature(tf.float32)})
    return ([value.decode() for value in columns[EMBEDDING_ID]],
            columns[EMBEDDING_OUTPUT].astype(np.float32))


def warm_start_path(serving_dir: str, tower_name: str) -> str:
    """Where export_all writes a tower's warm-start weights."""
    return os.path.join(serving_dir, warm_start.WARM_START_DIR, f"{tower_name}.npz")


def write_metrics(metrics: Mapping[str, float], path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(dict(metrics), indent=2, sort_keys=True) + "\n")


def export_all(query_tower: towers.Tower, candidate_tower: towers.Tower, contract: Contract,
               ids: Sequence[str], embeddings: np.ndarray, metrics: Mapping[str, float],
               serving_dir: str, prior_weight: float = 0.0,
               events: Optional[tuple[Any, dict[str, Any]]] = None) -> None:
    """Writes the whole layout of the module docstring; metrics.json last.

    Args:
      query_tower: The trained query tower.
      candidate_tower: The trained candidate tower.
      contract: The feature set (typed inputs; written as contract.json).
      ids: [N] catalogue ids.
      embeddings: [N, D'] index vectors (with the prior column when prior_weight > 0).
      metrics: Eval metrics.
      serving_dir: Output folder.
      prior_weight: Popularity prior weight β (prior.py); the query tower's output gets
        the matching constant-1 column.
      events: The scored eval events (metrics.Evaluation) and what they were scored on,
        kept for the ModelValidator (eval_events.py).
    """
    save_tower(query_tower, os.path.join(serving_dir, QUERY_TOWER_DIR), prior_weight)
    save_tower(candidate_tower, os.path.join(serving_dir, CANDIDATE_TOWER_DIR))
    artifact_io.write_contract(contract, serving_dir)
    write_embeddings(ids, embeddings, os.path.join(serving_dir, EMBEDDINGS_FILE))
    for tower in (query_tower, candidate_tower):
        warm_start.save(tower, warm_start_path(serving_dir, tower.name))
    if events is not None:
        eval_events.save(events[0], events[1], serving_dir)
    write_metrics(metrics, os.path.join(serving_dir, METRICS_FILE))
