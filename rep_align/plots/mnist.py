"""Figures of the MNIST experiments (``rep_align.experiments.mnist``), drawn from its
``summary.json`` and ``mnist_arrays.npz``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from rep_align.plots._panels import draw_hywl, hywl_axes, hywl_labels

__all__ = ["pair_trajectories", "structure_heatmaps", "structure_over_training"]


def _seeds_text(settings: Mapping) -> str:
    seeds = settings["seeds"]
    quick = ", quick: not comparable with full size" if settings.get("quick") else ""
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}{quick}"


def _class_lines(ax, labels: np.ndarray) -> None:
    edges = np.flatnonzero(np.diff(labels)) + 0.5
    for e in edges:
        ax.axhline(e, color="w", lw=0.5)
        ax.axvline(e, color="w", lw=0.5)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1])
    ends = np.concatenate([starts[1:], [labels.size]])
    mids = (starts + ends - 1) / 2
    ax.set_xticks(mids, [str(int(labels[s])) for s in starts], fontsize="x-small")
    ax.set_yticks(mids, [str(int(labels[s])) for s in starts], fontsize="x-small")


def structure_heatmaps(summary: Mapping, arrays: Mapping[str, np.ndarray]) -> Figure:
    """The heuristic E·A·E and the learned squared distances (seed mean), side by side.

    Arguments:
        summary: the MNIST ``summary.json`` (``settings``, ``structure``).
        arrays: ``predicted``, ``learned`` (k, k) and ``labels`` (k,) (the structure
            arrays of ``mnist_arrays.npz``, without their ``structure_`` prefix).

    Returns:
        A ``Figure`` with two heatmaps, class blocks outlined.
    """
    st = summary["structure"]
    cfg, c = st["config"], st["correlations"]
    labels = np.asarray(arrays["labels"])
    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (
        (arrays["predicted"], f"heuristic E·A·E (eq. 6.2), N = {st['heuristic']['n']}"),
        (
            arrays["learned"],
            f"learned ‖Δh‖², layer {cfg['layer']}, mean of {cfg['seeds_in_mean']} seeds",
        ),
    )
    for ax, (mat, title) in zip(axes, panels, strict=True):
        im = ax.imshow(np.asarray(mat, float), cmap="viridis", interpolation="nearest")
        ax.set_title(title, fontsize="small")
        _class_lines(ax, labels)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(
        f"MNIST structure ({cfg['source']}, {cfg['analysed']} analysed images by label; "
        f"MLP {cfg['depth']}×{cfg['width']}, {cfg['optimizer']} lr {cfg['lr']}, "
        f"{cfg['epochs']} epochs; {_seeds_text(summary['settings'])}): Pearson r "
        f"{c['r_all']:.3f} all pairs, {c['r_different_classes']:.3f} different classes",
        fontsize="medium",
    )
    return fig


def structure_over_training(summary: Mapping) -> Figure:
    """Pearson r (seed mean matrix and every seed), training accuracy and loss per record.

    Arguments:
        summary: the MNIST ``summary.json``.

    Returns:
        A ``Figure`` with three panels sharing the epoch axis.
    """
    st = summary["structure"]
    ot = st["over_training"]
    ep = np.asarray(ot["epochs"], float)
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    axes[0].plot(ep, ot["r_all"], color="k", lw=2, label="mean matrix, all pairs")
    axes[0].plot(
        ep, ot["r_different_classes"], color="k", lw=2, ls="--", label="mean, different classes"
    )
    for i, seed_row in enumerate(st["seeds"]):
        col = f"C{i % 10}"
        axes[0].plot(ep, ot["seed_r_all"][i], color=col, lw=1, alpha=0.7)
        axes[0].plot(ep, ot["seed_r_different_classes"][i], color=col, lw=1, ls="--", alpha=0.7)
        axes[1].plot(ep, ot["accuracy"][i], color=col, label=f"seed {seed_row['seed']}")
        loss = np.asarray(ot["loss"][i], float)
        axes[2].plot(ep, np.where(loss > 0, loss, np.nan), color=col)
    axes[0].set_ylabel("Pearson r, heuristic vs learned")
    axes[0].legend(frameon=False, fontsize="x-small")
    axes[1].set_ylabel("training accuracy")
    axes[1].legend(frameon=False, fontsize="x-small")
    axes[2].set_ylabel("training loss (0.5·mse)")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
    cfg = st["config"]
    fig.suptitle(
        f"MNIST structure over training ({cfg['optimizer']} lr {cfg['lr']}, record every "
        f"{cfg['record_every']} epochs; {_seeds_text(summary['settings'])})",
        fontsize="medium",
    )
    return fig


def pair_trajectories(summary: Mapping, arrays: Mapping[str, np.ndarray]) -> Figure:
    """h, y, w of the 0/1 pair (solid) and the fitted theory (dashed), every seed.

    Arguments:
        summary: the MNIST ``summary.json`` (``trajectories``).
        arrays: ``ts`` (T,), ``z_obs`` and ``z_fit`` (R, T, 3) (the trajectory arrays of
            ``mnist_arrays.npz``, without their ``trajectories_`` prefix).

    Returns:
        A 2×2 ``Figure`` (the loss panel is hidden: the pair's loss is not recorded).
    """
    tr = summary["trajectories"]
    cfg, m = tr["config"], tr["mean"]
    z_obs, z_fit = np.asarray(arrays["z_obs"]), np.asarray(arrays["z_fit"])
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        np.asarray(arrays["ts"]),
        (z_obs[..., 0], z_obs[..., 1], z_obs[..., 2], None),
        theory=(z_fit[..., 0], z_fit[..., 1], z_fit[..., 2], None),
        labels=hywl_labels(cfg["layer"]),
        references=(None, (cfg["dy2"], "y = dy²"), (0.0, "w = 0"), None),
        xlabel="epoch",
    )
    fig.suptitle(
        f"MNIST pair (images {cfg['pair'][0]} and {cfg['pair'][1]}, digits "
        f"{cfg['pair_labels'][0]}/{cfg['pair_labels'][1]}), {cfg['optimizer']} lr {cfg['lr']}, "
        f"{cfg['epochs']} epochs, {_seeds_text(summary['settings'])}: mean R² h "
        f"{m['r2_h']:.3f}, y {m['r2_y']:.3f}, w {m['r2_w']:.3f}",
        fontsize="medium",
    )
    return fig
