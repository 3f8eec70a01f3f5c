"""The query and candidate towers, built from the data contract (twotower/contract.py).

Each declared feature of a tower gets one layer by its kind, parameterised by the statistics
the NegativePoolBuilder computed from the data (vocabularies, quantile boundaries, mean and
std; `Preprocessing`), so the exported SavedModels take raw features:
  id, categorical      value -> vocabulary index (OOV buckets) or hash bucket -> embedding;
  multi_categorical    split on the separator -> mean of the values' embeddings;
  text                 lower-cased, split on whitespace -> mean of the tokens' embeddings;
  numeric              quantile bucket (missing: its own) -> embedding, plus the z-scored
                       value with `normalize`;
  timestamp            hour of day + day of week (UTC) embeddings, summed;
  history              the user's last items (ids through the item vocabulary) -> mean or
                       recency-weighted mean of their embeddings.
The layers' outputs are concatenated, then `hidden_layers` ReLU layers and a linear
projection to `embedding_dim`; with `l2_normalize` the output has unit norm, so the dot
product an ANN index computes is the cosine similarity. With no features and no hidden
layers a tower is its id embedding itself (the TFRS-tutorial baseline).

Tokenisation here must match the Beam side (components/negative_pool/preprocessing.py);
tests/test_preprocessing_agreement.py pins it.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from components.trainer import features as features_lib
from twotower.config import HISTORY_ID_DROPOUT, ModelConfig
from twotower.contract import (CANDIDATE, CATEGORICAL, HISTORY, ID, MULTI_CATEGORICAL, NUMERIC,
                               QUERY, TEXT, TIMESTAMP, Contract, FeatureSpec)

SECONDS_PER_HOUR, HOURS_PER_DAY, DAYS_PER_WEEK = 3600, 24, 7
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


@dataclasses.dataclass(frozen=True)
class NumericStats:
    """Statistics of one numeric feature: quantile boundaries, mean and std."""

    boundaries: tuple[float, ...]
    mean: float
    std: float


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What the towers need from the data: vocabularies (most frequent first) and numeric
    statistics, by feature name."""

    vocabularies: Mapping[str, Sequence[str]]
    numeric: Mapping[str, NumericStats]


def split_tokens(values: tf.Tensor, feature: FeatureSpec) -> tf.RaggedTensor:
    """[B] strings -> [B, None] tokens of a multi_categorical or text feature (no empty
    tokens)."""
    if feature.kind == TEXT:
        tokens = tf.strings.split(tf.strings.lower(values, encoding="utf-8"))
    else:
        tokens = tf.strings.split(values, sep=feature.separator)
    return tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))


def categorical_value(values: tf.Tensor, feature: FeatureSpec) -> tf.Tensor:
    """[B] strings -> the value looked up (its first `prefix` characters when set)."""
    if feature.prefix:
        return tf.strings.substr(values, 0, feature.prefix, unit="UTF8_CHAR")
    return values


def string_lookup(vocabulary: Sequence[str], oov_buckets: int) -> tf.keras.layers.StringLookup:
    """A StringLookup over `vocabulary` (empty: an adaptable one), OOV indices first.

    The vocabulary is handed over as a NumPy array, never a list: Keras tracks a list
    attribute of a layer element by element and walks it on every eager call, so with a
    1M-item vocabulary each call of the layer (or of a tower holding it) cost ~0.6 s instead
    of ~0.2 ms, and saving the tower walked it too.
    """
    values = np.asarray(list(vocabulary), dtype=object) if len(vocabulary) else None
    return tf.keras.layers.StringLookup(vocabulary=values, num_oov_indices=oov_buckets,
                                        mask_token=None)


