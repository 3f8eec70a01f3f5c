"""TFX's GenericExecutor, plus the NegativePool and catalogue inputs handed to run_fn, and
the train/eval files of a window of spans (window.training_patterns)."""
from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.types import artifact_utils
from tfx.utils import io_utils

from twotower import keys
from components.ingestion import window


class TrainerExecutor(trainer_executor.GenericExecutor):
    """Adds the pool URI and the catalogue's file pattern to fn_args.custom_config."""

    def _GetFnArgs(self, input_dict: dict[str, list[types.Artifact]],
                   output_dict: dict[str, list[types.Artifact]],
                   exec_properties: dict[str, Any]) -> FnArgs:
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        items = artifact_utils.get_single_instance(input_dict[keys.ITEMS_KEY])
        fn_args.train_files, fn_args.eval_files = window.training_patterns(
            input_dict[keys.EXAMPLES_KEY])
        fn_args.custom_config = {
            **(fn_args.custom_config or {}),
            keys.NEGATIVE_POOL_URI: artifact_utils.get_single_uri(
                input_dict[keys.NEGATIVE_POOL_KEY]),
            keys.CATALOG_PATTERN: io_utils.all_files_pattern(
                artifact_utils.get_split_uri([items], keys.CATALOG_SPLIT)),
        }
        return fn_args
