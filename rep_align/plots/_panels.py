"""Pieces shared by the figures: the h/y/w/loss panel of a two-point run, and saving."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["draw_hywl", "hywl_axes", "hywl_labels", "line_legend", "save"]

# Line widths of measured (solid) and theory (dashed) curves.
MEASURED_LW = 1.5
THEORY_LW = 1.2


def save(fig: Figure, path: str | os.PathLike, *, dpi: int = 110) -> str | os.PathLike:
    """Write ``fig`` to ``path`` (format from the suffix), creating the directory.

    Arguments:
        fig: the figure.
        path: file to write (PNG, PDF, SVG, ...).
        dpi: resolution of raster formats (default 110).

    Returns:
        ``path``, as given.
    """
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def hywl_labels(layer: int | None = None) -> tuple[str, str, str, str]:
    """Axis labels of the h, y, w and loss panels; ``layer`` names h's hidden layer."""
    where = "" if layer is None else f" (layer {layer})"
    return (f"h = ‖Δh‖²{where}", "y = ‖Δŷ‖²", "w = Δŷ·(Δŷ − Δy*)", "loss (0.5·mse)")


def hywl_axes(fig: Figure) -> np.ndarray:
    """A 2×2 grid of axes sharing the time axis, in the order h, y (top), w, loss (bottom).

    Returns:
        The four ``Axes`` as a flat array of shape (4,).
    """
    return fig.subplots(2, 2, sharex=True).ravel()


def _runs(values, name: str) -> np.ndarray | None:
    """``values`` as float rows (runs, T); None stays None."""
    if values is None:
        return None
    a = np.asarray(values, dtype=float)
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (T,) or (runs, T), got shape {a.shape}")
    return np.atleast_2d(a)


def _positive(a: np.ndarray) -> np.ndarray:
    """NaN where a log axis cannot show a value (non-finite or ≤ 0), so lines break there."""
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def draw_hywl(
    axes: Sequence[Axes],
    t,
    measured: Sequence,
    *,
    theory: Sequence | None = None,
    colors: Sequence | None = None,
    labels: Sequence[str] | None = None,
    references: Sequence[tuple[float, str] | None] | None = None,
    xlabel: str = "epoch (gradient steps)",
    linewidth: float = MEASURED_LW,
    alpha: float | None = None,
) -> None:
    """Draw h, y, w and the loss of one or several runs on the four axes of ``hywl_axes``.

    Measured curves are solid; theory curves, if given, dashed in the same colour, so a
    run keeps its colour in every panel. The loss panel has a log scale; values it cannot
    show (≤ 0, NaN, inf) leave gaps.

    Arguments:
        axes: four axes (h, y, w, loss), e.g. from ``hywl_axes``.
        t: times, shape (T,), in gradient steps.
        measured: (h, y, w, loss), each of shape (T,) for one run or (runs, T). The loss
            may be None: its panel is then left empty and hidden.
        theory: optional (h, y, w, loss) of the theory, shapes as ``measured``; any entry
            may be None (not drawn).
        colors: one matplotlib colour per run (default "C0", "C1", … cycling over ten).
        labels: the four axis labels (default ``hywl_labels()``).
        references: per panel None or (value, label): a dotted grey horizontal line, named
            in the panel's legend (e.g. the end of a perfect fit, y = dy2 and w = 0).
        xlabel: label of the time axis, on the bottom row.
        linewidth: width of the measured lines (the dashed theory lines are 1.2).
        alpha: opacity of every curve (default opaque).

    Raises:
        ValueError: if an entry is not of shape (T,) or (runs, T), or the runs disagree.
    """
    names = ("h", "y", "w", "loss")
    series = [_runs(v, f"measured {n}") for v, n in zip(measured, names, strict=True)]
    dashed = (
        [None] * 4
        if theory is None
        else [_runs(v, f"theory {n}") for v, n in zip(theory, names, strict=True)]
    )
    n_runs = {a.shape[0] for a in series + dashed if a is not None}
    if len(n_runs) > 1:
        raise ValueError(f"the curves disagree on the number of runs: {sorted(n_runs)}")
    n = n_runs.pop() if n_runs else 0
    colors = [f"C{i % 10}" for i in range(n)] if colors is None else list(colors)
    if len(colors) != n:
        raise ValueError(f"colors must give one colour per run ({n}), got {len(colors)}")
    labels = hywl_labels() if labels is None else labels
    references = [None] * 4 if references is None else references
    for k, ax in enumerate(axes):
        solid, theo = series[k], dashed[k]
        if k == 3:
            solid = None if solid is None else _positive(solid)
            theo = None if theo is None else _positive(theo)
        for i in range(n):
            if solid is not None:
                ax.plot(t, solid[i], color=colors[i], lw=linewidth, alpha=alpha)
            if theo is not None:
                ax.plot(t, theo[i], color=colors[i], lw=THEORY_LW, ls="--", alpha=alpha)
        if k == 3:
            ax.set_yscale("log")
            if series[3] is None:
                ax.set_axis_off()
        if references[k] is not None:
            value, name = references[k]
            ax.axhline(value, color="0.6", ls=":", lw=1, label=name)
            ax.legend(frameon=False, fontsize="small")
        ax.set_ylabel(labels[k])
    for ax in axes[2:]:
        ax.set_xlabel(xlabel)


def line_legend(
    fig: Figure,
    run_labels: Sequence[str],
    *,
    colors: Sequence | None = None,
    solid: str = "network",
    dashed: str | None = "fitted theory",
) -> None:
    """A legend below the panels: what solid and dashed lines are, and one colour per run.

    Arguments:
        fig: the figure (with constrained layout, which makes room below the axes).
        run_labels: one label per run, e.g. ``"seed 0"``, in the order of ``draw_hywl``.
        colors: the runs' colours (default "C0", "C1", … as ``draw_hywl``).
        solid: what the solid lines show.
        dashed: what the dashed lines show; None when there are none.

    Raises:
        ValueError: if ``colors`` does not give one colour per label.
    """
    colors = [f"C{i % 10}" for i in range(len(run_labels))] if colors is None else list(colors)
    if len(colors) != len(run_labels):
        raise ValueError(
            f"colors must give one colour per run label ({len(run_labels)}), got {len(colors)}"
        )
    handles = [Line2D([], [], color="k", lw=MEASURED_LW, label=f"solid: {solid}")]
    if dashed is not None:
        handles.append(Line2D([], [], color="k", lw=THEORY_LW, ls="--", label=f"dashed: {dashed}"))
    handles += [
        Line2D([], [], color=c, lw=4, label=str(lab))
        for c, lab in zip(colors, run_labels, strict=True)
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 8),
        frameon=False,
        fontsize="small",
    )
