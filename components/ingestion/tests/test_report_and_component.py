"""The validation verdict, and component argument checks made when the pipeline is built."""
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import types
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils
from tfx.types import standard_artifacts

from components.ingestion import report
from components.ingestion.component import SchemaExampleGen, ValidationGate


def _stats(count: int) -> statistics_pb2.DatasetFeatureStatisticsList:
    return statistics_pb2.DatasetFeatureStatisticsList(
        datasets=[statistics_pb2.DatasetFeatureStatistics(num_examples=count)])


def _type_anomaly() -> anomalies_pb2.Anomalies:
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["age"]
    info.description = "Expected data of type: INT but got STRING"
    info.reason.add(type=anomalies_pb2.AnomalyInfo.UNEXPECTED_DATA_TYPE,
                    short_description="Unexpected data type",
                    description="Expected data of type: INT but got STRING")
    missing = anomalies.anomaly_info["item_id"]
    missing.reason.add(short_description="Column dropped",
                       description="Column is completely missing")
    return anomalies


def test_clean_report():
    found = report.DatasetReport("items")
    found.add_split("catalog", _stats(3), anomalies_pb2.Anomalies())
    assert found.ok
    assert found.describe() == "items: catalog=3; no anomalies"
    assert found.to_dict() == {"dataset": "items", "ok": True, "examples": {"catalog": 3},
                               "problems": [], "drift": []}


def test_anomalies_and_empty_split_are_listed_by_feature():
    found = report.DatasetReport("interactions")
    found.add_split("train", _stats(10), _type_anomaly())
    found.add_split("eval", _stats(0), anomalies_pb2.Anomalies())
    assert not found.ok
    lines = found.describe().splitlines()
    assert lines[0] == "interactions failed validation (train=10, eval=0); 3 problem(s):"
    assert lines[1] == ("  [train] feature 'age': Unexpected data type. Expected data of type: "
                        "INT but got STRING")
    assert lines[2] == "  [train] feature 'item_id': Column dropped. Column is completely missing"
    assert lines[3].startswith("  [eval] split: Empty split.")
    assert "Nothing downstream ran" in lines[-1]


def _schema_channel():
    return types.Channel(type=standard_artifacts.Schema)


@pytest.mark.parametrize("kwargs, message", [
    ({"input_format": "xlsx"}, "input_format must be one of"),
    ({"split_method": "random"}, "split_method must be one of"),
    ({"cutoff_quantile": 1.0}, "cutoff_quantile must be in"),
    ({"cutoff_timestamp": -5}, "cutoff_timestamp must be"),
    ({"eval_percent": 0}, "eval_percent must be in"),
    ({"time_feature": ""}, "needs a time_feature"),
])
def test_example_gen_rejects_bad_arguments_at_build_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SchemaExampleGen(input_base="/data", pattern="*.csv", schema=_schema_channel(), **kwargs)


def _config(component, key, proto_type):
    return proto_utils.json_to_proto(component.exec_properties[key], proto_type())


def test_example_gen_split_names():
    timed = SchemaExampleGen(input_base="/data", pattern="x.csv", schema=_schema_channel(),
                             time_feature="ts")
    output = _config(timed, "output_config", example_gen_pb2.Output)
    assert [s.name for s in output.split_config.splits] == ["train", "eval"]
    catalog = SchemaExampleGen(input_base="/data", pattern="x.csv", schema=_schema_channel(),
                               split_method="none")
    assert _config(catalog, "input_config", example_gen_pb2.Input).splits[0].name == "catalog"
    assert not _config(catalog, "output_config", example_gen_pb2.Output).split_config.splits


def test_gate_needs_a_dataset_name():
    with pytest.raises(ValueError, match="dataset_name"):
        ValidationGate(statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
                       anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
                       dataset_name="")
