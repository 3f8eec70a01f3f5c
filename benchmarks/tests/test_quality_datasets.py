"""Every dataset `bench quality --dataset` offers has a contract and config that load and
agree, and its data command is the one its load error names."""
import pathlib

import pytest

from benchmarks import quality_datasets, quality_rows
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower.errors import TwoTowerError


@pytest.mark.parametrize("name", sorted(quality_datasets.DATASETS))
def test_each_dataset_has_a_contract_config_and_rows(name):
    dataset = quality_datasets.DATASETS[name]
    contract = contract_lib.load(str(config_lib.SCHEMAS_ROOT / dataset.schema_dir))
    assert contract.user_id and contract.item_id and contract.event_time
    config = config_lib.load(dataset.base_config())
    if dataset.config:
        assert pathlib.Path(config.data.schema_dir).name == dataset.schema_dir
        assert config.data.interactions.startswith(dataset.data_dir + "/")
    if dataset.repeat_purchases:
        assert contract.history is not None  # the served repeat term needs the history
    assert name in quality_rows.DATASET_ROWS


def test_missing_tables_name_the_data_command(tmp_path):
    dataset = quality_datasets.DATASETS["instacart"]
    with pytest.raises(TwoTowerError, match="twotower data instacart --out"):
        quality_datasets.load_tables(tmp_path, None, dataset.command)
