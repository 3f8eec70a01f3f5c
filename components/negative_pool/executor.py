"""NegativePoolBuilder executor: reads the splits, runs `pool.build_pool`, writes the files."""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import apache_beam as beam
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import keys
from components.negative_pool import artifact_io, counting, pool
from pipeline.errors import NegativePoolError


def settings_from_properties(exec_properties: dict[str, Any]) -> pool.PoolSettings:
    """The typed settings from the component's execution properties (validated)."""
    settings = pool.PoolSettings(
        sampler=exec_properties[keys.SAMPLER_KEY],
        alpha=float(exec_properties[keys.ALPHA_KEY]),
        unseen_weight=float(exec_properties[keys.UNSEEN_WEIGHT_KEY]),
        pool_size=exec_properties.get(keys.POOL_SIZE_KEY),
        max_pool_size=int(exec_properties[keys.MAX_POOL_SIZE_KEY]),
        smoothing=float(exec_properties[keys.SMOOTHING_KEY]),
        min_count=int(exec_properties[keys.MIN_COUNT_KEY]),
        seed=int(exec_properties[keys.SEED_KEY]),
        user_feature=exec_properties[keys.USER_FEATURE_KEY],
        item_feature=exec_properties[keys.ITEM_FEATURE_KEY])
    settings.validate()
    return settings


def properties_from_settings(settings: pool.PoolSettings) -> dict[str, Any]:
    """The execution properties that `settings_from_properties` reads back to `settings`."""
    return {keys.SAMPLER_KEY: settings.sampler, keys.ALPHA_KEY: settings.alpha,
            keys.UNSEEN_WEIGHT_KEY: settings.unseen_weight, keys.POOL_SIZE_KEY: settings.pool_size,
            keys.MAX_POOL_SIZE_KEY: settings.max_pool_size, keys.SMOOTHING_KEY: settings.smoothing,
            keys.MIN_COUNT_KEY: settings.min_count, keys.SEED_KEY: settings.seed,
            keys.USER_FEATURE_KEY: settings.user_feature,
            keys.ITEM_FEATURE_KEY: settings.item_feature}


def split_pattern(examples: types.Artifact, split: str, role: str) -> str:
    """File pattern of one split of an Examples artifact.

    Raises:
      NegativePoolError: if the artifact has no such split.
    """
    splits = artifact_utils.decode_split_names(examples.split_names)
    if split not in splits:
        raise NegativePoolError(f"the {role} examples have splits {splits}, not '{split}'; "
                                f"pass the {role} ExampleGen's output")
    return io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], split))


def check_stats(stats: dict[str, Any]) -> None:
    """Raises NegativePoolError when the pool cannot be used for training."""
    if stats["catalog_size"] == 0:
        raise NegativePoolError("the item catalogue is empty: the items table must have one row "
                                "per item (check data.items)")
    if stats["train_interactions"] == 0:
        raise NegativePoolError("the interactions train split has no rows: check "
                                "data.interactions and the split settings (data.cutoff_*)")


class Executor(base_beam_executor.BaseBeamExecutor):
    """Builds the NegativePool artifact with one Beam pipeline."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        settings = settings_from_properties(exec_properties)
        train = split_pattern(artifact_utils.get_single_instance(
            input_dict[keys.INTERACTIONS_KEY]), keys.TRAIN_SPLIT, "interactions")
        catalog = split_pattern(artifact_utils.get_single_instance(input_dict[keys.ITEMS_KEY]),
                                keys.CATALOG_SPLIT, "items")
        out = artifact_utils.get_single_uri(output_dict[keys.NEGATIVE_POOL_KEY])
        with self._make_beam_pipeline() as pipeline:
            interactions = pipeline | "ReadTrain" >> counting.ReadRecordBatches(train)  # pylint: disable=no-value-for-parameter
            items = pipeline | "ReadCatalog" >> counting.ReadRecordBatches(catalog)  # pylint: disable=no-value-for-parameter
            outputs = pool.build_pool(interactions, items, settings)
            _write_records(outputs.frequencies, out, keys.POOL_FREQUENCIES_DIR, "Frequencies")
            _write_records(outputs.pool, out, keys.POOL_POOL_DIR, "Pool")
            _write_single(outputs.user_vocabulary | "UserLines" >> beam.Map("\n".join),
                          os.path.join(out, keys.POOL_VOCAB_DIR, settings.user_feature),
                          ".tsv", "UserVocabulary")
            _write_single(outputs.item_vocabulary | "ItemLines" >> beam.Map("\n".join),
                          os.path.join(out, keys.POOL_VOCAB_DIR, settings.item_feature),
                          ".tsv", "ItemVocabulary")
            _write_single(outputs.stats | "StatsJson" >> beam.Map(pool.stats_json),
                          os.path.join(out, "stats"), ".json", "Stats")
        stats = artifact_io.read_stats(out)
        check_stats(stats)
        logging.info("NegativePool stats: %s", pool.stats_json(stats))


def _write_records(rows: beam.PCollection, out: str, folder: str, label: str) -> None:
    _ = rows | f"Write{label}" >> beam.io.WriteToTFRecord(
        os.path.join(out, folder, "part"), file_name_suffix=keys.POOL_RECORD_SUFFIX)


def _write_single(text: beam.PCollection, prefix: str, suffix: str, label: str) -> None:
    """Writes a one-element PCollection of text as exactly `prefix + suffix`."""
    _ = text | f"Write{label}" >> beam.io.WriteToText(prefix, file_name_suffix=suffix,
                                                       num_shards=1, shard_name_template="")
