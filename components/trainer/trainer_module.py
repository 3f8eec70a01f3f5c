"""The TFX Trainer's run_fn (GenericExecutor), given as module_path to the Trainer."""
from __future__ import annotations

import gc
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from twotower import child_process, keys
from components.trainer import training
from twotower import config as config_lib


def run_fn(fn_args: FnArgs) -> None:
    """Trains, evaluates and exports into fn_args.serving_model_dir.

    fn_args.custom_config holds the Trainer's part of the pipeline config
    (component.py trainer_dict; validated again here) and, added by
    TrainerExecutor from the input channels, the NegativePool URI and the catalogue's files.
    fn_args.base_model, when the pipeline passes one (training.warm_start; on by default
    with spans), is the latest blessed model's serving dir and initialises the towers.
    With orchestration.separate_processes (the default) the work runs in a child process.
    """
    custom = fn_args.custom_config
    config = config_lib.from_dict(custom[keys.CONFIG])
    args = (fn_args.train_files, fn_args.eval_files, custom[keys.CATALOG_PATTERN],
            custom[keys.NEGATIVE_POOL_URI], custom[keys.CONFIG], fn_args.serving_model_dir,
            fn_args.base_model or None)
    if config.orchestration.separate_processes:
        child_process.run("training", train, *args)
        return
    try:
        train(*args)
    finally:
        # The run goes on in this process (index, validation, push): free the models,
        # their graphs and the datasets' reference cycles now rather than keep them to the
        # end of the run.
        tf.keras.backend.clear_session()
        gc.collect()


def train(train_files: Sequence[str], eval_files: Sequence[str], catalog_pattern: str,
          pool_uri: str, config: Mapping[str, Any], serving_dir: str,
          base_model_dir: Optional[str]) -> None:
    """training.train_and_evaluate from plain arguments (they pickle for a child process;
    config as a dict)."""
    training.train_and_evaluate(train_files, eval_files, catalog_pattern, pool_uri,
                                config_lib.from_dict(config), serving_dir,
                                base_model_dir=base_model_dir)
