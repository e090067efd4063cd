"""Figures of the MNIST experiments (``rep_align.experiments.mnist``), drawn from the
result as the driver writes it: ``result`` is ``summary.json``'s ``"result"`` (the
``MnistResult`` as JSON) and ``arrays`` the content of ``arrays.npz`` (keys such as
``"structure.predicted"``), so the figures can be redrawn from the files."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from rep_align.plots._panels import draw_hywl, hywl_axes, hywl_labels

__all__ = ["pair_trajectories", "structure_heatmaps", "structure_over_training"]


def _num(v) -> np.ndarray:
    """A JSON number or list of numbers as floats (null, JSON's NaN, as NaN)."""
    return np.asarray(v, float)


def _seeds_text(result: Mapping) -> str:
    seeds = result["seeds"]
    quick = (
        "" if result.get("comparable_with_full", True) else ", quick: not comparable with full size"
    )
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


def structure_heatmaps(result: Mapping, arrays: Mapping[str, np.ndarray]) -> Figure:
    """The heuristic E·A·E and the learned squared distances (seed mean), side by side.

    Arguments:
        result: the MNIST result as JSON (``seeds``, ``comparable_with_full``,
            ``structure``).
        arrays: ``structure.predicted``, ``structure.learned`` (k, k) and
            ``structure.labels`` (k,).

    Returns:
        A ``Figure`` with two heatmaps, class blocks outlined.
    """
    st = result["structure"]
    cfg = st["config"]
    c = {k: _num(v) for k, v in st["correlations"].items()}
    labels = np.asarray(arrays["structure.labels"])
    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (
        (arrays["structure.predicted"], f"heuristic E·A·E (eq. 6.2), N = {st['heuristic']['n']}"),
        (
            arrays["structure.learned"],
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
        f"{cfg['epochs']} epochs; {_seeds_text(result)}): Pearson r "
        f"{c['r_all']:.3f} all pairs, {c['r_different_classes']:.3f} different classes",
        fontsize="medium",
    )
    return fig


def structure_over_training(result: Mapping) -> Figure:
    """Pearson r (seed mean matrix and every seed), training accuracy and loss per record.

    Arguments:
        result: the MNIST result as JSON (``seeds``, ``comparable_with_full``,
            ``structure``).

    Returns:
        A ``Figure`` with three panels sharing the epoch axis.
    """
    st = result["structure"]
    ot = st["over_training"]
    ep = np.asarray(ot["epochs"], float)
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    axes[0].plot(ep, _num(ot["r_all"]), color="k", lw=2, label="mean matrix, all pairs")
    axes[0].plot(
        ep,
        _num(ot["r_different_classes"]),
        color="k",
        lw=2,
        ls="--",
        label="mean, different classes",
    )
    for i, seed_row in enumerate(st["seeds"]):
        col = f"C{i % 10}"
        axes[0].plot(ep, _num(ot["seed_r_all"][i]), color=col, lw=1, alpha=0.7)
        axes[0].plot(
            ep, _num(ot["seed_r_different_classes"][i]), color=col, lw=1, ls="--", alpha=0.7
        )
        axes[1].plot(ep, _num(ot["accuracy"][i]), color=col, label=f"seed {seed_row['seed']}")
        loss = _num(ot["loss"][i])
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
        f"{cfg['record_every']} epochs; {_seeds_text(result)})",
        fontsize="medium",
    )
    return fig


def pair_trajectories(result: Mapping, arrays: Mapping[str, np.ndarray]) -> Figure:
    """h, y, w of the 0/1 pair (solid) and the fitted theory (dashed), every seed.

    Arguments:
        result: the MNIST result as JSON (``seeds``, ``comparable_with_full``,
            ``trajectories``).
        arrays: ``trajectories.ts`` (T,), ``trajectories.z_obs`` and
            ``trajectories.z_fit`` (R, T, 3).

    Returns:
        A 2×2 ``Figure`` (the loss panel is hidden: the pair's loss is not recorded).
    """
    tr = result["trajectories"]
    cfg, m = tr["config"], {k: _num(v["mean"]) for k, v in tr["over_seeds"].items()}
    z_obs = np.asarray(arrays["trajectories.z_obs"])
    z_fit = np.asarray(arrays["trajectories.z_fit"])
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        np.asarray(arrays["trajectories.ts"]),
        (z_obs[..., 0], z_obs[..., 1], z_obs[..., 2], None),
        theory=(z_fit[..., 0], z_fit[..., 1], z_fit[..., 2], None),
        labels=hywl_labels(cfg["layer"]),
        references=(None, (cfg["dy2"], "y = dy²"), (0.0, "w = 0"), None),
        xlabel="epoch",
    )
    fig.suptitle(
        f"MNIST pair (images {cfg['pair'][0]} and {cfg['pair'][1]}, digits "
        f"{cfg['pair_labels'][0]}/{cfg['pair_labels'][1]}), {cfg['optimizer']} lr {cfg['lr']}, "
        f"{cfg['epochs']} epochs, {_seeds_text(result)}: mean R² h "
        f"{m['r2_h']:.3f}, y {m['r2_y']:.3f}, w {m['r2_w']:.3f}",
        fontsize="medium",
    )
    return fig
