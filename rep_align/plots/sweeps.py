"""Standard figures of a sweep (``rep_align.sweep``): quantities against axes, heat maps.

Each function takes a ``sweep.SweepResults`` (from ``sweep.load_results``) and returns a
self-contained matplotlib ``Figure`` (no pyplot state). Values are averaged over every axis
not shown (typically seeds), ignoring non-finite values (diverged runs, failed fits); error
bars are the standard deviation over those runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from rep_align.plots._panels import draw_hywl, hywl_axes, save

__all__ = [
    "choose_axes",
    "plot_against",
    "plot_final_vs_theory",
    "plot_heatmap",
    "plot_trajectories",
    "standard_figures",
]

_LOG_AXES = ("lr", "gain", "rtol", "atol")
_LABELS = {
    "h_final": "final h (read-out layer)",
    "loss_final": "final loss",
    "eta_h": "fitted η_h",
    "eta_y": "fitted η_y",
    "eta_m": "fitted η_m",
    "r2_h": "R² of h",
    "r2_y": "R² of y",
    "r2_w": "R² of w",
    "h_inf_theory": "theory h∞",
}


def _column(results, name: str) -> np.ndarray:
    if name not in results.table:
        raise ValueError(f"no column {name!r} in these results; have {sorted(results.table)}")
    return np.asarray(results.table[name])


def _swept(results) -> list[str]:
    return [n for n, v in results.spec.axes if len(v) > 1]


def choose_axes(results) -> tuple[str | None, str | None]:
    """Pick (x, hue) axes for the standard views: x = gain if swept, else the first swept
    numeric axis; hue = width if swept, else the next swept axis (seeds never)."""
    swept = [n for n in _swept(results) if n != "seed"]
    numeric = [n for n in swept if np.issubdtype(_column(results, n).dtype, np.number)]
    x = "gain" if "gain" in numeric else (numeric[0] if numeric else None)
    rest = [n for n in swept if n != x]
    hue = "width" if "width" in rest else (rest[0] if rest else None)
    return x, hue


def _mean_std(values: np.ndarray, groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    means, stds = [], []
    for mask in groups:
        v = values[mask]
        v = v[np.isfinite(v)]
        means.append(v.mean() if v.size else np.nan)
        stds.append(v.std() if v.size > 1 else 0.0)
    return np.asarray(means), np.asarray(stds)


def plot_against(results, quantities, *, x: str, hue: str | None = None) -> Figure:
    """Mean ± std of each quantity (columns of ``results.table``) against axis ``x``.

    Arguments:
        results: a ``SweepResults``.
        quantities: a column name or a list of them, one panel each (e.g. "h_final",
            ["eta_h", "eta_y"]).
        x: the axis on the horizontal (log scale for lr and gain).
        hue: optional axis drawn as one line per value.

    Returns:
        A ``Figure`` with one panel per quantity.

    Raises:
        ValueError: for an unknown column.
    """
    quantities = [quantities] if isinstance(quantities, str) else list(quantities)
    xs = _column(results, x)
    hues = [None] if hue is None else list(dict.fromkeys(_column(results, hue).tolist()))
    fig = Figure(figsize=(4.2 * len(quantities), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(quantities)))
    xvals = np.unique(xs)
    for ax, q in zip(axes, quantities, strict=True):
        values = _column(results, q).astype(float)
        for i, hv in enumerate(hues):
            sel = np.ones(len(xs), bool) if hv is None else _column(results, hue) == hv
            mean, std = _mean_std(values, [sel & (xs == xv) for xv in xvals])
            label = None if hv is None else f"{hue} = {hv}"
            ax.errorbar(
                xvals, mean, yerr=std, marker="o", ms=3, capsize=2, color=f"C{i}", label=label
            )
        ax.set_xlabel(x)
        ax.set_ylabel(_LABELS.get(q, q))
        if x in _LOG_AXES:
            ax.set_xscale("log")
        if hue is not None:
            ax.legend(frameon=False, fontsize="small")
    return fig


def plot_heatmap(results, quantity: str, *, x: str, y: str) -> Figure:
    """Mean of ``quantity`` over the grid of axes ``x`` × ``y`` (other axes averaged).

    Returns:
        A ``Figure`` with an annotated heat map.

    Raises:
        ValueError: for an unknown column.
    """
    xs, ys = _column(results, x), _column(results, y)
    values = _column(results, quantity).astype(float)
    xv, yv = list(dict.fromkeys(xs.tolist())), list(dict.fromkeys(ys.tolist()))
    grid = np.full((len(yv), len(xv)), np.nan)
    for i, b in enumerate(yv):
        grid[i] = _mean_std(values, [(xs == a) & (ys == b) for a in xv])[0]
    fig = Figure(figsize=(1.0 + 0.8 * len(xv), 1.2 + 0.5 * len(yv)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=_LABELS.get(quantity, quantity))
    ax.set_xticks(range(len(xv)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xv])
    ax.set_yticks(range(len(yv)), [f"{v:g}" if isinstance(v, float) else str(v) for v in yv])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize="x-small", color="w")
    return fig


def plot_final_vs_theory(results) -> Figure:
    """Measured final h against the analytic h∞ from the fitted rates (``docs/theory.md`` §3).

    Raises:
        ValueError: if the sweep did not fit rates.
    """
    h, th = _column(results, "h_final"), _column(results, "h_inf_theory")
    ok = np.isfinite(h) & np.isfinite(th)
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.subplots()
    ax.scatter(th[ok], h[ok], s=8)
    if ok.any():
        lo, hi = min(th[ok].min(), h[ok].min()), max(th[ok].max(), h[ok].max())
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--")
        r = np.corrcoef(th[ok], h[ok])[0, 1] if ok.sum() > 2 else np.nan
        ax.set_title(f"Pearson r = {r:.3f} ({ok.sum()} runs)", fontsize="medium")
    ax.set_xlabel("theory h∞ (fitted rates)")
    ax.set_ylabel("measured final h")
    return fig


def plot_trajectories(results, group: str, *, color_by: str | None = None) -> Figure:
    """h (read-out layer), y, w and loss of every run of one group over time (solid).

    Arguments:
        results: a ``SweepResults`` of a sweep that saved trajectories.
        group: a value of ``results.table["group"]``.
        color_by: axis whose value sets each line's colour (default: the x of
            ``choose_axes``).

    Returns:
        A 2×2 ``Figure`` (the shared h/y/w/loss panel), one line per run.

    Raises:
        ValueError: if trajectories were not saved, or the group is unknown.
    """
    ids, traj = results.trajectories(group)
    row = {str(r): i for i, r in enumerate(results.table["run_id"])}
    rows = np.asarray([row[str(i)] for i in ids])
    layer = int(results.table["layer_index"][rows[0]])
    color_by = color_by or choose_axes(results)[0]
    cvals = None if color_by is None else _column(results, color_by)[rows]
    if cvals is not None and np.issubdtype(cvals.dtype, np.number):
        lo, hi = np.nanmin(cvals), np.nanmax(cvals)
        shade = (cvals - lo) / (hi - lo) if hi > lo else np.zeros(len(cvals))
    else:
        shade = np.zeros(len(rows))
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(9, 6), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        traj["times"],
        (traj["h"][:, :, layer], traj["y"], traj["w"], traj["loss"]),
        colors=[cmap(s) for s in shade],
        labels=(f"h (layer {layer})", "y", "w", "loss"),
        xlabel="time (gradient steps)",
        linewidth=0.8,
        alpha=0.8,
    )
    if cvals is not None:
        fig.suptitle(f"group {group}: colour = {color_by} ({np.min(cvals):g} … {np.max(cvals):g})")
    return fig


def standard_figures(results, out: str | os.PathLike, *, fmt: str = "png") -> list[Path]:
    """Write the standard views of a sweep to directory ``out``; returns the paths written.

    Views, as far as the sweep allows: final h and final loss against the main axis (x =
    gain if swept) with one line per value of the second (width if swept); fitted η_h and
    η_y against x; heat maps of final h and, if fitted, R² of h, y and w over x × second
    axis; measured final h against the theory's h∞; the trajectories of the first group.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(fig: Figure, name: str) -> None:
        written.append(save(fig, out / f"{name}.{fmt}", dpi=120))

    if len(results) == 0:
        return written
    x, hue = choose_axes(results)
    fitted = "eta_h" in results.table
    if x is not None:
        write(plot_against(results, ["h_final", "loss_final"], x=x, hue=hue), "final_vs_" + x)
        if fitted:
            write(plot_against(results, ["eta_h", "eta_y"], x=x, hue=hue), "rates_vs_" + x)
    if x is not None and hue is not None:
        write(plot_heatmap(results, "h_final", x=x, y=hue), "heatmap_h_final")
        if fitted:
            for q in ("r2_h", "r2_y", "r2_w"):
                write(plot_heatmap(results, q, x=x, y=hue), f"heatmap_{q}")
    if fitted:
        write(plot_final_vs_theory(results), "h_final_vs_theory")
    if results.spec.save_trajectories:
        group = str(results.table["group"][0])
        write(plot_trajectories(results, group), "trajectories")
    return written
