"""The typed config: defaults, YAML loading, overrides, and errors naming the field."""
import typing

import pytest

from pipeline import cli
from twotower import config as config_lib
from twotower import config_bounds
from twotower.config import ConfigError


def test_defaults_are_valid_and_cover_every_section():
    config = config_lib.from_dict({})
    assert set(config.to_dict()) == {"data", "spans", "pool", "model", "loss", "training",
                                     "validation",
                                     "index", "serving", "orchestration"}
    assert config.data.split == "time"
    assert 0.05 <= config.model.temperature <= 0.2
    assert config.model.l2_normalize is True


def test_yaml_file_overrides_only_given_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  split: hash\n  eval_percent: 10\nmodel:\n  hidden_layers: [64, 32]\n")
    config = config_lib.load(str(path))
    assert config.data.split == "hash"
    assert config.data.eval_percent == 10
    assert config.model.hidden_layers == (64, 32)
    assert config.data.cutoff_quantile == 0.8


def test_set_overrides_parse_yaml_values_and_win_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  split: hash\n")
    config = config_lib.load(str(path), ("data.split=time", "data.cutoff_timestamp=123",
                                         "orchestration.enable_cache=false"))
    assert config.data.split == "time"
    assert config.data.cutoff_timestamp == 123
    assert config.orchestration.enable_cache is False


def test_numbers_in_scientific_notation_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 5e-4\n")
    config = config_lib.load(str(path), ("pool.smoothing=1E-2",))
    assert config.training.learning_rate == 0.0005  # YAML 1.1 alone reads '5e-4' as text
    assert config.pool.smoothing == 0.01


@pytest.mark.parametrize("values, message", [
    ({"data": {"cutof_quantile": 0.5}}, "unknown field data.cutof_quantile"),
    ({"dta": {}}, "unknown field dta"),
    ({"data": {"split": "random"}}, "data.split: got 'random'; expected one of ['time', 'hash']"),
    ({"data": {"cutoff_quantile": 1.5}}, "data.cutoff_quantile: got 1.5"),
    ({"data": {"eval_percent": "20"}}, "data.eval_percent: got '20'; expected an integer"),
    ({"model": {"temperature": 0.001}}, "model.temperature"),
    ({"model": {"hidden_layers": [64, "x"]}}, "model.hidden_layers[1]"),
    ({"training": {"batch_size": 1}}, "training.batch_size"),
    ({"orchestration": {"enable_cache": "yes"}}, "orchestration.enable_cache: got 'yes'; "
                                                 "expected true or false"),
    ({"loss": {"loss": "softmx"}}, "loss.loss: got 'softmx'"),
    ({"index": {"k": 5000}}, "index.k"),
    ({"index": {"history_policy": "hide"}}, "index.history_policy: got 'hide'; expected one of "
                                            "['rank', 'exclude']"),
    ({"index": {"repeat_weight": -1}}, "index.repeat_weight: got -1"),
    ({"index": {"repeat_half_life": 0}}, "index.repeat_half_life: got 0"),
    ({"serving": {"grpc_port": 70000}}, "serving.grpc_port"),
    # The careless values: each names its range.
    ({"training": {"epochs": 1_000_000_000}}, "training.epochs: got 1000000000; expected a "
                                              "number from 1 to 10,000"),
    ({"model": {"embedding_dim": 100_000_000}}, "model.embedding_dim: got 100000000; expected "
                                                "a number from 1 to 4,096"),
    ({"serving": {"max_batch_size": -1}}, "serving.max_batch_size: got -1; expected a number "
                                          "from 1 to 1,048,576"),
    ({"index": {"num_leaves_to_search": -3}}, "index.num_leaves_to_search: got -3"),
    ({"index": {"num_leaves": 100, "num_leaves_to_search": 200}},
     "index.num_leaves_to_search: got 200; expected at most index.num_leaves (100)"),
    ({"model": {"hidden_layers": [128, 0]}}, "model.hidden_layers: got (128, 0)"),
])
def test_invalid_fields_are_named(values, message):
    with pytest.raises(ConfigError) as error:
        config_lib.from_dict(values)
    assert message in str(error.value)


def test_missing_file_and_bad_yaml_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config_lib.load(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config_lib.load(str(bad))


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.field=value"):
        config_lib.load(None, ("data.split",))
    with pytest.raises(ConfigError, match="section.field=value"):
        config_lib.load(None, ("split=hash",))


def test_yaml_round_trip(tmp_path):
    config = config_lib.load(None, ("model.hidden_layers=[32]", "data.split=hash"))
    path = tmp_path / "round.yaml"
    path.write_text(config_lib.to_yaml(config))
    assert config_lib.load(str(path)) == config


def test_metadata_path_defaults_under_pipeline_root():
    config = config_lib.load(None, ("orchestration.pipeline_root=/x/root",))
    assert config.orchestration.resolved_metadata_path == "/x/root/metadata.sqlite"


def _every_field():
    for section, section_class in typing.get_type_hints(config_lib.PipelineConfig).items():
        for field, hint in typing.get_type_hints(section_class).items():
            yield section, field, hint


@pytest.mark.parametrize("section, field, hint", [pytest.param(*f, id=f"{f[0]}.{f[1]}")
                                                  for f in _every_field()])
def test_every_field_refuses_a_wrong_value_naming_field_and_allowed_values(section, field,
                                                                           hint):
    with pytest.raises(ConfigError) as error:
        config_lib.from_dict({section: {field: {"not": "a value"}}})
    message = str(error.value)
    # A mapping field names the bad entry: section.field.key.
    where = f"{section}.{field}.not" if typing.get_origin(hint) is dict else f"{section}.{field}"
    assert message.startswith(f"{where}: got "), message
    assert "expected " in message, message
    if typing.get_origin(hint) is typing.Literal:
        with pytest.raises(ConfigError) as error:
            config_lib.from_dict({section: {field: "no-such-choice"}})
        assert f"expected one of {list(typing.get_args(hint))}" in str(error.value)


def test_a_bad_field_stops_the_run_before_any_work(tmp_path, capsys):
    root = tmp_path / "root"
    code = cli.main(["run", "--set", f"orchestration.pipeline_root={root}",
                     "--set", "loss.loss=softmx"])
    assert code == cli.EXIT_USER_ERROR
    assert "error: loss.loss: got 'softmx'; expected one of ['softmax', 'bce', 'bpr', 'hinge']" \
        in capsys.readouterr().err
    assert not root.exists()


def test_every_numeric_field_has_a_range():
    names = [name for name, _ in config_bounds.numeric_fields(config_lib.PipelineConfig())]
    assert sorted(names) == sorted(config_bounds.BOUNDS)
    assert "training.epochs" in names and "model.hidden_layers" in names
