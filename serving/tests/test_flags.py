"""`twotower serve` flags: one definition of each default (the config's serving section)."""
import argparse

import pytest

from serving import flags
from twotower.config import ServingConfig
from twotower.errors import TwoTowerError


def test_serving_flags_default_to_the_configs_serving_section(tmp_path):
    """One definition: a flag left unset takes the config's serving.* (then its default)."""
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    options = flags.options_from_args(parser.parse_args(["--model_base_path", str(tmp_path)]))
    defaults = ServingConfig()
    assert (options.host, options.port, options.rest_api_port, options.poll_seconds,
            options.max_batch_size) == (defaults.host, defaults.grpc_port, defaults.rest_port,
                                        defaults.poll_seconds, defaults.max_batch_size)
    (tmp_path / "shop" / "7").mkdir(parents=True)
    serving = ServingConfig(base_path=str(tmp_path), model_name="shop", grpc_port=9100,
                            rest_port=9101, max_batch_size=64)
    options = flags.options_from_args(parser.parse_args(["--rest_api_port", "9200"]), serving,
                                      base_path_from_config=True)
    assert (options.port, options.rest_api_port, options.max_batch_size) == (9100, 9200, 64)
    assert options.models == {"shop": str(tmp_path / "shop")}
    with pytest.raises(TwoTowerError, match="pass --model_base_path"):
        flags.options_from_args(parser.parse_args([]), serving)
