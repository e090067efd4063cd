"""Figures of the reproduction experiments (``rep_align.experiments``).

Each function draws from the JSON-shaped results the experiments write (``summary.json``,
``depth.json``, ``ablations.json``, ``grid.json``) and, for trajectories, the arrays of
``*_records.npz``, so a figure can be redrawn without training again.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from rep_align.plots._panels import draw_hywl, hywl_axes, hywl_labels

__all__ = [
    "ablation_bars",
    "depth_profile",
    "grid_scatter",
    "two_point_overview",
    "two_point_trajectories",
]


def _preset_text(config: Mapping) -> str:
    """``name (arch, activation, P=width, L=depth)`` of a preset's config entry."""
    return (
        f"{config['name']} ({config['arch']}, {config['activation']}, "
        f"P={config['width']}, L={config['depth']})"
    )


def two_point_trajectories(result: Mapping, arrays: Mapping[str, np.ndarray]) -> Figure:
    """Measured (solid) and fitted theory (dashed) h, y, w and loss over epochs, all seeds.

    Arguments:
        result: one preset's entry of the two-point ``summary.json``: ``config`` (with
            name, arch, activation, width, depth, layer), ``mean`` (r2_h, r2_y, r2_w),
            ``n_converged`` and ``n_seeds``.
        arrays: the preset's records (``NAME_records.npz``): ``ts`` (T,) in epochs,
            ``z_obs`` and ``z_fit`` (R, T, 3) measured and fitted (h, y, w), ``loss`` and
            ``theory_loss`` (R, T); other entries (``converged``, ``seeds``) are ignored.

    Returns:
        A 2×2 ``Figure``, one colour per seed.

    Raises:
        KeyError: if an entry named above is missing.
    """
    cfg = result["config"]
    z_obs, z_fit = np.asarray(arrays["z_obs"]), np.asarray(arrays["z_fit"])
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        np.asarray(arrays["ts"]),
        (z_obs[..., 0], z_obs[..., 1], z_obs[..., 2], arrays["loss"]),
        theory=(z_fit[..., 0], z_fit[..., 1], z_fit[..., 2], arrays["theory_loss"]),
        labels=hywl_labels(cfg["layer"]),
    )
    m = result["mean"]
    fig.suptitle(
        f"{_preset_text(cfg)}: solid network, dashed fitted theory — mean R² h "
        f"{m['r2_h']:.3f}, y {m['r2_y']:.3f}, w {m['r2_w']:.3f} "
        f"({result['n_converged']}/{result['n_seeds']} seeds converged)",
        fontsize="medium",
    )
    return fig


def two_point_overview(summary: Mapping) -> Figure:
    """Mean R² of h, y, w per preset (bars; error bars = std over converged seeds).

    Arguments:
        summary: the two-point ``summary.json``: ``presets`` maps names to entries with
            ``mean`` and ``std`` (r2_h, r2_y, r2_w); ``settings.seeds``, if present, goes
            into the title.

    Returns:
        A ``Figure`` with one group of three bars per preset (NaN drawn as 0).
    """
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
    seeds = summary.get("settings", {}).get("seeds")
    ax.set_title(
        "two-point task: fit of the theory per preset, mean ± std over converged seeds"
        + ("" if seeds is None else f" (of {seeds})"),
        fontsize="medium",
    )
    return fig


def grid_scatter(measured, predicted, stats: Mapping, title: str) -> Figure:
    """Measured against predicted converged distance h∞, with the identity line (dashed).

    Arguments:
        measured: final h of each run, shape (n,).
        predicted: the theory's h∞ of each run (eq. (3.2)), shape (n,).
        stats: ``slope`` and ``pearson_r`` of the comparison (``grid.json``'s ``stats``).
        title: first line of the title (e.g. the preset).

    Returns:
        A ``Figure`` with one scatter plot.
    """
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


def depth_profile(result: Mapping) -> Figure:
    """Fitted η_h, η_y and fit quality per hidden layer.

    Arguments:
        result: ``depth.json``: ``config`` (name, arch, activation, width, depth),
            ``layers`` (one entry per hidden layer with eta_h, eta_y, r2_h, r2_y, r2_w,
            fit_loss) and, if present, ``seed``.

    Returns:
        A ``Figure`` with two panels: rates (log scale); R² and the fit loss (right axis).
    """
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
    seed = "" if "seed" not in result else f", seed {result['seed']}"
    fig.suptitle(f"depth profile: {_preset_text(result['config'])}{seed}", fontsize="medium")
    return fig


def ablation_bars(result: Mapping) -> Figure:
    """Mean fit loss of the theory and of each ablation (log scale; error bars = std over
    runs).

    Arguments:
        result: ``ablations.json``: ``config`` (name, arch, activation, width, depth),
            ``variants`` (name to ``mean_fit_loss`` and ``std_fit_loss``) and, if
            present, ``seeds``.

    Returns:
        A ``Figure`` with one bar per variant, the theory's green.
    """
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
    seeds = "" if "seeds" not in result else f", {result['seeds']} seeds"
    ax.set_title(f"theory vs ablations: {_preset_text(result['config'])}{seeds}", fontsize="medium")
    ax.tick_params(axis="x", rotation=20)
    return fig
