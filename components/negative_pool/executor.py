"""NegativePoolBuilder executor: reads the splits, runs `pool.build_pool`, writes the files."""
from __future__ import annotations

import dataclasses
import json
import os
import typing
import uuid
from typing import Any

import tensorflow as tf
from absl import logging
import apache_beam as beam
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils

from twotower import child_process, keys
from components.ingestion import window
from components.negative_pool import artifact_io, counting, pool, preprocessing
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower.config import PoolConfig
from twotower.errors import NegativePoolError


def _parameter(hint: Any) -> ExecutionParameter:
    """The execution parameter of a PoolConfig field's type (str, int, float, a Literal of
    strings, or Optional of one)."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    optional = typing.get_origin(hint) is typing.Union
    if optional:
        hint = args[0]
    if typing.get_origin(hint) is typing.Literal:
        hint = type(typing.get_args(hint)[0])
    return ExecutionParameter(type=hint, optional=optional)


# One execution property per PoolConfig field, named as the field (the config is the one
# definition: a field added there reaches the component, its cache key and the Beam job).
POOL_PARAMETERS = {name: _parameter(hint)
                   for name, hint in typing.get_type_hints(PoolConfig).items()}


def config_from_properties(exec_properties: dict[str, Any]) -> PoolConfig:
    """The pool config from the component's execution properties (checked again: a spec
    may have been written by hand or by another version).

    Raises:
      ConfigError: naming the bad field.
    """
    pool_config = PoolConfig(**{name: exec_properties.get(name) for name in POOL_PARAMETERS})
    config_lib.check_section("pool", pool_config)
    return pool_config


def contract_from_properties(exec_properties: dict[str, Any]) -> contract_lib.Contract:
    """The feature set the component was built with."""
    return contract_lib.from_dict(json.loads(exec_properties[keys.CONTRACT_KEY]))


def properties_from_config(pool_config: PoolConfig, contract: contract_lib.Contract
                           ) -> dict[str, Any]:
    """The execution properties that `config_from_properties` and
    `contract_from_properties` read back."""
    return {**dataclasses.asdict(pool_config),
            keys.CONTRACT_KEY: json.dumps(contract.to_dict(), sort_keys=True)}


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


def check_stats(stats: dict[str, Any], max_unknown_item_share: float = 1.0) -> None:
    """Raises NegativePoolError when the pool cannot be used for training: an empty
    catalogue or train split, or more than `max_unknown_item_share` of the train
    interactions naming an item the catalogue lacks (a wrong items file, or ids written
    differently in the two tables)."""
    if stats["catalog_size"] == 0:
        raise NegativePoolError("the item catalogue is empty: the items table must have one row "
                                "per item (check data.items)")
    if stats["train_interactions"] == 0:
        raise NegativePoolError("the interactions train split has no rows: check "
                                "data.interactions and the split settings (data.cutoff_*)")
    unknown = stats["interactions_with_unknown_item"]
    share = unknown / stats["train_interactions"]
    if share > max_unknown_item_share:
        raise NegativePoolError(
            f"{unknown} of {stats['train_interactions']} train interactions ({share:.1%}) name "
            f"one of {stats['unknown_items']} items missing from the catalogue, above "
            f"pool.max_unknown_item_share ({max_unknown_item_share:.0%}): check that data.items "
            "is the catalogue of these interactions and writes ids the same way, or raise the "
            "share")


class Executor(base_beam_executor.BaseBeamExecutor):
    """Builds the NegativePool artifact with one Beam pipeline."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        settings = config_from_properties(exec_properties)
        contract = contract_from_properties(exec_properties)
        interactions = input_dict[keys.INTERACTIONS_KEY]
        for artifact in interactions:
            split_pattern(artifact, keys.TRAIN_SPLIT, "interactions")
        train, _ = window.training_patterns(interactions)
        catalog = split_pattern(artifact_utils.get_single_instance(input_dict[keys.ITEMS_KEY]),
                                keys.CATALOG_SPLIT, "items")
        out = artifact_utils.get_single_uri(output_dict[keys.NEGATIVE_POOL_KEY])
        args = (train, catalog, out, settings, contract, self._beam_pipeline_args)
        if exec_properties.get(keys.SEPARATE_PROCESS_KEY, 1):
            child_process.run("the NegativePoolBuilder's Beam pipeline", build, *args)
        else:
            build(*args)
        artifact_io.write_contract(contract, out)
        stats = artifact_io.read_stats(out)
        check_stats(stats, settings.max_unknown_item_share)
        logging.info("NegativePool stats: %s", pool.stats_json(stats))


