"""bench increments' arithmetic: the ingest row and its growth across spans."""
from benchmarks import increments


def test_ingest_row_sums_the_three_stages_and_keeps_their_peak():
    rows = [{"name": "InteractionsExampleGen", "wall_s": 10.0, "peak_rss_mb": 900},
            {"name": "InteractionsStatisticsGen", "wall_s": 5.5, "peak_rss_mb": 1200},
            {"name": "InteractionsExampleValidator", "wall_s": 0.5, "peak_rss_mb": None},
            {"name": "Trainer", "wall_s": 99.0, "peak_rss_mb": 5000}]
    assert increments.ingest_row(rows) == {"name": "ingest", "wall_s": 16.0, "peak_rss_mb": 1200}


def test_ingest_growth_is_relative_to_span_one_and_ignores_the_single_file_run():
    rows = [{"name": "ingest", "span": 1, "wall_s": 20.0},
            {"name": "ingest", "span": 2, "wall_s": 22.0},
            {"name": "pipeline", "span": 2, "wall_s": 100.0},
            {"name": "ingest", "span": "single_file", "wall_s": 90.0}]
    assert increments.ingest_growth(rows) == {"1": 1.0, "2": 1.1}
