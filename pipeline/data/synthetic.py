"""Synthetic interaction logs with planted latent structure and a known quality ceiling.

Generative process (all draws from one seeded numpy Generator):
  * every user and item belongs to one of C clusters (uniformly at random);
  * item popularity is Zipf-like: weight w_i = rank_i^-zipf_exponent over a random ranking;
  * an event picks a user (activity also Zipf-like, exponent 0.5), then with probability
    `affinity` an item from the user's own cluster, otherwise from the whole catalogue, in
    both cases proportional to w.
So P(i | u) = affinity * [c_i = c_u] * w_i / W_{c_u} + (1 - affinity) * w_i / W, which depends on
the user only through its cluster. The best possible hit rate@K of any model is the mass of
the top K of that distribution (`oracle_hit_rate`), written to `synthetic.json`. User and
item features are noisy functions of the cluster, so a feature-based tower can learn it; which
columns are written is the feature set's choice (feature_sets.py).

Events are generated and written in chunks, so memory stays bounded by the catalogue and
user tables, not by the number of interactions.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Iterator, Optional

import numpy as np
import pandas as pd
import tqdm

from pipeline.data import feature_sets, tables
START_TIMESTAMP = 1_600_000_000
SECONDS_PER_EVENT = 30


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Size and structure of a synthetic data set.

    Attributes:
      users: Number of users.
      items: Number of catalogue items.
      interactions: Number of events.
      seed: Seed of every random draw.
      clusters: Number of latent clusters; None picks clip(sqrt(items) / 2, 4, 1000).
      affinity: Probability that an event's item comes from the user's own cluster.
      zipf_exponent: Exponent of item popularity.
      feature_set: The columns written (pipeline/data/feature_sets.py).
    """

    users: int
    items: int
    interactions: int
    seed: int = 0
    clusters: Optional[int] = None
    affinity: float = 0.8
    zipf_exponent: float = 1.0
    feature_set: str = "movielens"

    def __post_init__(self) -> None:
        for name in ("users", "items", "interactions"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.affinity <= 1.0:
            raise ValueError(f"affinity must be in [0, 1], got {self.affinity}")
        if self.feature_set not in feature_sets.FEATURE_SETS:
            raise ValueError(f"--feature-set must be one of {sorted(feature_sets.FEATURE_SETS)}, "
                             f"got {self.feature_set!r}")
        if self.clusters is not None and self.clusters < 1:
            raise ValueError(f"clusters must be >= 1, got {self.clusters}")

    @property
    def num_clusters(self) -> int:
        if self.clusters is not None:
            return self.clusters
        return int(np.clip(round(self.items ** 0.5 / 2), 4, 1000))


@dataclasses.dataclass
class World:
    """The latent state every event is drawn from.

    Attributes:
      user_cluster: [users] int cluster of each user.
      user_cdf: [users] cumulative activity distribution.
      item_cluster: [items] int cluster of each item.
      item_weight: [items] Zipf popularity weight.
      order: [items] item indices sorted by cluster.
      order_cdf: [items] cumulative weights along `order`.
      cluster_start: [C + 1] offsets of each cluster's run in `order`.
    """

    user_cluster: np.ndarray
    user_cdf: np.ndarray
    item_cluster: np.ndarray
    item_weight: np.ndarray
    order: np.ndarray
    order_cdf: np.ndarray
    cluster_start: np.ndarray


def _zipf_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    ranks = rng.permutation(n) + 1
    return ranks.astype(np.float64) ** -exponent


def build_world(spec: SyntheticSpec, rng: np.random.Generator) -> World:
    """Draws cluster memberships and popularity weights."""
    c = spec.num_clusters
    user_cluster = rng.integers(0, c, spec.users)
    user_weight = _zipf_weights(rng, spec.users, 0.5)
    item_cluster = rng.integers(0, c, spec.items)
    item_weight = _zipf_weights(rng, spec.items, spec.zipf_exponent)
    order = np.argsort(item_cluster, kind="stable")
    cluster_start = np.searchsorted(item_cluster[order], np.arange(c + 1))
    user_cdf = np.cumsum(user_weight)
    return World(user_cluster, user_cdf / user_cdf[-1], item_cluster, item_weight, order,
                 np.cumsum(item_weight[order]), cluster_start)


def sample_events(world: World, spec: SyntheticSpec, rng: np.random.Generator,
                  n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws n (user, item) index pairs.

    Returns:
      users [n] and items [n] integer indices.
    """
    users = np.minimum(np.searchsorted(world.user_cdf, rng.random(n)), spec.users - 1)
    own = rng.random(n) < spec.affinity
    cluster = world.user_cluster[users]
    lo = np.where(own, world.cluster_start[cluster], 0)
    hi = np.where(own, world.cluster_start[cluster + 1], spec.items)
    # A user's own cluster may be empty on tiny catalogues: fall back to the whole catalogue.
    empty = lo == hi
    lo, hi = np.where(empty, 0, lo), np.where(empty, spec.items, hi)
    below = np.where(lo > 0, world.order_cdf[np.maximum(lo - 1, 0)], 0.0)
    mass = world.order_cdf[hi - 1] - below
    target = below + rng.random(n) * mass
    position = np.clip(np.searchsorted(world.order_cdf, target, side="right"), lo, hi - 1)
    return users, world.order[position]


def oracle_hit_rate(world: World, spec: SyntheticSpec, k: int) -> float:
    """Expected hit rate@k of the Bayes-optimal ranker P(i | u), averaged over events."""
    c = spec.num_clusters
    total = world.item_weight.sum()
    global_top = np.argsort(-world.item_weight)[:k]
    activity = np.diff(np.concatenate([[0.0], world.user_cdf]))
    cluster_activity = np.bincount(world.user_cluster, weights=activity, minlength=c)
    expected = 0.0
    for cluster in range(c):
        members = world.order[world.cluster_start[cluster]:world.cluster_start[cluster + 1]]
        own_mass = world.item_weight[members].sum()
        own_top = members[np.argsort(-world.item_weight[members])[:k]]
        candidates = np.union1d(own_top, global_top)
        weight = world.item_weight[candidates]
        in_cluster = world.item_cluster[candidates] == cluster
        own_share = spec.affinity * weight / own_mass if own_mass > 0 else 0.0
        probability = np.where(in_cluster, own_share, 0.0) + (1 - spec.affinity) * weight / total
        if own_mass == 0:
            probability = weight / total
        expected += cluster_activity[cluster] * np.sort(probability)[::-1][:k].sum()
    return float(expected)


def build(spec: SyntheticSpec) -> tuple[World, np.random.Generator, pd.DataFrame, pd.DataFrame]:
    """Draws the latent world and the user and item tables (all from `spec.seed`).

    Returns:
      The world, the generator positioned for event draws, users and items tables.
    """
    rng = np.random.default_rng(spec.seed)
    world = build_world(spec, rng)
    columns = feature_sets.FEATURE_SETS[spec.feature_set]
    users = columns.users(world, spec, rng)
    items = columns.items(world, spec, rng)
    return world, rng, users, items


def interaction_chunks(world: World, spec: SyntheticSpec, rng: np.random.Generator,
                       users: pd.DataFrame, items: pd.DataFrame,
                       chunk_size: int = 500_000) -> Iterator[pd.DataFrame]:
    """Yields the events as the feature set's interaction rows, chunk_size rows at a time."""
    events = feature_sets.FEATURE_SETS[spec.feature_set].events
    for start in range(0, spec.interactions, chunk_size):
        n = min(chunk_size, spec.interactions - start)
        user_index, item_index = sample_events(world, spec, rng, n)
        own = world.item_cluster[item_index] == world.user_cluster[user_index]
        times = START_TIMESTAMP + (start + np.arange(n)) * SECONDS_PER_EVENT
        yield events(users, items, user_index, item_index, own, times, rng)


def generate(spec: SyntheticSpec, out_dir: pathlib.Path,
             output_format: tables.OutputFormat = "csv", chunk_size: int = 500_000,
             progress: bool = True) -> dict[str, object]:
    """Writes interactions, items, users tables and `synthetic.json` to `out_dir`.

    Args:
      spec: Sizes and structure.
      out_dir: Output folder (created).
      output_format: `csv` or `parquet` (Parquet interactions are written as part files
        `interactions/part-NNNNN.parquet`).
      chunk_size: Events generated and written at a time.
      progress: Show a progress bar.

    Returns:
      The contents written to `synthetic.json` (sizes, clusters, oracle hit rates).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    world, rng, users, items = build(spec)
    tables.write_table(users, tables.table_path(out_dir, "users", output_format), output_format)
    tables.write_table(items, tables.table_path(out_dir, "items", output_format), output_format)
    interactions_path = tables.table_path(out_dir, "interactions", output_format)
    if output_format == "parquet":
        interactions_path = out_dir / "interactions"
        interactions_path.mkdir(exist_ok=True)
    written = 0
    with tqdm.tqdm(total=spec.interactions, unit="events", disable=not progress,
                   desc="interactions") as bar:
        chunks = interaction_chunks(world, spec, rng, users, items, chunk_size)
        for part, chunk in enumerate(chunks):
            if output_format == "csv":
                tables.write_table(chunk, interactions_path, "csv", append=part > 0)
            else:
                chunk.to_parquet(interactions_path / f"part-{part:05d}.parquet", index=False)
            written += len(chunk)
            bar.update(len(chunk))
    meta = {
        "spec": dataclasses.asdict(spec),
        "clusters": spec.num_clusters,
        "interactions": written,
        "oracle_hit_rate_at_10": oracle_hit_rate(world, spec, 10),
        "oracle_hit_rate_at_100": oracle_hit_rate(world, spec, 100),
        "format": output_format,
    }
    (out_dir / "synthetic.json").write_text(json.dumps(meta, indent=2))
    logging.info("Wrote %d interactions to %s", written, out_dir)
    return meta
