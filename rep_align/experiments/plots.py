"""Figures of the reproduction experiments (matplotlib, no display needed)."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure


def save(fig: Figure, path: str) -> str:
    """Save ``fig`` to ``path`` (creating the directory) and return the path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def two_point_trajectories(preset, arrays: dict, result: dict) -> Figure:
    """Measured (solid) vs fitted theory (dashed) h, y, w and loss over epochs, all seeds."""
    ts, z_obs, z_fit = arrays["ts"], arrays["z_obs"], arrays["z_fit"]
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    labels = (f"h = ‖Δh‖² (layer {preset.layer})", "y = ‖Δŷ‖²", "w = Δŷ·(Δŷ − Δy*)")
    for k in range(3):
        ax = axes[k]
        for i in range(z_obs.shape[0]):
            color = f"C{i % 10}"
            ax.plot(ts, z_obs[i, :, k], color=color, lw=1.5)
            ax.plot(ts, z_fit[i, :, k], color=color, lw=1.2, ls="--")
        ax.set_ylabel(labels[k])
    ax = axes[3]
    for i in range(z_obs.shape[0]):
        color = f"C{i % 10}"
        pos = arrays["loss"][i] > 0
        ax.semilogy(ts[pos], arrays["loss"][i][pos], color=color, lw=1.5)
        tl = arrays["theory_loss"][i]
        good = np.isfinite(tl) & (tl > 0)
        if good.any():
            ax.semilogy(ts[good], tl[good], color=color, lw=1.2, ls="--")
    ax.set_ylabel("loss (0.5·mse)")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    m = result["mean"]
    fig.suptitle(
        f"{preset.name} ({preset.arch}, {preset.activation}, P={preset.width}, "
        f"L={preset.depth}): solid network, dashed theory — mean R² h {m['r2_h']:.3f}, "
        f"y {m['r2_y']:.3f}, w {m['r2_w']:.3f} ({result['n_converged']}/{result['n_seeds']} "
        f"converged)",
        fontsize="medium",
    )
    return fig


def two_point_overview(summary: dict) -> Figure:
    """Mean R² of h, y, w per preset (bars; error bars = std over converged seeds)."""
    names = list(summary["presets"])
    fig = Figure(figsize=(max(6, 0.55 * len(names) + 2), 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    for k, key in enumerate(("r2_h", "r2_y", "r2_w")):
        mean = [summary["presets"][n]["mean"][key] for n in names]
        std = [summary["presets"][n]["std"][key] for n in names]
        ax.bar(
            x + (k - 1) * 0.27,
            np.nan_to_num(mean, nan=0.0),
            0.27,
            yerr=std,
            label=key.replace("r2_", "R² "),
            color=f"C{k}",
        )
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylim(min(0.5, ax.get_ylim()[0]), 1.01)
    ax.axhline(1.0, color="0.5", lw=0.5)
    ax.set_ylabel("R² of the fitted theory")
    ax.legend(frameon=False, ncols=3)
    return fig


def grid_scatter(measured, predicted, stats: dict, title: str) -> Figure:
    """Measured vs predicted converged distance h∞ with the identity line."""
    fig = Figure(figsize=(4.8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(predicted, measured, s=16)
    hi = np.nanmax(np.concatenate([measured, predicted])) * 1.05
    ax.plot([0, hi], [0, hi], color="0.5", lw=1, ls="--")
    ax.set_xlabel("theory h∞ (section 3)")
    ax.set_ylabel("measured final h")
    ax.set_title(
        f"{title}\nslope {stats['slope']:.3f}, Pearson r {stats['pearson_r']:.4f}",
        fontsize="medium",
    )
    return fig


def depth_profile(result: dict) -> Figure:
    """Fitted η_h, η_y and fit quality per hidden layer."""
    layers = np.arange(len(result["layers"]))
    rows = result["layers"]
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    a.semilogy(layers, [r["eta_h"] for r in rows], "o-", label="η_h")
    a.semilogy(layers, [r["eta_y"] for r in rows], "s-", label="η_y")
    a.set_xlabel("hidden layer")
    a.set_ylabel("fitted rate per step")
    a.legend(frameon=False)
    for key, mark in (("r2_h", "o-"), ("r2_y", "s-"), ("r2_w", "^-")):
        b.plot(layers, [r[key] for r in rows], mark, label=key.replace("r2_", "R² "))
    b.set_xlabel("hidden layer")
    b.set_ylabel("R²")
    b2 = b.twinx()
    b2.semilogy(layers, [r["fit_loss"] for r in rows], "k:", label="fit loss")
    b2.set_ylabel("fit loss")
    b.legend(frameon=False, loc="lower right")
    fig.suptitle(f"depth profile: {result['config']['name']}", fontsize="medium")
    return fig


def ablation_bars(result: dict) -> Figure:
    """Mean fit loss per variant (log scale; error bars = std over runs)."""
    names = list(result["variants"])
    mean = [result["variants"][n]["mean_fit_loss"] for n in names]
    std = [result["variants"][n]["std_fit_loss"] for n in names]
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.bar(
        names,
        np.nan_to_num(mean, nan=0.0),
        yerr=std,
        color=["C2" if n == "theory" else "C7" for n in names],
    )
    ax.set_yscale("log")
    ax.set_ylabel("fit loss (mean over runs)")
    ax.set_title(f"theory vs ablations: {result['config']['name']}", fontsize="medium")
    ax.tick_params(axis="x", rotation=20)
    return fig
