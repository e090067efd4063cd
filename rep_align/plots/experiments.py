"""Figures of the reproduction experiments (``rep_align.experiments``).

Each function draws from the JSON-shaped results the experiments write (the ``result`` of
each experiment's ``summary.json``: two_points, grid, depth, ablations) and, for
trajectories, the arrays of its ``arrays.npz``, so a figure can be redrawn without training
again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from rep_align.plots._panels import draw_hywl, hywl_axes, hywl_labels, line_legend

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


def _seeds_text(seeds: Sequence[int]) -> str:
    """``seed 3`` or ``seeds 0, 1, 2`` (``0–9`` for a long consecutive run)."""
    seeds = [int(s) for s in seeds]
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 4 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(str(s) for s in seeds)


def _count(n: int, what: str = "seed") -> str:
    """``1 seed``, ``5 seeds``."""
    return f"{n} {what}" + ("" if int(n) == 1 else "s")


def two_point_trajectories(result: Mapping, arrays: Mapping[str, np.ndarray]) -> Figure:
    """Measured (solid) and fitted theory (dashed) h, y, w and loss over epochs, all seeds.

    The title names the preset, its sizes, read-out layer and seeds; a legend below the
    panels says what solid and dashed lines are and which colour is which seed.

    Arguments:
        result: one preset's entry of the two-point result (``presets.NAME``):
            ``config`` (with name, arch, activation, width, depth, layer; ``precision`` if
            present), ``mean`` (r2_h, r2_y, r2_w), ``n_converged``, ``n_seeds`` and, if
            present, ``seeds`` (one entry per seed with its ``seed``).
        arrays: the preset's records (``presets.NAME.arrays.*`` of ``arrays.npz``): ``ts``
            (T,) in epochs, ``z_obs`` and ``z_fit`` (R, T, 3) measured and fitted (h, y,
            w), ``loss`` and ``theory_loss`` (R, T); ``seeds`` (R,), if present, labels the
            runs where ``result`` has no ``seeds``; other entries (``converged``) are ignored.

    Returns:
        A 2×2 ``Figure``, one colour per seed.

    Raises:
        KeyError: if an entry named above is missing.
    """
    cfg = result["config"]
    z_obs, z_fit = np.asarray(arrays["z_obs"]), np.asarray(arrays["z_fit"])
    if "seeds" in result:
        seeds = [row["seed"] for row in result["seeds"]]
    elif "seeds" in arrays:
        seeds = [int(s) for s in np.asarray(arrays["seeds"])]
    else:
        seeds = list(range(z_obs.shape[0]))
    fig = Figure(figsize=(10, 7), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        np.asarray(arrays["ts"]),
        (z_obs[..., 0], z_obs[..., 1], z_obs[..., 2], arrays["loss"]),
        theory=(z_fit[..., 0], z_fit[..., 1], z_fit[..., 2], arrays["theory_loss"]),
        labels=hywl_labels(cfg["layer"]),
    )
    line_legend(fig, [f"seed {s}" for s in seeds], solid="network", dashed="fitted theory")
    m = result["mean"]
    precision = f", {cfg['precision']}" if "precision" in cfg else ""
    fig.suptitle(
        f"two-point task, {_preset_text(cfg)}, h of layer {cfg['layer']}, {_seeds_text(seeds)}"
        f"{precision}\nsolid: network, dashed: fitted theory — mean R² h {m['r2_h']:.3f}, "
        f"y {m['r2_y']:.3f}, w {m['r2_w']:.3f} over the "
        f"{result['n_converged']}/{result['n_seeds']} converged seeds",
        fontsize="medium",
    )
    return fig


# Colour scale of the R² table: the misfit 1 − R² on a log scale, clipped to [1e-3, 1]
# (R² from 0.999 down to 0); every cell prints its value, so clipped cells stay readable.
_MISFIT_RANGE = (1e-3, 1.0)
_R2_KEYS = ("r2_h", "r2_y", "r2_w")


def _r2_text(mean: float, std: float) -> str:
    """``0.995 ± 0.002``; failed fits far below zero with fewer digits; NaN as ``n/a``."""
    if not np.isfinite(mean):
        return "n/a"
    digits = 3 if abs(mean) < 10 else 1
    spread = "" if not np.isfinite(std) else f" ± {std:.{3 if std < 10 else 1}f}"
    return f"{mean:.{digits}f}{spread}"


def _row_label(name: str, entry: Mapping) -> str:
    """``name  P=…, L=…  n/N`` with the parts the summary entry has."""
    cfg = entry.get("config", {})
    parts = [name]
    if "width" in cfg and "depth" in cfg:
        parts.append(f"P={cfg['width']}, L={cfg['depth']}")
    if "n_converged" in entry and "n_seeds" in entry:
        parts.append(f"{entry['n_converged']}/{entry['n_seeds']}")
    return "   ".join(parts)


def two_point_overview(summary: Mapping) -> Figure:
    """Table of the mean R² of h, y, w per preset, coloured by fit quality.

    One row per preset, one column per observable. Each cell prints mean ± std over the
    converged seeds, whatever its value, so presets whose fit fails (R² far below 0) stay
    readable next to good ones; the colour shows the misfit 1 − R² on a log scale clipped
    to R² between 0 and 0.999 (blue: good, red: poor, grey: no converged seed). Cells that
    meet the summary's good-fit bound, if it has one, are printed bold. Row labels carry
    each preset's width P, depth L and converged/total seeds where the summary has them.

    Arguments:
        summary: the two-point result: ``presets`` maps names to entries with ``mean``
            and ``std`` (r2_h, r2_y, r2_w) and, if present, ``config`` (width,
            depth), ``n_converged`` and ``n_seeds``; ``settings`` (optional) may give
            ``seeds``, ``quick``, ``precision`` and ``good_fit`` (r2_h, r2_y, r2_w bounds),
            all used in the title and the bold cells.

    Returns:
        A ``Figure`` with the table (one image, one text per cell) and a colour bar.
    """
    names = list(summary["presets"])
    entries = [summary["presets"][n] for n in names]
    mean = np.array([[float(e["mean"][k]) for k in _R2_KEYS] for e in entries]).reshape(-1, 3)
    std = np.array([[float(e["std"][k]) for k in _R2_KEYS] for e in entries]).reshape(-1, 3)
    settings = summary.get("settings", {})
    bound = settings.get("good_fit")

    lo, hi = _MISFIT_RANGE
    misfit = np.ma.masked_invalid(np.clip(1.0 - mean, lo, hi))
    cmap = colormaps["RdYlBu_r"].with_extremes(bad="0.85")
    norm = LogNorm(lo, hi)
    fig = Figure(figsize=(8.5, 0.32 * len(names) + 1.9), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(misfit, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    for i in range(len(names)):
        for j, key in enumerate(_R2_KEYS):
            m = mean[i, j]
            good = bound is not None and np.isfinite(m) and m >= bound[key]
            light = not np.isfinite(m) or 0.18 < _luminance(cmap(norm(misfit[i, j])))
            ax.text(
                j,
                i,
                _r2_text(m, std[i, j]),
                ha="center",
                va="center",
                fontsize="small",
                fontweight="bold" if good else "normal",
                color="k" if light else "w",
            )
    ax.set_xticks(range(3), [k.replace("r2_", "R² ") for k in _R2_KEYS])
    ax.xaxis.tick_top()
    rows = [_row_label(n, e) for n, e in zip(names, entries, strict=True)]
    ax.set_yticks(range(len(names)), rows)
    ax.tick_params(length=0)
    bar = fig.colorbar(im, ax=ax, ticks=[1e-3, 1e-2, 1e-1, 1.0], shrink=0.9)
    bar.ax.set_yticklabels(["≥ 0.999", "0.99", "0.9", "≤ 0"])
    bar.ax.invert_yaxis()  # good fits at the top
    bar.set_label("R² (colour: log of 1 − R²)")

    seeds = settings.get("seeds")
    what = ["mean ± std over converged seeds" + ("" if seeds is None else f" (of {seeds})")]
    if "quick" in settings:
        what.append("quick sizes" if settings["quick"] else "the presets' own sizes")
    if "precision" in settings:
        what.append(settings["precision"])
    title = "two-point task: R² of the fitted theory per preset\n" + ", ".join(what)
    if bound is not None:
        title += (
            f"\nbold: meets the good-fit bound (h ≥ {bound['r2_h']:g}, y ≥ {bound['r2_y']:g},"
            f" w ≥ {bound['r2_w']:g})"
        )
    ax.set_title(title, fontsize="medium")
    return fig


def _luminance(rgba) -> float:
    """Relative luminance of an RGBA colour (for choosing dark or light text on it)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def grid_scatter(
    measured, predicted, stats: Mapping, title: str, *, config: Mapping | None = None
) -> Figure:
    """Measured against predicted converged distance h∞, with the identity line (dashed).

    Arguments:
        measured: final h of each run, shape (n,).
        predicted: the theory's h∞ of each run (eq. (3.2)), shape (n,).
        stats: ``slope`` and ``pearson_r`` of the comparison (the grid result's ``stats``;
            ``n_kept`` and ``n_runs``, if present, go into the title).
        title: first line of the title (e.g. the preset).
        config: optional: the grid result's ``config`` (name, arch, activation, width,
            depth and, if present, ``seeds``): its sizes and seeds go into the title.

    Returns:
        A ``Figure`` with one scatter plot.
    """
    fig = Figure(figsize=(5.2, 4.9), layout="constrained")
    ax = fig.subplots()
    ax.scatter(predicted, measured, s=16, label="one run (dot)")
    hi = np.nanmax(np.concatenate([measured, predicted])) * 1.05
    ax.plot([0, hi], [0, hi], color="0.5", lw=1, ls="--", label="identity (dashed)")
    ax.set_xlabel("theory h∞ (section 3)")
    ax.set_ylabel("measured final h")
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    lines = [title]
    if config is not None:
        seeds = config.get("seeds")
        lines.append(_preset_text(config) + ("" if seeds is None else f", {_count(seeds)}"))
    runs = (
        f", {stats['n_kept']}/{stats['n_runs']} runs kept"
        if "n_kept" in stats and "n_runs" in stats
        else ""
    )
    lines.append(f"slope {stats['slope']:.3f}, Pearson r {stats['pearson_r']:.4f}{runs}")
    ax.set_title("\n".join(lines), fontsize="medium")
    return fig


def depth_profile(result: Mapping) -> Figure:
    """Fitted η_h, η_y and fit quality per hidden layer.

    Arguments:
        result: the depth result: ``config`` (name, arch, activation, width, depth),
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
    handles = b.get_legend_handles_labels()[0] + b2.get_legend_handles_labels()[0]
    b.legend(handles=handles, frameon=False, loc="center right", fontsize="small")
    seed = "" if "seed" not in result else f", seed {result['seed']}"
    fig.suptitle(
        f"depth profile: {_preset_text(result['config'])}{seed}\n"
        "left: fitted rates; right: R² (solid, markers) and fit loss (dotted, right axis)",
        fontsize="medium",
    )
    return fig


def ablation_bars(result: Mapping) -> Figure:
    """Mean fit loss of the theory and of each ablation (log scale; error bars = std over
    runs).

    Arguments:
        result: the ablations result: ``config`` (name, arch, activation, width, depth),
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
    seeds = "" if "seeds" not in result else f", {_count(result['seeds'])}"
    ax.set_title(
        f"theory vs ablations: {_preset_text(result['config'])}{seeds}\n"
        "bars: mean fit loss over runs, error bars: std",
        fontsize="medium",
    )
    ax.tick_params(axis="x", rotation=20)
    return fig
