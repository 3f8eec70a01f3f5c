"""Markdown tables from report rows."""
from benchmarks import report_table


def test_markdown_formats_and_marks_missing_values():
    rows = [{"name": "a", "recall": 0.12345, "qps": 15234.7, "params": {"nprobe": 4}},
            {"name": "b", "recall": 1.0}]
    assert report_table.markdown(rows, ["name", "recall", "qps", "params"]).splitlines() == [
        "| name | recall | qps | params |", "|---|---|---|---|",
        "| a | 0.1235 | 15,235 | nprobe 4 |", "| b | 1.0000 | - | - |"]
