"""Figures of the context-blobs experiment (``rep_align.experiments.blobs``), drawn from its
result as stored: the ``result`` of its ``summary.json`` and its ``arrays.npz`` (the MDS
coordinates and the points' labels)."""

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


def _num(value) -> float:
    """A JSON number (None for a non-finite one) as a float."""
    return float("nan") if value is None else float(value)


def _runs_text(regimes: Mapping) -> str:
    """ "2 seeds (0, 1)", and ", quick epochs" when a regime ran shorter than its preset."""
    first = next(iter(regimes.values()))
    seeds = [s["seed"] for s in first["seeds"]]
    short = any(r["config"]["epochs"] < r["config"]["preset_epochs"] for r in regimes.values())
    text = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
    return text + (", quick epochs" if short else "")


def mds_figure(result: Mapping, arrays: Mapping[str, np.ndarray], activation: str) -> Figure:
    """3-D MDS of the final layer-2 representation, one row per regime, coloured by
    context, μx and μy (columns).

    Arguments:
        result: the blobs result as JSON (``summary.json``'s ``result``: ``regimes``).
        arrays: its arrays (``arrays.npz``): ``labels.context``, ``labels.mu_x``,
            ``labels.mu_y`` (n,) and ``regimes.<activation>.<regime>.coords.final`` (n, 3).
        activation: which activation's regimes to draw.

    Returns:
        A ``Figure`` with len(regimes) × 3 three-dimensional scatter panels.

    Raises:
        KeyError: for an activation or array that is missing.
    """
    regimes = result["regimes"][activation]
    names = list(regimes)
    fig = Figure(figsize=(12, 3.8 * len(names)), layout="constrained")
    for i, name in enumerate(names):
        res = regimes[name]
        xyz = np.asarray(arrays[f"regimes.{activation}.{name}.coords.final"])
        cfg = res["config"]
        seed = res["mds"]["seed"]
        final = next(s for s in res["seeds"] if s["seed"] == seed)["final"]
        for j, (key, label, cmap) in enumerate(_COLOURINGS):
            ax = fig.add_subplot(len(names), 3, 3 * i + j + 1, projection="3d")
            sc = ax.scatter(
                xyz[:, 0],
                xyz[:, 1],
                xyz[:, 2],
                c=np.asarray(arrays[f"labels.{key}"]),
                s=3,
                cmap=cmap,
            )
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticklabels([])
            if j == 0:
                ax.set_title(
                    f"{name} (gain {cfg['gain']}, lr {cfg['lr']}, {cfg['epochs']} epochs)\n"
                    f"seed {seed}: r(hidden, input) {_num(final['r_input']):.3f}, "
                    f"ratio {_num(final['ratio']):.2f}",
                    fontsize="small",
                )
            else:
                ax.set_title(f"coloured by {label}", fontsize="small")
            fig.colorbar(sc, ax=ax, shrink=0.6, label=label)
    first = regimes[names[0]]
    cfg = first["config"]
    fig.suptitle(
        f"context blobs, {activation}: classical MDS of layer {cfg['layer']} after training "
        f"(MLP {cfg['depth']}×{cfg['width']}, 1800 points; seed {first['mds']['seed']} of "
        f"{_runs_text(regimes)})",
        fontsize="medium",
    )
    return fig


def metrics_figure(result: Mapping) -> Figure:
    """r(hidden, input distances), the between/within-context ratio and the loss over
    training, every regime, activation and seed (x axis: fraction of the regime's epochs).

    Arguments:
        result: the blobs result as JSON (``summary.json``'s ``result``).

    Returns:
        A ``Figure`` with three panels: r_input, ratio (log scale) and the loss (log).
    """
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for act, regimes in result["regimes"].items():
        for k, (name, res) in enumerate(regimes.items()):
            ep = np.asarray(res["epochs"], float)
            frac = ep / ep[-1]
            for i, key in enumerate(("r_input", "ratio", "loss")):
                for n, curve in enumerate(res["curves"][key]):
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
    axes[1].axhline(_num(result["input"]["ratio"]), color="k", ls=":", lw=1, label="input")
    axes[2].set_ylabel("loss (0.5·mse)")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("fraction of the regime's epochs")
    axes[1].legend(frameon=False, fontsize="x-small")
    first = next(iter(result["regimes"].values()))
    layer = next(iter(first.values()))["config"]["layer"]
    fig.suptitle(
        f"context blobs over training (layer {layer}, {_runs_text(first)}; "
        "solid leaky ReLU, dashed tanh)",
        fontsize="medium",
    )
    return fig
