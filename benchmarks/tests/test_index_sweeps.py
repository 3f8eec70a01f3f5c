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
