"""bench pool's notes: growth with the data per worker count, worker counts compared on
the same data, and an older commit's builder against the current one; the older code
unpacked from git."""
import subprocess

import pytest

from benchmarks import common, pool


def _row(interactions, workers, wall_s, peak_rss_mb, code="current"):
    return {"interactions": interactions, "workers": workers, "wall_s": wall_s,
            "peak_rss_mb": peak_rss_mb, "code": code}


def test_notes_compare_worker_counts_on_the_same_size():
    rows = [_row(10, 2, 100.0, 7000), _row(10, 1, 160.0, 4000),
            _row(100, 2, 300.0, 7200), _row(100, 1, 450.0, 4200)]
    text = pool.notes(rows)
    assert "With 2 workers wall time grows 3.00x from 10 to 100 interactions" in text
    assert "At 10, 1 workers against 2: 1.60x the time, 0.57x the peak memory." in text
    assert "At 100, 1 workers against 2: 1.50x the time, 0.58x the peak memory." in text


def test_notes_of_one_run_have_no_ratios():
    assert "x the" not in pool.notes([_row(10, 2, 100.0, 7000)])


def test_notes_compare_an_older_commit_on_the_same_data():
    rows = [_row(10, 1, 40.0, 2000), _row(10, 1, 280.0, 4000, code="abc123"),
            _row(10, 2, 30.0, 3000)]
    text = pool.notes(rows)
    assert ("At 10 with 1 worker(s), the current builder takes 40.0 s against 280.0 s for "
            "commit abc123 on the same data (7.00x faster), peak memory 2000 MB against "
            "4000 MB.") in text
    assert "At 10, 2 workers against 1: 0.75x the time" in text


def test_code_at_unpacks_a_commit_and_refuses_unknown_ones(tmp_path):
    commit, folder = common.code_at("HEAD", tmp_path / "head")
    assert commit == subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip()
    assert (folder / "benchmarks" / "pool.py").is_file()
    with pytest.raises(ValueError, match="cannot measure revision 'no-such-rev'"):
        common.code_at("no-such-rev", tmp_path / "none")