class VocabularyEmbedding(tf.keras.layers.Layer):
    """Strings -> embeddings through a vocabulary (OOV buckets first) or hash buckets.

    Attributes:
      lookup: StringLookup (vocabulary) or Hashing layer.
      embedding: The table, [size, dim].
    """

    def __init__(self, feature: FeatureSpec, vocabulary: Optional[Sequence[str]], dim: int,
                 name: str) -> None:
        super().__init__(name=name)
        if feature.hash_bins is not None:
            self.lookup = tf.keras.layers.Hashing(num_bins=feature.hash_bins)
            size = feature.hash_bins
        else:
            vocabulary = vocabulary if vocabulary is not None else []
            self.lookup = string_lookup(vocabulary, feature.oov_buckets)
            size = len(vocabulary) + feature.oov_buckets
        self.embedding = tf.keras.layers.Embedding(size, dim)

    @property
    def has_vocabulary(self) -> bool:
        return isinstance(self.lookup, tf.keras.layers.StringLookup)

    def vocabulary(self) -> np.ndarray:
        """[size] UTF-8 tokens (bytes) in table row order, OOV rows first as b"[UNK]".

        Built from the lookup table's tensors, not StringLookup.get_vocabulary(), which
        makes a Python string, dict entry and list slot per token (GBs at a million ids).
        """
        keys, rows = self.lookup.lookup_table.export()
        tokens = keys.numpy().astype(np.bytes_)
        oov = self.lookup.oov_token.encode()
        width = max(tokens.dtype.itemsize, len(oov))
        vocabulary = np.full(self.lookup.vocabulary_size(), oov, dtype=f"S{width}")
        vocabulary[rows.numpy()] = tokens
        return vocabulary

    def call(self, values: tf.Tensor | tf.RaggedTensor) -> tf.Tensor | tf.RaggedTensor:
        if isinstance(values, tf.RaggedTensor):
            return tf.ragged.map_flat_values(lambda v: self.embedding(self.lookup(v)), values)
        return self.embedding(self.lookup(values))


class _Categorical(tf.keras.layers.Layer):
    def __init__(self, feature: FeatureSpec, table: VocabularyEmbedding, name: str) -> None:
        super().__init__(name=name)
        self.feature = feature
        self.table = table

    def call(self, values: tf.Tensor) -> tf.Tensor:
        return self.table(categorical_value(values, self.feature))


class _Bag(tf.keras.layers.Layer):
    """Tokens of a multi_categorical or text feature -> mean embedding (0 for none)."""

    def __init__(self, feature: FeatureSpec, table: VocabularyEmbedding, name: str) -> None:
        super().__init__(name=name)
        self.feature = feature
        self.table = table

    def call(self, values: tf.Tensor) -> tf.Tensor:
        tokens = split_tokens(values, self.feature)
        vectors = self.table(tokens)
        total = tf.reduce_sum(vectors, axis=1)
        count = tf.cast(tf.maximum(tokens.row_lengths(), 1), total.dtype)[:, tf.newaxis]
        return total / count


def is_missing(values: tf.Tensor) -> tf.Tensor:
    """[B] bool: the parser's missing marker of a numeric tensor (NaN or int64 min)."""
    if values.dtype == tf.int64:
        return tf.equal(values, features_lib.MISSING_INT)
    return tf.math.is_nan(values)


class _Numeric(tf.keras.layers.Layer):
    """A number -> embedding of its quantile bucket (missing: bucket 0), plus the z-scored
    value with `normalize` (missing: 0)."""

    def __init__(self, feature: FeatureSpec, stats: NumericStats, dim: int, name: str) -> None:
        super().__init__(name=name)
        self.discretize = tf.keras.layers.Discretization(bin_boundaries=list(stats.boundaries))
        self.embedding = tf.keras.layers.Embedding(len(stats.boundaries) + 2, dim)
        self.normalize = feature.normalize
        self.mean, self.std = float(stats.mean), float(stats.std) or 1.0

    def call(self, values: tf.Tensor) -> tf.Tensor:
        missing = is_missing(values)
        numbers = tf.where(missing, tf.zeros_like(values), values)
        numbers = tf.cast(numbers, tf.float32)
        bucket = tf.cast(self.discretize(numbers), tf.int64) + 1
        out = self.embedding(tf.where(missing, tf.zeros_like(bucket), bucket))
        if self.normalize:
            scaled = tf.where(missing, 0.0, (numbers - self.mean) / self.std)
            out = tf.concat([out, scaled[:, tf.newaxis]], axis=1)
        return out


