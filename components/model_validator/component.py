"""ModelValidator: gate a retrieval model before it is pushed.

Usage (see pipeline/pipeline.py):

    validator = ModelValidator(model=trainer.outputs["model"],
                               baseline_model=latest_blessed.outputs["model"],
                               examples=interactions_gen.outputs["examples"],
                               index_model=index_builder.outputs["scann_model"], k=100)
    pusher = Pusher(model=index_builder.outputs["scann_model"],
                    model_blessing=validator.outputs["blessing"], ...)

The candidate (and the latest blessed model, when there is one) are scored on the same
eval split with exact search over their catalogues (components/model_validator/
evaluation.py). Blessed iff: <protocol>_recall_at_<k> ≥ min_recall; it is at most
max_relative_regression below the baseline's; the index's ScaNN recall against exact
search ≥ min_scann_recall.

Output `blessing`: a standard ModelBlessing (custom properties `blessed`,
`current_model_id`, as TFX's Evaluator writes, so TFX's Pusher and the
LatestBlessedModelStrategy honour it) with metrics.json (both models' metrics, every
check with its value and threshold) and validation.png.
"""
from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from twotower import keys
from components.model_validator import executor
from twotower.config import ValidationConfig

DEFAULTS = ValidationConfig()


class ModelValidatorSpec(types.ComponentSpec):
    """Candidate, optional baseline, eval examples and the index report; a ModelBlessing."""

    PARAMETERS = {
        keys.VALIDATION_K_KEY: ExecutionParameter(type=int),
        keys.PROTOCOL_KEY: ExecutionParameter(type=str),
        keys.MIN_RECALL_KEY: ExecutionParameter(type=float),
        keys.MAX_RELATIVE_REGRESSION_KEY: ExecutionParameter(type=float),
        keys.MIN_SCANN_RECALL_KEY: ExecutionParameter(type=float),
        keys.MIN_LIFT_OVER_MOSTPOP_KEY: ExecutionParameter(type=float),
        keys.MAX_EVAL_INTERACTIONS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
        keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.INDEX_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {keys.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing)}


class ModelValidator(base_component.BaseComponent):
    """Blesses a candidate retrieval model, or not (see the module docstring)."""

    SPEC_CLASS = ModelValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 index_model: types.BaseChannel,
                 baseline_model: Optional[types.BaseChannel] = None, k: int = DEFAULTS.k,
                 protocol: str = DEFAULTS.protocol, min_recall: float = DEFAULTS.min_recall,
                 max_relative_regression: float = DEFAULTS.max_relative_regression,
                 min_scann_recall: float = DEFAULTS.min_scann_recall,
                 min_lift_over_mostpop: float = DEFAULTS.min_lift_over_mostpop,
                 max_eval_interactions: Optional[int] = DEFAULTS.max_eval_interactions
                 ) -> None:
        """Builds the component; out-of-range thresholds raise ConfigError now.

        Args:
          model: The candidate (the Trainer's Model).
          examples: Interactions with `train` and `eval` splits: one artifact, or the
            Trainer's window of spans; the newest span's eval split is scored and every
            row the Trainer read is the history the filtered protocol removes
            (window.training_patterns).
          index_model: The IndexBuilder's ScaNN Model (its index_report.json).
          baseline_model: The latest blessed Trainer Model (a resolver's output); None or
            empty on a first run.
          k: Cut-off of the gated recall.
          protocol: `filtered` or `tfrs` (see components/trainer/metrics.py).
          min_recall: Absolute floor.
          max_relative_regression: Largest allowed relative drop against the baseline.
          min_scann_recall: Smallest ScaNN recall@k against exact search.
          min_lift_over_mostpop: The gated recall must exceed MostPop's times 1 + this
            (-1: no such check).
          max_eval_interactions: Score about this many eval interactions, a seeded sample
            (None: all; components/trainer/eval_sample.py).
        """
        ValidationConfig(k=k, protocol=protocol, min_recall=min_recall,
                         max_relative_regression=max_relative_regression,
                         min_scann_recall=min_scann_recall,
                         min_lift_over_mostpop=min_lift_over_mostpop,
                         max_eval_interactions=max_eval_interactions).validate()
        spec = ModelValidatorSpec(
            model=model, baseline_model=baseline_model, examples=examples,
            index_model=index_model, k=k, protocol=protocol, min_recall=min_recall,
            max_relative_regression=max_relative_regression, min_scann_recall=min_scann_recall,
            min_lift_over_mostpop=min_lift_over_mostpop,
            max_eval_interactions=max_eval_interactions, blessing=types.Channel(type=standard_artifacts.ModelBlessing))
        super().__init__(spec=spec)
