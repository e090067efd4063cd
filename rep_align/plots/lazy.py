"""Figures of the lazy-limit experiment (``rep_align.experiments.lazy``), drawn from its
result and settings as JSON (``summary.json``'s ``result`` and ``settings``) and, for the
output traces, the runs' arrays (``arrays.npz``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["lazy_errors", "lazy_outputs"]

_COLORS = {"large": "tab:blue", "small": "tab:red"}


def _title(settings: Mapping) -> str:
    precision = "float64" if settings["float64"] else "float32"
    return (
        f"{settings['task']}: MLP P={settings['width']}, L={settings['depth']}, "
        f"{settings['activation']}, {precision}; lr = {settings['lr_fraction']}"
        "·N/λ_max(K₀)"
    )


def lazy_errors(regimes: Mapping, settings: Mapping) -> Figure:
    """Output error, hidden change and kernel distance over training, both gains, every
    seed (log scales).

    Arguments:
        regimes: ``{regime: LazyRegime as JSON}`` (``runs`` with per-seed ``times``,
            ``output_error``, ``hidden_change``, ``kernel_times``, ``kernel_distance``,
            ``gain``).
        settings: the experiment's settings as JSON (``tolerance`` and the title).

    Returns:
        A ``Figure`` with three panels; the tolerance is a dotted line on the first.
    """
    fig = Figure(figsize=(12, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("times", "output_error", "‖f_t − f_lin,t‖ / ‖f₀ − y*‖"),
        ("times", "hidden_change", "‖D_t − D₀‖ / ‖D₀‖ (hidden distances)"),
        ("kernel_times", "kernel_distance", "‖K_t − K₀‖ / ‖K₀‖"),
    )
    for ax, (tkey, key, label) in zip(axes, panels, strict=True):
        for regime, entry in regimes.items():
            for i, run in enumerate(entry["runs"]):
                t = np.asarray(run[tkey], float)
                v = np.asarray([np.nan if a is None else a for a in run[key]], float)
                v = np.where(v > 0, v, np.nan)
                ax.semilogy(
                    t,
                    v,
                    "o-" if key == "kernel_distance" else "-",
                    color=_COLORS.get(regime, "k"),
                    ms=3,
                    alpha=0.8,
                    label=f"{regime} gain {run['gain']:g}" if i == 0 else None,
                )
        ax.set_xlabel("gradient step")
        ax.set_title(label, fontsize="medium")
    axes[0].axhline(settings["tolerance"], color="k", ls=":", lw=1, label="tolerance")
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle(
        "lazy limit — trained network vs its kernel prediction at init\n" + _title(settings),
        fontsize="medium",
    )
    return fig


def lazy_outputs(arrays: Mapping[str, Sequence[Mapping]], settings: Mapping) -> Figure:
    """Trained outputs (solid) and kernel predictions (dashed) of every point, first seed
    of each gain, for the output unit whose final outputs vary most across the points.

    Arguments:
        arrays: ``{regime: [per-seed mapping with gain, times (T,), outputs (T, n, o),
            linear (T, n, o)]}`` (the fields of ``LazyRun``).
        settings: the experiment's settings as JSON (for the title).

    Returns:
        A ``Figure`` with one panel per gain; one output unit is drawn.
    """
    regimes = list(arrays)
    fig = Figure(figsize=(5 * len(regimes), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(regimes)))
    for ax, regime in zip(axes, regimes, strict=True):
        run = arrays[regime][0]
        t = np.asarray(run["times"], float)
        out, lin = np.asarray(run["outputs"]), np.asarray(run["linear"])
        unit = int(np.nanargmax(np.nanvar(out[-1], axis=0)))
        for i in range(out.shape[1]):
            color = f"C{i % 10}"
            ax.plot(t, out[:, i, unit], "-", color=color, label=f"point {i}")
            ax.plot(t, lin[:, i, unit], "--", color=color)
        gain = run["gain"]
        ax.set_title(f"{regime} gain {gain:g}: trained (solid), kernel (dashed)", fontsize="medium")
        ax.set_xlabel("gradient step")
        ax.set_ylabel(f"output (unit {unit})")
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle(_title(settings), fontsize="medium")
    return fig
