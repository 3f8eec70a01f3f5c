"""ScaNN's TensorFlow ops, imported with an install hint when ScaNN is missing.

Importing the module registers the ops, which a SavedModel holding a ScaNN index needs
before it loads (the IndexBuilder and the model server both call `import_scann_ops`).
"""
from __future__ import annotations

from types import ModuleType

from twotower.errors import TwoTowerError


class ScannUnavailableError(TwoTowerError):
    """ScaNN is not installed in this environment."""


def import_scann_ops() -> ModuleType:
    """scann's TF ops module (registers the ops), or an error with the install command."""
    try:
        from scann.scann_ops.py import scann_ops  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ScannUnavailableError("ScaNN is not installed: pip install -c constraints.txt "
                                    "scann==1.3.2 (its TF ops match TensorFlow 2.16)") from e
    return scann_ops
