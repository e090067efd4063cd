"""Public entry points of the rate fit: ``fit_rates`` (any batch) and ``fit_run`` (one run),
with their checks of concrete input."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from rep_align import checks
from rep_align.fit._core import _fit_each, _fit_shared, static_options
from rep_align.fit._options import FitOptions, resolve
from rep_align.fit._results import RateFit


def check_times(ts, n_times: int) -> None:
    """Raise unless ``ts`` is ``(..., T)`` with T = ``n_times``, finite and strictly
    increasing along its last axis (concrete values only)."""
    shape = jnp.shape(ts)
    if len(shape) < 1 or shape[-1] != n_times:
        raise ValueError(
            f"ts must have shape (..., T) with T = {n_times} (the time axis of the record),"
            f" got shape {shape}"
        )
    checks.values("ts", ts)
    v = checks.concrete(ts)
    if v is not None and not np.all(np.diff(v, axis=-1) > 0):
        raise ValueError("ts must be strictly increasing along its last axis")


def _check_record(z_obs) -> int:
    """Raise unless ``z_obs`` is a finite ``(..., T, 3)`` record, T >= 3, with h0 > 0 and
    y0 >= 0 (values checked where concrete); return T."""
    shape = jnp.shape(z_obs)
    if len(shape) < 2 or shape[-1] != 3:
        raise ValueError(f"z_obs must have shape (..., T, 3) = (h, y, w) over time, got {shape}")
    if shape[-2] < 3:
        raise ValueError(f"z_obs needs at least 3 recorded times to fit 2 rates, got {shape[-2]}")
    checks.values("z_obs", z_obs)
    v = checks.concrete(z_obs)
    if v is not None:
        checks.values("z_obs[..., 0, 0] (h0)", v[..., 0, 0], positive=True)
        checks.values("z_obs[..., 0, 1] (y0)", v[..., 0, 1], nonnegative=True)
    return shape[-2]


def _prepare(ts, z_obs, dx2, dy2):
    """Check a record and its pair geometry; return them as arrays of one float dtype and
    the batch shape they broadcast to."""
    n_times = _check_record(z_obs)
    check_times(ts, n_times)
    checks.values("dx2", dx2, positive=True)
    checks.values("dy2", dy2, nonnegative=True)
    shapes = (jnp.shape(z_obs)[:-2], jnp.shape(ts)[:-1], jnp.shape(dx2), jnp.shape(dy2))
    try:
        batch = jnp.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            "batch shapes of z_obs, ts, dx2 and dy2 do not broadcast: "
            + ", ".join(str(s) for s in shapes)
        ) from None
    dtype = jnp.result_type(ts, z_obs, dx2, dy2, float)
    ts, z_obs, dx2, dy2 = (jnp.asarray(a, dtype) for a in (ts, z_obs, dx2, dy2))
    return ts, z_obs, dx2, dy2, batch


def fit_rates(
    ts: Float[ArrayLike, "... times"],
    z_obs: Float[ArrayLike, "... times 3"],
    *,
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    options: FitOptions | None = None,
    return_trajectory: bool = False,
    **overrides,
) -> RateFit:
    """Fit (η_h, η_y) to the recorded h, y, w of one run or a batch of runs.

    docs/theory.md §5: minimises the loss (5.1) over the rates of the theory started from
    the recorded first state ``z_obs[..., 0, :]`` at ``ts[..., 0]``; the procedure (ratio
    from the conserved quantity (3.1), coarse and fine scan of the scale, Levenberg-Marquardt
    on log-rates) is described in ``rep_align.fit``'s docstring. All runs are fitted in one
    jitted call, compiled once per shape and ``FitOptions``. With a 1-D ``ts`` shared by
    all runs, every solver call integrates all runs as one stacked system (fast), so a
    run's numbers depend (within the solver's tolerance) on the batch it is fitted with;
    per-run time grids are fitted under ``jax.vmap``.

    Arguments:
        ts: save times in gradient steps, strictly increasing, ``(T,)`` shared by all runs
            or ``(..., T)`` per run.
        z_obs: recorded (h, y, w) at ``ts``, ``(..., T, 3)`` with T >= 3; h0 > 0 and
            y0 >= 0 at the first time.
        dx2, dy2: squared input (> 0) and target (>= 0) distances of each run's pair.
        options: the fit's settings (``FitOptions``; default ``FitOptions()``).
        return_trajectory: also return the fitted trajectory in ``z_fit`` (default False).
        **overrides: settings that replace those of ``options``, by ``FitOptions`` field
            name (``variant="flip_w"``, ``normalize=False``, ``rtol=...``, ...).

    Returns:
        A ``RateFit`` whose arrays have the broadcast batch shape of the arguments (without
        the time axis): rates per step, loss, R² of h, y, w, success, iterations, and the
        fitted trajectory if asked for.

    Raises:
        ValueError: on concrete bad input: ``z_obs`` not ``(..., T, 3)`` with T >= 3, h0 <= 0,
            y0 < 0, non-finite values, ``ts`` of the wrong length or not increasing,
            dx2 <= 0, dy2 < 0, batch shapes that do not broadcast, invalid settings
            (``FitOptions``).
        TypeError: for an override that is not a ``FitOptions`` field.
    """
    options = resolve(options, overrides, "fit_rates")
    ts, z_obs, dx2, dy2, batch = _prepare(ts, z_obs, dx2, dy2)
    n_times = z_obs.shape[-2]
    n = math.prod(batch)
    z_flat = jnp.broadcast_to(z_obs, batch + (n_times, 3)).reshape(n, n_times, 3)
    dx2_flat = jnp.broadcast_to(dx2, batch).reshape(n)
    dy2_flat = jnp.broadcast_to(dy2, batch).reshape(n)
    normalize = jnp.asarray(options.normalize)
    static = static_options(options)
    if ts.ndim == 1:
        fit = _fit_shared(ts, z_flat, dx2_flat, dy2_flat, normalize, static)
    else:
        ts_flat = jnp.broadcast_to(ts, batch + (n_times,)).reshape(n, n_times)
        fit = _fit_each(ts_flat, z_flat, dx2_flat, dy2_flat, normalize, static)
    fit = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), fit)
    return fit if return_trajectory else dataclasses.replace(fit, z_fit=None)


def fit_run(
    ts: Float[ArrayLike, " times"],
    z_obs: Float[ArrayLike, "times 3"],
    *,
    dx2: Float[ArrayLike, ""],
    dy2: Float[ArrayLike, ""],
    options: FitOptions | None = None,
    return_trajectory: bool = False,
    **overrides,
) -> RateFit:
    """Fit (η_h, η_y) to one run: ``fit_rates`` for a single example, to ``jax.vmap``.

    Handles one example: ``ts`` ``(T,)``, ``z_obs`` ``(T, 3)``, scalar ``dx2`` and ``dy2``;
    batch it with ``jax.vmap``. For many runs ``fit_rates`` is faster: it integrates all
    runs as one stacked system, where under ``vmap`` every solve becomes a masked while
    loop. Under ``jit``/``vmap`` the values cannot be checked: invalid ones raise nothing
    and give ``nan`` rates with ``success=False`` (h0 <= 0, non-finite records) or a
    meaningless fit (dx2 <= 0).

    Arguments:
        ts: save times in gradient steps, strictly increasing, ``(T,)``.
        z_obs: recorded (h, y, w) at ``ts``, ``(T, 3)``, T >= 3; h0 > 0, y0 >= 0.
        dx2, dy2: squared input (> 0) and target (>= 0) distances of the pair.
        options, return_trajectory, **overrides: as ``fit_rates``.

    Returns:
        A ``RateFit`` of scalars (``r2`` of shape (3,), ``z_fit`` (T, 3) if asked for).

    Raises:
        ValueError: on concrete bad input (see ``fit_rates``), and for batched shapes.
        TypeError: for an override that is not a ``FitOptions`` field.
    """
    options = resolve(options, overrides, "fit_run")
    if jnp.ndim(ts) != 1 or jnp.ndim(z_obs) != 2 or jnp.ndim(dx2) or jnp.ndim(dy2):
        raise ValueError(
            "fit_run fits one run: ts (T,), z_obs (T, 3), scalar dx2 and dy2; got shapes"
            f" {jnp.shape(ts)}, {jnp.shape(z_obs)}, {jnp.shape(dx2)}, {jnp.shape(dy2)}"
            " (use fit_rates or jax.vmap for batches)"
        )
    return fit_rates(
        ts,
        z_obs,
        dx2=dx2,
        dy2=dy2,
        options=options,
        return_trajectory=return_trajectory,
    )
