"""Temperature calibration by hand."""
import numpy as np
import pytest

from components.trainer import temperature


def test_ranges_of_raw_and_cosine():
    queries = np.array([[2.0, 0.0]])
    items = np.array([[3.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    ranges = temperature.dot_product_ranges(queries, items)
    # raw dot products 6, 0, -2; cosines 1, 0, -1.
    assert ranges["raw"]["max"] == 6 and ranges["raw"]["min"] == -2
    assert ranges["cosine"]["max"] == pytest.approx(1) and ranges["cosine"]["min"] == pytest.approx(-1)
    assert ranges["cosine"]["extent"] == pytest.approx(1, abs=1e-2)


@pytest.mark.parametrize("extent, expected", [(1.0, 1 / 14), (0.98, 0.07), (0.5, 0.05),
                                              (5.0, 0.2)])
def test_suggestion_reaches_14_and_is_clipped(extent, expected):
    # 1/14 = 0.0714: cosines up to 1 scaled to 14; tiny or huge extents hit the clip.
    assert temperature.suggest_temperature(extent) == pytest.approx(expected)
