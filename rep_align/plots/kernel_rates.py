"""Figures of the kernel-rates experiment (docs/theory.md §8): kernel estimates of the
effective rates against fitted ones, per preset, per layer, and along training."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["kernel_motion", "kernel_rate_overview"]


def _num(v) -> float:
    """A JSON number, NaN for null."""
    return float("nan") if v is None else float(v)


def _finite(v) -> np.ndarray:
    a = np.asarray([_num(x) for x in np.ravel(np.asarray(v, object))], float)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def kernel_rate_overview(summary: Mapping) -> Figure:
    """Kernel/fitted rate ratios per preset and per layer, and h∞ predicted vs measured.

    Arguments:
        summary: the experiment's result as JSON (``result`` of its ``summary.json``,
            or ``files.jsonable`` of a ``KernelRatesResult``): ``presets``, ``depth``.

    Returns:
        A ``Figure`` with three panels: (a) kernel/fitted for η_h and η_y per preset, one
        marker per seed (hollow: not converged), log scale; (b) kernel and fitted rates per
        hidden layer of the depth run, if present; (c) h∞ of (3.2) from the init-time
        kernel rates and from the fitted rates against the measured final h.
    """
    presets = summary["presets"]
    names = list(presets)
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    a, b, c = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=[1.6, 1.0, 1.0]))
    for k, name in enumerate(names):
        for row in presets[name]["seeds"]:
            face = None if row["converged"] else "none"
            a.scatter(k - 0.12, _num(row["ratio_h"]), marker="o", color="C0", facecolors=face, s=22)
            a.scatter(k + 0.12, _num(row["ratio_y"]), marker="s", color="C1", facecolors=face, s=22)
    a.scatter([], [], marker="o", color="C0", label="η_h kernel / fitted")
    a.scatter([], [], marker="s", color="C1", label="η_y kernel / fitted")
    a.axhline(1.0, color="k", lw=0.8)
    a.set_yscale("log")
    a.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
    a.set_ylabel("kernel rate at init / fitted rate")
    a.set_title("(a) per preset (read-out layer)", fontsize="medium")
    a.legend(frameon=False, fontsize="small")

    depth = summary.get("depth")
    if depth:
        rows = depth["layers"]
        layers = [r["layer"] for r in rows]
        for key, mark, col in (("eta_h", "o", "C0"), ("eta_y", "s", "C1")):
            b.semilogy(
                layers,
                _finite([r[key] for r in rows]),
                mark + "-",
                color=col,
                label=f"{key.replace('eta', 'η')} kernel (init)",
            )
            b.semilogy(
                layers,
                _finite([r[key + "_fit"] for r in rows]),
                mark + "--",
                color=col,
                mfc="none",
                label=f"{key.replace('eta', 'η')} fitted",
            )
        b.set_xlabel("hidden layer (read-out)")
        b.set_ylabel("rate per step")
        b.set_title(
            f"(b) {depth['config']['name']}, seed {depth['seed']}, per layer", fontsize="medium"
        )
        b.legend(frameon=False, fontsize="small")
    else:
        b.set_axis_off()
        b.text(0.5, 0.5, "no depth profile", ha="center", va="center", transform=b.transAxes)

    meas, kern, fitd = [], [], []
    for name in names:
        for row in presets[name]["seeds"]:
            if row["converged"]:
                meas.append(row["h_final"])
                kern.append(row["h_inf_kernel"])
                fitd.append(row["h_inf_fit"])
    meas, kern, fitd = _finite(meas), _finite(kern), _finite(fitd)
    c.loglog(meas, kern, "o", color="C3", ms=4, label="(3.2) at kernel rates (init)")
    c.loglog(meas, fitd, "x", color="C2", ms=5, label="(3.2) at fitted rates")
    both = np.concatenate([meas, kern, fitd])
    both = both[np.isfinite(both)]
    if both.size:
        lo, hi = both.min() / 2, both.max() * 2
        c.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    c.set_xlabel("measured final h")
    c.set_ylabel("predicted h∞")
    c.set_title("(c) converged seeds, all presets", fontsize="medium")
    c.legend(frameon=False, fontsize="small")
    fig.suptitle(
        "effective rates read off the tangent kernels at initialisation "
        "(docs/theory.md §8) vs fitted (§5)",
        fontsize="medium",
    )
    return fig


def kernel_motion(summary: Mapping) -> Figure:
    """Kernel rates along training, relative to the fitted rates, for each run in
    ``summary["motion"]`` (the experiment's result as JSON, as ``kernel_rate_overview``).

    Returns:
        A ``Figure`` with one column per run: top, η_h and η_y of the kernels over
        training divided by the fitted rates (log scale; dotted: relative to their value
        at init if no fit is known); middle, the network's dh/dt under gradient flow and
        under gradient descent against the theory's at the kernel rates; bottom, h and
        the output-kernel distance from initialisation.
    """
    runs = summary["motion"]
    names = list(runs)
    fig = Figure(figsize=(4.2 * max(1, len(names)), 9), layout="constrained")
    axes = np.asarray(fig.subplots(3, max(1, len(names)), squeeze=False))
    for j, name in enumerate(names):
        run = runs[name]
        rows = run["rows"]
        step = np.array([r["step"] for r in rows], float)
        fitted = run.get("fitted") or {}
        top, mid, bot = axes[:, j]
        for key, col in (("eta_h", "C0"), ("eta_y", "C1")):
            vals = np.array([_num(r[key]) for r in rows], float)
            ref = fitted.get(key)
            label = key.replace("eta", "η")
            if ref:
                top.semilogy(
                    step,
                    _finite(vals / ref),
                    "o-",
                    color=col,
                    ms=3,
                    label=f"{label} kernel / fitted",
                )
            else:
                top.semilogy(
                    step,
                    _finite(vals / vals[0]),
                    "o:",
                    color=col,
                    ms=3,
                    label=f"{label} kernel / kernel at init",
                )
        top.axhline(1.0, color="k", lw=0.8)
        top.set_title(f"{name}, seed {run['seed']}", fontsize="medium")
        top.legend(frameon=False, fontsize="small")
        for key, mark, label in (
            ("dh_dt", "o-", "network, gradient flow"),
            ("dh_dt_descent", "s--", "network, descent (mean)"),
            ("dh_dt_kernel", "x:", "theory at kernel rates"),
            ("dh_dt_fit", "+:", "theory at fitted rates"),
        ):
            mid.semilogy(step, np.abs(_finite([r[key] for r in rows])), mark, ms=4, label=label)
        mid.set_ylabel("|dh/dt| per step")
        mid.legend(frameon=False, fontsize="x-small")
        bot.semilogy(step, _finite([r["h"] for r in rows]), "k.-", label="h")
        bot.set_xlabel("step")
        bot.set_ylabel("h")
        b2 = bot.twinx()
        b2.plot(
            step, [_num(r["ntk_distance"]) for r in rows], "C4^-", ms=3, label="‖K_t − K_0‖/‖K_0‖"
        )
        b2.set_ylabel("output NTK distance from init", color="C4")
        handles = bot.get_legend_handles_labels()[0] + b2.get_legend_handles_labels()[0]
        bot.legend(handles=handles, frameon=False, fontsize="small", loc="center right")
    fig.suptitle("kernel rates along training (docs/theory.md §8)", fontsize="medium")
    return fig
