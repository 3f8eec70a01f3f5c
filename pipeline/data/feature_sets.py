"""Column sets of the synthetic generator (`twotower data synthetic --feature-set NAME`).

Every feature is a noisy function of the latent cluster of its user or item, so a tower that
reads it can learn the cluster (synthetic.py explains the world).
  * `movielens`: MovieLens-100K's columns (user_id, age, gender, occupation, zip; item_id,
    title, genres, release_year; rating, timestamp), item features denormalised into the
    log as MovieLens ships them. The contract is schemas/movielens.
  * `retail`: columns unlike MovieLens's, using every feature kind: shopper (user id),
    region (categorical), interests (multi_categorical, ';'), loyalty_years (numeric,
    float), signup_ts (timestamp) as user attributes; channel (categorical per-event
    context); quantity (a per-event outcome); event_ts (event time); the log carries no item
    features. Items: sku (item id), department (categorical), labels (multi_categorical,
    ','), description (text), price (numeric, float), launch_ts (timestamp). No contract is
    shipped: `twotower schema init` proposes it (tests do exactly that).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from pipeline.data import movielens
from pipeline.data.movielens import GROUPLENS_GENRES

if TYPE_CHECKING:
    from pipeline.data.synthetic import SyntheticSpec, World

OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer")
GENRES = GROUPLENS_GENRES[1:]
REGIONS = ("north", "south", "east", "west", "central", "coast", "islands", "mountains")
INTERESTS = ("baking", "running", "gaming", "gardening", "travel", "music", "pets", "fashion",
             "cooking", "reading", "cycling", "crafts")
CHANNELS = ("app", "web", "store", "phone")
DEPARTMENTS = ("grocery", "produce", "dairy", "bakery", "frozen", "household", "beauty",
               "garden", "toys", "electronics", "books", "sports")
LABELS = ("organic", "local", "vegan", "sale", "new", "premium", "family", "eco", "imported",
          "seasonal")
WORDS = ("fresh", "classic", "crunchy", "smooth", "bold", "light", "rich", "golden", "wild",
         "sweet", "spicy", "mild")
DAY = 86_400

Tables = Callable[["World", "SyntheticSpec", np.random.Generator], pd.DataFrame]
Events = Callable[[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                   np.random.Generator], pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """How one column set builds its users and items tables and its events.

    Attributes:
      users: (world, spec, rng) -> the users table.
      items: (world, spec, rng) -> the items table.
      events: (users, items, user index [n], item index [n], same cluster [n] bool,
        timestamps [n], rng) -> the interaction rows.
    """

    users: Tables
    items: Tables
    events: Events


def _cluster_choice(cluster: np.ndarray, options: tuple, rng: np.random.Generator,
                    keep: float = 0.6, offset: int = 0) -> np.ndarray:
    """An option per row: the cluster's own with probability `keep`, else a random one."""
    own = (cluster + offset) % len(options)
    picked = np.where(rng.random(len(cluster)) < keep, own,
                      rng.integers(0, len(options), len(cluster)))
    return np.asarray(options)[picked]


def movielens_users(world: "World", spec: "SyntheticSpec", rng: np.random.Generator
                    ) -> pd.DataFrame:
    cluster = world.user_cluster
    age = np.clip(18 + (cluster * 7) % 50 + rng.normal(0, 5, spec.users), 7, 90).astype(np.int64)
    female = rng.random(spec.users) < np.where(cluster % 2 == 0, 0.7, 0.3)
    occupation = _cluster_choice(cluster, OCCUPATIONS, rng)
    zip_code = (cluster % 100) * 1000 + rng.integers(0, 1000, spec.users)
    return pd.DataFrame({
        "user_id": np.char.add("u", np.arange(1, spec.users + 1).astype(str)),
        "age": age,
        "gender": np.where(female, "F", "M"),
        "occupation": occupation,
        "zip": np.char.zfill(zip_code.astype(str), 5),
    })


