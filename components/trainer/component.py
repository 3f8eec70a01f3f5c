"""TwoTowerTrainer: TFX's Trainer with the NegativePool and item catalogue as input channels.

Usage (see pipeline/pipeline.py):

    trainer = TwoTowerTrainer(examples=interactions_gen.outputs["examples"],
                              negative_pool=pool.outputs["negative_pool"],
                              items=items_gen.outputs["examples"], config=config)

Outputs: `model` (Model) whose Format-Serving folder holds query_tower/, candidate_tower/
(SavedModels over raw features), candidate_embeddings.tfrecord.gz and metrics.json (see
export.py); `model_run` (ModelRun) with the training logs.
"""
from __future__ import annotations

from typing import Any, Optional

from tfx import types
from tfx.components.trainer import component as trainer_component
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from components.negative_pool.component import NegativePool
from components.trainer.executor import TrainerExecutor
from twotower import keys
from twotower.config import PipelineConfig

RUN_FN_MODULE = "components.trainer.trainer_module"

# What the Trainer reads (this folder): whole sections, or named fields of one. Only
# these reach its custom_config, so editing serving.*, index.* or a gate threshold leaves
# the Trainer's execution properties (TFX's cache key) alone and does not retrain.
TRAINER_FIELDS: dict[str, Optional[tuple[str, ...]]] = {
    "model": None, "loss": None, "training": None,
    "validation": ("max_eval_interactions",), "orchestration": ("separate_processes",)}


def trainer_dict(config: PipelineConfig) -> dict[str, Any]:
    """The part of `config` the Trainer reads (TRAINER_FIELDS), as nested dicts that
    `twotower.config.from_dict` reads back (every other field then takes its default)."""
    full = config.to_dict()
    return {section: full[section] if fields is None
            else {field: full[section][field] for field in fields}
            for section, fields in TRAINER_FIELDS.items()}


class TwoTowerTrainerSpec(standard_component_specs.TrainerSpec):
    """TrainerSpec plus the `negative_pool` and `items` channels."""

    INPUTS = {
        **standard_component_specs.TrainerSpec.INPUTS,
        keys.NEGATIVE_POOL_KEY: ChannelParameter(type=NegativePool),
        keys.ITEMS_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }


class TwoTowerTrainer(trainer_component.Trainer):
    """Trains the two-tower model (components/trainer/training.py) inside TFX."""

    SPEC_CLASS = TwoTowerTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TrainerExecutor)

    def __init__(self, examples: types.BaseChannel, negative_pool: types.BaseChannel,
                 items: types.BaseChannel, config: PipelineConfig,
                 base_model: Optional[types.BaseChannel] = None,
                 cluster: bool = False) -> None:
        """Builds the component; the config was validated when it was loaded.

        Args:
          examples: Interactions with `train` and `eval` splits: one artifact, or a window
            of spans (window.training_patterns says which splits train and which score).
          negative_pool: The NegativePoolBuilder's output.
          items: The catalogue Examples (`catalog` split).
          config: The pipeline config; only what the Trainer reads reaches it
            (TRAINER_FIELDS: model, loss, training and two fields of
            validation and orchestration), so other edits do not retrain.
          base_model: A previous Model (a resolver's output) to warm-start from; the
            pipeline passes it when training.warm_start is on (null: with spans).
          cluster: Train as a Vertex AI custom job of orchestration.trainer_workers
            replicas (vertex.py; compiled Kubeflow specs) instead of in this process.
        """
        custom_config: dict[str, Any] = {keys.CONFIG: trainer_dict(config)}
        executor = None
        if cluster:
            from components.trainer import vertex  # pylint: disable=import-outside-toplevel (Google Cloud clients)
            custom_config.update(vertex.job_config(config.orchestration))
            executor = executor_spec.ExecutorClassSpec(vertex.VertexTrainerExecutor)
        spec = TwoTowerTrainerSpec(
            examples=examples, transform_graph=None, schema=None, base_model=base_model,
            hyperparameters=None, negative_pool=negative_pool, items=items,
            train_args=trainer_pb2.TrainArgs(), eval_args=trainer_pb2.EvalArgs(),
            module_file=None, module_path=RUN_FN_MODULE, run_fn=None,
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        base_component.BaseComponent.__init__(self, spec=spec, custom_executor_spec=executor)
