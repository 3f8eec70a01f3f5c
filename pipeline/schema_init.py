"""`twotower schema init`: propose a data contract (pipeline/contract.py) from a user's files.

Reads at most `sample_rows` rows of each table (the first ones of each file, in file order;
say so when editing: a sorted log's first rows may not show every value), then decides:
  * item id: a column of the items table unique per row that the interactions also have
    (name hints such as item/product/sku break ties);
  * user id: an interactions column, not in the items table, that repeats across rows,
    preferring names such as user/customer/household;
  * event time: an integer column of Unix seconds (name hints time/ts/date), the one with
    the most distinct values;
  * interactions columns that the items table also has: candidate features, declared once
    from the items table (the trainer reads them from the catalogue);
  * other interactions columns: constant per user -> a query feature (user attribute);
    varying per event and categorical (strings, or integers named like ids) with at most
    1,000 values -> a query feature (per-event context, e.g. a store or device);
    per-event numbers, text and high-cardinality per-event ids -> ignored (an outcome such as quantity or
    price paid leaks the label; declare role query only if it is known before the event);
  * items table columns -> candidate features.
Kinds: integers with few values or named like ids (*_id, *_key, *_code), short strings, and
multi-word strings with few distinct values -> categorical; strings holding a separator
(| ; ,) in many rows -> multi_categorical; long strings of several words -> text; numbers ->
numeric; integer Unix seconds named like a time -> timestamp.
The TFMD schemas start from TFDV's inference on the sample (tfdv.infer_schema), then take
the decided types; only the ids and the event time must be present in every row, and no
string domain is enumerated (a sample would miss values and stop full runs). Writes
features.yaml, interactions.pbtxt, items.pbtxt and <name>.yaml (a config `twotower run
--config` accepts as is; schema_files.py) into the output folder, and returns the decisions.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import re
from typing import Optional, Sequence

import pandas as pd
import pyarrow.parquet as pq

from pipeline import contract as contract_lib
from pipeline import schema_files
from pipeline.errors import ConfigError

DEFAULT_SAMPLE_ROWS = 100_000
SEPARATORS = ("|", ";", ",")
ITEM_HINTS = ("item", "product", "sku", "movie", "article", "asin", "track", "song", "video")
USER_HINTS = ("user", "customer", "household", "member", "visitor", "client", "shopper",
              "account", "buyer", "person", "cust")
TIME_HINTS = ("time", "ts", "date", "timestamp", "epoch", "created", "at")
EPOCH_RANGE = (1e8, 4.1e9)  # 1973 .. 2100 in seconds
ID_HINTS = ("id", "key", "code")
MAX_CATEGORICAL_INTS = 12
MIN_TEXT_DISTINCT_SHARE = 0.2  # fewer distinct multi-word values are category names
MAX_CONTEXT_VALUES, MAX_CONTEXT_SHARE = 1000, 0.5  # beyond either: a per-event id


@dataclasses.dataclass(frozen=True)
class Decision:
    """One column's role and kind, and why."""

    column: str
    table: str
    role: str
    kind: str
    reason: str
    settings: tuple[tuple[str, object], ...] = ()


def read_sample(path: str, rows: int) -> pd.DataFrame:
    """Up to `rows` rows of a CSV or Parquet file (or a folder / glob of them), as strings
    ("" for missing values).

    Raises:
      ConfigError: if nothing matches or the format is not CSV/Parquet.
    """
    if any(c in path for c in "*?["):
        files = sorted(glob.glob(path))
    elif os.path.isdir(path):
        files = sorted(str(p) for p in pathlib.Path(path).iterdir())
    else:
        files = [path]
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise ConfigError(f"{path}: no such file; pass the CSV or Parquet file (or folder)")
    parts, left = [], rows
    for file in files:
        if left <= 0:
            break
        if file.endswith(".parquet"):
            frame = _parquet_head(file, left)
        elif file.endswith((".csv", ".csv.gz", ".txt")):
            frame = pd.read_csv(file, nrows=left, dtype=str, keep_default_na=False)
        else:
            raise ConfigError(f"{file}: schema init reads .csv or .parquet files")
        parts.append(frame)
        left -= len(frame)
    frame = pd.concat(parts, ignore_index=True)
    return frame.apply(lambda column: column.map(_text)).astype(object)


