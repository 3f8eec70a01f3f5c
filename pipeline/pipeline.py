"""create_pipeline: the one TFX pipeline every runner (local, Airflow, Kubeflow) executes."""
from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from tfx.v1.components import ExampleValidator, ImportSchemaGen
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_node
from tfx.dsl.components.common import resolver
from tfx.dsl.io import fileio
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2
from tfx.proto.orchestration import metadata_pb2
from tfx.types import standard_artifacts

from twotower import keys
from components.index_builder.component import IndexBuilder
from components.ingestion import spans, window
from components.ingestion.component import (DataValidationReport, SchemaExampleGen,
                                            SpanStatisticsGen, ValidationGate)
from components.model_validator.component import ModelValidator
from components.pusher.component import ServingPusher
from components.negative_pool.component import NegativePoolBuilder
from components.trainer.component import TwoTowerTrainer
from pipeline import beam_args
from twotower import contract as contract_lib
from twotower import event_times
from twotower.config import PipelineConfig
from twotower.paths import absolute, is_uri
from twotower.errors import ConfigError, IngestionError

TRAINER_ID = "Trainer"
VALIDATOR_ID = "ModelValidator"
STOCK_SUFFIX = "-stock"
INTERACTIONS = "interactions"
ITEMS = "items"


def _split_pattern(path: str) -> tuple[str, str]:
    """Splits a file or folder path into (absolute base folder, relative glob).

    A local folder, or any path ending in '/' (how to name a gs:// folder without a
    network call at build time), means every file in it. Folders holding span placeholders
    or globs (`data/{YYYY}-{MM}-{DD}/interactions.csv`) belong to the pattern.
    """
    full = absolute(path)
    if full.endswith("/") or (not is_uri(full) and os.path.isdir(full)):
        return full.rstrip("/"), "*"
    base, pattern = os.path.dirname(full), os.path.basename(full)
    while base and any(mark in os.path.basename(base) for mark in "{*?["):
        base, pattern = os.path.dirname(base), f"{os.path.basename(base)}/{pattern}"
    return base, pattern


class Ingestion(NamedTuple):
    """The nodes ingesting one data set, and those whose outputs later stages consume."""

    nodes: list[base_node.BaseNode]
    example_gen: SchemaExampleGen
    statistics: SpanStatisticsGen
    gate: ValidationGate


