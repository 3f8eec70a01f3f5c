"""SchemaExampleGen's driver: TFX's file-based span resolution, asked for a given span."""
from __future__ import annotations

from typing import Any

from tfx.components.example_gen import driver
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from twotower import keys
from components.ingestion import spans


def request_range(exec_properties: dict[str, Any]) -> None:
    """Sets the range config to the span asked for (spans.span), after waiting for its files.

    Leaves exec_properties alone for patterns without span placeholders and for `latest`
    (TFX's driver then takes the highest span present).

    Raises:
      IngestionError: the span's files did not arrive in time (spans.resolve).
    """
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    pattern = input_config.splits[0].pattern
    if not spans.has_placeholders(pattern):
        return
    number = spans.span_number(exec_properties.get(keys.SPAN_KEY) or spans.LATEST, pattern)
    spans.resolve(exec_properties[standard_component_specs.INPUT_BASE_KEY], pattern, number,
                  float(exec_properties.get(keys.SPAN_WAIT_MINUTES_KEY) or 0))
    if number is not None:
        exec_properties[standard_component_specs.RANGE_CONFIG_KEY] = proto_utils.proto_to_json(
            spans.static_range(number))


class SpanDriver(driver.FileBasedDriver):
    """FileBasedDriver that ingests the span of spans.span (the scheduler's date) when set."""

    def resolve_exec_properties(self, exec_properties: dict[str, Any],
                                pipeline_info: data_types.PipelineInfo,
                                component_info: data_types.ComponentInfo) -> dict[str, Any]:
        # A copy: TFX's driver rewrites the dict in place, and a launcher running several
        # runs in one process (Airflow's DebugExecutor) hands every run the same one.
        exec_properties = dict(exec_properties)
        request_range(exec_properties)
        return super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