def _parquet_head(path: str, rows: int) -> pd.DataFrame:
    """The first `rows` rows of a Parquet file, reading record batches only until then."""
    parts, taken = [], 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
        parts.append(batch.to_pandas())
        taken += batch.num_rows
        if taken >= rows:
            break
    return pd.concat(parts, ignore_index=True).head(rows) if parts else pd.DataFrame()


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _hinted(name: str, hints: Sequence[str]) -> bool:
    """Whether a column name holds a hint as a word (snake_case, camelCase, kebab-case), or
    starts or ends with a hint of 4+ letters ("customerid")."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    lower = name.lower()
    return any(hint in words or (len(hint) >= 4 and (lower.startswith(hint)
                                                     or lower.endswith(hint)))
               for hint in hints)


def value_kind(values: pd.Series, name: str) -> tuple[str, str, tuple[tuple[str, object], ...]]:
    """(kind, why, settings) of one non-id column from its non-empty sample values."""
    present = values[values != ""]
    if present.empty:
        return contract_lib.CATEGORICAL, "no values in the sample", ()
    distinct = present.nunique()
    if schema_files.parses(present, int):
        numbers = present.map(int)
        if _hinted(name, TIME_HINTS) and numbers.between(*EPOCH_RANGE).all():
            return contract_lib.TIMESTAMP, "integer Unix seconds, named like a time", ()
        if _hinted(name, ID_HINTS):
            return contract_lib.CATEGORICAL, f"integer ids ({distinct} values): labels, not " \
                                             "quantities", ()
        if distinct <= MAX_CATEGORICAL_INTS:
            return contract_lib.CATEGORICAL, f"integers with only {distinct} values", ()
        return contract_lib.NUMERIC, f"integers, {distinct} values", ()
    if schema_files.parses(present, float):
        return contract_lib.NUMERIC, "numbers", ()
    for separator in SEPARATORS:
        holding = present.str.contains(separator, regex=False).mean()
        if holding >= 0.2:
            tokens = present.str.split(separator, regex=False).explode()
            tokens = tokens[tokens != ""]
            if tokens.nunique() <= distinct and tokens.str.len().mean() < 30:
                return (contract_lib.MULTI_CATEGORICAL,
                        f"{holding:.0%} of values hold '{separator}'-separated values "
                        f"({tokens.nunique()} distinct)", (("separator", separator),))
    words = present.str.split().str.len().mean()
    varied = distinct >= MIN_TEXT_DISTINCT_SHARE * len(present)
    if varied and (words >= 2.5 or (present.str.len().mean() >= 20 and words >= 2)):
        return contract_lib.TEXT, f"{words:.1f} words on average, {distinct} values", ()
    return contract_lib.CATEGORICAL, f"strings, {distinct} values", ()


def _unique_per_row(values: pd.Series) -> bool:
    present = values[values != ""]
    return len(present) == len(values) and present.is_unique


def find_item_id(interactions: pd.DataFrame, items: pd.DataFrame,
                 chosen: Optional[str]) -> str:
    """The item id column (see module docstring).

    Raises:
      ConfigError: naming --item-id when no column fits.
    """
    if chosen:
        for table, frame in (("interactions", interactions), ("items", items)):
            if chosen not in frame:
                raise ConfigError(f"--item-id {chosen}: the {table} table has no such column "
                                  f"(it has {list(frame.columns)})")
        return chosen
    shared = [c for c in items.columns if c in interactions and _unique_per_row(items[c])]
    if not shared:
        raise ConfigError("no column of the items table is unique per row and also in the "
                          "interactions; name the item id with --item-id COLUMN")
    return sorted(shared, key=lambda c: (not _hinted(c, ITEM_HINTS), not _hinted(c, ("id",)),
                                         list(items.columns).index(c)))[0]


def find_user_id(interactions: pd.DataFrame, items: pd.DataFrame, item_id: str,
                 chosen: Optional[str]) -> str:
    """The user id column (see module docstring).

    Raises:
      ConfigError: naming --user-id when no column fits.
    """
    if chosen:
        if chosen not in interactions:
            raise ConfigError(f"--user-id {chosen}: the interactions have no such column")
        return chosen
    candidates = []
    for column in interactions.columns:
        values = interactions[column]
        if column == item_id or column in items or (values == "").any():
            continue
        distinct = values.nunique()
        if 1 < distinct < len(values) and not schema_files.parses(values, float) or (
                schema_files.parses(values, int) and 1 < distinct < len(values)
                and not values.map(int).between(*EPOCH_RANGE).all()):
            candidates.append((not _hinted(column, USER_HINTS), -distinct, column))
    if not candidates:
        raise ConfigError("no interactions column looks like a user id (repeating, never "
                          "empty, not an item column); name it with --user-id COLUMN")
    return sorted(candidates)[0][2]


def find_event_time(interactions: pd.DataFrame, exclude: Sequence[str],
                    chosen: Optional[str]) -> Optional[str]:
    """The event time column, or None (the run then needs data.split: hash).

    Raises:
      ConfigError: if the chosen column is not integer seconds.
    """
    candidates = [chosen] if chosen else sorted(
        (c for c in interactions.columns if c not in exclude and _hinted(c, TIME_HINTS)),
        key=lambda c: -interactions[c].nunique())  # an event time varies most
    for column in candidates:
        values = interactions[column]
        if column not in interactions:
            raise ConfigError(f"--time {column}: the interactions have no such column")
        if schema_files.parses(values[values != ""], int) and values[values != ""].map(int).between(
                *EPOCH_RANGE).all():
            return column
        if chosen:
            raise ConfigError(f"--time {column}: values such as {values.iloc[0]!r} are not "
                              "integer Unix seconds; convert the column (e.g. pandas: "
                              "pd.to_datetime(col).astype('int64') // 10**9)")
    return None


def decide(interactions: pd.DataFrame, items: pd.DataFrame, users: Optional[pd.DataFrame],
           item_id: Optional[str] = None, user_id: Optional[str] = None,
           time: Optional[str] = None) -> list[Decision]:
    """Every column's role and kind (module docstring)."""
    item = find_item_id(interactions, items, item_id)
    user = find_user_id(interactions, items, item, user_id)
    event = find_event_time(interactions, (item, user), time)
    decisions = [Decision(user, "interactions", contract_lib.USER_ID, contract_lib.ID,
                          "repeats across events, not an item column" if not user_id else "--user-id"),
                 Decision(item, "items", contract_lib.ITEM_ID, contract_lib.ID,
                          "unique per item row, in both tables" if not item_id else "--item-id")]
    if event:
        decisions.append(Decision(event, "interactions", contract_lib.EVENT_TIME,
                                  contract_lib.TIMESTAMP, "integer Unix seconds"))
    for column in interactions.columns:
        if column in (item, user, event) or column in items:
            continue
        values = interactions[column]
        per_user = interactions.groupby(user)[column].nunique(dropna=False).max()
        kind, why, settings = value_kind(values, column)
        if per_user <= 1:
            decisions.append(Decision(column, "interactions", contract_lib.QUERY, kind,
                                      f"constant per user: a user attribute; {why}", settings))
        elif kind != contract_lib.CATEGORICAL or schema_files.parses(values[values != ""], float) and (
                not _hinted(column, ID_HINTS)):
            decisions.append(Decision(column, "interactions", contract_lib.IGNORED, "",
                                      "a per-event number (an outcome such as a rating or "
                                      "quantity leaks the label); declare role query if it is "
                                      "known before the event"))
        elif values.nunique() > min(MAX_CONTEXT_VALUES, MAX_CONTEXT_SHARE * len(values)):
            decisions.append(Decision(column, "interactions", contract_lib.IGNORED, "",
                                      f"a per-event id ({values.nunique()} values in "
                                      f"{len(values)} rows): never seen again at serving"))
        else:
            decisions.append(Decision(column, "interactions", contract_lib.QUERY, kind,
                                      f"varies per event: context of the request; {why}",
                                      settings))
    for column in items.columns:
        if column == item:
            continue
        kind, why, settings = value_kind(items[column], column)
        decisions.append(Decision(column, "items", contract_lib.CANDIDATE, kind,
                                  f"an item column; {why}", settings))
    if users is not None:
        for column in users.columns:
            if column not in interactions and column != user:
                decisions.append(Decision(column, "users", "not used", "",
                                          "only in the users table: join it into the "
                                          "interaction log to use it as a query feature"))
    return decisions