def movielens_items(world: "World", spec: "SyntheticSpec", rng: np.random.Generator
                    ) -> pd.DataFrame:
    cluster = world.item_cluster
    n_genres = len(GENRES)
    first = np.where(rng.random(spec.items) < 0.7, cluster % n_genres,
                     rng.integers(0, n_genres, spec.items))
    second = (first + 1 + (cluster // n_genres) % (n_genres - 1)) % n_genres
    two = rng.random(spec.items) < 0.5
    genre_names = np.asarray(GENRES)
    genres = np.where(two, np.char.add(np.char.add(genre_names[first], movielens.GENRE_SEPARATOR),
                                       genre_names[second]), genre_names[first])
    title_word = np.where(rng.random(spec.items) < 0.8, cluster,
                          rng.integers(0, spec.num_clusters, spec.items))
    ids = np.arange(1, spec.items + 1).astype(str)
    titles = np.char.add(np.char.add("topic", title_word.astype(str)), np.char.add(" item", ids))
    year = np.clip(1950 + (cluster * 11) % 70 + rng.normal(0, 4, spec.items), 1920, 2025)
    return pd.DataFrame({
        "item_id": np.char.add("i", ids),
        "title": titles,
        "genres": genres,
        "release_year": year.astype(np.int64),
    })


def movielens_events(users: pd.DataFrame, items: pd.DataFrame, user_index: np.ndarray,
                     item_index: np.ndarray, own: np.ndarray, times: np.ndarray,
                     rng: np.random.Generator) -> pd.DataFrame:
    n = len(user_index)
    chunk = pd.concat([users.iloc[user_index].reset_index(drop=True),
                       items.iloc[item_index].reset_index(drop=True)], axis=1)
    chunk["rating"] = np.where(own, rng.integers(4, 6, n), rng.integers(1, 6, n)).astype(float)
    chunk["timestamp"] = times
    return chunk[list(movielens.INTERACTION_COLUMNS)]


def _joined(cluster: np.ndarray, options: tuple, separator: str, rng: np.random.Generator
            ) -> np.ndarray:
    """One to three options per row, the first from the row's cluster."""
    first = _cluster_choice(cluster, options, rng, keep=0.7)
    second = _cluster_choice(cluster, options, rng, keep=0.5, offset=1)
    third = np.asarray(options)[rng.integers(0, len(options), len(cluster))]
    count = rng.integers(1, 4, len(cluster))
    return np.array([separator.join(dict.fromkeys(values[:k]))
                     for values, k in zip(zip(first, second, third), count)], dtype=object)


def retail_users(world: "World", spec: "SyntheticSpec", rng: np.random.Generator
                 ) -> pd.DataFrame:
    cluster = world.user_cluster
    loyalty = np.round(np.clip((cluster % 7) * 1.5 + rng.normal(0, 1.0, spec.users), 0, 20), 2)
    signup = 1_500_000_000 + (cluster % 5) * 40 * DAY + rng.integers(0, 30 * DAY, spec.users)
    return pd.DataFrame({
        "shopper": np.char.add("S-", np.arange(1, spec.users + 1).astype(str)),
        "region": _cluster_choice(cluster, REGIONS, rng),
        "interests": _joined(cluster, INTERESTS, ";", rng),
        "loyalty_years": loyalty,
        "signup_ts": signup.astype(np.int64),
    })


def retail_items(world: "World", spec: "SyntheticSpec", rng: np.random.Generator
                 ) -> pd.DataFrame:
    cluster = world.item_cluster
    words = np.asarray(WORDS)
    adjective = _cluster_choice(cluster, WORDS, rng, keep=0.7)
    department = _cluster_choice(cluster, DEPARTMENTS, rng, keep=0.8)
    description = [f"{a} {words[rng.integers(0, len(words))]} {d} pack of {rng.integers(1, 13)}"
                   for a, d in zip(adjective, department)]
    price = np.round(np.exp(1 + (cluster % 6) * 0.4 + rng.normal(0, 0.2, spec.items)), 2)
    launch = 1_550_000_000 + (cluster % 4) * 90 * DAY + rng.integers(0, 60 * DAY, spec.items)
    return pd.DataFrame({
        "sku": np.char.add("SKU", np.arange(1, spec.items + 1).astype(str)),
        "department": department,
        "labels": _joined(cluster, LABELS, ",", rng),
        "description": description,
        "price": price,
        "launch_ts": launch.astype(np.int64),
    })


def retail_events(users: pd.DataFrame, items: pd.DataFrame, user_index: np.ndarray,
                  item_index: np.ndarray, own: np.ndarray, times: np.ndarray,
                  rng: np.random.Generator) -> pd.DataFrame:
    n = len(user_index)
    chunk = users.iloc[user_index].reset_index(drop=True)
    chunk["sku"] = items["sku"].to_numpy()[item_index]
    preferred = np.asarray(CHANNELS)[pd.factorize(chunk["region"])[0] % len(CHANNELS)]
    chunk["channel"] = np.where(rng.random(n) < 0.7, preferred,
                                np.asarray(CHANNELS)[rng.integers(0, len(CHANNELS), n)])
    chunk["quantity"] = np.where(own, rng.integers(1, 6, n), 1)
    chunk["event_ts"] = times
    return chunk


FEATURE_SETS = {
    "movielens": FeatureSet(movielens_users, movielens_items, movielens_events),
    "retail": FeatureSet(retail_users, retail_items, retail_events),
}
