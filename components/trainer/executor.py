"""TFX's GenericExecutor, plus the NegativePool and catalogue inputs handed to run_fn, and
the train/eval files of a window of spans (window.training_patterns); on a worker of a
training cluster (TF_CONFIG), it trains without expecting an export of its own."""
from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.util import udf_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils

from twotower import keys
from components.ingestion import window
from components.trainer import distribution


class TrainerExecutor(trainer_executor.GenericExecutor):
    """Adds the pool URI and the catalogue's file pattern to fn_args.custom_config."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        """TFX's Do on the chief (it checks that run_fn exported the model); on the other
        workers of a cluster only the training: run_fn exports on the chief alone, which
        may not have finished (TFX's check would fail the worker, and with it the job)."""
        if distribution.chief_by_environment():
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        run_fn = udf_utils.get_fn(exec_properties, "run_fn")
        run_fn(self._GetFnArgs(input_dict, output_dict, exec_properties))

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
