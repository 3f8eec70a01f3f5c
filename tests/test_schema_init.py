"""`twotower schema init`'s rules on small hand-made tables, and what it writes."""
import pandas as pd
import pytest

from pipeline import config as config_lib
from pipeline import contract, schema_init
from pipeline.errors import ConfigError


@pytest.mark.parametrize("values, name, kind", [
    (["3", "7", "12", "40", "41", "55", "60", "61", "62", "70", "71", "72", "80"], "age",
     "numeric"),
    (["1", "2", "2", "3"], "rooms", "categorical"),                        # few integer values
    (["101", "205", "309", "411"] * 5, "store_id", "categorical"),         # integer ids
    (["1.5", "2.25", "3"], "price", "numeric"),
    (["1600000000", "1600000100"], "created_at", "timestamp"),
    ([str(1_600_000_000 + 100 * i) for i in range(13)], "amount", "numeric"),  # not a time name
    (["a|b", "b", "c|a", "b|c"], "tags", "multi_categorical"),
    (["the quick brown fox", "a lazy dog sleeps", "red apple pie", "blue cheese"], "title",
     "text"),
    (["2 Adults Kids", "1 Adult No Kids"] * 10, "household_comp", "categorical"),
    (["M", "F", "F"], "gender", "categorical"),
])
def test_kind_rules(values, name, kind):
    assert schema_init.value_kind(pd.Series(values, dtype=object), name)[0] == kind


def test_separator_is_recorded():
    kind, _, settings = schema_init.value_kind(pd.Series(["x;y", "y", "z;x"]), "labels")
    assert kind == "multi_categorical" and dict(settings) == {"separator": ";"}


def _tables():
    interactions = pd.DataFrame({
        "visitor": ["v1", "v2", "v1", "v3", "v2", "v1"],
        "article": ["a1", "a2", "a3", "a1", "a1", "a2"],
        "event_time": [str(1_600_000_000 + i) for i in range(6)],
        "plan": ["free", "paid", "free", "free", "paid", "free"],         # constant per visitor
        "device": ["ios", "web", "web", "ios", "ios", "ios"],             # per event
        "dwell_seconds": ["3", "50", "7", "9", "10", "2"],                # per-event outcome
    }, dtype=object)
    items = pd.DataFrame({"article": ["a1", "a2", "a3"], "section": ["news", "sport", "news"]},
                         dtype=object)
    return interactions, items


def test_roles():
    interactions, items = _tables()
    decisions = {d.column: d for d in schema_init.decide(interactions, items, None)}
    assert decisions["visitor"].role == "user_id"
    assert decisions["article"].role == "item_id"
    assert decisions["event_time"].role == "event_time"
    assert (decisions["plan"].role, decisions["plan"].kind) == ("query", "categorical")
    assert "constant per user" in decisions["plan"].reason
    assert decisions["device"].role == "query" and "varies per event" in decisions["device"].reason
    assert decisions["dwell_seconds"].role == "ignored"
    assert decisions["section"].role == "candidate"


def test_overrides_and_their_errors():
    interactions, items = _tables()
    decisions = schema_init.decide(interactions, items, None, user_id="device")
    assert next(d for d in decisions if d.role == "user_id").column == "device"
    with pytest.raises(ConfigError, match="--item-id nope: the interactions table has no such"):
        schema_init.decide(interactions, items, None, item_id="nope")
    with pytest.raises(ConfigError, match="--time plan: values such as 'free' are not integer "
                                          "Unix seconds"):
        schema_init.decide(interactions, items, None, time="plan")
    no_key = items.assign(article=["x", "y", "z"])
    with pytest.raises(ConfigError, match="name the item id with --item-id COLUMN"):
        schema_init.decide(interactions, no_key.rename(columns={"article": "other"}), None)


def test_init_writes_a_loadable_contract_and_config(tmp_path):
    interactions, items = _tables()
    interactions.to_csv(tmp_path / "log.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    out = tmp_path / "contract"
    schema_init.init(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), None, str(out),
                     "news", sample_rows=4)
    found = contract.load(str(out))
    assert found.query_names == ("visitor", "plan", "device")
    assert found.candidate_names == ("article", "section")
    config = config_lib.load(str(out / "news.yaml"))
    assert config.data.schema_dir == str(out) and config.data.split == "time"
    assert config.orchestration.pipeline_name == "news"
    # Only the ids and the event time are required in every row; no enumerated domains.
    text = (out / "interactions.pbtxt").read_text()
    assert text.count("min_fraction: 1.0") == 3 and "string_domain" not in text


def test_history_flag_declares_the_derived_feature_in_both_files(tmp_path):
    interactions, items = _tables()
    interactions.to_csv(tmp_path / "log.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    out = tmp_path / "contract"
    schema_init.init(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), None, str(out),
                     "news", history=7)
    found = contract.load(str(out))
    assert (found.history.name, found.history.length) == ("history", 7)
    assert found.query_names[-1] == "history"
    assert 'name: "history"' in (out / "interactions.pbtxt").read_text()
    with pytest.raises(ConfigError, match="--history needs an event time"):
        interactions.drop(columns=["event_time"]).to_csv(tmp_path / "log.csv", index=False)
        schema_init.init(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), None,
                         str(tmp_path / "other"), "news", history=7)


def test_a_parquet_sample_reads_only_the_first_rows(tmp_path):
    frame = pd.DataFrame({"a": [str(i) for i in range(200_000)], "b": [1.5] * 200_000})
    frame.to_parquet(tmp_path / "big.parquet", row_group_size=50_000)
    sample = schema_init.read_sample(str(tmp_path / "big.parquet"), 70_000)
    assert len(sample) == 70_000 and sample["a"].iloc[-1] == "69999"
    assert sample["b"].iloc[0] == "1.5"  # values as strings, like CSV samples
