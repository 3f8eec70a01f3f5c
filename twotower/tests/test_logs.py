"""Progress lines of long phases inside components (twotower/logs.py)."""
import logging

from twotower import logs


def test_a_meter_reports_at_most_every_period_with_rate_and_time_left(capsys):
    logs.progress_to_console()
    logs.progress_to_console()  # once only
    now = [0.0]
    meter = logs.Meter("scored", 1_000, every=30.0, clock=lambda: now[0])
    now[0] = 10.0
    meter.update(100)  # before the period: silent
    now[0] = 40.0
    meter.update(400)
    now[0] = 50.0
    meter.update(500)  # 10 s after the last line: silent
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["        scored: 400 of ~1,000 (10/s, ~60 s left)"]
    assert len(logging.getLogger(logs.PROGRESS_LOGGER).handlers) == 1
