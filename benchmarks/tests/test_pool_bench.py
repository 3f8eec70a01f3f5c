"""bench pool's notes: growth with the data per worker count, and worker counts compared on
the same data."""
from benchmarks import pool


def _row(interactions, workers, wall_s, peak_rss_mb):
    return {"interactions": interactions, "workers": workers, "wall_s": wall_s,
            "peak_rss_mb": peak_rss_mb}


def test_notes_compare_worker_counts_on_the_same_size():
    rows = [_row(10, 2, 100.0, 7000), _row(10, 1, 160.0, 4000),
            _row(100, 2, 300.0, 7200), _row(100, 1, 450.0, 4200)]
    text = pool.notes(rows)
    assert "With 2 workers wall time grows 3.00x from 10 to 100 interactions" in text
    assert "At 10, 1 workers against 2: 1.60x the time, 0.57x the peak memory." in text
    assert "At 100, 1 workers against 2: 1.50x the time, 0.58x the peak memory." in text


def test_notes_of_one_run_have_no_ratios():
    assert "x the" not in pool.notes([_row(10, 2, 100.0, 7000)])
