"""Data in spans: the pipeline's window and drift nodes, Airflow's logical date, the Kubeflow
runtime parameter, `twotower data split-spans` and the spans config section."""
import json
import pathlib
import shutil

import pandas as pd
import pytest
import yaml

from components.ingestion import spans
from pipeline import cli
from twotower import config as config_lib
from pipeline import pipeline as pipeline_lib
from twotower.errors import ConfigError
from pipeline.runners import airflow_dag, kubeflow_v2

REPO = pathlib.Path(__file__).resolve().parents[1]
DAILY = "data.interactions=data/incoming/{YYYY}-{MM}-{DD}/interactions.csv"
GCS = ("data.interactions=gs://bucket/incoming/{YYYY}-{MM}-{DD}/interactions.csv",
       "data.items=gs://bucket/items.csv", "orchestration.pipeline_root=gs://bucket/root",
       "serving.base_path=gs://bucket/serving")


def _config(*overrides):
    return config_lib.load(str(REPO / "configs" / "movielens.yaml"), tuple(overrides))


def _nodes(config):
    return {node.id: node for node in pipeline_lib.create_pipeline(config).components}


def test_spans_add_a_window_and_a_drift_baseline_and_warm_start():
    plain = _nodes(_config())
    assert "InteractionsWindow" not in plain and "InteractionsPreviousSpanStatistics" not in plain
    assert "base_model" not in plain["Trainer"].inputs or \
        plain["Trainer"].inputs["base_model"] is None
    nodes = _nodes(_config(DAILY, "spans.drift_thresholds={genres: 0.2}",
                           "spans.window_spans=3"))
    window = nodes["InteractionsWindow"]
    assert nodes["InteractionsValidationGate"] in window.upstream_nodes
    assert window.exec_properties["source_uri"] == {"window": 3}
    # The validator reads the window too: it scores the newest span's eval split with the
    # whole window's training data filtered out, as the Trainer divided it.
    for consumer, key in (("Trainer", "examples"), ("NegativePoolBuilder", "interactions"),
                          ("ModelValidator", "examples")):
        assert nodes[consumer].inputs[key].producer_component_id == "InteractionsWindow"
    assert nodes["IndexBuilder"].inputs["examples"].producer_component_id == \
        "InteractionsExampleGen"  # its queries: the ingested span
    gate = nodes["InteractionsValidationGate"]
    assert gate.inputs["baseline_statistics"].producer_component_id == \
        "InteractionsPreviousSpanStatistics"
    assert json.loads(gate.exec_properties["drift_thresholds"]) == {"genres": 0.2}
    assert nodes["Trainer"].inputs["base_model"] is not None  # warm start by default
    assert "InteractionsPreviousSpanStatistics" not in _nodes(_config(DAILY))


def test_airflow_runs_ingest_their_logical_date():
    config = _config(DAILY)
    assert airflow_dag.dag_span(config) == spans.AIRFLOW_LOGICAL_DATE
    assert airflow_dag.dag_span(_config(DAILY, "spans.span=2026-01-02")) == "2026-01-02"
    numbered = _config("data.interactions=data/in/span-{SPAN}/interactions.csv")
    assert airflow_dag.dag_span(numbered) == "latest"
    built = pipeline_lib.create_pipeline(config, span=airflow_dag.dag_span(config))
    gen = next(node for node in built.components if node.id == "InteractionsExampleGen")
    assert gen.exec_properties["span_request"] == "{{ ds }}"
    assert gen.exec_properties["span_pattern"] == "{YYYY}-{MM}-{DD}/interactions.csv"


