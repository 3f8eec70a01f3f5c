"""Where and how data sources write their tables (interactions, items, users).

Each source has its own columns; its data contract (twotower/contract.py) says what they are.
"""
from __future__ import annotations

import pathlib
from typing import Literal

import pandas as pd

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
