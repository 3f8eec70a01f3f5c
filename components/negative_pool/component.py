"""NegativePoolBuilder: item frequencies (logQ), id vocabularies and the mixed-negative pool.

Usage (see pipeline/pipeline.py):

    pool = NegativePoolBuilder(
        interactions=interactions_gen.outputs["examples"],   # only its train split is read
        items=items_gen.outputs["examples"],                 # the catalogue ("catalog" split)
        contract=contract,                                   # twotower.contract.load(...)
        interactions_report=interactions_gate.outputs["report"],
        items_report=items_gate.outputs["report"],
        pool=PoolConfig(sampler="uniform", pool_size=None, seed=42))   # config's `pool:`

Output `negative_pool` (NegativePool), a folder with:
  item_frequencies/*.tfrecord.gz  item_id, train_count, in_catalog, probability (in-batch,
                                  add-k smoothed), pool_probability (0 outside the pool)
  pool/*.tfrecord.gz              catalogue rows (all features) + train_count, pool_probability
  vocab/<feature>.tsv             "value<TAB>count", most frequent first; index = line: the
                                  two ids (over train interactions) and every categorical,
                                  multi_categorical and text feature (preprocessing.py)
  numeric.json                    numeric features: quantile boundaries, mean, std
  contract.json                   the feature set (twotower/contract.py) it was built for
  stats.json                      catalogue size, never-seen items, unknown ids, pool size, ...
"""
from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from twotower import keys
from components.ingestion.component import DataValidationReport
from components.negative_pool import executor
from twotower import config as config_lib
from twotower.config import PoolConfig
from twotower.contract import Contract


class NegativePool(types.Artifact):
    """Item frequencies, id vocabularies, the negative pool and its stats (see module doc)."""

    TYPE_NAME = "twotower.NegativePool"  # <namespace>.<Title>: KFP v2 schema titles


class NegativePoolBuilderSpec(types.ComponentSpec):
    """Inputs: train interactions, catalogue, (optionally) their validation reports."""

    PARAMETERS = {
        **executor.POOL_PARAMETERS,
        keys.CONTRACT_KEY: ExecutionParameter(type=str),
        keys.SEPARATE_PROCESS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        keys.INTERACTIONS_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.ITEMS_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.INTERACTIONS_REPORT_KEY: ChannelParameter(type=DataValidationReport, optional=True),
        keys.ITEMS_REPORT_KEY: ChannelParameter(type=DataValidationReport, optional=True),
    }
    OUTPUTS = {keys.NEGATIVE_POOL_KEY: ChannelParameter(type=NegativePool)}


class NegativePoolBuilder(base_beam_component.BaseBeamComponent):
    """Counts train interactions per item and user and builds the mixed-negative pool."""

    SPEC_CLASS = NegativePoolBuilderSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, interactions: types.BaseChannel, items: types.BaseChannel,
                 contract: Contract, interactions_report: Optional[types.BaseChannel] = None,
                 items_report: Optional[types.BaseChannel] = None,
                 pool: PoolConfig = PoolConfig(), separate_process: bool = True) -> None:
        """Builds the component; an invalid pool config raises ConfigError (a ValueError) now.

        Args:
          interactions: Examples with a `train` split (eval is never read).
          items: Examples with a `catalog` split, one row per item.
          contract: The feature set (twotower/contract.py): the id columns and the features
            whose vocabularies and numeric statistics are computed.
          interactions_report: The interactions ValidationGate's report (orders the run).
          items_report: The items ValidationGate's report.
          pool: The config's `pool` section (twotower/config.py PoolConfig: the sampler, the
            pool's size, smoothing, min_count, seed and the unknown-item limit); each field
            is one execution property, so TFX's cache sees exactly these values.
          separate_process: Run the Beam pipeline in a child process (see
            twotower.config.OrchestrationConfig.separate_processes).
        """
        config_lib.check_section("pool", pool)
        spec = NegativePoolBuilderSpec(
            interactions=interactions, items=items, interactions_report=interactions_report,
            items_report=items_report, separate_process=int(separate_process),
            **executor.properties_from_config(pool, contract),
            negative_pool=types.Channel(type=NegativePool))
        super().__init__(spec=spec)
