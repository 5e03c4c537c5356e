"""Figure plumbing shared by the leaderboard's and the study's plots.

Every figure draws on its own Agg canvas (no pyplot global state), so figures can be made in any
thread or process and inspected through their matplotlib objects before they are written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["figure", "save", "no_data"]


def figure(nrows: int = 1, ncols: int = 1, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of ``nrows`` × ``ncols`` panels, each ``width`` × ``height``
    inches, on its own Agg canvas; the axes as a 2-D array (``axes[row, col]``)."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.atleast_2d(np.asarray(fig.subplots(nrows, ncols, squeeze=False)))


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def no_data(ax: Axes, message: str) -> None:
    """Say on ``ax`` why it shows nothing, so a partial sweep still plots."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)
