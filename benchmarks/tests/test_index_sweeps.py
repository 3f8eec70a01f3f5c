"""The index bench's FAISS sweeps run to the target (or exhaustive), and its one dependency
outside the core install fails with the install command."""
import builtins

import pytest

from benchmarks import index
from twotower.errors import TwoTowerError


def test_doubling_ends_at_the_exhaustive_value():
    assert index.doubling(1, 1000) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    assert index.doubling(16, 64) == [16, 32, 64]
    assert index.doubling(5, 5) == [5]


def test_missing_faiss_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(TwoTowerError, match=r"make venv.*\[bench\]"):
        index.faiss_module()


def test_scann_sweeps_from_one_leaf_to_all_with_reordering_growing_from_100():
    assert index.scann_sweep(100) == [(1, 100), (2, 100), (4, 100), (8, 100), (16, 100),
                                      (32, 100), (64, 128), (100, 200)]


def _row(dataset, name, recall, qps):
    return {"dataset": dataset, "name": name, "recall_at_10": recall, "qps": qps}


def test_best_table_takes_the_fastest_point_at_each_recall_target():
    rows = [_row("d", "exact", 1.0, 40), _row("d", "scann", 0.93, 9000),
            _row("d", "scann", 0.97, 5000), _row("d", "scann", 0.995, 1000),
            _row("d", "faiss_ivf", 0.96, 6000), _row("d", "faiss_hnsw", 0.5, 20000)]
    assert index.best_table(rows, ["d"]) == {"d": {
        "0.90": {"scann": 9000, "faiss_ivf": 6000, "faiss_hnsw": None},
        "0.95": {"scann": 5000, "faiss_ivf": 6000, "faiss_hnsw": None},
        "0.99": {"scann": 1000, "faiss_ivf": None, "faiss_hnsw": None}}}
    notes = index._notes(rows, ["d"])  # pylint: disable=protected-access
    assert ("Best at recall@10 >= 0.95: scann 5000 q/s (125.0x exact), faiss_ivf 6000 q/s "
            "(150.0x exact), faiss_hnsw did not reach it.") in notes


def test_a_pipeline_without_a_trained_model_names_the_command(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"orchestration:\n  pipeline_root: {tmp_path / 'runs'}\n")
    with pytest.raises(TwoTowerError, match=f"run `twotower run --config {config}` first"):
        index.trained_dataset(str(config), 10)
