"""The raw-table format shared by every data source (MovieLens, synthetic, users' own logs).

Interactions are denormalised as production logs usually are: each row carries the query
(user) features and the item features beside the event's time and optional rating.
"""
from __future__ import annotations

import pathlib
from typing import Literal

import pandas as pd

USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip")
ITEM_COLUMNS = ("item_id", "title", "genres", "release_year")
INTERACTION_COLUMNS = USER_COLUMNS + ITEM_COLUMNS + ("rating", "timestamp")
GENRE_SEPARATOR = "|"

TABLE_FILES = {"interactions": "interactions", "items": "items", "users": "users"}
OutputFormat = Literal["csv", "parquet"]


def table_path(out_dir: str | pathlib.Path, table: str, output_format: OutputFormat) -> pathlib.Path:
    """Path of one table (`interactions`, `items` or `users`) in an output folder."""
    return pathlib.Path(out_dir) / f"{TABLE_FILES[table]}.{output_format}"


def write_table(frame: pd.DataFrame, path: pathlib.Path, output_format: OutputFormat,
                append: bool = False) -> None:
    """Writes a table as CSV (header once) or Parquet; `append` adds rows to a CSV."""
    if output_format == "csv":
        frame.to_csv(path, index=False, mode="a" if append else "w", header=not append)
    elif append:
        raise ValueError("append is only supported for CSV; write Parquet in parts instead")
    else:
        frame.to_parquet(path, index=False)


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
