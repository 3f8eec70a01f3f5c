"""Markdown tables from benchmark reports, so the docs quote reports without retyping.

    python -m benchmarks.report_table reports/quality.json name tfrs_top_100 ...
    python -m benchmarks.report_table reports/serving.json frontend client qps \
        --where batch=1 batching=True
    python -m benchmarks.report_table reports/increments.json --pivot name span \
        --values 1 5 10 single_file --cell "{wall_s:,.1f} s / {peak_rss_mb:,} MB"
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Optional, Sequence


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if k != "default")
    return "-" if value is None else str(value)


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """One header row, one line per report row; missing values are "-"."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |"
              for row in rows]
    return "\n".join(lines)


def _formatted(row: Optional[dict[str, Any]], cell: str) -> str:
    if row is None:
        return "-"
    try:
        return cell.format(**row)
    except (KeyError, TypeError, ValueError):
        return "-"


def pivot(rows: Sequence[dict[str, Any]], row_key: str, column_key: str,
          values: Sequence[str], cell: str, names: Sequence[str] = ()) -> str:
    """A table with one line per `row_key` value and one column per `column_key` value.

    Args:
        rows: report rows, e.g. {"name": "Trainer", "span": 5, "wall_s": 1.0, ...}.
        row_key: the field naming a line (first-appearance order unless `names` is given).
        column_key: the field naming a column; compared as text, so 5 matches "5".
        values: the column values to show, in order; "VALUE=LABEL" heads the column with
            LABEL instead of "COLUMN_KEY VALUE".
        cell: a str.format template over one row's fields; "-" where the row is missing
            or lacks a field (e.g. a None peak).
        names: the lines to show, in order (all of them when empty); "NAME=LABEL" heads
            the line with LABEL.
    """
    by_key = {(str(row.get(row_key)), str(row.get(column_key))): row for row in rows}
    shown = list(names) or list(dict.fromkeys(str(row.get(row_key)) for row in rows))
    keys = [value.partition("=")[0] for value in values]
    header = [row_key] + [value.partition("=")[2] or f"{column_key} {value}" for value in values]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in shown:
        name, _, label = entry.partition("=")
        cells = [_formatted(by_key.get((name, key)), cell) for key in keys]
        lines.append("| " + " | ".join([label or name] + cells) + " |")
    return "\n".join(lines)


def selected(rows: Sequence[dict[str, Any]], conditions: Sequence[str]
             ) -> list[dict[str, Any]]:
    """The rows whose every KEY=VALUE condition holds (the field printed with str())."""
    wanted = [condition.partition("=")[::2] for condition in conditions]
    return [row for row in rows if all(str(row.get(key)) == value for key, value in wanted)]


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_table")
    parser.add_argument("report", type=pathlib.Path)
    parser.add_argument("columns", nargs="*", help="row fields, one column each")
    parser.add_argument("--pivot", nargs=2, metavar=("ROW_KEY", "COLUMN_KEY"))
    parser.add_argument("--values", nargs="+", default=(),
                        help="COLUMN_KEY values to show, each VALUE or VALUE=LABEL")
    parser.add_argument("--cell", default="{wall_s}", help="str.format template per cell")
    parser.add_argument("--names", nargs="+", default=(),
                        help="ROW_KEY values to show, each NAME or NAME=LABEL")
    parser.add_argument("--where", nargs="+", default=(), metavar="KEY=VALUE",
                        help="only rows whose KEY prints as VALUE, e.g. batch=1 batching=True")
    args = parser.parse_args(argv)
    rows = selected(json.loads(args.report.read_text())["rows"], args.where)
    if args.pivot:
        if not args.values:
            parser.error("--pivot needs --values: the column values to show, e.g. --values 1 5 10")
        print(pivot(rows, *args.pivot, args.values, args.cell, args.names))
    else:
        print(markdown(rows, args.columns))


if __name__ == "__main__":
    main(sys.argv[1:])
