"""Alignment and uniformity by hand."""
import numpy as np
import pytest

from benchmarks import embedding_geometry


def test_uniformity_by_hand():
    # Antipodal unit vectors: squared distance 4 -> log exp(-8) = -8.
    assert embedding_geometry.uniformity(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-8)
    # Three orthogonal vectors (lengths ignored): every squared distance 2 -> -4.
    assert embedding_geometry.uniformity(np.diag([1.0, 3.0, 0.5])) == pytest.approx(-4)
    # One collapsed pair (distance 0) beside two orthogonal pairs: log((1 + 2 e^-4) / 3).
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    assert embedding_geometry.uniformity(vectors) == pytest.approx(
        np.log((1 + 2 * np.exp(-4)) / 3))


def test_uniformity_samples_large_catalogues_reproducibly():
    vectors = np.random.default_rng(3).normal(size=(300, 8))
    first = embedding_geometry.uniformity(vectors, max_items=50, seed=1)
    assert first == embedding_geometry.uniformity(vectors, max_items=50, seed=1)
    assert first != embedding_geometry.uniformity(vectors, max_items=50, seed=2)


def test_alignment_by_hand():
    queries = np.array([[1.0, 0.0], [0.0, 5.0]])
    positives = np.array([[3.0, 0.0], [1.0, 0.0]])
    # Same direction: 0; orthogonal unit vectors: squared distance 2; mean 1.
    assert embedding_geometry.alignment(queries, positives) == pytest.approx(1.0)
