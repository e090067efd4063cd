"""Figures of the universality experiment (``rep_align.experiments.universality``), drawn
from its result and settings as JSON (``summary.json``'s ``result`` and ``settings``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["agreement_bars", "cka_heatmaps", "cka_over_training"]

_REGIMES = ("small", "large")
_COLORS = {"small": "tab:blue", "large": "tab:red"}


def _floats(values) -> np.ndarray:
    """A JSON value (lists, None for NaN) or array as a float array."""
    a = np.array(values, dtype=object)
    return np.where(a == None, np.nan, a).astype(float)  # noqa: E711


def _subtitle(settings: Mapping) -> str:
    n = settings["seeds"]
    precision = "float64" if settings["float64"] else "float32"
    return (
        f"P={settings['width']}, L={settings['depth']}, {precision}, "
        f"{n} seed{'s' if n != 1 else ''}; full-batch GD on 0.5·mse"
    )


def cka_heatmaps(result: Mapping, settings: Mapping) -> Figure:
    """Linear CKA between the members' final representations: one heatmap per task and
    regime (rows: tasks; columns: small, large init).

    Off-diagonal entries pair the same seed of two members, averaged over seeds; the
    diagonal pairs seed s with seed s+1 of the same member.

    Arguments:
        result: the experiment's result as JSON (``UniversalityResult``).
        settings: its settings as JSON (``UniversalitySettings``).

    Returns:
        A ``Figure``; each panel's title gives the mean off-diagonal CKA ± spread over
        seeds.
    """
    tasks = list(result["tasks"])
    fig = Figure(figsize=(11, 5.0 * len(tasks)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(tasks), 2))
    image = None
    for row, task in zip(axes, tasks, strict=True):
        for ax, regime in zip(row, _REGIMES, strict=True):
            res = result["tasks"][task][regime]
            names = res["members"]
            c = _floats(res["cka_final"])
            image = ax.imshow(c, vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
            ax.set_yticks(range(len(names)), names, fontsize="small")
            for i in range(len(names)):
                for j in range(len(names)):
                    if np.isfinite(c[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{c[i, j]:.2f}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color="w" if c[i, j] < 0.6 else "k",
                        )
            off = _floats([res["offdiag"]["spread"][k] for k in ("mean", "std")])
            ax.set_title(
                f"{task}, {regime} init: mean off-diagonal {off[0]:.3f} ± {off[1]:.3f}",
                fontsize="medium",
            )
    fig.colorbar(image, ax=axes, shrink=0.6, label="linear CKA (final representations)")
    fig.suptitle(f"CKA between architectures — {_subtitle(settings)}", fontsize="medium")
    return fig


def cka_over_training(result: Mapping, settings: Mapping) -> Figure:
    """Mean off-diagonal CKA between members against the epoch, both regimes (band: ±
    spread over seeds), one panel per task.

    Arguments:
        result: the experiment's result as JSON (``UniversalityResult``).
        settings: its settings as JSON (``UniversalitySettings``).

    Returns:
        A ``Figure`` with one panel per task.
    """
    tasks = list(result["tasks"])
    fig = Figure(figsize=(5.2 * len(tasks), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(tasks)))
    for ax, task in zip(axes, tasks, strict=True):
        for regime in _REGIMES:
            tr = result["tasks"][task][regime]
            t = _floats(tr["cka_epochs"])
            m, s = _floats(tr["cka_mean"]), _floats(tr["cka_std"])
            ax.plot(t, m, color=_COLORS[regime], label=f"{regime} init")
            ax.fill_between(t, m - s, m + s, color=_COLORS[regime], alpha=0.2, lw=0)
        ax.set_xlabel("epoch (full-batch step)")
        ax.set_ylabel("mean off-diagonal CKA")
        ax.set_ylim(0, 1.02)
        ax.set_title(task, fontsize="medium")
        ax.legend(frameon=False, fontsize="small")
    fig.suptitle(
        f"alignment between architectures over training — {_subtitle(settings)}", fontsize="medium"
    )
    return fig


def agreement_bars(result: Mapping, settings: Mapping) -> Figure:
    """Per member: RSA (Pearson) between its learned distance matrix and the rich
    prediction (3.3), the many-point prediction (6.1) with its own initial terms, and its
    initial distances, at small and at large init (error bars: spread over seeds).

    Arguments:
        result: the experiment's result as JSON (``UniversalityResult``).
        settings: its settings as JSON (``UniversalitySettings``).

    Returns:
        A ``Figure`` with a row per task and a column per prediction.
    """
    tasks = list(result["tasks"])
    keys = (
        ("rsa_rich", "rich limit √(3.3)"),
        ("rsa_theory", f"√(6.1), own init, ρ={settings['rate_ratio']:g}"),
        ("rsa_initial", "initial distances (lazy limit)"),
    )
    fig = Figure(figsize=(15, 3.9 * len(tasks)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(tasks), len(keys)))
    for row, task in zip(axes, tasks, strict=True):
        for ax, (key, label) in zip(row, keys, strict=True):
            names = result["tasks"][task]["small"]["members"]
            pos = np.arange(len(names))
            for k, regime in enumerate(_REGIMES):
                agr = result["tasks"][task][regime]["agreement"]
                mean = _floats([agr[n][key]["spread"]["mean"] for n in names])
                std = _floats([agr[n][key]["spread"]["std"] for n in names])
                ax.bar(
                    pos + (k - 0.5) * 0.4,
                    mean,
                    0.4,
                    yerr=std,
                    color=_COLORS[regime],
                    label=f"{regime} init",
                    capsize=2,
                )
            ax.axhline(0, color="k", lw=0.6)
            ax.set_ylim(-1.05, 1.05)
            ax.set_xticks(pos, names, rotation=60, ha="right", fontsize="small")
            ax.set_title(f"{task}: RSA with {label}", fontsize="medium")
        row[0].set_ylabel("RSA (Pearson)")
        row[0].legend(frameon=False, fontsize="small", loc="lower left")
    fig.suptitle(
        f"agreement of learned distances with the theory — {_subtitle(settings)}", fontsize="medium"
    )
    return fig
