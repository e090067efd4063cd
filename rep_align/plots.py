"""Figures. Each function builds a self-contained matplotlib ``Figure`` (no pyplot state),
so it works under any backend and in scripts, notebooks and tests alike."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_trajectory"]


def plot_trajectory(trajectory, *, layer: int, title: str | None = None) -> Figure:
    """h (of one hidden layer), y, w and the loss of one run against epochs.

    Arguments:
        trajectory: a ``rep_align.training.Trajectory`` of one run (no batch axes).
        layer: hidden layer whose h is shown (index into ``trajectory.h``'s last axis;
            negative counts from the end).
        title: optional figure title.

    Returns:
        A 2×2 ``matplotlib.figure.Figure``; save it with ``fig.savefig(path)``.

    Raises:
        ValueError: for a batched trajectory or a layer out of range.
    """
    t = np.asarray(trajectory.times)
    h = np.asarray(trajectory.h)
    if t.ndim != 1:
        raise ValueError(f"plot_trajectory takes one run; times has shape {t.shape}")
    if not -h.shape[1] <= layer < h.shape[1]:
        raise ValueError(f"layer={layer} out of range for {h.shape[1]} hidden layers")
    dy2 = float(np.asarray(trajectory.dy2))
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    panels = (
        (axes[0, 0], h[:, layer], f"h (layer {layer % h.shape[1]})", None),
        (axes[0, 1], np.asarray(trajectory.y), "y", dy2),
        (axes[1, 0], np.asarray(trajectory.w), "w", 0.0),
    )
    for ax, values, label, target in panels:
        ax.plot(t, values, color="C0")
        if target is not None:
            # Where a perfect fit ends: y = dy2, w = 0 (THEORY.md section 1).
            ax.axhline(target, color="0.6", linestyle="--", linewidth=1)
        ax.set_ylabel(label)
    loss = np.asarray(trajectory.loss)
    ax = axes[1, 1]
    positive = np.isfinite(loss) & (loss > 0)
    if positive.any():
        ax.semilogy(t[positive], loss[positive], color="C3")
    ax.set_ylabel("loss (0.5·mse)")
    for ax in axes[1]:
        ax.set_xlabel("epoch (gradient steps)")
    if bool(np.asarray(trajectory.diverged)):
        fig.text(
            0.5,
            0.5,
            f"diverged at step {int(np.asarray(trajectory.diverged_step))}",
            ha="center",
            color="red",
            fontsize=14,
        )
    if title:
        fig.suptitle(title)
    return fig
