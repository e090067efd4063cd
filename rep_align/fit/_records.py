"""Fitting recorded runs in bulk: masking of runs that cannot be fitted, float64, optional
padding to a fixed batch size (used by the sweep engine and the experiments)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Bool, Float

from rep_align import checks, theory
from rep_align.fit._eta_m import fit_eta_m
from rep_align.fit._options import FitOptions, resolve
from rep_align.fit._rates import fit_rates
from rep_align.fit._results import EtaMFit, RateFit


def _per_run(name: str, x, n: int) -> np.ndarray:
    """``x`` (scalar or (R,)) as a float64 array of shape (n,)."""
    a = np.asarray(x, np.float64)
    if a.shape not in ((), (n,)):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got shape {a.shape}")
    return np.broadcast_to(a, (n,))


def _record(name: str, x, ndim: int) -> np.ndarray:
    """``x`` as a float64 array (R, T, 3) (``ndim`` 3) or (R, T) (``ndim`` 2)."""
    a = np.asarray(x, np.float64)
    what = "(R, T, 3)" if ndim == 3 else "(R, T)"
    if a.ndim != ndim or (ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"{name} must have shape {what}, got shape {a.shape}")
    return a


def _rows(ok: np.ndarray, pad_to: int | None) -> np.ndarray:
    """Rows of the records that form the fitted batch (``fit_records``, ``pad_to``)."""
    idx = np.flatnonzero(ok)
    if pad_to is None:
        return idx
    return np.concatenate([idx, np.full(pad_to - idx.size, idx[0])])


def _scatter(a: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """Rows ``a`` of the fitted runs ``idx`` into n rows; the others False (bool), -1
    (integers) or NaN (floats)."""
    fill = False if a.dtype == bool else (-1 if a.dtype.kind in "iu" else np.nan)
    out = np.full((n,) + a.shape[1:], fill, dtype=a.dtype)
    out[idx] = a
    return out


def _check_pad(pad_to, n: int) -> int | None:
    return None if pad_to is None else checks.integer("pad_to", pad_to, minimum=n)


def fit_records(
    ts: Float[ArrayLike, " times"],
    z_obs: Float[ArrayLike, "runs times 3"],
    *,
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    options: FitOptions | None = None,
    return_trajectory: bool = False,
    pad_to: int | None = None,
    where: Bool[ArrayLike, " runs"] | None = None,
    **overrides,
) -> RateFit:
    """Fit (η_h, η_y) to R recorded runs, leaving out those that cannot be fitted.

    ``fit_rates`` (docs/theory.md §5) in float64 (inside ``jax.enable_x64(True)``) on the
    runs whose record is finite, with h0 > 0, y0 >= 0 and dx2 > 0 (and ``where``): all of
    them in one call. The others are not fitted: NaN rates, loss, R² and trajectory,
    ``success`` False, ``num_iters`` −1.

    The batch composition changes a fit's numbers (within the solver's tolerance, not bit
    for bit): with a shared time grid the theory is integrated as one stacked system with
    one step size. ``pad_to`` chooses the composition, and the two modes are not
    interchangeable:

    - ``pad_to=None``: the fittable runs, in order, compacted (no padding);
    - ``pad_to=n`` (n >= R): the fittable runs, in order, then copies of the first of them
      up to n rows, so that every call with R <= n compiles the same shape (a sweep's
      group of chunks compiles once).

    Arguments:
        ts: save times in gradient steps, strictly increasing, ``(T,)``, shared by all runs.
        z_obs: recorded (h, y, w) at ``ts``, ``(R, T, 3)`` with T >= 3.
        dx2, dy2: squared input and target distances of each run's pair, scalars or
            ``(R,)``; dy2 of a fittable run must be finite and >= 0.
        options, **overrides: the fit's settings (as ``fit_rates``).
        return_trajectory: also return the fitted trajectories in ``z_fit`` (default False).
        pad_to: None (default) or the number of rows n >= R of the fitted batch (above).
        where: optional ``(R,)`` bool, False for runs to leave out on the caller's own
            grounds (e.g. a diverged loss); default all runs.

    Returns:
        A ``RateFit`` of NumPy arrays with leading axis R (``fit_rates``); if no run can
        be fitted, all of them are filled as unfitted runs.

    Raises:
        ValueError: on shapes that are not as above, ``pad_to`` below R, invalid settings,
            or bad input among the fittable runs (``fit_rates``: e.g. ``ts`` not
            increasing, dy2 < 0).
        TypeError: for an override that is not a ``FitOptions`` field.
    """
    options = resolve(options, overrides, "fit_records")
    z_obs = _record("z_obs", z_obs, 3)
    n, n_times = z_obs.shape[:2]
    dx2 = _per_run("dx2", dx2, n)
    dy2 = _per_run("dy2", dy2, n)
    pad_to = _check_pad(pad_to, n)
    ok = np.all(np.isfinite(z_obs), axis=(1, 2)) & (z_obs[:, 0, 0] > 0) & (z_obs[:, 0, 1] >= 0)
    ok &= dx2 > 0
    if where is not None:
        where = np.asarray(where)
        if where.dtype != bool or where.shape not in ((), (n,)):
            raise ValueError(f"where must be a bool scalar or array of shape ({n},), got {where!r}")
        ok &= where
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        nan = np.full(n, np.nan)
        return RateFit(
            eta_h=nan,
            eta_y=nan.copy(),
            loss=nan.copy(),
            r2=np.full((n, 3), np.nan),
            success=np.zeros(n, bool),
            num_iters=np.full(n, -1, np.int32),
            z_fit=np.full((n, n_times, 3), np.nan) if return_trajectory else None,
        )
    rows = _rows(ok, pad_to)
    with jax.enable_x64(True):
        res = fit_rates(
            np.asarray(ts, np.float64),
            jnp.asarray(z_obs[rows]),
            dx2=dx2[rows],
            dy2=dy2[rows],
            options=options,
            return_trajectory=return_trajectory,
        )
        res = jax.tree_util.tree_map(np.asarray, res)
    return jax.tree_util.tree_map(lambda a: _scatter(a[: idx.size], idx, n), res)


#: R² each fitted observable must reach for ``fits_well`` (package docstring, "Fits that fit").
R2_MIN = 0.9


def fits_well(
    rates: RateFit, eta_m: EtaMFit | None = None, *, r2_min: float = R2_MIN
) -> np.ndarray:
    """Whether each fit follows its record: ``rates.success`` and every R² of h, y, w at
    least ``r2_min`` (NaN R², a record constant in time, is not held against it); with
    ``eta_m``, also its ``success`` and its loss-curve R² at least ``r2_min``.

    Returns:
        ``(R,)`` bool.
    """
    r2 = np.asarray(rates.r2)
    ok = np.asarray(rates.success) & np.all(np.isnan(r2) | (r2 >= r2_min), axis=-1)
    if eta_m is not None:
        m2 = np.asarray(eta_m.r2)
        ok &= np.asarray(eta_m.success) & (np.isnan(m2) | (m2 >= r2_min))
    return ok


def fit_eta_m_records(
    ts: Float[ArrayLike, " times"],
    loss: Float[ArrayLike, "runs times"],
    z_fit: Float[ArrayLike, "runs times 3"],
    *,
    m0: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    out_dim: int,
    pad_to: int | None = None,
) -> EtaMFit:
    """Fit η_m to R recorded loss curves, leaving out runs with non-finite inputs.

    ``fit_eta_m`` (docs/theory.md (3.5)) in float64 (inside ``jax.enable_x64(True)``) on
    the runs whose loss curve and fitted trajectory (e.g. ``fit_records(...,
    return_trajectory=True).z_fit``, NaN for runs it left out) are finite, all in one
    call. The others get NaN, ``success`` False. Each run's η_m fit is independent of
    the others in the batch (no stacked solve), so the two modes give the same numbers up
    to the compiled batch size:

    - ``pad_to=None``: the fittable runs, in order, compacted;
    - ``pad_to=n`` (n >= R): all R rows in place, each unfittable one replaced by the
      first fittable run, then copies of it up to n rows: one compiled shape for every
      call with R <= n.

    Arguments:
        ts: times in gradient steps, ``(T,)``; ``ts[0]`` is the time of ``m0``.
        loss: recorded training loss at ``ts``, ``(R, T)``.
        z_fit: theory (h, y, w) at ``ts``, ``(R, T, 3)``.
        m0: initial squared error of each pair's mean output, scalar or ``(R,)``, >= 0
            for the fittable runs.
        dy2: squared target distance, scalar or ``(R,)``, >= 0 for the fittable runs.
        out_dim: number of output units the mean squared error averages over.
        pad_to: None (default) or the number of rows n >= R of the fitted batch (above).

    Returns:
        An ``EtaMFit`` of NumPy arrays with leading axis R (all NaN/False when no run has
        finite inputs).

    Raises:
        ValueError: on shapes that are not as above, ``pad_to`` below R, or bad input
            among the fittable runs (``fit_eta_m``).
    """
    loss = _record("loss", loss, 2)
    z_fit = _record("z_fit", z_fit, 3)
    n = loss.shape[0]
    if z_fit.shape[:2] != loss.shape:
        raise ValueError(
            f"z_fit must have shape {loss.shape + (3,)} (that of loss, times 3),"
            f" got shape {z_fit.shape}"
        )
    m0 = _per_run("m0", m0, n)
    dy2 = _per_run("dy2", dy2, n)
    pad_to = _check_pad(pad_to, n)
    ok = np.all(np.isfinite(z_fit), axis=(1, 2)) & np.all(np.isfinite(loss), axis=1)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        nan = np.full(n, np.nan)
        return EtaMFit(eta_m=nan, loss=nan.copy(), r2=nan.copy(), success=np.zeros(n, bool))
    if pad_to is None:
        rows, kept = idx, slice(None)
    else:
        rows = np.concatenate([np.where(ok, np.arange(n), idx[0]), np.full(pad_to - n, idx[0])])
        kept = idx
    with jax.enable_x64(True):
        res = fit_eta_m(
            np.asarray(ts, np.float64),
            jnp.asarray(loss[rows]),
            jnp.asarray(z_fit[rows]),
            m0=m0[rows],
            dy2=dy2[rows],
            out_dim=out_dim,
        )
        res = jax.tree_util.tree_map(np.asarray, res)
    return jax.tree_util.tree_map(lambda a: _scatter(a[kept], idx, n), res)


def predicted_final_distance(
    h0: Float[ArrayLike, "..."],
    y0: Float[ArrayLike, "..."],
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
) -> np.ndarray:
    """The theory's converged distance h∞, docs/theory.md (3.2), from fitted rates.

    ``theory.final_distance`` where every input is finite, h0 > 0, y0 >= 0, eta_h > 0 and
    eta_y > 0; NaN elsewhere (diverged runs, failed fits). It is evaluated in JAX's
    default float, float32 unless 64-bit mode is on (``jax.enable_x64``), as rep_align's
    summaries always have been (relative rounding about 1e-7, far below the spread over
    seeds); enable 64-bit mode around the call for float64. The arguments broadcast
    against each other.

    Arguments:
        h0, y0: recorded initial squared representational and output distances.
        eta_h, eta_y: fitted rates per gradient step (NaN where not fitted).
        dx2, dy2: squared input and target distances (>= 0 where the rest is valid).

    Returns:
        h∞, a float64 NumPy array of the broadcast shape (values in JAX's default float).

    Raises:
        ValueError: when the arguments do not broadcast, or dx2 or dy2 is negative where
            the other inputs are valid (``theory.final_distance``).
    """
    args = np.broadcast_arrays(
        *(np.asarray(a, np.float64) for a in (h0, y0, eta_h, eta_y, dx2, dy2))
    )
    h0, y0, eta_h, eta_y, dx2, dy2 = args
    ok = np.all([np.isfinite(a) for a in args], axis=0)
    ok &= (h0 > 0) & (y0 >= 0) & (eta_h > 0) & (eta_y > 0)
    out = np.full(ok.shape, np.nan)
    if np.any(ok):
        out[ok] = np.asarray(
            theory.final_distance(
                h0[ok], y0[ok], eta_h=eta_h[ok], eta_y=eta_y[ok], dx2=dx2[ok], dy2=dy2[ok]
            )
        )
    return out