def test_kubeflow_spec_takes_the_span_as_a_runtime_parameter(tmp_path):
    from kfp import components  # pylint: disable=import-outside-toplevel
    out = tmp_path / "spec.json"
    assert cli.main(["compile", "kubeflow", "--config", str(REPO / "configs" / "movielens.yaml"),
                     *[arg for o in (*GCS, "spans.window_spans=1") for arg in ("--set", o)],
                     "--out", str(out)]) == 0
    spec = json.loads(out.read_text())
    parameters = spec["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert kubeflow_v2.SPAN_PARAMETER in parameters
    assert spec["runtimeConfig"]["parameterValues"][kubeflow_v2.SPAN_PARAMETER] == "latest"
    loaded = components.load_component_from_text(yaml.safe_dump(spec["pipelineSpec"]))
    gen = loaded.pipeline_spec.root.dag.tasks["InteractionsExampleGen"]
    assert gen.inputs.parameters["span_request"].component_input_parameter == \
        kubeflow_v2.SPAN_PARAMETER
    with pytest.raises(ConfigError, match="spans.window_spans: 1"):
        kubeflow_v2.compile_spec(_config(*GCS), str(tmp_path / "refused.json"))


def test_span_settings_that_do_not_fit_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="has no {SPAN} or {YYYY}{MM}{DD} placeholder"):
        pipeline_lib.create_pipeline(_config("spans.span=3"))
    contract = tmp_path / "contract"
    shutil.copytree(config_lib.DEFAULT_SCHEMA_DIR, contract)
    with open(contract / "features.yaml", "a", encoding="utf-8") as f:
        f.write("  recent: {role: query, kind: history, length: 5}\n")
    with open(contract / "interactions.pbtxt", "a", encoding="utf-8") as f:
        f.write('feature { name: "recent" type: BYTES }\n')
    with pytest.raises(ConfigError, match="history feature 'recent' is built within one"):
        pipeline_lib.create_pipeline(_config(DAILY, f"data.schema_dir={contract}"))


def test_spans_config_section():
    config = _config("spans.span=3", "spans.drift_thresholds={genres: 0.2, age: 0.1}")
    assert config.spans.span == "3"
    assert config.spans.drift_thresholds == {"genres": 0.2, "age": 0.1}
    assert config_lib.load(None).spans.window_spans == 4
    with pytest.raises(ConfigError, match=r"spans.drift_thresholds.genres: got 2.0"):
        _config("spans.drift_thresholds={genres: 2}")
    with pytest.raises(ConfigError, match="spans.span: got 'yesterday'"):
        _config("spans.span=yesterday")
    with pytest.raises(ConfigError, match="spans.drift_thresholds: got 0.2; expected a mapping"):
        _config("spans.drift_thresholds=0.2")


def test_split_spans_writes_weekly_and_numbered_folders(tmp_path, capsys):
    day = 86_400
    monday = 1_767_571_200  # 2026-01-05, a Monday
    frame = pd.DataFrame({"user_id": ["1", "2", "3", "4", "5"],
                          "item_id": ["a", "b", "c", "d", "e"],
                          "timestamp": [monday + 8 * day, monday, monday + day,
                                        monday + 7 * day, monday + 6 * day]})
    table = tmp_path / "interactions.csv"
    frame.to_csv(table, index=False)
    (tmp_path / "items.csv").write_text("item_id\na\n")
    assert cli.main(["data", "split-spans", "--interactions", str(table), "--every", "week",
                     "--copy", str(tmp_path / "items.csv"), "--out", str(tmp_path / "w")]) == 0
    assert "{YYYY}-{MM}-{DD}/interactions.csv" in capsys.readouterr().out
    first = pd.read_csv(tmp_path / "w" / "2026-01-05" / "interactions.csv", dtype=str)
    second = pd.read_csv(tmp_path / "w" / "2026-01-12" / "interactions.csv", dtype=str)
    assert list(first.user_id) == ["2", "3", "5"] and list(second.user_id) == ["1", "4"]
    assert (tmp_path / "w" / "items.csv").is_file()
    assert cli.main(["data", "split-spans", "--interactions", str(table), "--spans", "2",
                     "--out", str(tmp_path / "n")]) == 0
    sizes = {k: len(pd.read_csv(tmp_path / "n" / f"span-{k}" / "interactions.csv"))
             for k in (1, 2)}
    assert sizes == {1: 3, 2: 2}  # rank r of 5 goes to span r * 2 // 5 + 1
    earliest = pd.read_csv(tmp_path / "n" / "span-1" / "interactions.csv", dtype=str)
    assert list(earliest.user_id) == ["2", "3", "5"]  # the earliest three, file order kept
    assert cli.main(["data", "split-spans", "--interactions", str(table), "--out",
                     str(tmp_path / "x")]) == 2