class _Timestamp(tf.keras.layers.Layer):
    """Unix seconds -> hour-of-day + day-of-week embeddings (missing: their own rows)."""

    def __init__(self, dim: int, name: str) -> None:
        super().__init__(name=name)
        self.hours = tf.keras.layers.Embedding(HOURS_PER_DAY + 1, dim)
        self.days = tf.keras.layers.Embedding(DAYS_PER_WEEK + 1, dim)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        missing = is_missing(values)
        hours = tf.math.floordiv(tf.where(missing, tf.zeros_like(values), values),
                                 SECONDS_PER_HOUR)
        hour = tf.math.floormod(hours, HOURS_PER_DAY) + 1
        day = tf.math.floormod(tf.math.floordiv(hours, HOURS_PER_DAY) + EPOCH_WEEKDAY,
                               DAYS_PER_WEEK) + 1
        zero = tf.zeros_like(hour)
        return self.hours(tf.where(missing, zero, hour)) + self.days(tf.where(missing, zero, day))


class _History(tf.keras.layers.Layer):
    """[B, L] item ids padded with "" (most recent last) -> pooled embedding of the last
    `length` ids, [B, dim]; 0 for an empty history. `mean` weighs them equally, `recency`
    halves the weight every max(length / 4, 1) steps back.

    Each distinct id of the batch is looked up once and the rows' normalised weights meet
    the distinct embeddings in one sparse [B, U] x [U, dim] matmul, so neither the lookup,
    the pooling nor the table's gradient (one row per distinct id, not per position) grows
    with B x L: a batch of 1,024 grocery histories repeats the same few thousand products.
    """

    def __init__(self, feature: FeatureSpec, table: VocabularyEmbedding, name: str) -> None:
        super().__init__(name=name)
        self.table = table
        self.length = feature.length
        self.half_life = max(feature.length / 4.0, 1.0) if feature.pooling == "recency" else 0.0

    def call(self, items: tf.Tensor) -> tf.Tensor:
        ids = tf.ragged.boolean_mask(items, tf.not_equal(items, ""))[:, -self.length:]
        rows = ids.value_rowids()  # [N] the row of each kept id
        if self.half_life:
            position = tf.range(tf.size(rows, out_type=tf.int64)) - tf.gather(ids.row_starts(),
                                                                            rows)
            back = tf.gather(ids.row_lengths(), rows) - 1 - position  # 0: the latest
            weights = tf.pow(0.5, tf.cast(back, tf.float32) / self.half_life)
        else:
            weights = tf.ones(tf.shape(rows), tf.float32)
        batch = tf.shape(items, out_type=tf.int64)[0]
        mass = tf.maximum(tf.math.unsorted_segment_sum(weights, rows, batch), 1e-9)
        distinct, column = tf.unique(ids.flat_values, out_idx=tf.int64)
        pooling = tf.SparseTensor(tf.stack([rows, column], axis=1),
                                  weights / tf.gather(mass, rows),
                                  tf.stack([batch, tf.size(distinct, out_type=tf.int64)]))
        return tf.sparse.sparse_dense_matmul(pooling, self.table(distinct))


def feature_layer(feature: FeatureSpec, preprocessing: Preprocessing, dim: int
                  ) -> tf.keras.layers.Layer:
    """The layer of one declared feature, by its kind (module docstring)."""
    name = f"{feature.name}_embedding"
    dim = feature.embedding_dim or dim
    if feature.kind == NUMERIC:
        return _Numeric(feature, preprocessing.numeric[feature.name], dim, name)
    if feature.kind == TIMESTAMP:
        return _Timestamp(dim, name)
    table = VocabularyEmbedding(feature, preprocessing.vocabularies.get(feature.name), dim,
                                f"{feature.name}_table")
    if feature.kind == HISTORY:
        return _History(feature, table, name)
    if feature.kind in (MULTI_CATEGORICAL, TEXT):
        return _Bag(feature, table, name)
    if feature.kind in (CATEGORICAL, ID):
        return _Categorical(feature, table, name)
    raise ValueError(f"unknown kind {feature.kind!r} of {feature.name}")


