"""Figures of the many-point predictions: XOR heatmaps and comparisons over training
(``rep_align.experiments.xor``), and the heatmap of ``rep-align predict``.

Drawn from the JSON-shaped results (``result`` in the experiment's ``summary.json``), so
they can be redrawn without training again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["distance_heatmap", "xor_heatmaps", "xor_over_training"]

_XOR_LABELS = ("(0,0)", "(0,1)", "(1,0)", "(1,1)")

# (summary key of the matrix, panel title, key of its comparison with the learned matrix)
_PANELS = (
    ("initial", "initial", "initial"),
    ("learned", "learned (last record)", None),
    ("predicted", "predicted √H∞, eq. (6.1)", "predicted"),
    ("rich_limit", "rich limit, √ of eq. (3.3)", "rich"),
)

# colour and line style per comparison (the rich limit dashed: it often lies on the
# prediction)
_STYLES = {"predicted": ("C0", "-"), "initial": ("C1", "-"), "rich": ("C2", "--")}


def _matrix(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _draw(ax, m: np.ndarray, labels: Sequence[str] | None, fig: Figure) -> None:
    im = ax.imshow(m, cmap="viridis", vmin=0.0)
    n = m.shape[0]
    if labels is not None and n <= 12:
        ax.set_xticks(range(n), labels, fontsize=7, rotation=45)
        ax.set_yticks(range(n), labels, fontsize=7)
    if n <= 12:
        top = np.nanmax(m) if np.isfinite(m).any() else 0.0
        for i in range(n):
            for j in range(n):
                if np.isfinite(m[i, j]):
                    color = "k" if m[i, j] > 0.6 * top else "w"
                    ax.text(
                        j, i, f"{m[i, j]:.2g}", ha="center", va="center", fontsize=7, color=color
                    )
    fig.colorbar(im, ax=ax, shrink=0.8)


def _finite_mean(rows: np.ndarray) -> np.ndarray:
    """Mean over rows of the finite entries of each column; NaN where there are none."""
    ok = np.isfinite(rows)
    count = ok.sum(axis=0)
    total = np.where(ok, rows, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _pm(stats: Mapping, key: str) -> str:
    m, s = stats[key]["mean"], stats[key]["std"]
    if m is None:
        return "n/a"
    return f"{m:.3f} ± {s:.3f}" if s is not None else f"{m:.3f}"


def _size_text(config: Mapping) -> str:
    return (
        f"{config['activation']} MLP, P={config['width']}, L={config['depth']}, "
        f"read-out layer {config['layer']}, gain {config['gain']:g}, "
        f"lr {config['lr']:g} (0.5·mse), {config['epochs']} epochs, {config['dtype']}"
    )


def xor_heatmaps(summary: Mapping, name: str, *, seed_index: int = 0) -> Figure:
    """Initial, learned, predicted and rich-limit distance matrices of one XOR preset.

    The matrices are those of one seed (``seed_index`` into the preset's seeds, default the
    first); each comparison panel's title gives the Pearson r with the learned matrix over
    the off-diagonal entries and the slope, mean ± sd over the seeds (sd shown from two).

    Arguments:
        summary: an ``XorResult`` as JSON (``files.jsonable``; ``result`` in the XOR
            ``summary.json``).
        name: the preset.
        seed_index: which seed's matrices to draw.
    """
    regime = summary["regimes"][name]
    row = regime["seeds"][seed_index]
    stats = regime["stats"]
    fig = Figure(figsize=(13.5, 3.6), layout="constrained")
    axes = fig.subplots(1, len(_PANELS))
    for ax, (key, title, cmp) in zip(axes, _PANELS, strict=True):
        _draw(ax, _matrix(row[key]), _XOR_LABELS, fig)
        if cmp is not None:
            title += f"\nr = {_pm(stats, f'r_{cmp}')}, slope {_pm(stats, f'slope_{cmp}')}"
        ax.set_title(title, fontsize="small")
    ratio = summary["eta_ratio"]
    fig.suptitle(
        f"XOR, preset {name}: {_size_text(regime['config'])}; {regime['n_seeds']} seed(s), "
        f"seed {row['seed']} shown, {regime['n_converged']} converged; η_h/η_y = {ratio:.4g}",
        fontsize="small",
    )
    return fig


def xor_over_training(summary: Mapping) -> Figure:
    """Pearson r of the learned distances with the predicted, initial and rich-limit ones at
    every record (mean over seeds, each seed thin), and the training loss, per preset.

    Arguments:
        summary: an ``XorResult`` as JSON (``xor_heatmaps``).
    """
    names = list(summary["regimes"])
    fig = Figure(figsize=(3.6 * len(names), 5.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, len(names), squeeze=False))
    for col, name in enumerate(names):
        regime = summary["regimes"][name]
        curves = regime["curves"]
        t = np.asarray(curves["epochs"], float)
        top, bottom = axes[0, col], axes[1, col]
        for key, (color, ls) in _STYLES.items():
            rs = np.asarray([c[f"r_{key}"] for c in curves["seeds"]], float)
            for r in rs:
                top.plot(t, r, color=color, ls=ls, lw=0.5, alpha=0.4)
            top.plot(t, _finite_mean(rs), color=color, ls=ls, lw=1.8, label=f"r(learned, {key})")
        top.set_ylim(-1.05, 1.05)
        top.set_title(f"{name} ({regime['n_seeds']} seed(s))", fontsize="small")
        loss = np.asarray([c["loss"] for c in curves["seeds"]], float)
        for lv in loss:
            bottom.plot(t, np.where(lv > 0, lv, np.nan), color="k", lw=0.8)
        bottom.set_yscale("log")
        bottom.set_xlabel("epoch")
        if col == 0:
            top.set_ylabel("Pearson r (off-diagonal)")
            bottom.set_ylabel("loss (0.5·mse)")
            top.legend(fontsize="x-small", loc="lower left")
    fig.suptitle(
        "XOR: learned distance matrix at each record against the predictions "
        f"(η_h/η_y = {summary['eta_ratio']:.4g})",
        fontsize="small",
    )
    return fig


def distance_heatmap(matrix, *, title: str, labels: Sequence[str] | None = None) -> Figure:
    """Heatmap of one (n, n) distance matrix (values printed for n ≤ 12).

    Arguments:
        matrix: (n, n) array.
        title: the figure's title.
        labels: optional point names for the axes (n ≤ 12).
    """
    m = _matrix(matrix)
    fig = Figure(figsize=(5.2, 4.4), layout="constrained")
    ax = fig.subplots()
    _draw(ax, m, labels, fig)
    ax.set_xlabel("point")
    ax.set_ylabel("point")
    ax.set_title(title, fontsize="small")
    return fig
