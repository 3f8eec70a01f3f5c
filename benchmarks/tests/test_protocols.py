"""The quality protocols' splits."""
import pandas as pd
import pytest

from benchmarks import protocols


def _table(users: int, per_user: int) -> pd.DataFrame:
    rows = [{"user_id": f"u{u}", "item_id": f"i{i}", "timestamp": u * 1000 + i}
            for u in range(users) for i in range(per_user)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("total,expected", [(20, [16, 2, 2]), (29, [25, 2, 2]),
                                            (5, [3, 1, 1]), (2, [1, 0, 1])])
def test_recbole_counts_follow_recbole_rounding(total, expected):
    # int(0.1 * 29) = 2 for valid and test, the rest to train; below one row a part gets one
    # (5 rows: 0.5 -> 1 each) while train keeps more than one row.
    assert protocols.recbole_counts(total) == expected


def test_recbole_split_is_per_user_and_disjoint():
    table = _table(users=3, per_user=20)
    split = protocols.recbole_split(table, "user_id", seed=1)
    for user in ("u0", "u1", "u2"):
        sizes = [len(part[part.user_id == user]) for part in (split.train, split.valid, split.eval)]
        assert sizes == [16, 2, 2]
    parts = pd.concat([split.train, split.valid, split.eval])
    assert len(parts) == 60 and not parts.duplicated().any()
    again = protocols.recbole_split(table, "user_id", seed=1)
    pd.testing.assert_frame_equal(split.eval, again.eval)


def test_tfrs_split_random_80_20_seeded():
    table = _table(users=10, per_user=10)
    split = protocols.tfrs_split(table, seed=42)
    assert (len(split.train), len(split.eval)) == (80, 20)
    assert not set(split.train.index) & set(split.eval.index)
    assert list(protocols.tfrs_split(table, seed=42).eval.index) == list(split.eval.index)
    assert list(protocols.tfrs_split(table, seed=7).eval.index) != list(split.eval.index)


def test_temporal_split_cuts_at_the_time_quantile():
    table = _table(users=1, per_user=10)  # timestamps 0..9
    split = protocols.temporal_split(table, "timestamp", quantile=0.8)
    assert split.train.timestamp.max() < split.eval.timestamp.min()
    assert len(split.eval) == 3  # nearest 0.8 quantile of 0..9 is 7: 7, 8, 9 are eval


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="tfrs"):
        protocols.split("loo", _table(1, 3), "user_id", "timestamp")


@pytest.mark.parametrize("protocol", protocols.PROTOCOLS)
def test_validation_split_never_contains_eval_rows(protocol):
    table = _table(users=10, per_user=20)
    full = protocols.split(protocol, table, "user_id", "timestamp")
    validation = protocols.split(protocol, table, "user_id", "timestamp", part="validation")
    used = pd.concat([validation.train, validation.eval])
    assert not used.merge(full.eval, how="inner").shape[0]
    assert len(used.drop_duplicates()) == len(used)
    if protocol == "recbole":
        pd.testing.assert_frame_equal(validation.eval, full.valid)
        pd.testing.assert_frame_equal(validation.train, full.train)
        assert validation.valid is None
    else:
        pd.testing.assert_frame_equal(used.sort_index(), full.train.sort_index())
    if protocol in ("temporal", "history"):
        assert validation.train.timestamp.max() < validation.eval.timestamp.min()
        assert validation.eval.timestamp.max() < full.eval.timestamp.min()


def test_a_recbole_validation_split_is_split_again_within_its_train_part():
    table = _table(users=10, per_user=20)
    validation = protocols.split("recbole", table, "user_id", "timestamp", part="validation")
    inner = protocols.validation_split("recbole", validation, "timestamp",
                                       user_column="user_id")
    assert not pd.concat([inner.train, inner.eval]).merge(validation.eval, how="inner").shape[0]
    assert set(inner.train.index) | set(inner.eval.index) < set(validation.train.index)
    assert set(inner.eval.user_id) == set(validation.train.user_id)
    with pytest.raises(ValueError, match="user_column"):
        protocols.validation_split("recbole", validation, "timestamp")
