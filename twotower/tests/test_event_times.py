"""Event times in the forms logs carry them (twotower/event_times.py), against values worked
out by hand: 2024-06-01T00:00:00Z is 1717200000 Unix seconds."""
import datetime

import pytest

from twotower import event_times

JUNE_1 = 1_717_200_000


@pytest.mark.parametrize("value, form, seconds", [
    ("1717200000", "seconds", JUNE_1),
    (" 1717200000 ", "seconds", JUNE_1),
    ("1717200000.9", "seconds", JUNE_1),             # fractional seconds floor
    (1717200000, "seconds", JUNE_1),                 # Parquet integers
    ("1717200000999", "milliseconds", JUNE_1),
    ("2024-06-01", "iso8601", JUNE_1),
    ("2024-06-01T00:00:00", "iso8601", JUNE_1),      # no zone: UTC
    ("2024-06-01 02:00:00+02:00", "iso8601", JUNE_1),
    ("2024-06-01T02:00:00+0200", "iso8601", JUNE_1),
    ("2024-05-31T23:00:00-01:00", "iso8601", JUNE_1),
    ("2024-06-01T00:00:30.5Z", "iso8601", JUNE_1 + 30),
    ("01/06/2024 00:01", "%d/%m/%Y %H:%M", JUNE_1 + 60),
    (b"20240601", "%Y%m%d", JUNE_1),
    (datetime.datetime(2024, 6, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
     "seconds", JUNE_1),                             # Parquet timestamps, whatever the format
    (datetime.datetime(2024, 6, 1), "iso8601", JUNE_1),
])
def test_to_seconds(value, form, seconds):
    assert event_times.to_seconds(value, form) == seconds


@pytest.mark.parametrize("value, form, message", [
    ("not-a-time", "seconds", "not integer Unix seconds"),
    ("2024-06-01", "seconds", "not integer Unix seconds"),
    ("nan", "seconds", "not integer Unix seconds"),
    ("", "iso8601", "empty"),
    ("01/06/2024", "iso8601", "not ISO-8601"),
    ("2024-13-01", "iso8601", "not ISO-8601"),
    ("2024-06-01", "%d/%m/%Y", "not dates as '%d/%m/%Y'"),
])
def test_to_seconds_rejects(value, form, message):
    with pytest.raises(ValueError, match=message):
        event_times.to_seconds(value, form)


def test_check_format():
    assert event_times.check_format("iso8601") is None
    assert event_times.check_format("%d.%m.%Y") is None
    assert "not one of" in event_times.check_format("dd/mm/yyyy")
    assert "not one of" in event_times.check_format(7)


@pytest.mark.parametrize("values, integers, form", [
    (["1717200000", "1717300000"], True, "seconds"),
    (["1717200000000", "1717300000000"], True, "milliseconds"),
    (["20240601", "20240615"], True, "%Y%m%d"),
    (["1717200000", "1717300000"], False, None),      # integers need a time-like name
    (["3", "50", "7"], True, None),                   # durations, not times
    (["2024-06-01T10:00:00Z", "2024-06-02T11:30:00+02:00"], False, "iso8601"),
    (["2024-06-01 10:00", "2024-06-02 11:30"], False, "iso8601"),
    (["13/06/2024", "01/07/2024"], False, "%d/%m/%Y"),  # a day above 12: day first
    (["06/13/2024", "07/01/2024"], False, "%m/%d/%Y"),  # a month position above 12
    (["13/06/2024 10:15", "01/07/2024 22:05"], False, "%d/%m/%Y %H:%M"),
    (["1 Jun 2024", "15 Jul 2024"], False, "%d %b %Y"),
    (["free", "paid"], False, None),
])
def test_detect(values, integers, form):
    assert event_times.detect(values, integers)[0] == form


def test_detect_says_when_it_guesses_and_lists_unread_values():
    form, why, unread = event_times.detect(["01/06/2024", "02/06/2024"], False)
    assert form == "%d/%m/%Y" and "a guess" in why and "'%m/%d/%Y'" in why and unread == []
    values = [f"2024-06-{day:02d}" for day in range(1, 29)] + ["not-a-time"]
    form, _, unread = event_times.detect(values, False)
    assert form == "iso8601" and unread == ["not-a-time"]
    assert event_times.detect(values[:5] + ["x"] * 5, False)[0] is None  # under 90% read
