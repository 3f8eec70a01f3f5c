"""ScaNN settings derived from the catalogue size (docs/architecture.md), overridable in `index.*`.

* Below `brute_force_below` items: exact float32 brute force inside ScaNN (an index does not
  pay for itself).
* Above it: a partitioning tree with num_leaves ≈ √n (ScaNN's own guidance), searching
  about 1/20 of the leaves (at least 5, at most all); asymmetric hashing with 2
  dimensions per block and the anisotropic quantization threshold set (TFRS leaves it at
  NaN, i.e. off, which scores dot products worse); then exact reordering of the top
  candidates (max(4·k, 100), at most n).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from twotower.config import IndexConfig
from twotower.errors import TwoTowerError
from twotower.scann_ops import import_scann_ops

DIMENSIONS_PER_BLOCK = 2
LEAF_SEARCH_FRACTION = 20
MIN_LEAVES_TO_SEARCH = 5


@dataclasses.dataclass(frozen=True)
class ScannSettings:
    """The searcher's configuration (brute force when num_leaves is None)."""

    k: int
    num_leaves: Optional[int]
    num_leaves_to_search: Optional[int]
    anisotropic_quantization_threshold: float
    reorder: Optional[int]

    @property
    def brute_force(self) -> bool:
        return self.num_leaves is None


def derive(catalog_size: int, config: IndexConfig) -> ScannSettings:
    """Settings for a catalogue of `catalog_size` items; set config fields win.

    Raises:
      TwoTowerError: if the catalogue is empty or overrides do not fit the catalogue.
    """
    if catalog_size < 1:
        raise TwoTowerError("the catalogue has no embeddings; nothing to index")
    k = min(config.k, catalog_size)
    if catalog_size < config.brute_force_below and config.num_leaves is None:
        return ScannSettings(k, None, None, config.anisotropic_quantization_threshold, None)
    leaves = config.num_leaves or max(2, int(round(math.sqrt(catalog_size))))
    if leaves > catalog_size:
        raise TwoTowerError(f"index.num_leaves={leaves} exceeds the catalogue size "
                            f"{catalog_size}; lower it or leave it null")
    to_search = config.num_leaves_to_search or min(
        leaves, max(MIN_LEAVES_TO_SEARCH, leaves // LEAF_SEARCH_FRACTION))
    if to_search > leaves:
        raise TwoTowerError(f"index.num_leaves_to_search={to_search} exceeds num_leaves "
                            f"{leaves}")
    reorder = min(catalog_size, config.reorder or max(4 * k, 100))
    return ScannSettings(k, leaves, to_search, config.anisotropic_quantization_threshold,
                         max(reorder, k))


def build_searcher(embeddings: np.ndarray, settings: ScannSettings, training_threads: int = 0):
    """Builds a ScaNN TF searcher (dot product) over [N, D] embeddings."""
    scann_ops = import_scann_ops()
    builder = scann_ops.builder(embeddings.astype(np.float32), settings.k, "dot_product")
    if settings.brute_force:
        builder = builder.score_brute_force()
    else:
        builder = builder.tree(num_leaves=settings.num_leaves,
                               num_leaves_to_search=settings.num_leaves_to_search,
                               training_sample_size=min(len(embeddings), 250_000))
        builder = builder.score_ah(
            DIMENSIONS_PER_BLOCK,
            anisotropic_quantization_threshold=settings.anisotropic_quantization_threshold)
        builder = builder.reorder(settings.reorder)
    if training_threads:
        builder = builder.set_n_training_threads(training_threads)
    return builder.build()
