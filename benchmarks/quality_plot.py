"""The bar chart of reports/quality.png: one panel per protocol's headline metric."""
from __future__ import annotations

import pathlib
from typing import Any, Sequence

PANELS = (("tfrs_top_100", "TFRS protocol: top-100 hit rate"),
          ("temporal_recall_at_100", "temporal: filtered recall@100"),
          ("recbole_recall_at_10", "RecBole protocol: recall@10"))
REFERENCE_ROWS = ("baseline", "mostpop")


def bar_chart(rows: Sequence[dict[str, Any]], path: pathlib.Path) -> None:
    """Writes a PNG with one horizontal bar panel per metric present in the rows."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    panels = [(key, title) for key, title in PANELS if any(key in row for row in rows)]
    if not panels:
        return
    figure, axes = pyplot.subplots(1, len(panels), figsize=(5 * len(panels), 0.4 * len(rows) + 1.5),
                                   squeeze=False)
    for axis, (key, title) in zip(axes[0], panels):
        named = [row for row in rows if key in row]
        values = [row[key] for row in named]
        colours = ["tab:gray" if row["name"] in REFERENCE_ROWS else "tab:blue" for row in named]
        axis.barh([row["name"] for row in named], values, color=colours)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=10)
        for position, value in enumerate(values):
            axis.text(value, position, f" {value:.3f}", va="center", fontsize=8)
        axis.set_xlim(0, max(values) * 1.25 if values else 1)
    figure.suptitle("MovieLens-100K retrieval quality (grey: reference rows)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
