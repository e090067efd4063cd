"""Figures of one trajectory: a trained network's (``plot_trajectory``) or the effective
theory's (``plot_theory``), on the shared h/y/w/loss panel."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from rep_align import checks
from rep_align.plots._panels import draw_hywl, hywl_axes, hywl_labels

__all__ = ["plot_theory", "plot_trajectory"]


def plot_trajectory(trajectory, *, layer: int, title: str | None = None) -> Figure:
    """h (of one hidden layer), y, w and the loss of one run against epochs.

    The measured curves are solid; dotted grey lines mark where a perfect fit ends, y = dy2
    and w = 0 (``docs/theory.md`` §1).

    Arguments:
        trajectory: a ``rep_align.training.Trajectory`` of one run (no batch axes).
        layer: hidden layer whose h is shown (index into ``trajectory.h``'s last axis;
            negative counts from the end).
        title: optional figure title.

    Returns:
        A 2×2 ``matplotlib.figure.Figure``; save it with ``rep_align.plots.save``.

    Raises:
        ValueError: for a batched trajectory or a layer out of range.
    """
    t = np.asarray(trajectory.times)
    h = np.asarray(trajectory.h)
    if t.ndim != 1:
        raise ValueError(f"plot_trajectory takes one run; times has shape {t.shape}")
    layer = checks.integer("layer", layer)
    if not -h.shape[1] <= layer < h.shape[1]:
        raise ValueError(f"layer={layer} out of range for {h.shape[1]} hidden layers")
    dy2 = float(np.asarray(trajectory.dy2))
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        t,
        (h[:, layer], trajectory.y, trajectory.w, trajectory.loss),
        colors=["C0"],
        labels=hywl_labels(layer % h.shape[1]),
        references=(None, (dy2, f"dy2 = {dy2:g}"), (0.0, "0"), None),
    )
    if bool(np.asarray(trajectory.diverged)):
        fig.text(
            0.5,
            0.5,
            f"diverged at step {int(np.asarray(trajectory.diverged_step))}",
            ha="center",
            color="red",
            fontsize=14,
        )
    if title:
        fig.suptitle(title)
    return fig


def plot_theory(
    ts,
    z,
    *,
    h_inf: float,
    dy2: float,
    loss=None,
    title: str = "two-point effective theory, eqs. (2.1)-(2.3)",
    rates: Mapping[str, float] | None = None,
) -> Figure:
    """h, y, w (and optionally the loss) of one solution of the two-point theory.

    The solution is solid; dotted grey lines mark its analytic end state: h∞ (3.2), y = dy2
    and w = 0. The title's second line gives the initial state ``z[0]`` and, if given, the
    rates and distances of the solution.

    Arguments:
        ts: times, shape (T,), in gradient steps.
        z: (h, y, w) at ``ts``, shape (T, 3) (``rep_align.theory.solve``).
        h_inf: the analytic final distance h∞ (``theory.final_distance``).
        dy2: squared target distance ‖Δy*‖².
        loss: optional loss along the solution, shape (T,) (``theory.loss_curve``, eq.
            (3.5)); without it the loss panel is hidden.
        title: first line of the figure title.
        rates: optional parameters of the solution for the title, e.g.
            ``dict(eta_h=5e-4, eta_y=8e-3, dx2=1.2, dy2=0.76)`` (any names and numbers).

    Returns:
        A 2×2 ``matplotlib.figure.Figure``.

    Raises:
        ValueError: if ``z`` is not of shape (T, 3) for the T times of ``ts``.
    """
    ts = np.asarray(ts, dtype=float)
    z = np.asarray(z, dtype=float)
    if ts.ndim != 1 or z.shape != (ts.shape[0], 3):
        raise ValueError(
            f"z must have shape (T, 3) for ts of shape (T,); got {z.shape}, {ts.shape}"
        )
    h_inf = checks.real("h_inf", h_inf, finite=False)
    dy2 = checks.real("dy2", dy2)
    fig = Figure(figsize=(9, 6.8), layout="constrained")
    draw_hywl(
        hywl_axes(fig),
        ts,
        (z[:, 0], z[:, 1], z[:, 2], loss),
        colors=["C0"],
        references=(
            (h_inf, f"h∞ (analytic) = {h_inf:.4g}"),
            (dy2, f"dy2 = {dy2:g}"),
            (0.0, "0"),
            None,
        ),
        xlabel="time (gradient steps)",
    )
    start = f"from (h0, y0, w0) = ({z[0, 0]:.4g}, {z[0, 1]:.4g}, {z[0, 2]:.4g})"
    if rates:
        start += ", " + ", ".join(f"{k} = {float(v):.4g}" for k, v in rates.items())
    fig.suptitle(f"{title}: solid solution, dotted analytic end state\n{start}")
    return fig
