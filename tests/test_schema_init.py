"""`twotower schema init`'s rules on small hand-made tables, and what it writes."""
import pandas as pd
import pytest

from twotower import config as config_lib
from pipeline import schema_init
from twotower import contract
from twotower.errors import ConfigError


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
    with pytest.raises(ConfigError, match="--time plan: values such as 'free' are in no known "
                                          "time format; pass --time-format"):
        schema_init.decide(interactions, items, None, time="plan")
    with pytest.raises(ConfigError, match="--time-format '%d/%m/%Y' does not read column "
                                          "'event_time'"):
        schema_init.decide(interactions, items, None, time="event_time", time_format="%d/%m/%Y")
    no_key = items.assign(article=["x", "y", "z"])
    with pytest.raises(ConfigError, match="name the item id with --item-id COLUMN"):
        schema_init.decide(interactions, no_key.rename(columns={"article": "other"}), None)


def test_init_writes_a_loadable_contract_and_config(tmp_path):
    interactions, items = _tables()
    interactions["event_time"] = [f"2020-09-13T12:26:4{i}Z" for i in range(6)]
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
    assert found.by_name("event_time").format == "iso8601"
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


def _event_time(decisions):
    found = next(d for d in decisions if d.role == "event_time")
    return found.column, dict(found.settings)["format"]


@pytest.mark.parametrize("column, values, form", [
    ("event_time", [str(1_600_000_000 + i) for i in range(6)], "seconds"),
    ("timestamp", [f"2024-06-0{i + 1}T10:00:00Z" for i in range(6)], "iso8601"),
    ("ts", [str(1_600_000_000_000 + i) for i in range(6)], "milliseconds"),
    ("purchased", [f"1{i}/06/2024 10:0{i}" for i in range(6)], "%d/%m/%Y %H:%M"),  # any name
])
def test_event_times_in_the_forms_logs_carry_them(column, values, form):
    interactions, items = _tables()
    interactions = interactions.drop(columns=["event_time"]).assign(**{column: values})
    decisions = schema_init.decide(interactions, items, None)
    assert _event_time(decisions) == (column, form)
    assert schema_init.split_notes(decisions)[0].startswith(f"split: time: train on the events "
                                                            f"before the 0.8 quantile of '{column}'")


def test_a_time_like_column_no_format_reads_is_an_error_not_a_random_split():
    interactions, items = _tables()
    interactions = interactions.assign(event_time=[f"{i + 1}st of June 2024" for i in range(6)])
    with pytest.raises(ConfigError, match="column 'event_time' looks like the event time but no "
                                          "known format reads values such as '1st of June "
                                          "2024'; pass --time event_time --time-format"):
        schema_init.decide(interactions, items, None)
    decisions = schema_init.decide(interactions, items, None, no_time=True)
    assert not any(d.role == "event_time" for d in decisions)
    assert schema_init.split_notes(decisions, no_time=True)[0].startswith(
        "warning: split: hash (--no-time): a random split trains on events that come after")
    decisions = schema_init.decide(interactions.drop(columns=["event_time"]), items, None)
    assert "no column holds event times" in schema_init.split_notes(decisions)[0]


def test_sampled_time_values_the_format_does_not_read_are_reported():
    interactions, items = _tables()
    times = [f"2024-06-{day:02d}" for day in range(1, 30)] + ["not-a-time"]
    interactions = pd.DataFrame({"visitor": [f"v{i % 5}" for i in range(30)],
                                 "article": ["a1", "a2", "a3"] * 10, "when": times},
                                dtype=object)
    decisions = schema_init.decide(interactions, items, None)
    assert _event_time(decisions) == ("when", "iso8601")
    assert schema_init.split_notes(decisions)[1] == (
        "warning: 1 distinct sampled value(s) of 'when' are not in its format, e.g. "
        "'not-a-time'; ingestion stops at such rows: fix or drop them")


def test_no_user_column_is_refused_naming_the_rejected_columns():
    interactions, items = _tables()
    interactions = interactions.drop(columns=["visitor", "plan"])
    with pytest.raises(ConfigError, match=r"rejected device \(2 values\): fewer than 50 distinct "
                                          r"values and not named like a user .*--user-id COLUMN"):
        schema_init.decide(interactions, items, None)
    many = pd.DataFrame({"session": [f"s{i // 2}" for i in range(120)],
                         "article": ["a1", "a2", "a3"] * 40}, dtype=object)
    assert next(d.column for d in schema_init.decide(many, items, None)
                if d.role == "user_id") == "session"  # 60 values: users without the name


def test_anonymous_users_write_an_explicit_contract_of_context_features(tmp_path):
    interactions, items = _tables()
    interactions = interactions.drop(columns=["visitor", "plan"])
    with pytest.raises(ConfigError, match="or pass --anonymous-users if the log has no user id"):
        schema_init.decide(interactions, items, None)
    interactions.to_csv(tmp_path / "log.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    out = tmp_path / "contract"
    decisions = schema_init.init(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), None,
                                 str(out), "kiosk", anonymous_users=True)
    assert not any(d.role == "user_id" for d in decisions)
    assert (out / "features.yaml").read_text().splitlines()[2].startswith("users: anonymous")
    found = contract.load(str(out))
    assert found.anonymous_users and found.user_id is None
    assert found.query_names == ("device",)  # per-event context only: no user to hold constant
    assert contract.from_dict(found.to_dict()) == found
    with pytest.raises(ConfigError, match="--anonymous-users contradicts --user-id"):
        schema_init.init(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), None,
                         str(out), "kiosk", user_id="device", anonymous_users=True)
    interactions.drop(columns=["device"]).to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ConfigError, match="no interactions column can be a query feature"):
        schema_init.init(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), None,
                         str(tmp_path / "other"), "kiosk", anonymous_users=True)
