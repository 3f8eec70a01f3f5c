"""Exports: query and candidate towers as SavedModels taking raw features, and the
catalogue's candidate embeddings.

Layout under the Trainer's serving model dir:
  query_tower/          SavedModel, serving_default: user features -> {"embedding": [B, D']}
  candidate_tower/      SavedModel, serving_default: item features -> {"embedding": [B, D]}
  candidate_embeddings.tfrecord.gz   one tf.Example per catalogue item: item_id, embedding
                        [D'], the vectors to index
  metrics.json          eval metrics of this model (see metrics.py)
  warm_start/           query_tower.npz, candidate_tower.npz: weights and id vocabularies
                        for warm-starting the next model (warm_start.py)

D' = D, or D + 1 with a popularity prior (prior.py: the query gets a constant 1, each
indexed item τ·β·log p), so <query, item> is the retrieval score either way.
"""
from __future__ import annotations

import json
import os
from typing import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from components import records
from components.trainer import features as features_lib
from components.trainer import prior, warm_start

QUERY_TOWER_DIR = "query_tower"
CANDIDATE_TOWER_DIR = "candidate_tower"
EMBEDDINGS_FILE = "candidate_embeddings.tfrecord.gz"
METRICS_FILE = "metrics.json"
EMBEDDING_OUTPUT = "embedding"


def _signature(tower: tf.keras.Model, names: Sequence[str], prior_weight: float = 0.0
               ) -> tf.types.experimental.ConcreteFunction:
    specs = {name: tf.TensorSpec([None], tf.int64 if name in features_lib.INT_FEATURES
                                 else tf.string, name=name) for name in names}

    @tf.function(input_signature=[specs])
    def serve(inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {EMBEDDING_OUTPUT: prior.query_vectors(tower(inputs, training=False),
                                                      prior_weight)}
    return serve.get_concrete_function()


def save_tower(tower: tf.keras.Model, names: Sequence[str], path: str,
               prior_weight: float = 0.0) -> None:
    """Saves a tower with a serving_default signature over raw features ([B] each); with a
    popularity prior weight the output gets prior.py's constant-1 column."""
    tf.saved_model.save(tower, path, signatures={
        "serving_default": _signature(tower, names, prior_weight)})


def catalog_embeddings(tower: tf.keras.Model, batches: Iterator[Mapping[str, tf.Tensor]]
                       ) -> tuple[list[str], np.ndarray]:
    """Embeds every catalogue row: (ids [N], embeddings [N, D])."""
    ids: list[str] = []
    vectors = []
    for batch in batches:
        ids.extend(value.decode() for value in batch["item_id"].numpy())
        vectors.append(tower(features_lib.select(batch, features_lib.CANDIDATE_FEATURES),
                             training=False).numpy())
    return ids, np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)


def write_embeddings(ids: Sequence[str], embeddings: np.ndarray, path: str) -> None:
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for item_id, vector in zip(ids, embeddings):
            example = tf.train.Example()
            example.features.feature["item_id"].bytes_list.value.append(item_id.encode())
            example.features.feature[EMBEDDING_OUTPUT].float_list.value.extend(vector.tolist())
            writer.write(example.SerializeToString())


def read_embeddings(path: str) -> tuple[list[str], np.ndarray]:
    """The inverse of write_embeddings: ids [N] and embeddings [N, D]."""
    columns = records.read_columns(path, {
        "item_id": tf.io.FixedLenFeature([], tf.string),
        EMBEDDING_OUTPUT: tf.io.RaggedFeature(tf.float32)})
    return ([value.decode() for value in columns["item_id"]],
            columns[EMBEDDING_OUTPUT].astype(np.float32))


def warm_start_path(serving_dir: str, tower_name: str) -> str:
    """Where export_all writes a tower's warm-start weights."""
    return os.path.join(serving_dir, warm_start.WARM_START_DIR, f"{tower_name}.npz")


def write_metrics(metrics: Mapping[str, float], path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(dict(metrics), indent=2, sort_keys=True) + "\n")


def export_all(query_tower: tf.keras.Model, candidate_tower: tf.keras.Model,
               ids: Sequence[str], embeddings: np.ndarray, metrics: Mapping[str, float],
               serving_dir: str, prior_weight: float = 0.0) -> None:
    """Writes the whole layout of the module docstring; metrics.json last.

    Args:
      query_tower: The trained query tower.
      candidate_tower: The trained candidate tower.
      ids: [N] catalogue ids.
      embeddings: [N, D'] index vectors (with the prior column when prior_weight > 0).
      metrics: Eval metrics.
      serving_dir: Output folder.
      prior_weight: Popularity prior weight β (prior.py); the query tower's output gets
        the matching constant-1 column.
    """
    save_tower(query_tower, features_lib.QUERY_FEATURES,
               os.path.join(serving_dir, QUERY_TOWER_DIR), prior_weight)
    save_tower(candidate_tower, features_lib.CANDIDATE_FEATURES,
               os.path.join(serving_dir, CANDIDATE_TOWER_DIR))
    write_embeddings(ids, embeddings, os.path.join(serving_dir, EMBEDDINGS_FILE))
    for tower in (query_tower, candidate_tower):
        warm_start.save(tower, warm_start_path(serving_dir, tower.name))
    write_metrics(metrics, os.path.join(serving_dir, METRICS_FILE))
