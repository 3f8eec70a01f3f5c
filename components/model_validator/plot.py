"""validation.png: the candidate's and the baseline's metrics side by side."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence


def comparison_chart(candidate: Mapping[str, float], baseline: Optional[Mapping[str, float]],
                     keys: Sequence[str], gated: str, path: str) -> None:
    """Grouped bars per metric; the gated metric's label is marked with an asterisk."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    figure, axis = pyplot.subplots(figsize=(1.4 * len(keys) + 2, 3.5))
    positions = range(len(keys))
    width = 0.38
    axis.bar([p - width / 2 for p in positions], [candidate[k] for k in keys], width,
             label="candidate", color="tab:blue")
    if baseline is not None:
        axis.bar([p + width / 2 for p in positions], [baseline[k] for k in keys], width,
                 label="latest blessed", color="tab:gray")
    axis.set_xticks(list(positions))
    axis.set_xticklabels([f"{k}*" if k == gated else k for k in keys], rotation=20,
                         ha="right", fontsize=8)
    axis.set_title("candidate vs latest blessed model (* gated)", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