def build(train: list[str], catalog: str, out: str, settings: PoolConfig,
          contract: contract_lib.Contract, beam_pipeline_args: list[str]) -> None:
    """Runs the Beam pipeline that writes the NegativePool files under `out` (plain
    arguments: they pickle for a child process)."""
    with beam.Pipeline(argv=beam_pipeline_args) as pipeline:
        interactions = pipeline | "ReadTrain" >> counting.ReadRecordBatches(train)  # pylint: disable=no-value-for-parameter
        items = pipeline | "ReadCatalog" >> counting.ReadRecordBatches(catalog)  # pylint: disable=no-value-for-parameter
        outputs = pool.build_pool(interactions, items, settings, contract)
        _write_records(outputs.frequencies, out, keys.POOL_FREQUENCIES_DIR, "Frequencies")
        _write_records(outputs.pool, out, keys.POOL_POOL_DIR, "Pool")
        if outputs.user_vocabulary is not None:
            _write_single(outputs.user_vocabulary | "UserLines" >> beam.Map("\n".join),
                          os.path.join(out, keys.POOL_VOCAB_DIR, contract.user_id),
                          ".tsv", "UserVocabulary")
        _write_single(outputs.item_vocabulary | "ItemLines" >> beam.Map("\n".join),
                      os.path.join(out, keys.POOL_VOCAB_DIR, contract.item_id),
                      ".tsv", "ItemVocabulary")
        _ = outputs.feature_vocabularies | "WriteFeatureVocabularies" >> beam.Map(
            write_vocabulary, os.path.join(out, keys.POOL_VOCAB_DIR))
        _write_single(outputs.numeric | "NumericJson" >> beam.Map(
            preprocessing.numeric_json), os.path.join(out, "numeric"), ".json", "Numeric")
        _write_single(outputs.stats | "StatsJson" >> beam.Map(pool.stats_json),
                      os.path.join(out, "stats"), ".json", "Stats")


def write_vocabulary(element: tuple[str, list[str]], folder: str) -> None:
    """Writes one feature's vocabulary lines to <folder>/<feature>.tsv (one element per
    feature, so exactly one worker writes each file)."""
    name, lines = element
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, f"{name}.tsv"), "w") as f:
        f.write("\n".join(lines))


# zlib level 1: the files are read once per training run; the default level (6) doubles
# the pool's write time (about 3 s of a 1M-item build) for files 20% smaller.
_FAST_GZIP = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)


def write_shard(element: tuple[int, list[bytes]], folder: str) -> None:
    """Writes one shard's serialised rows to <folder>/part-SSSSS-of-NNNNN.tfrecord.gz,
    through a temporary name, so a retried or repeated shard replaces the file whole (its
    content is fixed by the data) and readers never see half a file."""
    shard, rows = element
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, f"part-{shard:05d}-of-{counting.SHARDS:05d}"
                                f"{keys.POOL_RECORD_SUFFIX}")
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.TFRecordWriter(temporary, options=_FAST_GZIP) as writer:
        for row in rows:
            writer.write(row)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _write_records(rows: beam.PCollection, out: str, folder: str, label: str) -> None:
    _ = rows | f"Write{label}" >> beam.Map(write_shard, os.path.join(out, folder))


def _write_single(text: beam.PCollection, prefix: str, suffix: str, label: str) -> None:
    """Writes a one-element PCollection of text as exactly `prefix + suffix`."""
    _ = text | f"Write{label}" >> beam.io.WriteToText(prefix, file_name_suffix=suffix,
                                                       num_shards=1, shard_name_template="")
