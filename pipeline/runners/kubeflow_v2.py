"""The pipeline compiled for Kubeflow Pipelines v2 / Vertex AI Pipelines.

TFX's KubeflowV2DagRunner turns the same `create_pipeline` into a PipelineJob JSON (KFP's
pipeline spec with a runtime config): one container task per node, all on the image
orchestration.image (built from ./Dockerfile). ML Metadata is the cluster's, so no
connection config is passed. Every path in the config is read inside the pods: data,
pipeline root and serving base path must be URIs such as gs://bucket/x (or absolute paths
on a volume the pods mount), and the curated schemas are read from the image.

Data in spans: the span a run ingests is the runtime parameter `span` (a date or a span
number; `latest` by default), so a recurring run passes its date. TFX's Kubeflow v2
compiler takes no custom resolver strategies, so there a run trains on its own span
(spans.window_spans must be 1, and the drift gate is off).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from tfx.orchestration import data_types

from components.ingestion import spans

from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower import paths
from twotower.config import PipelineConfig
from twotower.errors import ConfigError
from pipeline.pipeline import create_pipeline

# Where ./Dockerfile installs the repository (WORKDIR); the schemas are read from here.
CONTAINER_REPO = "/twotower"
SPAN_PARAMETER = "span"


def container_config(config: PipelineConfig) -> PipelineConfig:
    """The config as the pods must see it.

    A contract folder shipped in this repository (under schemas/) becomes the image's copy
    (it was checked when the local config loaded); any other relative path is refused (a
    pod has no working directory of ours).

    Raises:
      ConfigError: naming the field with a relative path and the fix.
    """
    data = config.data
    shipped = os.path.relpath(os.path.abspath(data.schema_dir), config_lib.SCHEMAS_ROOT)
    if not paths.is_uri(data.schema_dir) and not shipped.startswith(".."):
        data = dataclasses.replace(data, schema_dir=f"{CONTAINER_REPO}/schemas/{shipped}")
        config = dataclasses.replace(config, data=data)
    for section, field in paths.PATH_FIELDS:
        value = getattr(getattr(config, section), field)
        if value and not paths.is_uri(value) and not os.path.isabs(value):
            raise ConfigError(f"{section}.{field}: got {value!r}; Kubeflow pods cannot read "
                              "relative local paths: use a URI such as gs://bucket/path "
                              "(or an absolute path on a volume the pods mount)")
    return config


def compile_spec(config: PipelineConfig, out_file: str) -> dict[str, Any]:
    """Writes the PipelineJob JSON to out_file and returns it as a dict.

    Raises:
      ConfigError: a path the pods cannot read (see container_config).
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner  # pylint: disable=import-outside-toplevel

    contract = contract_lib.load(config.data.schema_dir)
    config = container_config(config)
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=config.orchestration.image,
            display_name=config.orchestration.pipeline_name, use_pipeline_spec_2_1=True),
        output_dir=os.path.dirname(os.path.abspath(out_file)),
        output_filename=os.path.basename(out_file))
    span = span_parameter(config)
    return runner.run(create_pipeline(config, metadata_connection_config=None,
                                      check_schemas=False, contract=contract, span=span,
                                      cross_run_resolvers=False, trainer_cluster=True),
                      parameter_values={SPAN_PARAMETER: span.default} if span else None)


def span_parameter(config: PipelineConfig) -> Optional[data_types.RuntimeParameter]:
    """The runtime parameter `span` (default spans.span) when the data arrives in spans:
    a recurring run passes its date (YYYY-MM-DD) or span number."""
    if not spans.has_placeholders(config.data.interactions):
        return None
    return data_types.RuntimeParameter(name=SPAN_PARAMETER, ptype=str,
                                       default=config.spans.span)
