"""`twotower schema init`: propose a data contract (twotower/contract.py) from a user's files.

Reads at most `sample_rows` rows of each table (the first ones of each file, in file order;
say so when editing: a sorted log's first rows may not show every value), then decides:
  * item id: a column of the items table unique per row that the interactions also have
    (name hints such as item/product/sku break ties);
  * user id: an interactions column, not in the items table, that repeats across rows,
    preferring names such as user/customer/household; a column with fewer than
    MIN_USER_IDS values is taken only when named like a user (a `device` column is not a
    user), otherwise the error names the rejected columns, --user-id and --anonymous-users
    (logs without users: `users: anonymous`, every interactions column is per-event context);
  * event time: a column named like a time (time/ts/date) holding Unix seconds or
    milliseconds, or dates and times in text under any name (ISO-8601, common date forms;
    twotower/event_times.py), the one with the most distinct values; its format goes into
    features.yaml. A time-like column no format reads is an error, never a silent random
    split (`--time-format` or `--no-time` settle it);
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

from twotower import contract as contract_lib
from twotower import event_times
from pipeline import schema_files
from twotower.errors import ConfigError

DEFAULT_SAMPLE_ROWS = 100_000
SEPARATORS = ("|", ";", ",")
ITEM_HINTS = ("item", "product", "sku", "movie", "article", "asin", "track", "song", "video")
USER_HINTS = ("user", "customer", "household", "member", "visitor", "client", "shopper",
              "account", "buyer", "person", "cust")
TIME_HINTS = ("time", "ts", "date", "timestamp", "epoch", "created", "at", "datetime")
EPOCH_RANGE = event_times.SECONDS_RANGE
ID_HINTS = ("id", "key", "code")
MAX_CATEGORICAL_INTS = 12
MIN_USER_IDS = 50  # fewer distinct values: a device or store column, unless named like a user
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
    unread: tuple[str, ...] = ()  # event time only: sample values its format does not read


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
            try:
                frame = pd.read_csv(file, nrows=left, dtype=str, keep_default_na=False)
            except pd.errors.EmptyDataError as e:
                raise ConfigError(f"{file} is empty; a CSV table needs a header line and "
                                  "rows") from e
            except (pd.errors.ParserError, UnicodeDecodeError) as e:
                raise ConfigError(f"{file} is not a readable CSV ({str(e).splitlines()[0]}); "
                                  "check the delimiter (commas), quoting and encoding "
                                  "(UTF-8)") from e
        else:
            raise ConfigError(f"{file}: schema init reads .csv or .parquet files")
        parts.append(frame)
        left -= len(frame)
    frame = pd.concat(parts, ignore_index=True)
    if frame.empty:
        raise ConfigError(f"{path} has no rows; schema init needs a sample of the data")
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
    candidates, rejected = [], []
    for column in interactions.columns:
        values = interactions[column]
        if column == item_id or column in items or (values == "").any():
            continue
        distinct = values.nunique()
        if 1 < distinct < len(values) and not schema_files.parses(values, float) or (
                schema_files.parses(values, int) and 1 < distinct < len(values)
                and not values.map(int).between(*EPOCH_RANGE).all()):
            if _hinted(column, USER_HINTS) or distinct >= MIN_USER_IDS:
                candidates.append((not _hinted(column, USER_HINTS), -distinct, column))
            else:
                rejected.append(f"{column} ({distinct} values)")
    if not candidates:
        why = (f"; rejected {', '.join(rejected)}: fewer than {MIN_USER_IDS} distinct values "
               "and not named like a user (user, customer, ...)" if rejected else "")
        raise ConfigError("no interactions column looks like a user id (repeating, never "
                          f"empty, not an item column){why}; name it with --user-id COLUMN, "
                          "or pass --anonymous-users if the log has no user id (the query "
                          "tower then reads per-event context columns only)")
    return sorted(candidates)[0][2]


@dataclasses.dataclass(frozen=True)
class EventTime:
    """The event time column schema init found: its format, why, and sample values the format
    does not read (ingestion stops at such rows)."""

    column: str
    form: str
    why: str
    unread: tuple[str, ...] = ()


_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE_LIKE = re.compile(
    rf"\s*(\d{{1,4}}[-/.]\d{{1,2}}[-/.]\d{{1,4}}|\d{{1,2}}[ -]{_MONTH}[ -,]*\d{{2,4}}|"
    rf"{_MONTH} \d{{1,2}}(st|nd|rd|th)?,? \d{{4}})([ T,].*)?", re.IGNORECASE)


def _time_like(values: pd.Series) -> bool:
    """Whether most of the first 100 text values look like dates (2024-06-01, 01/06/2024,
    1 Jun 2024, June 1st, 2024, each with an optional time)."""
    present = values[values != ""].head(100)
    return not present.empty and present.map(
        lambda v: bool(_DATE_LIKE.fullmatch(v))).mean() >= 0.9


def _has_digits(values: pd.Series) -> bool:
    present = values[values != ""].head(100)
    return not present.empty and present.str.contains(r"\d").mean() >= 0.9


def find_event_time(interactions: pd.DataFrame, exclude: Sequence[str], chosen: Optional[str],
                    form: Optional[str] = None) -> Optional[EventTime]:
    """The event time column and its format (twotower/event_times.py), or None (the run then
    needs data.split: hash).

    Candidates: columns named like a time, and text columns holding dates under any name;
    the one with the most distinct values that a format reads wins.

    Raises:
      ConfigError: if the chosen column (--time) or format (--time-format) does not read the
        values, or a column looks like a time but no known format reads it (a silent random
        split would evaluate on the past), naming the flags that settle it.
    """
    if form is not None:
        problem = event_times.check_format(form)
        if problem:
            raise ConfigError(f"--time-format: {problem}")
    if chosen and chosen not in interactions:
        raise ConfigError(f"--time {chosen}: the interactions have no such column (it has "
                          f"{list(interactions.columns)})")
    candidates = [chosen] if chosen else sorted(
        (c for c in interactions.columns if c not in exclude
         and (_hinted(c, TIME_HINTS) or _time_like(interactions[c]))),
        key=lambda c: -interactions[c].nunique())  # an event time varies most
    unreadable = []
    for column in candidates:
        values = [v for v in interactions[column] if v != ""]
        hinted = bool(chosen) or _hinted(column, TIME_HINTS)
        if form is not None and (chosen or len(candidates) == 1):
            unread = sorted(set(event_times.parses(sorted(set(values)), form)))
            if len(unread) > 0.1 * max(len(set(values)), 1):
                raise ConfigError(f"--time-format {form!r} does not read column '{column}': "
                                  f"e.g. {unread[0]!r}; check the pattern (strptime codes)")
            return EventTime(column, form, f"{event_times.describe(form)} (--time-format)",
                             tuple(unread))
        found, why, unread = event_times.detect(values, integers_allowed=hinted)
        if found:
            return EventTime(column, found, why, tuple(unread))
        if chosen:
            raise ConfigError(f"--time {column}: values such as {values[0] if values else ''!r} "
                              "are in no known time format; pass --time-format (e.g. "
                              "'%d/%m/%Y %H:%M') or convert the column to Unix seconds")
        if _time_like(interactions[column]) or (
                hinted and _has_digits(interactions[column])
                and not schema_files.parses(pd.Series(values[:1000], dtype=object), float)):
            unreadable.append(column)
    if unreadable:
        sample = interactions[unreadable[0]].iloc[0]
        raise ConfigError(f"column '{unreadable[0]}' looks like the event time but no known "
                          f"format reads values such as {sample!r}; pass --time "
                          f"{unreadable[0]} --time-format PATTERN (strptime, e.g. "
                          "'%d %B %Y'), or --no-time for a random split")
    return None


def decide(interactions: pd.DataFrame, items: pd.DataFrame, users: Optional[pd.DataFrame],
           item_id: Optional[str] = None, user_id: Optional[str] = None,
           time: Optional[str] = None, time_format: Optional[str] = None,
           no_time: bool = False, anonymous_users: bool = False) -> list[Decision]:
    """Every column's role and kind (module docstring).

    Args:
      no_time: Declare no event time even if a column looks like one (a random split).
      anonymous_users: Declare no user id: every interactions column is per-event context.

    Raises:
      ConfigError: naming the flag that settles an id or time the sample cannot decide.
    """
    item = find_item_id(interactions, items, item_id)
    user = None if anonymous_users else find_user_id(interactions, items, item, user_id)
    ids = (item, user) if user else (item,)
    found = None if no_time else find_event_time(interactions, ids, time, time_format)
    event = found.column if found else None
    decisions = [Decision(item, "items", contract_lib.ITEM_ID, contract_lib.ID,
                          "unique per item row, in both tables" if not item_id else "--item-id")]
    if user:
        decisions.insert(0, Decision(user, "interactions", contract_lib.USER_ID, contract_lib.ID,
                                     "repeats across events, not an item column"
                                     if not user_id else "--user-id"))
    if found:
        decisions.append(Decision(found.column, "interactions", contract_lib.EVENT_TIME,
                                  contract_lib.TIMESTAMP, found.why,
                                  (("format", found.form),), found.unread))
    for column in interactions.columns:
        if column in (item, user, event) or column in items:
            continue
        values = interactions[column]
        kind, why, settings = value_kind(values, column)
        if user and interactions.groupby(user)[column].nunique(dropna=False).max() <= 1:
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
    if anonymous_users and not any(d.role == contract_lib.QUERY for d in decisions):
        raise ConfigError("--anonymous-users: no interactions column can be a query feature "
                          "(a categorical per-event context such as page, device or country), "
                          "so the query tower would have nothing to read; add such a column "
                          "to the log, or name a user id column with --user-id")
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


def split_notes(decisions: Sequence[Decision], no_time: bool = False) -> list[str]:
    """Lines saying which split the written config uses and why, and warnings about event
    times the declared format does not read."""
    event = next((d for d in decisions if d.role == contract_lib.EVENT_TIME), None)
    if event is None:
        why = "--no-time" if no_time else "no column holds event times"
        return [f"warning: split: hash ({why}): a random split trains on events that come "
                "after the ones it evaluates, so offline recall reads higher than the served "
                "model will get; name a time column with --time COLUMN if the log has one"]
    notes = [f"split: time: train on the events before the 0.8 quantile of '{event.column}' "
             f"({event.reason}), evaluate on the later ones"]
    if event.unread:
        notes.append(f"warning: {len(event.unread)} distinct sampled value(s) of "
                     f"'{event.column}' are not in its format, e.g. {event.unread[0]!r}; "
                     "ingestion stops at such rows: fix or drop them")
    return notes


def init(interactions: str, items: str, users: Optional[str], out_dir: str, name: str,
         sample_rows: int = DEFAULT_SAMPLE_ROWS, item_id: Optional[str] = None,
         user_id: Optional[str] = None, time: Optional[str] = None,
         history: int = 0, time_format: Optional[str] = None,
         no_time: bool = False, anonymous_users: bool = False) -> list[Decision]:
    """Writes the contract folder and config (module docstring); returns the decisions.

    Args:
      history: When > 0, also declare a history feature of this length (ingestion builds it).
      time_format: The event time's format, when detection is wrong (twotower/event_times.py).
      no_time: Declare no event time (a random split) even if a column looks like one.
      anonymous_users: Declare `users: anonymous` (no user id column; twotower/contract.py).

    Raises:
      ConfigError: when a file cannot be read, no id column is found (naming the flag), or a
        history is asked for without an event time.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"--name {name!r}: letters, digits, '_', '.' and '-' only")
    frames = {"interactions": read_sample(interactions, sample_rows),
              "items": read_sample(items, sample_rows)}
    users_frame = read_sample(users, sample_rows) if users else None
    if no_time and (time or time_format or history):
        raise ConfigError("--no-time contradicts --time, --time-format and --history; drop one")
    if anonymous_users and (user_id or users or history):
        raise ConfigError("--anonymous-users contradicts --user-id, --users and --history "
                          "(each needs a user id); drop one")
    decisions = decide(frames["interactions"], frames["items"], users_frame, item_id, user_id,
                       time, time_format, no_time, anonymous_users)
    if history:
        if not any(d.role == contract_lib.EVENT_TIME for d in decisions):
            raise ConfigError("--history needs an event time column: name it with --time")
        decisions.append(history_decision(frames["interactions"].columns, history))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for table_name, frame in frames.items():
        (out / f"{table_name}.pbtxt").write_text(
            schema_files.schema_text(frame, decisions, table_name))
    (out / contract_lib.FEATURES_FILE).write_text(
        schema_files.features_yaml(decisions, anonymous_users))
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