def ingestion_nodes(name: str, data_path: str, schema_file: str, config: PipelineConfig,
                    split_method: str, time_feature: Optional[str],
                    check_schema: bool = True,
                    contract: Optional[contract_lib.Contract] = None,
                    span: Any = spans.LATEST, drift: bool = False) -> Ingestion:
    """ImportSchemaGen -> SchemaExampleGen -> StatisticsGen -> ExampleValidator -> gate.

    With `drift`, a resolver hands the gate the previous validated span's statistics
    (components/ingestion/window.py) and the gate applies spans.drift_thresholds.

    Args:
      name: Data set name, used as the prefix of every node id.
      data_path: File, glob or folder of the raw data.
      schema_file: Curated schema (.pbtxt).
      config: Pipeline config (data section).
      split_method: "time", "hash" or "none".
      time_feature: The contract's event-time column (the time split's key).
      contract: The interactions' contract, when its history feature is to be built.
      check_schema: Check now that schema_file exists (off when it is a path inside a
        container image, read only by the pods).
      span: The span to ingest, for a pattern with span placeholders (spans.span, the
        Airflow logical-date template, or a Kubeflow RuntimeParameter).
      drift: Gate the span on its drift from the previous validated span.

    Returns:
      The nodes in order, the ExampleGen and the gate (whose report downstream stages
      consume, so they run only on validated data).
    """
    if check_schema and not fileio.exists(schema_file):
        raise IngestionError(f"schema {schema_file} not found; set data.schema_dir to the "
                             "contract folder (features.yaml, interactions.pbtxt, items.pbtxt)")
    if split_method == keys.SPLIT_TIME and not time_feature:
        raise ConfigError("data.split is time but the contract declares no column with role "
                          "event_time; declare one in features.yaml or set data.split: hash")
    prefix = name.capitalize()
    schema = ImportSchemaGen(schema_file=schema_file).with_id(f"{prefix}Schema")
    base, pattern = _split_pattern(data_path)
    data = config.data
    example_gen = SchemaExampleGen(
        input_base=base, pattern=pattern, schema=schema.outputs[keys.SCHEMA_KEY],
        input_format=data.input_format, split_method=split_method,
        time_feature=time_feature or "",
        time_format=(contract.by_name(time_feature).format if contract and time_feature
                     else event_times.SECONDS),
        cutoff_quantile=data.cutoff_quantile,
        cutoff_timestamp=data.cutoff_timestamp, eval_percent=data.eval_percent,
        span=span, span_wait_minutes=config.spans.wait_minutes,
        **history_parameters(contract),
    ).with_id(f"{prefix}ExampleGen")
    statistics = SpanStatisticsGen(examples=example_gen.outputs[keys.EXAMPLES_KEY],
                               schema=schema.outputs[keys.SCHEMA_KEY]
                               ).with_id(f"{prefix}StatisticsGen")
    validator = ExampleValidator(statistics=statistics.outputs[keys.STATISTICS_KEY],
                                 schema=schema.outputs[keys.SCHEMA_KEY]
                                 ).with_id(f"{prefix}ExampleValidator")
    gate_id = f"{prefix}ValidationGate"
    nodes: list[base_node.BaseNode] = [schema, example_gen, statistics, validator]
    baseline = None
    if drift:
        baseline = resolver.Resolver(
            strategy_class=window.PreviousSpanStatisticsStrategy,
            statistics=types.Channel(type=standard_artifacts.ExampleStatistics,
                                     producer_component_id=statistics.id,
                                     output_key=keys.STATISTICS_KEY),
            report=_reports(gate_id), current=example_gen.outputs[keys.EXAMPLES_KEY],
        ).with_id(f"{prefix}PreviousSpanStatistics")
        nodes.append(baseline)
    gate = ValidationGate(
        statistics=statistics.outputs[keys.STATISTICS_KEY],
        anomalies=validator.outputs[keys.ANOMALIES_KEY], dataset_name=name,
        baseline_statistics=baseline.outputs[keys.STATISTICS_KEY] if baseline else None,
        drift_thresholds=config.spans.drift_thresholds if baseline else None,
    ).with_id(gate_id)
    return Ingestion([*nodes, gate], example_gen, statistics, gate)


def _reports(gate_id: str) -> types.Channel:
    """Every report a gate published, in any run (validated spans)."""
    return types.Channel(type=DataValidationReport, producer_component_id=gate_id,
                         output_key=keys.REPORT_KEY)


def window_resolver(ingestion: Ingestion, size: int) -> resolver.Resolver:
    """The newest `size` validated spans' Examples up to this run's (window.py); runs
    after this run's gate, so this run's span counts as validated."""
    node = resolver.Resolver(
        strategy_class=window.ValidatedWindowStrategy, config={keys.WINDOW_KEY: size},
        examples=types.Channel(type=standard_artifacts.Examples,
                               producer_component_id=ingestion.example_gen.id,
                               output_key=keys.EXAMPLES_KEY),
        report=_reports(ingestion.gate.id),
        current=ingestion.statistics.outputs[keys.STATISTICS_KEY],
    ).with_id("InteractionsWindow")
    node.add_upstream_node(ingestion.gate)
    return node


def history_parameters(contract: Optional[contract_lib.Contract]) -> dict[str, Any]:
    """SchemaExampleGen's history arguments for a contract with a history feature."""
    if contract is None or contract.history is None:
        return {}
    return {"history_feature": contract.history.name, "history_length": contract.history.length,
            "user_feature": contract.user_id, "item_feature": contract.item_id}


