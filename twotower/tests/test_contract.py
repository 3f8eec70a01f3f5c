"""The data contract: the MovieLens declaration, and every bad declaration's error."""
import pathlib

import pytest

from twotower import config as config_lib
from twotower import contract
from twotower.errors import ConfigError

SCHEMA = """
feature {{ name: "customer" type: BYTES }}
feature {{ name: "sku" type: BYTES }}
feature {{ name: "ts" type: INT }}
{extra}
"""
ITEMS = """
feature { name: "sku" type: BYTES }
feature { name: "brand" type: BYTES }
"""
GOOD = """
features:
  customer: {role: user_id}
  sku: {role: item_id}
  ts: {role: event_time}
  brand: {role: candidate, kind: categorical}
"""


def _folder(tmp_path, features=GOOD, extra="", items=ITEMS):
    (tmp_path / "features.yaml").write_text(features)
    (tmp_path / "interactions.pbtxt").write_text(SCHEMA.format(extra=extra))
    (tmp_path / "items.pbtxt").write_text(items)
    return str(tmp_path)


def test_movielens_contract():
    found = contract.load(config_lib.DEFAULT_SCHEMA_DIR)
    assert (found.user_id, found.item_id, found.event_time) == ("user_id", "item_id", "timestamp")
    assert found.query_names == ("user_id", "age", "gender", "occupation", "zip")
    assert found.candidate_names == ("item_id", "title", "genres", "release_year")
    assert found.by_name("age").dtype == "int64" and found.by_name("title").dtype == "string"
    assert found.by_name("genres").separator == "|"
    assert found.by_name("zip").prefix == 2
    assert contract.from_dict(found.to_dict()) == found


def test_a_minimal_contract_with_no_features_is_ids_only(tmp_path):
    ids_only = "features:\n  customer: {role: user_id}\n  sku: {role: item_id}\n" \
               "  ts: {role: event_time}\n  brand: {role: ignored}\n"
    found = contract.load(_folder(tmp_path, ids_only))
    assert found.query_names == ("customer",) and found.candidate_names == ("sku",)


def test_an_anonymous_contract_has_a_query_tower_without_an_id(tmp_path):
    anonymous = "users: anonymous\n" + GOOD.replace(
        "customer: {role: user_id}", "customer: {role: query, kind: categorical}")
    found = contract.load(_folder(tmp_path, anonymous))
    assert found.anonymous_users and found.user_id is None
    assert found.query_names == ("customer",) and found.candidate_names == ("sku", "brand")
    assert found.to_dict()["anonymous_users"] is True
    assert contract.from_dict(found.to_dict()) == found
    assert "anonymous_users" not in contract.load(_folder(tmp_path)).to_dict()  # cache keys


@pytest.mark.parametrize("features, message", [
    (GOOD.replace("sku: {role: item_id}", "sku: {role: candidate, kind: categorical}"),
     r"no column has role item_id; declare the column that identifies the item"),
    (GOOD.replace("ts: {role: event_time}", "ts: {role: item_id}"),
     r"2 columns have role item_id \(\['sku', 'ts'\]\); declare exactly one"),
    (GOOD.replace("kind: categorical", "kind: colour"),
     r"feature 'brand': kind 'colour' is not one of"),
    (GOOD.replace("role: candidate", "role: tower"), r"feature 'brand': role 'tower' is not one"),
    (GOOD.replace("kind: categorical", "kind: categorical, separator: '|'"),
     r"feature 'brand': separator applies only to kind multi_categorical"),
    (GOOD.replace("kind: categorical", "kind: multi_categorical"),
     r"feature 'brand': kind multi_categorical needs a separator"),
    (GOOD.replace("kind: categorical", "kind: categorical, embedding_dim: 0"),
     r"feature 'brand': embedding_dim must be an integer >= 1"),
    (GOOD.replace("kind: categorical", "kind: categorical, colour: red"),
     r"feature 'brand': unknown setting\(s\) \['colour'\]"),
    (GOOD.replace("kind: categorical", "kind: numeric"),
     r"feature 'brand': kind numeric needs type INT or FLOAT in items.pbtxt, which says BYTES"),
    (GOOD + "  age: {role: query, kind: numeric}\n",
     r"feature 'age': role query needs it in the interactions schema"),
    (GOOD + "  recent: {role: candidate, kind: history}\n",
     r"feature 'recent': kind history is a query feature"),
    (GOOD.replace("kind: categorical", "kind: categorical, length: 5"),
     r"feature 'brand': length and pooling apply only to kind history"),
    (GOOD + "  recent: {role: query, kind: history, pooling: max}\n",
     r"feature 'recent': pooling 'max' is not one of \['mean', 'recency'\]"),
    (GOOD.replace("ts: {role: event_time}", "ts: {role: ignored}")
     + "  recent: {role: query, kind: history}\n",
     r"a history needs the event time"),
    (GOOD.replace("customer: {role: user_id}", "customer: {role: ignored}"),
     r"no column has role user_id; .*or `users: anonymous` at the top level"),
    ("users: anonymous\n" + GOOD,
     r"`users: anonymous` but 'customer' has role user_id; remove one of them"),
    ("users: anonymous\n" + GOOD.replace("customer: {role: user_id}",
                                          "customer: {role: ignored}"),
     r"`users: anonymous` needs at least one query feature"),
    ("users: anonymous\n" + GOOD.replace("customer: {role: user_id}",
                                          "customer: {role: query, kind: categorical}")
     + "  recent: {role: query, kind: history}\n",
     r"`users: anonymous` cannot have a history feature"),
    ("users: nobody\n" + GOOD, r"users: 'nobody' is not 'anonymous'"),
    ("features: [1, 2]", r"expected a top-level 'features:' mapping"),
    (GOOD + "other: 1\n", r"unknown top-level key\(s\) \['other'\]"),
])
def test_bad_declarations_name_the_file_the_feature_and_the_fix(tmp_path, features, message):
    folder = _folder(tmp_path, features)
    with pytest.raises(ConfigError, match=message) as raised:
        contract.load(folder)
    assert str(pathlib.Path(folder) / "features.yaml") in str(raised.value)


def test_schema_columns_must_all_be_declared(tmp_path):
    folder = _folder(tmp_path, extra='feature { name: "store" type: BYTES }')
    with pytest.raises(ConfigError, match=r"columns \['store'\] of the interactions schema are "
                                          r"not declared.*role: ignored"):
        contract.load(folder)


def test_missing_files_say_what_a_contract_folder_holds(tmp_path):
    with pytest.raises(ConfigError, match=r"features.yaml not found.*twotower schema init"):
        contract.load(str(tmp_path))
    (tmp_path / "features.yaml").write_text(GOOD)
    with pytest.raises(ConfigError, match=r"interactions.pbtxt not found"):
        contract.load(str(tmp_path))


def test_time_feature_field_is_gone_with_the_fix_named():
    with pytest.raises(ConfigError, match=r"data.time_feature is gone: .* role event_time"):
        config_lib.load(None, ("data.time_feature=ts",))


def test_history_is_declared_in_the_interactions_schema(tmp_path):
    features = GOOD + "  recent: {role: query, kind: history, length: 5, pooling: recency}\n"
    found = contract.load(_folder(tmp_path, features,
                                  extra='feature { name: "recent" type: BYTES }'))
    assert found.history.name == "recent" and found.history.length == 5
    assert found.query_names == ("customer", "recent")
