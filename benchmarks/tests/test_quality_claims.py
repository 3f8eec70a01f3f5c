"""bench quality on small synthetic data: the --claims rows (a row's own pool settings get
their own NegativePool, τ by tune-temperature's rule, the long-tail and geometry columns)
and the history protocol's length/pooling variants."""
import json

import pytest

from benchmarks import baselines, quality, quality_claims, quality_history, quality_rows
from components.negative_pool import artifact_io
from twotower import config as config_lib
from twotower import contract as contract_lib
from pipeline.data import synthetic

pytestmark = pytest.mark.e2e


@pytest.fixture(name="data_dir", scope="module")
def fixture_data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    synthetic.generate(synthetic.SyntheticSpec(users=200, items=150, interactions=3_000, seed=7),
                       out, progress=False)
    return out


def test_a_row_with_other_pool_settings_trains_on_its_own_pool(tmp_path, data_dir):
    contract = contract_lib.load(str(config_lib.SCHEMAS_ROOT / "movielens"))
    interactions, items = quality.load_tables(data_dir, contract, "twotower data synthetic")
    prepared = quality.prepare("temporal", interactions, items, tmp_path, config_lib.load(None),
                               contract, part="validation")
    assert quality_claims.pool_for(prepared, config_lib.load(None)) == prepared.pool_uri
    popular = config_lib.load(None, quality_rows.CLAIM_ROWS["pool_popularity"])
    uri = quality_claims.pool_for(prepared, popular)
    assert uri != prepared.pool_uri and quality_claims.pool_for(prepared, popular) == uri
    assert artifact_io.read_stats(uri)["settings"]["sampler"] == "popularity"
    assert artifact_io.read_stats(prepared.pool_uri)["settings"]["sampler"] == "uniform"


def test_claim_rows_report_rule_temperature_tail_share_and_geometry(tmp_path, data_dir):
    rows = {name: quality_rows.CLAIM_ROWS[name] for name in ("no_pool", quality_rows.TAU_RULE)}
    out = tmp_path / "claims.json"
    quality.run({"default": (), **rows}, ["temporal"], data_dir, [], tmp_path, out,
                part="validation")
    report = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(report) == {"default", "no_pool", quality_rows.TAU_RULE, quality_rows.MOSTPOP,
                           quality_rows.EASE}
    assert report[quality_rows.EASE]["temporal_ease_l2"] in baselines.EASE_L2_WEIGHTS
    assert 0.05 <= report[quality_rows.TAU_RULE]["rule_temperature_temporal"] <= 0.2
    for name in ("default", "no_pool", quality_rows.TAU_RULE, quality_rows.MOSTPOP):
        assert 0.0 <= report[name]["temporal_tail_share_at_100"] <= 1.0
    for name in ("default", "no_pool"):
        assert -4.0 <= report[name]["temporal_uniformity"] <= 0.0
        assert 0.0 <= report[name]["temporal_alignment"] <= 4.0


def test_other_history_lengths_poolings_and_repeat_settings_add_default_rows(tmp_path,
                                                                            data_dir):
    out = tmp_path / "histories.json"
    quality.run({"default": ()}, ["history"], data_dir, [], tmp_path, out,
                histories=[(20, "mean"), (5, "recency")], part="validation",
                repeats=quality_history.repeat_settings([0.5], [0.0, 4.0]))
    report = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    repeats = {"default+exclude", "default+repeat_0.5_count", "default+repeat_0.5_4"}
    assert {"default", "default+history_5_recency", quality_rows.MOSTPOP,
            quality_rows.ITEMKNN_HISTORY, quality_rows.EASE} | repeats == set(report)
    for name in ("default", "default+history_5_recency", quality_rows.EASE, *repeats):
        assert 0.0 <= report[name]["history_recall_at_10"] <= report[name][
            "history_recall_at_100"] <= 1.0
    # The protocol removes the items a user had before, except the true one; the served
    # exclude policy removes that too, so it loses every repeat (synthetic users repeat).
    assert report["default+exclude"]["history_recall_at_10"] < report["default"][
        "history_recall_at_10"]
    assert report["default+repeat_0.5_4"]["overrides"] == [
        "index.history_policy=rank", "index.repeat_weight=0.5", "index.repeat_half_life=4"]