def latest_blessed_resolver() -> resolver.Resolver:
    """The latest Trainer model the ModelValidator blessed (none on a first run): the
    validator's baseline and the warm-start base."""
    return resolver.Resolver(
        strategy_class=latest_blessed_model_strategy.LatestBlessedModelStrategy,
        model=types.Channel(type=standard_artifacts.Model, producer_component_id=TRAINER_ID,
                            output_key=keys.MODEL_KEY),
        model_blessing=types.Channel(type=standard_artifacts.ModelBlessing,
                                     producer_component_id=VALIDATOR_ID,
                                     output_key=keys.BLESSING_KEY),
    ).with_id("LatestBlessedModelResolver")


def serving_nodes(config: PipelineConfig, trainer: TwoTowerTrainer, examples: types.BaseChannel,
                  training_examples: types.BaseChannel, blessed: resolver.Resolver
                  ) -> list[base_node.BaseNode]:
    """IndexBuilder -> ModelValidator -> a Pusher per model variant (ScaNN and stock).

    `examples` is this run's span (the IndexBuilder's queries); `training_examples` what
    the Trainer read (the span, or the window of spans), which the validator scores on
    with the same train/eval division."""
    index = config.index
    index_builder = IndexBuilder(
        model=trainer.outputs[keys.MODEL_KEY], examples=examples,
        serving_model_name=config.serving.model_name, k=index.k, max_k=index.max_k,
        brute_force_below=index.brute_force_below, num_leaves=index.num_leaves,
        num_leaves_to_search=index.num_leaves_to_search,
        anisotropic_quantization_threshold=index.anisotropic_quantization_threshold,
        reorder=index.reorder, history_policy=index.history_policy,
        repeat_weight=index.repeat_weight, repeat_half_life=index.repeat_half_life,
        target_recall=config.validation.min_scann_recall,
    ).with_id("IndexBuilder")
    validation = config.validation
    validator = ModelValidator(
        model=trainer.outputs[keys.MODEL_KEY], baseline_model=blessed.outputs[keys.MODEL_KEY],
        examples=training_examples, index_model=index_builder.outputs[keys.SCANN_MODEL_KEY],
        k=validation.k, protocol=validation.protocol, min_recall=validation.min_recall,
        max_relative_regression=validation.max_relative_regression,
        min_scann_recall=validation.min_scann_recall,
        min_lift_over_mostpop=validation.min_lift_over_mostpop,
        max_eval_interactions=validation.max_eval_interactions).with_id(VALIDATOR_ID)
    pushers = []
    for pusher_id, output, name in (("Pusher", keys.SCANN_MODEL_KEY, ""),
                                    ("StockPusher", keys.STOCK_MODEL_KEY, STOCK_SUFFIX)):
        destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=model_base_path(config, name)))
        pushers.append(ServingPusher(model=index_builder.outputs[output],
                              model_blessing=validator.outputs[keys.BLESSING_KEY],
                              push_destination=destination).with_id(pusher_id))
    return [index_builder, validator, *pushers]


def model_base_path(config: PipelineConfig, suffix: str = "") -> str:
    """TF Serving's model base path of one variant: <serving.base_path>/<model_name><suffix>."""
    return os.path.join(absolute(config.serving.base_path), config.serving.model_name + suffix)


