"""Heatmaps of the validity map (``rep_align.experiments.validity``): where the theory holds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["validity_heatmaps"]

_PANELS = (
    ("r2_h", "mean R² h", False),
    ("r2_y", "mean R² y", False),
    ("r2_w", "mean R² w", False),
    ("eta_h", "log10 fitted η_h", True),
    ("eta_y", "log10 fitted η_y", True),
)


def validity_heatmaps(result: Mapping) -> Figure:
    """One row per gain: mean R² of h, y, w and the fitted rates over width × depth.

    R² panels share a colour scale clipped to [0.5, 1] (values below are drawn at 0.5 and
    printed); a cell is outlined where mean R² w ≥ the bound, and each cell prints its
    value. Empty cells had no converged, fitted seed.

    Arguments:
        result: the validity experiment's result as JSON (``summary.json``'s ``result``,
            or ``files.jsonable`` of a ``ValidityResult``): ``widths``, ``depths``,
            ``seeds``, ``r2_w_bound`` and ``maps``, one per gain with ``gain`` and the
            (width, depth) arrays of ``_PANELS`` (None or NaN for an empty cell).
    """
    widths, depths, maps = result["widths"], result["depths"], result["maps"]
    bound = result["r2_w_bound"]
    fig = Figure(figsize=(3.1 * len(_PANELS), 2.8 * len(maps) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(maps), len(_PANELS), squeeze=False))
    for row, cells in enumerate(maps):
        gain = cells["gain"]
        for col, (key, label, log) in enumerate(_PANELS):
            ax = axes[row, col]
            v = np.asarray(cells[key], float).reshape(len(widths), len(depths))
            shown = np.log10(np.where(v > 0, v, np.nan)) if log else np.clip(v, 0.5, 1.0)
            im = ax.imshow(
                shown.T,
                origin="lower",
                aspect="auto",
                cmap="viridis",
                vmin=None if log else 0.5,
                vmax=None if log else 1.0,
            )
            for i in range(len(widths)):
                for j in range(len(depths)):
                    if np.isfinite(v[i, j]):
                        text = f"{np.log10(v[i, j]):.1f}" if log else f"{v[i, j]:.2f}"
                        ax.text(i, j, text, ha="center", va="center", fontsize=6, color="w")
            if key == "r2_w":
                good = np.nan_to_num(v, nan=-np.inf) >= bound
                for i, j in zip(*np.nonzero(good), strict=True):
                    ax.add_patch(_box(i, j))
            ax.set_xticks(range(len(widths)), [str(w) for w in widths], fontsize=7)
            ax.set_yticks(range(len(depths)), [str(d) for d in depths], fontsize=7)
            if row == len(maps) - 1:
                ax.set_xlabel("width P")
            if col == 0:
                ax.set_ylabel(f"gain {gain:g}\ndepth L")
            ax.set_title(label, fontsize="small")
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(
        f"Where the two-point theory fits: leaky-ReLU MLPs, {result['seeds']} seeds per "
        f"cell, means over converged seeds; outlined: mean R² w ≥ {bound:g}",
        fontsize="medium",
    )
    return fig


def _box(i: int, j: int):
    from matplotlib.patches import Rectangle

    return Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, edgecolor="r", lw=1.5)
