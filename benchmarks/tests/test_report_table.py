"""Markdown tables from report rows."""
from benchmarks import report_table


def test_markdown_formats_and_marks_missing_values():
    rows = [{"name": "a", "recall": 0.12345, "qps": 15234.7, "params": {"nprobe": 4}},
            {"name": "b", "recall": 1.0}]
    assert report_table.markdown(rows, ["name", "recall", "qps", "params"]).splitlines() == [
        "| name | recall | qps | params |", "|---|---|---|---|",
        "| a | 0.1235 | 15,235 | nprobe 4 |", "| b | 1.0000 | - | - |"]


def test_pivot_puts_one_field_per_line_and_another_per_column():
    rows = [{"name": "Trainer", "span": 1, "wall_s": 282.71, "peak_rss_mb": 6788},
            {"name": "Trainer", "span": "single_file", "wall_s": 1401.0, "peak_rss_mb": None},
            {"name": "ingest", "span": 1, "wall_s": 133.2, "peak_rss_mb": 3713},
            {"name": "Pusher", "span": 1, "wall_s": 0.1, "peak_rss_mb": 100}]
    table = report_table.pivot(rows, "name", "span", ["1", "5", "single_file=one file"],
                               "{wall_s:,.1f} s / {peak_rss_mb:,} MB",
                               names=["ingest=ingest (3 stages)", "Trainer"])
    assert table.splitlines() == [
        "| name | span 1 | span 5 | one file |", "|---|---|---|---|",
        "| ingest (3 stages) | 133.2 s / 3,713 MB | - | - |",
        "| Trainer | 282.7 s / 6,788 MB | - | - |"]


def test_pivot_keeps_first_appearance_order_without_names():
    rows = [{"name": "b", "k": 2, "v": 1}, {"name": "a", "k": 2, "v": 3}]
    assert report_table.pivot(rows, "name", "k", ["2"], "{v}").splitlines()[2:] == [
        "| b | 1 |", "| a | 3 |"]


def test_where_keeps_the_rows_whose_fields_print_as_asked():
    rows = [{"batch": 1, "batching": True, "qps": 10.0}, {"batch": 32, "batching": True},
            {"batch": 1, "batching": False}]
    assert report_table.selected(rows, ["batch=1", "batching=True"]) == [rows[0]]
    assert report_table.selected(rows, []) == rows
    assert report_table.selected(rows, ["frontend=asyncio"]) == []