class Tower(tf.keras.Model):
    """Feature embeddings -> hidden ReLU layers -> projection -> optional L2 normalisation.

    Attributes:
      id_feature: Name of the tower's id input; None for an anonymous contract's query tower.
      feature_names: Every input, id first.
      serving_specs: name -> [B] TensorSpec of each input (the serving signature).
      id_embedding: The id's layer (its `table` is a VocabularyEmbedding); None without an id.
      feature_layers: name -> layer of the other inputs.
    """

    def __init__(self, id_feature: Optional[FeatureSpec], feature_specs: Sequence[FeatureSpec],
                 preprocessing: Preprocessing, config: ModelConfig, name: str) -> None:
        super().__init__(name=name)
        specs = list(feature_specs) if config.use_features else []
        if id_feature is None and not specs:
            raise ValueError(f"{name}: no id and no features to read; an anonymous contract "
                             "needs model.use_features: true and a query feature")
        self.id_feature = id_feature.name if id_feature else None
        inputs = ([id_feature] if id_feature else []) + specs
        self.feature_names = tuple(spec.name for spec in inputs)
        self.serving_specs = {feature.name: features_lib.spec_of(feature) for feature in inputs}
        direct = not specs and not config.hidden_layers
        self.id_embedding = None
        if id_feature is not None:
            id_dim = config.embedding_dim if direct else (id_feature.embedding_dim
                                                          or config.id_embedding_dim)
            self.id_embedding = feature_layer(
                dataclasses.replace(id_feature, embedding_dim=id_dim), preprocessing, id_dim)
        self.feature_layers = {spec.name: feature_layer(spec, preprocessing,
                                                        config.feature_embedding_dim)
                               for spec in specs}
        self.hidden = [tf.keras.layers.Dense(width, activation="relu")
                       for width in config.hidden_layers]
        self.projection = None if direct else tf.keras.layers.Dense(config.embedding_dim)
        self.l2_normalize = config.l2_normalize
        self.id_dropout = config.id_dropout or 0.0

    def get_config(self) -> dict:
        """Towers are saved as SavedModels (weights + traced signatures), never rebuilt
        from a Keras config; this keeps Keras from warning that the arguments (feature
        specs, statistics) are not serialisable."""
        return {"name": self.name}

    def vocabulary_tables(self) -> dict[str, VocabularyEmbedding]:
        """Input name -> its vocabulary-backed table (for warm start)."""
        layers = dict(self.feature_layers)
        if self.id_embedding is not None:
            layers[self.id_feature] = self.id_embedding
        return {name: layer.table for name, layer in layers.items()
                if isinstance(getattr(layer, "table", None), VocabularyEmbedding)
                and layer.table.has_vocabulary}

    def call(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None
             ) -> tf.Tensor:
        """Maps raw features ({name: [B]}) to embeddings [B, embedding_dim]; while
        training, ids are dropped to the unknown id with probability id_dropout."""
        parts = []
        if self.id_embedding is not None:
            ids = features[self.id_feature]
            if training and self.id_dropout > 0:
                ids = drop_ids(ids, self.id_dropout)
            parts.append(self.id_embedding(ids))
        parts += [layer(features[name]) for name, layer in self.feature_layers.items()]
        x = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        for layer in self.hidden:
            x = layer(x)
        if self.projection is not None:
            x = self.projection(x)
        return tf.math.l2_normalize(x, axis=1) if self.l2_normalize else x


def drop_ids(ids: tf.Tensor, rate: float, seed: Optional[int] = None) -> tf.Tensor:
    """[B] string ids, each replaced by the missing value "" (looked up as the unknown
    id) with probability `rate`."""
    dropped = tf.random.uniform(tf.shape(ids), seed=seed) < rate
    return tf.where(dropped, tf.constant(features_lib.MISSING_STRING), ids)


def build_tower(contract: Contract, tower: str, preprocessing: Preprocessing,
                config: ModelConfig) -> Tower:
    """The `query` or `candidate` tower over the contract's inputs of that tower."""
    specs = contract.tower_features(tower)
    if config.id_dropout is None:
        config = dataclasses.replace(config, id_dropout=HISTORY_ID_DROPOUT if contract.history
                                     else 0.0)
    if tower == QUERY and contract.user_id is None:
        return Tower(None, specs, preprocessing, config, "query_tower")
    return Tower(specs[0], specs[1:], preprocessing, config,
                 "query_tower" if tower == QUERY else "candidate_tower")


def query_tower(contract: Contract, preprocessing: Preprocessing, config: ModelConfig) -> Tower:
    return build_tower(contract, QUERY, preprocessing, config)


def candidate_tower(contract: Contract, preprocessing: Preprocessing,
                    config: ModelConfig) -> Tower:
    return build_tower(contract, CANDIDATE, preprocessing, config)
