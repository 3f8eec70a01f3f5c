"""Model base path versions: atomic publish, monotonic versions, idempotent re-push."""
import os

import pytest

from twotower import versions


def _model(path, source):
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
        f.write("pb")
    versions.write_source(str(path), source)
    return str(path)


def test_publish_by_rename_and_monotonic_versions(tmp_path):
    base = str(tmp_path / "base")
    model = _model(tmp_path / "m1", {"trained_model": "a"})
    assert versions.next_version(base, now=1000) == 1000
    final = versions.publish(model, base, 1000)
    assert os.path.exists(os.path.join(final, "saved_model.pb"))
    assert sorted(os.listdir(base)) == ["1000"]  # no staging folder left behind
    # The clock going backwards (or two pushes in one second) still gives a larger version.
    assert versions.next_version(base, now=999) == 1001
    with pytest.raises(FileExistsError):
        versions.publish(model, base, 1000)


def test_incomplete_folders_are_not_versions(tmp_path):
    base = tmp_path / "base"
    (base / "5").mkdir(parents=True)  # no saved_model.pb: a partial copy
    (base / f"{versions.STAGING_PREFIX}6").mkdir()
    assert versions.versions(str(base)) == []


def test_already_published_compares_the_latest_versions_source(tmp_path):
    base = str(tmp_path / "base")
    first = _model(tmp_path / "m1", {"trained_model": "a"})
    second = _model(tmp_path / "m2", {"trained_model": "b"})
    versions.publish(first, base, 10)
    assert versions.already_published(first, base) == 10
    assert versions.already_published(second, base) is None
    versions.publish(second, base, 11)
    # Only the latest version counts: re-blessing "a" after "b" pushes it again.
    assert versions.already_published(first, base) is None
