"""The query and candidate towers.

Each tower embeds its id through the vocabulary from the NegativePool artifact (one OOV
bucket for unknown and rare ids) and, when `use_features` is on, its other features
(small categoricals hashed, text tokens and genres mean-pooled, numbers bucketised), then
applies `hidden_layers` ReLU layers and a linear projection to `embedding_dim`. With
`l2_normalize` the output has unit norm, so the dot product an ANN index computes is the
cosine similarity. With no features and no hidden layers a tower is the id embedding
itself (the TFRS-tutorial baseline).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from pipeline.config import ModelConfig

AGE_BOUNDARIES = [18.0, 25.0, 35.0, 45.0, 50.0, 56.0]
YEAR_BOUNDARIES = [float(year) for year in range(1930, 2030, 10)]
TITLE_BINS = 1 << 15
CATEGORY_BINS = 256


class _IdEmbedding(tf.keras.layers.Layer):
    """String id -> [B, dim] through a fixed vocabulary with one OOV row (index 0)."""

    def __init__(self, vocabulary: Sequence[str], dim: int, name: str) -> None:
        super().__init__(name=name)
        self.lookup = tf.keras.layers.StringLookup(vocabulary=list(vocabulary), num_oov_indices=1,
                                                   mask_token=None)
        self.embedding = tf.keras.layers.Embedding(len(vocabulary) + 1, dim)

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        return self.embedding(self.lookup(ids))


class _HashedEmbedding(tf.keras.layers.Layer):
    """String -> [B, dim] by hashing into `bins` buckets."""

    def __init__(self, bins: int, dim: int, name: str) -> None:
        super().__init__(name=name)
        self.hashing = tf.keras.layers.Hashing(num_bins=bins)
        self.embedding = tf.keras.layers.Embedding(bins, dim)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        return self.embedding(self.hashing(values))


class _BagEmbedding(tf.keras.layers.Layer):
    """A string of tokens -> mean of hashed token embeddings, [B, dim] (0 for no tokens)."""

    def __init__(self, bins: int, dim: int, separator: str | None, name: str) -> None:
        super().__init__(name=name)
        self.separator = separator
        self.hashing = tf.keras.layers.Hashing(num_bins=bins)
        self.embedding = tf.keras.layers.Embedding(bins, dim)

    def call(self, text: tf.Tensor) -> tf.Tensor:
        tokens = tf.strings.split(tf.strings.lower(text), sep=self.separator)
        vectors = tf.ragged.map_flat_values(lambda t: self.embedding(self.hashing(t)), tokens)
        total = tf.reduce_sum(vectors, axis=1)
        count = tf.cast(tf.maximum(tokens.row_lengths(), 1), total.dtype)[:, tf.newaxis]
        return total / count


class _BucketEmbedding(tf.keras.layers.Layer):
    """A number -> [B, dim] embedding of its bucket (0 means missing: its own bucket)."""

    def __init__(self, boundaries: list[float], dim: int, name: str) -> None:
        super().__init__(name=name)
        self.discretize = tf.keras.layers.Discretization(bin_boundaries=boundaries)
        self.embedding = tf.keras.layers.Embedding(len(boundaries) + 2, dim)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        missing = tf.equal(values, 0)
        bucket = tf.cast(self.discretize(tf.cast(values, tf.float32)), tf.int64) + 1
        return self.embedding(tf.where(missing, tf.zeros_like(bucket), bucket))


class Tower(tf.keras.Model):
    """Feature embeddings -> hidden ReLU layers -> projection -> optional L2 normalisation."""

    def __init__(self, id_feature: str, vocabulary: Sequence[str],
                 feature_layers: Mapping[str, tf.keras.layers.Layer], config: ModelConfig,
                 name: str) -> None:
        super().__init__(name=name)
        self.id_feature = id_feature
        direct = not feature_layers and not config.hidden_layers
        id_dim = config.embedding_dim if direct else config.id_embedding_dim
        self.id_embedding = _IdEmbedding(vocabulary, id_dim, f"{id_feature}_embedding")
        self.feature_layers = dict(feature_layers)
        self.hidden = [tf.keras.layers.Dense(width, activation="relu")
                       for width in config.hidden_layers]
        self.projection = None if direct else tf.keras.layers.Dense(config.embedding_dim)
        self.l2_normalize = config.l2_normalize

    def call(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Maps raw features ({name: [B]}) to embeddings [B, embedding_dim]."""
        parts = [self.id_embedding(features[self.id_feature])]
        parts += [layer(features[name]) for name, layer in sorted(self.feature_layers.items())]
        x = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        for layer in self.hidden:
            x = layer(x)
        if self.projection is not None:
            x = self.projection(x)
        return tf.math.l2_normalize(x, axis=1) if self.l2_normalize else x


def query_tower(user_vocabulary: Sequence[str], config: ModelConfig) -> Tower:
    """The query tower over user_id, age, gender, occupation and zip prefix."""
    dim = config.feature_embedding_dim
    layers = {} if not config.use_features else {
        "age": _BucketEmbedding(AGE_BOUNDARIES, dim, "age_embedding"),
        "gender": _HashedEmbedding(8, dim, "gender_embedding"),
        "occupation": _HashedEmbedding(CATEGORY_BINS, dim, "occupation_embedding"),
        "zip": _ZipPrefixEmbedding(dim),
    }
    return Tower("user_id", user_vocabulary, layers, config, "query_tower")


def candidate_tower(item_vocabulary: Sequence[str], config: ModelConfig) -> Tower:
    """The candidate tower over item_id, title tokens, genres and release year."""
    dim = config.feature_embedding_dim
    layers = {} if not config.use_features else {
        "title": _BagEmbedding(TITLE_BINS, dim, None, "title_embedding"),
        "genres": _BagEmbedding(CATEGORY_BINS, dim, "|", "genres_embedding"),
        "release_year": _BucketEmbedding(YEAR_BOUNDARIES, dim, "release_year_embedding"),
    }
    return Tower("item_id", item_vocabulary, layers, config, "candidate_tower")


class _ZipPrefixEmbedding(_HashedEmbedding):
    """The first two characters of a zip code (region), hashed."""

    def __init__(self, dim: int) -> None:
        super().__init__(CATEGORY_BINS, dim, "zip_embedding")

    def call(self, values: tf.Tensor) -> tf.Tensor:
        return super().call(tf.strings.substr(values, 0, 2))