def history_decision(columns: Sequence[str], length: int) -> Decision:
    """The derived history feature: named `history` (or `recent_items` if the log has a
    `history` column)."""
    name = "history" if "history" not in columns else "recent_items"
    return Decision(name, "interactions", contract_lib.QUERY, contract_lib.HISTORY,
                    f"built by ingestion: the user's last {length} items before each event",
                    (("length", length),))


def init(interactions: str, items: str, users: Optional[str], out_dir: str, name: str,
         sample_rows: int = DEFAULT_SAMPLE_ROWS, item_id: Optional[str] = None,
         user_id: Optional[str] = None, time: Optional[str] = None,
         history: int = 0) -> list[Decision]:
    """Writes the contract folder and config (module docstring); returns the decisions.

    Args:
      history: When > 0, also declare a history feature of this length (ingestion builds it).

    Raises:
      ConfigError: when a file cannot be read, no id column is found (naming the flag), or a
        history is asked for without an event time.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"--name {name!r}: letters, digits, '_', '.' and '-' only")
    frames = {"interactions": read_sample(interactions, sample_rows),
              "items": read_sample(items, sample_rows)}
    users_frame = read_sample(users, sample_rows) if users else None
    decisions = decide(frames["interactions"], frames["items"], users_frame, item_id, user_id,
                       time)
    if history:
        if not any(d.role == contract_lib.EVENT_TIME for d in decisions):
            raise ConfigError("--history needs an event time column: name it with --time")
        decisions.append(history_decision(frames["interactions"].columns, history))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for table_name, frame in frames.items():
        (out / f"{table_name}.pbtxt").write_text(
            schema_files.schema_text(frame, decisions, table_name))
    (out / contract_lib.FEATURES_FILE).write_text(schema_files.features_yaml(decisions))
    event = next((d.column for d in decisions if d.role == contract_lib.EVENT_TIME), None)
    (out / f"{name}.yaml").write_text(
        schema_files.config_yaml(name, interactions, items, out_dir, event))
    contract_lib.load(str(out))
    return decisions


def table(decisions: Sequence[Decision]) -> str:
    """The decisions as a plain-text table."""
    rows = [("column", "table", "role", "kind", "why")] + [
        (d.column, d.table, d.role, d.kind or "-", d.reason) for d in decisions]
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return "\n".join("  ".join(str(value).ljust(width) for value, width in zip(row[:4], widths))
                     + "  " + row[4] for row in rows)