def check_contract_settings(config: PipelineConfig, contract: contract_lib.Contract) -> None:
    """The served model's history settings need a history feature in the contract, and an
    anonymous contract needs the query features.

    Raises:
      ConfigError: a repeat weight or the exclude policy without a history feature;
        model.use_features false with anonymous users.
    """
    index = config.index
    if contract.history is None and (index.repeat_weight or index.history_policy == "exclude"):
        raise ConfigError(
            f"index.repeat_weight={index.repeat_weight:g}, index.history_policy="
            f"{index.history_policy} act on the request's history, but the contract in "
            f"{config.data.schema_dir} declares no feature of kind history: declare one "
            "(`twotower schema init --history N`) or set index.repeat_weight=0 and "
            "index.history_policy=rank")
    if contract.anonymous_users and not config.model.use_features:
        raise ConfigError(f"the contract in {config.data.schema_dir} has anonymous users, so "
                          "the query tower reads only its query features, but "
                          "model.use_features is false; set it true")


def check_spans(config: PipelineConfig, contract: contract_lib.Contract,
                cross_run_resolvers: bool) -> bool:
    """Whether the interactions arrive in spans; checks the span settings fit.

    Raises:
      ConfigError: naming the setting that does not fit and the fix.
    """
    spanned = spans.has_placeholders(config.data.interactions)
    settings = config.spans
    if not spanned:
        if settings.span != spans.LATEST:
            raise ConfigError(f"spans.span is {settings.span!r} but data.interactions "
                              f"({config.data.interactions}) has no {{SPAN}} or "
                              "{YYYY}{MM}{DD} placeholder; name the span folders in it")
        return False
    if contract.history is not None:
        raise ConfigError(f"the contract's history feature {contract.history.name!r} is built "
                          "within one ingestion, so with spans it would miss the events of "
                          "earlier spans: ingest without span placeholders, or drop the "
                          "history feature")
    if not cross_run_resolvers and (settings.window_spans > 1 or settings.drift_thresholds):
        raise ConfigError("Kubeflow Pipelines v2 compiles only TFX's latest-artifact and "
                          "latest-blessed-model resolvers, so a window of spans from ML "
                          "Metadata and the drift gate run only locally and under Airflow: "
                          "set spans.window_spans: 1 and spans.drift_thresholds: {} here")
    return True


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: Optional[metadata_pb2.ConnectionConfig] = None,
                    check_schemas: bool = True,
                    contract: Optional[contract_lib.Contract] = None,
                    span: Any = None,
                    cross_run_resolvers: bool = True,
                    trainer_cluster: bool = False) -> tfx_pipeline.Pipeline:
    """Builds the twotower pipeline from a validated config and its data contract.

    Args:
      config: The whole pipeline config.
      metadata_connection_config: ML Metadata connection; None lets the orchestrator
        choose (local runs pass SQLite at orchestration.metadata_path).
      check_schemas: Check that the schema files exist (see ingestion_nodes).
      contract: The feature set; None reads it from data.schema_dir.
      span: Overrides spans.span (Airflow's logical-date template, a Kubeflow
        RuntimeParameter).
      cross_run_resolvers: Resolve the window of spans and the drift baseline from ML
        Metadata (custom resolver strategies; Kubeflow v2 cannot compile them).
      trainer_cluster: The orchestrator can run the Trainer as a Vertex AI custom job of
        orchestration.trainer_workers replicas (compiled Kubeflow specs).

    Raises:
      ConfigError: the contract is invalid or does not fit the config, or
        orchestration.trainer_workers asks for a cluster this orchestrator cannot start
        (naming the fix).

    Returns:
      A TFX pipeline: ingestion and validation of interactions (train/eval split; with
      span placeholders, one span per run, gated on drift, and a window of validated
      spans for the pool and the Trainer) and of the item catalogue, the NegativePoolBuilder, the TwoTowerTrainer (warm-started from the
      latest blessed model when training.warm_start), the IndexBuilder, the ModelValidator
      (baseline: the latest blessed model) and one Pusher per model variant.
    """
    workers = config.orchestration.trainer_workers
    if workers > 1 and not trainer_cluster:
        raise ConfigError(f"orchestration.trainer_workers: got {workers}; local and Airflow "
                          "runs train in one process: set it to 1, compile for Kubeflow / "
                          "Vertex AI (`twotower compile kubeflow`), or start the workers by "
                          "hand with TF_CONFIG (docs/operations.md)")
    schema_dir = config.data.schema_dir
    contract = contract or contract_lib.load(schema_dir)
    check_contract_settings(config, contract)
    spanned = check_spans(config, contract, cross_run_resolvers)
    interactions = ingestion_nodes(
        INTERACTIONS, config.data.interactions,
        os.path.join(schema_dir, contract_lib.INTERACTIONS_SCHEMA), config, config.data.split,
        contract.event_time, check_schemas, contract,
        span=span if span is not None else config.spans.span,
        drift=spanned and cross_run_resolvers and bool(config.spans.drift_thresholds))
    items = ingestion_nodes(ITEMS, config.data.items,
                            os.path.join(schema_dir, contract_lib.ITEMS_SCHEMA), config,
                            keys.SPLIT_NONE, None, check_schemas)
    examples = interactions.example_gen.outputs[keys.EXAMPLES_KEY]
    extra: list[base_node.BaseNode] = []
    training_examples = examples
    if spanned and cross_run_resolvers:
        extra.append(window_resolver(interactions, config.spans.window_spans))
        training_examples = extra[0].outputs[keys.EXAMPLES_KEY]
    negative_pool = NegativePoolBuilder(
        interactions=training_examples,
        items=items.example_gen.outputs[keys.EXAMPLES_KEY], contract=contract,
        interactions_report=interactions.gate.outputs[keys.REPORT_KEY],
        items_report=items.gate.outputs[keys.REPORT_KEY], pool=config.pool,
        separate_process=config.orchestration.separate_processes,
    ).with_id("NegativePoolBuilder")
    blessed = latest_blessed_resolver()
    warm_start = spanned if config.training.warm_start is None else config.training.warm_start
    trainer = TwoTowerTrainer(
        examples=training_examples,
        negative_pool=negative_pool.outputs[keys.NEGATIVE_POOL_KEY],
        items=items.example_gen.outputs[keys.EXAMPLES_KEY], config=config,
        base_model=blessed.outputs[keys.MODEL_KEY] if warm_start else None,
        cluster=workers > 1,
    ).with_id(TRAINER_ID)
    orchestration = config.orchestration
    nodes = (interactions.nodes + items.nodes + extra + [negative_pool, blessed, trainer]
             + serving_nodes(config, trainer, examples, training_examples, blessed))
    add_component_beam_args(nodes, orchestration.component_beam_pipeline_args)
    return tfx_pipeline.Pipeline(
        pipeline_name=orchestration.pipeline_name,
        pipeline_root=absolute(orchestration.pipeline_root),
        components=nodes,
        enable_cache=orchestration.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_args.pipeline_beam_args(orchestration.beam_pipeline_args),
    )


def add_component_beam_args(nodes: Sequence[base_node.BaseNode],
                            args_by_id: Mapping[str, Sequence[str]]) -> None:
    """Adds each component's own Beam arguments (orchestration.component_beam_pipeline_args).

    Raises:
      ConfigError: if an id is not a Beam-based component of the pipeline.
    """
    beam_nodes = {node.id: node for node in nodes
                  if isinstance(node, base_beam_component.BaseBeamComponent)}
    for node_id, args in args_by_id.items():
        if node_id not in beam_nodes:
            raise ConfigError(f"orchestration.component_beam_pipeline_args: {node_id!r} is not "
                              f"a Beam-based component of this pipeline; those are "
                              f"{sorted(beam_nodes)}")
        beam_nodes[node_id].with_beam_pipeline_args(list(args))


def sqlite_metadata(config: PipelineConfig) -> metadata_pb2.ConnectionConfig:
    """SQLite ML Metadata connection for local runs (creates the parent folder)."""
    path = os.path.abspath(config.orchestration.resolved_metadata_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return metadata.sqlite_metadata_connection_config(path)
