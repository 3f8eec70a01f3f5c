"""The pushable retrieval SavedModels: the query tower plus a top-K search over the catalogue.

Both variants have the same signatures over raw query features: the query tower's inputs,
[B] tensors named and typed as its serving signature (so as the data contract declares them):
  serving_default:  -> item_ids [B, K] string, scores [B, K] float32 (K from the config)
  serving_top_k:    + k (int32 scalar, 1..max_k) -> item_ids [B, k], scores [B, k]
  query_embedding:  -> embedding [B, D]
A k outside 1..max_k fails inside the model with InvalidArgumentError, which TF Serving (and
`twotower serve`) return as INVALID_ARGUMENT. TF Serving's REST row format cannot carry a
scalar input: call serving_top_k with the columnar "inputs" format or gRPC.
With `ScannSearch` it searches a ScaNN index (the ScaNN TF ops must be registered where it
is loaded: `import scann`); with `ExactSearch` it uses only built-in ops (matmul + top_k),
so it loads on a stock `tensorflow/serving`.
With `Repeat` settings (a contract with a history feature), both variants merge the
request's history items with the search's results under the history policy (repeat.py),
and serving_default and serving_top_k also return history_unknown_ids [B] int32: per row,
the history's non-empty ids the model does not know (ignored, never an error; the model
server counts them in its metrics).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from components.index_builder import repeat, scann_settings
from components.trainer import export as trainer_export
from twotower.keys import HISTORY_UNKNOWN_OUTPUT
from twotower.scann_ops import import_scann_ops

ITEM_IDS_OUTPUT = "item_ids"
SCORES_OUTPUT = "scores"
EMBEDDING_OUTPUT = "embedding"
SERVING_SIGNATURE = "serving_default"
TOP_K_SIGNATURE = "serving_top_k"
EMBEDDING_SIGNATURE = "query_embedding"
K_INPUT = "k"


def query_input_specs(query_tower: tf.Module) -> dict[str, tf.TensorSpec]:
    """name -> [B] TensorSpec of a query tower SavedModel's serving_default inputs."""
    _, inputs = query_tower.signatures[SERVING_SIGNATURE].structured_input_signature
    return {name: tf.TensorSpec(spec.shape, spec.dtype, name=name)
            for name, spec in sorted(inputs.items())}


@dataclasses.dataclass(frozen=True)
class Repeat:
    """What the request's history does (repeat.py; index.history_policy and repeat_*).

    Attributes:
      feature: The contract's history feature: a [B, L] string input.
      length: Its declared length: the last `length` items of a request count.
      policy: repeat.RANK or repeat.EXCLUDE.
      weight: The repeat term's w.
      half_life: Its half-life in history steps, or None (plain counts).
    """

    feature: str
    length: int
    policy: str = repeat.RANK
    weight: float = 0.0
    half_life: Optional[float] = None


