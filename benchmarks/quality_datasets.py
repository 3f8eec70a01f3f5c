"""The datasets `twotower bench quality --dataset` runs on: where their tables and contract
are, which protocols apply, and the config under every row."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Optional

import pandas as pd

from benchmarks import protocols
from twotower import config as config_lib
from twotower.errors import TwoTowerError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset the bench runs on: its data folder, contract and protocols."""

    data_dir: str
    schema_dir: str
    command: str
    protocols: tuple[str, ...]
    repeat_purchases: bool = False  # history protocol: rank every item, exclude nothing
    config: Optional[str] = None  # the dataset's own settings (configs/), under every row

    def base_config(self) -> Optional[str]:
        """The config file every row's overrides apply to (None: the defaults)."""
        return str(config_lib.SCHEMAS_ROOT.parent / self.config) if self.config else None


# Repeat purchases: only the time split means something (a random split puts the same
# basket in train and eval); the unfiltered temporal metrics (every item ranked, as served)
# are reported beside the filtered ones.
REPEAT_PROTOCOLS = ("temporal", "history")
DATASETS = {
    "movielens": Dataset("data/movielens", "movielens", "twotower data movielens",
                         protocols.PROTOCOLS),
    "completejourney": Dataset("data/completejourney", "completejourney",
                               "twotower data completejourney --sample 500", REPEAT_PROTOCOLS,
                               repeat_purchases=True, config="configs/completejourney.yaml"),
    # Held back: its contract is `twotower schema init --history 500` output as written and
    # its config `twotower tune`'s, nothing chosen by hand (docs/benchmarks.md).
    "instacart": Dataset("data/instacart", "instacart", "twotower data instacart",
                         REPEAT_PROTOCOLS, repeat_purchases=True,
                         config="configs/instacart.yaml"),
}


def load_tables(data_dir: pathlib.Path, contract: Any, command: str
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The interactions and items tables of a data folder, typed as the contract says."""
    paths = [data_dir / "interactions.csv", data_dir / "items.csv"]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise TwoTowerError(f"{missing[0]} not found: run `{command} --out {data_dir}` first")
    from benchmarks import example_files  # pylint: disable=import-outside-toplevel (imports TF)
    return tuple(example_files.typed_frame(pd.read_csv(path, dtype=str, keep_default_na=False),
                                           contract) for path in paths)
