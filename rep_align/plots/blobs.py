"""Figures of the context-blobs experiment (``rep_align.experiments.blobs``), drawn from its
``summary.json`` and the MDS coordinates of ``blobs_mds.npz``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["mds_figure", "metrics_figure"]

_COLOURINGS = (
    ("context", "context", "coolwarm"),
    ("mu_x", "blob μx", "viridis"),
    ("mu_y", "blob μy", "viridis"),
)
_ACT_STYLE = {"leaky_relu": "-", "tanh": "--"}


def _seeds_text(seeds) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def mds_figure(summary: Mapping, arrays: Mapping[str, np.ndarray], activation: str) -> Figure:
    """3-D MDS of the final layer-2 representation, one row per regime, coloured by
    context, μx and μy (columns).

    Arguments:
        summary: the blobs ``summary.json`` (``settings``, ``regimes``).
        arrays: ``context``, ``mu_x``, ``mu_y`` (n,) and ``{activation}__{regime}__coords``
            (n, 3) per regime (``blobs_mds.npz``).
        activation: which activation's regimes to draw.

    Returns:
        A ``Figure`` with len(regimes) × 3 three-dimensional scatter panels.

    Raises:
        KeyError: for an activation or array that is missing.
    """
    regimes = summary["regimes"][activation]
    names = list(regimes)
    fig = Figure(figsize=(12, 3.8 * len(names)), layout="constrained")
    for i, name in enumerate(names):
        res = regimes[name]
        xyz = np.asarray(arrays[f"{activation}__{name}__coords"])
        cfg = res["config"]
        seed = res["mds"]["seed"]
        row = next(s for s in res["seeds"] if s["seed"] == seed)
        for j, (key, label, cmap) in enumerate(_COLOURINGS):
            ax = fig.add_subplot(len(names), 3, 3 * i + j + 1, projection="3d")
            sc = ax.scatter(
                xyz[:, 0], xyz[:, 1], xyz[:, 2], c=np.asarray(arrays[key]), s=3, cmap=cmap
            )
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticklabels([])
            if j == 0:
                ax.set_title(
                    f"{name} (gain {cfg['gain']}, lr {cfg['lr']}, {cfg['epochs']} epochs)\n"
                    f"seed {seed}: r(hidden, input) {row['r_input']:.3f}, "
                    f"ratio {row['ratio']:.2f}",
                    fontsize="small",
                )
            else:
                ax.set_title(f"coloured by {label}", fontsize="small")
            fig.colorbar(sc, ax=ax, shrink=0.6, label=label)
    s = summary["settings"]
    cfg = regimes[names[0]]["config"]
    fig.suptitle(
        f"context blobs, {activation}: classical MDS of layer {cfg['layer']} after training "
        f"(MLP {cfg['depth']}×{cfg['width']}, 1800 points; seed {regimes[names[0]]['mds']['seed']}"
        f" of {_seeds_text(s['seeds'])}{', quick' if s['quick'] else ''})",
        fontsize="medium",
    )
    return fig


def metrics_figure(summary: Mapping) -> Figure:
    """r(hidden, input distances) and the between/within-context ratio over training, every
    regime, activation and seed (x axis: fraction of the regime's epochs).

    Arguments:
        summary: the blobs ``summary.json``.

    Returns:
        A ``Figure`` with three panels: r_input, ratio (log scale) and the loss (log).
    """
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    s = summary["settings"]
    for act, regimes in summary["regimes"].items():
        for k, (name, res) in enumerate(regimes.items()):
            ep = np.asarray(res["epochs"], float)
            frac = ep / ep[-1]
            for i, key in enumerate(("r_input", "ratio", "loss")):
                for n, curve in enumerate(res["over_training"][key]):
                    axes[i].plot(
                        frac,
                        np.asarray(curve, float),
                        color=f"C{k}",
                        ls=_ACT_STYLE.get(act, ":"),
                        marker="o",
                        ms=3,
                        alpha=0.8,
                        label=f"{name}, {act}" if n == 0 else None,
                    )
    axes[0].set_ylabel("Pearson r, hidden vs input distances")
    axes[1].set_ylabel("between / within-context mean distance")
    axes[1].set_yscale("log")
    axes[1].axhline(1.0, color="0.6", ls=":", lw=1)
    axes[1].axhline(summary["input"]["ratio"], color="k", ls=":", lw=1, label="input")
    axes[2].set_ylabel("loss (0.5·mse)")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("fraction of the regime's epochs")
    axes[1].legend(frameon=False, fontsize="x-small")
    fig.suptitle(
        f"context blobs over training (layer {s['layer']}, {_seeds_text(s['seeds'])}"
        f"{', quick' if s['quick'] else ''}; solid leaky ReLU, dashed tanh)",
        fontsize="medium",
    )
    return fig