class ScannSearch(tf.Module):
    """Top-K by a ScaNN searcher over the catalogue embeddings (dot product).

    Leaves searched and reordering depth are variables read at query time, so they can be
    tuned after the index is built (`set_search`) and are saved with the model.
    """

    def __init__(self, embeddings: np.ndarray, settings: scann_settings.ScannSettings) -> None:
        super().__init__()
        self.state = scann_settings.build_searcher(embeddings, settings).serialize_to_module()
        self.leaves_to_search = tf.Variable(-1, trainable=False, name="leaves_to_search")
        self.reorder = tf.Variable(-1, trainable=False, name="reorder")
        self.set_search(settings)

    def set_search(self, settings: scann_settings.ScannSettings) -> None:
        """Query-time leaves searched and reordering depth (-1: the searcher's own)."""
        self.leaves_to_search.assign(settings.num_leaves_to_search or -1)
        self.reorder.assign(settings.reorder or -1)

    def __call__(self, queries: tf.Tensor, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[B, D] queries -> ([B, k] catalogue indices, [B, k] scores)."""
        scann_ops = import_scann_ops()
        reorder = tf.where(self.reorder > 0, tf.maximum(k, self.reorder), -1)
        result = scann_ops.searcher_from_module(self.state).search_batched(
            queries, final_num_neighbors=k, pre_reorder_num_neighbors=reorder,
            leaves_to_search=self.leaves_to_search)
        return result.indices, result.distances


class ExactSearch(tf.Module):
    """Exact top-K by a matmul over all catalogue embeddings (built-in ops only)."""

    def __init__(self, embeddings: np.ndarray) -> None:
        super().__init__()
        self.embeddings = tf.Variable(embeddings.astype(np.float32), trainable=False,
                                      name="embeddings")

    def __call__(self, queries: tf.Tensor, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[B, D] queries -> ([B, k] catalogue indices, [B, k] scores)."""
        top = tf.math.top_k(tf.matmul(queries, self.embeddings, transpose_b=True), k=k)
        return top.indices, top.values


class RetrievalModel(tf.Module):
    """The query tower (a loaded SavedModel), the catalogue's ids and a search.

    Attributes:
      query_specs: name -> [B] TensorSpec of the raw query inputs (the tower's signature).
      query_embedding, retrieve, retrieve_top_k: tf.functions over query_specs (below).
    """

    def __init__(self, query_tower_dir: str, item_ids: Sequence[str],
                 search: ScannSearch | ExactSearch, k: int, max_k: int,
                 embeddings: Optional[np.ndarray] = None,
                 history: Optional[Repeat] = None) -> None:
        """Wraps the tower and the search.

        Args:
          query_tower_dir: The Trainer's query tower SavedModel.
          item_ids: [N] catalogue ids in the search's row order.
          search: The top-K search over the catalogue's vectors.
          k, max_k: serving_default's K and serving_top_k's largest k.
          embeddings: [N, D'] the indexed vectors; needed with a `history` under `rank`
            (the model's score of each history item).
          history: What the request's history does; None: the search alone.
        """
        super().__init__()
        self.max_k = min(max_k, len(item_ids))
        self.query_tower = tf.saved_model.load(query_tower_dir)
        self.item_ids = tf.Variable(np.array(item_ids, dtype=object), trainable=False,
                                    dtype=tf.string, name="item_ids")
        self.search = search
        self.history = history
        if history is not None:
            self.item_index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(item_ids), tf.string), tf.range(len(item_ids), dtype=tf.int64)),
                default_value=-1)
            if history.policy == repeat.RANK:
                if embeddings is None:
                    raise ValueError("a history ranked with the search's items needs the "
                                     "catalogue's embeddings")
                self.embeddings = (search.embeddings if isinstance(search, ExactSearch) else
                                   tf.Variable(embeddings.astype(np.float32), trainable=False,
                                               name="history_embeddings"))
        self.k = min(k, len(item_ids))
        self.query_specs = query_input_specs(self.query_tower)
        self.query_embedding = tf.function(self._query_embedding,
                                           input_signature=[self.query_specs])
        self.retrieve = tf.function(self._retrieve, input_signature=[self.query_specs])
        self.retrieve_top_k = tf.function(self._retrieve_top_k, input_signature=[
            self.query_specs, tf.TensorSpec([], tf.int32, name=K_INPUT)])

    def _embed(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self.query_tower.signatures[SERVING_SIGNATURE](**features)[
            trainer_export.EMBEDDING_OUTPUT]

    def _query_embedding(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Raw query features -> {"embedding": [B, D]}."""
        return {EMBEDDING_OUTPUT: self._embed(features)}

    def _search(self, features: Mapping[str, tf.Tensor], k: int | tf.Tensor
                ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        """The top k ([B, k] catalogue indices, [B, k] scores) for raw query features: the
        search's, merged with the history's items when the model has a history; and the
        history's outputs ({} without one, else history_unknown_ids [B])."""
        queries = self._embed(features)
        if self.history is None:
            indices, scores = self.search(queries, k)
            return indices, scores, {}
        values = features[self.history.feature]  # [B, L]
        found = self.item_index.lookup(values)
        unknown = tf.reduce_sum(tf.cast((found < 0) & (values != ""), tf.int32), axis=1)
        history = repeat.keep_latest(found, self.history.length)
        searched = k
        if self.history.policy == repeat.EXCLUDE:
            searched = tf.minimum(k + tf.shape(history)[1], self.item_ids.shape[0])
        indices, scores = self.search(queries, searched)
        if self.history.policy == repeat.RANK:
            vectors = tf.gather(self.embeddings, tf.maximum(history, 0))  # [B, L, D']
            history_scores = tf.reduce_sum(queries[:, tf.newaxis, :] * vectors, axis=2)
        else:
            history_scores = tf.zeros(tf.shape(history), tf.float32)
        indices, scores = repeat.merge(tf.cast(indices, tf.int64), scores, history,
                                       history_scores, k, self.history.policy,
                                       self.history.weight, self.history.half_life)
        return indices, scores, {HISTORY_UNKNOWN_OUTPUT: unknown}

    def _retrieve(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Raw query features -> {"item_ids": [B, K], "scores": [B, K]} (+ the history's
        outputs)."""
        indices, scores, extra = self._search(features, self.k)
        return {ITEM_IDS_OUTPUT: tf.gather(self.item_ids, indices), SCORES_OUTPUT: scores,
                **extra}

    def _retrieve_top_k(self, features: Mapping[str, tf.Tensor], k: tf.Tensor
                        ) -> dict[str, tf.Tensor]:
        """Raw query features and k -> {"item_ids": [B, k], "scores": [B, k]} (+ the
        history's outputs)."""
        message = f"k must be between 1 and {self.max_k} (index.max_k)"
        checks = [tf.debugging.assert_greater_equal(k, 1, message=message),
                  tf.debugging.assert_less_equal(k, self.max_k, message=message)]
        with tf.control_dependencies(checks):
            indices, scores, extra = self._search(features, tf.identity(k))
        return {ITEM_IDS_OUTPUT: tf.gather(self.item_ids, indices), SCORES_OUTPUT: scores,
                **extra}

    def save(self, path: str) -> None:
        """Writes the SavedModel with its three signatures."""
        tf.saved_model.save(self, path, signatures={
            SERVING_SIGNATURE: self.retrieve.get_concrete_function(),
            TOP_K_SIGNATURE: self.retrieve_top_k.get_concrete_function(),
            EMBEDDING_SIGNATURE: self.query_embedding.get_concrete_function()})
