"""Fit of the mean-output rate η_m to a recorded loss curve (docs/theory.md (3.5), §5)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Float

from rep_align import checks, theory
from rep_align.fit._options import ETA_M_GRID, LAMBDA_INIT, LAMBDA_MAX, MAX_LOG_STEP
from rep_align.fit._options import convergence_tol as _tol
from rep_align.fit._rates import check_times
from rep_align.fit._results import EtaMFit, r_squared


@functools.partial(jax.jit, static_argnames=("out_dim", "max_iter"))
def _fit_eta_m_core(ts, loss_obs, z_fit, m0, dy2, *, out_dim, max_iter):
    def model(log_eta):
        return theory.loss_curve(ts, z_fit, eta_m=jnp.exp(log_eta), m0=m0, dy2=dy2, out_dim=out_dim)

    def sse(log_eta):
        r = model(log_eta) - loss_obs
        return jnp.sum(r * r, axis=-1)

    # Coarse scan on a fixed grid, every grid point at once (no ODE solve is involved).
    grid = jnp.log(jnp.asarray(ETA_M_GRID, loss_obs.dtype))
    batch = loss_obs.shape[:-1]
    scan = jax.vmap(lambda g: sse(jnp.full(batch, g)))(grid)  # (G, ...)
    scan = jnp.where(jnp.isfinite(scan), scan, jnp.inf)
    log_eta = grid[jnp.argmin(scan, axis=0)]
    best = jnp.min(scan, axis=0)

    # One-parameter Levenberg-Marquardt in log η_m with exact derivatives (jvp).
    def body(s):
        it, x, f, lam, done, conv = s
        r = model(x) - loss_obs
        _, jac = jax.jvp(model, (x,), (jnp.ones_like(x),))
        jj = jnp.sum(jac * jac, axis=-1)
        step = -jnp.sum(jac * r, axis=-1) / (jj * (1.0 + lam) + jnp.finfo(x.dtype).tiny)
        step = jnp.clip(step, -MAX_LOG_STEP, MAX_LOG_STEP)
        x_c = x + step
        f_c = sse(x_c)
        better = jnp.isfinite(f_c) & (f_c < f) & ~done
        small = jnp.abs(step) < _tol(x.dtype)
        converged = ~done & (
            (better & (small | (f - f_c <= _tol(x.dtype) * f)))
            | (~better & (small | (lam * 10.0 > LAMBDA_MAX)))
        )
        x = jnp.where(better, x_c, x)
        f = jnp.where(better, f_c, f)
        lam = jnp.where(done, lam, jnp.where(better, lam * 0.3, lam * 10.0))
        return it + 1, x, f, lam, done | converged, conv | converged

    def cond(s):
        return (s[0] < max_iter) & ~jnp.all(s[4])

    init = (
        jnp.asarray(0),
        log_eta,
        best,
        jnp.full(batch, LAMBDA_INIT, loss_obs.dtype),
        jnp.zeros(batch, bool),
        jnp.zeros(batch, bool),
    )
    _, log_eta, f, _, _, conv = jax.lax.while_loop(cond, body, init)
    ok = jnp.isfinite(f) & (m0 > 0)
    fitted = model(log_eta)
    r2 = r_squared(loss_obs[..., None], fitted[..., None])[..., 0]
    return EtaMFit(
        eta_m=jnp.where(ok, jnp.exp(log_eta), jnp.nan),
        loss=jnp.where(jnp.isfinite(f), f / loss_obs.shape[-1], jnp.nan),
        r2=r2,
        success=ok & conv,
    )


def fit_eta_m(
    ts: Float[ArrayLike, "... times"],
    loss_obs: Float[ArrayLike, "... times"],
    z_fit: Float[ArrayLike, "... times 3"],
    *,
    m0: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    out_dim: int = 1,
    max_iter: int = 50,
) -> EtaMFit:
    """Fit the mean-output rate η_m to a recorded loss curve (docs/theory.md §5).

    The model is ``theory.loss_curve``, docs/theory.md (3.5):
    L(t) = ¼ (2 m0 e^(−2 η_m (t − t0)) + w(t) + ½ (dy2 − y(t))) / out_dim, with y and w
    from the fitted trajectory ``z_fit`` (e.g. ``fit_rates(...,
    return_trajectory=True).z_fit``). Plain least squares over time in log η_m: a scan over
    10⁻⁸ … 10² (41 points) followed by Levenberg-Marquardt with exact derivatives.
    Leading batch dimensions broadcast; the function also vmaps.

    Arguments:
        ts: times in gradient steps, ``(..., T)``; ``ts[..., 0]`` is the time of ``m0``.
        loss_obs: recorded training loss (0.5·mse of the pair) at ``ts``, ``(..., T)``.
        z_fit: theory (h, y, w) at ``ts``, ``(..., T, 3)``.
        m0: initial squared error of the pair's mean output (> 0 for η_m to be defined).
        dy2: squared target distance of the pair.
        out_dim: number of output units the mean squared error averages over (default 1).
        max_iter: cap on refinement iterations (default 50).

    Returns:
        An ``EtaMFit`` with the broadcast batch shape: eta_m (``nan`` where m0 = 0 or
        the inputs are not finite), loss (mean squared error), R² of the loss curve,
        success.

    Raises:
        ValueError: on concrete bad input: shapes that do not match, non-finite
            ``loss_obs`` or ``ts``, ``ts`` not increasing, negative ``m0`` or ``dy2``,
            ``out_dim`` or ``max_iter`` not a positive int.
    """
    out_dim = checks.integer("out_dim", out_dim, minimum=1)
    max_iter = checks.integer("max_iter", max_iter, minimum=1)
    shape = jnp.shape(z_fit)
    if len(shape) < 2 or shape[-1] != 3:
        raise ValueError(f"z_fit must have shape (..., T, 3), got {shape}")
    n_times = shape[-2]
    if jnp.shape(loss_obs)[-1:] != (n_times,):
        raise ValueError(
            f"loss_obs must have shape (..., T) with T = {n_times}, got {jnp.shape(loss_obs)}"
        )
    check_times(ts, n_times)
    checks.values("loss_obs", loss_obs)
    checks.values("m0", m0, nonnegative=True)
    checks.values("dy2", dy2, nonnegative=True)
    dtype = jnp.result_type(ts, loss_obs, z_fit, m0, dy2, float)
    ts, loss_obs, z_fit, m0, dy2 = (jnp.asarray(a, dtype) for a in (ts, loss_obs, z_fit, m0, dy2))
    batch = jnp.broadcast_shapes(
        ts.shape[:-1], loss_obs.shape[:-1], z_fit.shape[:-2], m0.shape, dy2.shape
    )
    ts = jnp.broadcast_to(ts, batch + (n_times,))
    loss_obs = jnp.broadcast_to(loss_obs, batch + (n_times,))
    z_fit = jnp.broadcast_to(z_fit, batch + (n_times, 3))
    m0 = jnp.broadcast_to(m0, batch)
    dy2 = jnp.broadcast_to(dy2, batch)
    return _fit_eta_m_core(ts, loss_obs, z_fit, m0, dy2, out_dim=out_dim, max_iter=max_iter)
