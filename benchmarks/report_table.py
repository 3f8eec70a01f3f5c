"""Markdown tables from benchmark reports, so the README quotes reports without retyping.

    python -m benchmarks.report_table reports/quality.json name tfrs_top_100 ...
"""
from __future__ import annotations

import json
import pathlib
import sys
from typing import Any, Sequence


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


def main(argv: Sequence[str]) -> None:
    report = json.loads(pathlib.Path(argv[0]).read_text())
    print(markdown(report["rows"], argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
