"""The compiled rate fit: coarse and fine scan of the scale, then Levenberg-Marquardt on
the log-rates, all in one loop (``rep_align.fit``'s docstring)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from rep_align.fit._options import (
    FINE_POINTS,
    LAMBDA_INIT,
    LAMBDA_MAX,
    SCAN_PASSED,
    FitOptions,
    convergence_tol,
)
from rep_align.fit._pieces import (
    _differences,
    _finite_loss,
    _jacobian,
    _lm_step,
    _log_rates,
    _parabola_vertex,
    _residual_weights,
    _residuals,
    _solve,
    _start_ratio,
)
from rep_align.fit._results import RateFit, r_squared


class _State(NamedTuple):
    """Carry of the fitting loop (N runs). Scan phases fill the loss tables; the
    refinement phase uses the Levenberg-Marquardt fields."""

    phase: Array  # 0: coarse scan, 1: fine scan, 2: refinement
    k: Array  # chunk within the scan phase; refinement iteration in phase 2
    coarse: Array  # (N, coarse points) loss per scanned scale, +inf where not evaluated
    fine: Array  # (N, fine points)
    centre: Array  # (N,) log-scale of the best coarse point
    theta: Array  # (N, 2) current log-rates
    z: Array  # (N, T, 3) trajectory at theta
    r: Array  # (N, 3T) weighted residuals at theta
    jac: Array  # (N, 3T, 2)
    loss: Array  # (N,)
    lam: Array  # (N,) damping
    nu: Array  # (N,) damping growth on rejection
    done: Array  # (N,) refinement finished
    conv: Array  # (N,) refinement converged
    iters: Array  # (N,) refinement iterations used


def _fit_core(ts, z_obs, dx2, dy2, normalize, options: FitOptions):
    """Fit N runs sharing the 1-D time grid ``ts``: z_obs (N, T, 3), dx2, dy2 (N,).

    One loop, one solver call site per iteration (a compiled adaptive solve is large; one
    site instead of three cuts compilation time by about three): every iteration solves
    ``members`` log-rate pairs per run, all runs stacked, and the phase decides which:
    a chunk of the coarse scale scan, a chunk of the fine scan around the best coarse
    scale, or a refinement candidate with its finite-difference neighbours.
    """
    n, n_times, _ = z_obs.shape
    dtype = z_obs.dtype
    stacked = options.variant == "theory"
    sqrt_w = jnp.sqrt(_residual_weights(z_obs, normalize))
    log_ratio = jnp.log(_start_ratio(z_obs, dx2, dy2, options.variant))
    offsets_np, delta = _differences(options.variant, dtype)
    offsets = jnp.asarray(offsets_np, dtype)
    members = offsets_np.shape[0]

    # Coarse scan grid in chunks of ``members`` scales, padded with the largest scale.
    lo, hi = options.scan_range
    log_scales = np.log(np.logspace(np.log10(lo), np.log10(hi), options.scan_points))
    spacing = float(log_scales[1] - log_scales[0]) if log_scales.size > 1 else 1.0
    n_coarse = -(-log_scales.size // members)
    coarse_np = np.concatenate(
        [log_scales, np.full(n_coarse * members - log_scales.size, log_scales[-1])]
    ).reshape(n_coarse, members)
    # The steps of an explicit solver grow at most linearly with the scale (linearly once
    # the trajectory has converged and the step size is limited by stability): bound for
    # the steps of the next chunk relative to this one.
    growth = jnp.asarray(np.exp(np.diff(coarse_np.max(axis=1), append=np.inf)), dtype)
    coarse_x = jnp.asarray(coarse_np, dtype)
    n_fine = -(-FINE_POINTS // members)
    fine_np = np.linspace(-spacing, spacing, n_fine * members)
    fine_spacing = float(fine_np[1] - fine_np[0])
    fine_off = jnp.asarray(fine_np.reshape(n_fine, members), dtype)

    z0 = z_obs[:, None, 0, :]
    tol = convergence_tol(dtype)

    def body(s: _State) -> _State:
        coarse_phase, fine_phase, lm_phase = s.phase == 0, s.phase == 1, s.phase == 2
        k_coarse = jnp.minimum(s.k, n_coarse - 1)
        k_fine = jnp.minimum(s.k, n_fine - 1)
        theta_coarse = _log_rates(coarse_x[k_coarse][None, :], log_ratio[:, None])
        theta_fine = _log_rates(s.centre[:, None] + fine_off[k_fine], log_ratio[:, None])

        first = lm_phase & (s.k == 0)
        step, predicted = _lm_step(s.jac, s.r, s.lam)
        # Converged when the Gauss-Newton model promises no relevant decrease: saves the
        # solve that would only confirm it.
        flat = lm_phase & ~first & ~s.done & jnp.isfinite(s.loss) & (predicted <= tol * s.loss)
        step = jnp.where((first | s.done | flat)[:, None], 0.0, step)
        done = s.done | flat
        # Finished runs still ride along in the stacked solve; tiny rates make their
        # trajectories nearly constant, so they cannot dictate the shared step size.
        theta_c = jnp.where(done[:, None], s.theta - 30.0, s.theta + step)
        theta_lm = theta_c[:, None, :] + offsets

        theta = jnp.where(coarse_phase, theta_coarse, jnp.where(fine_phase, theta_fine, theta_lm))
        z, info = _solve(theta, z0, ts, dx2[:, None], dy2[:, None], options)
        r = _residuals(z, z_obs[:, None], sqrt_w[:, None])
        member_loss = _finite_loss(r)  # (N, members); failed solves are +inf

        # Coarse scan: stop after the last chunk, after a chunk that failed as a whole,
        # before a chunk that may exceed the step budget, or once every run's loss has
        # risen far above its best (larger scales make the theory converge ever earlier
        # in the record and fit it ever worse).
        coarse = jax.lax.dynamic_update_slice(s.coarse, member_loss, (0, k_coarse * members))
        steps = jnp.max(info.num_steps).astype(dtype)
        too_slow = (steps * growth[k_coarse] > options.scan_max_steps) if stacked else False
        passed = jnp.all(jnp.min(member_loss, axis=1) > SCAN_PASSED * jnp.min(s.coarse, axis=1))
        coarse_end = (s.k + 1 >= n_coarse) | ~jnp.any(info.success) | too_slow | passed
        centre = coarse_x.reshape(-1)[jnp.argmin(coarse, axis=1)]

        # Fine scan, ±1 coarse spacing around the best coarse scale: a trajectory whose
        # representation difference flips sign (h passes near 0) fits only in a valley of
        # scales narrower than the coarse spacing.
        fine = jax.lax.dynamic_update_slice(s.fine, member_loss, (0, k_fine * members))
        fine_end = s.k + 1 >= n_fine
        x_fine = s.centre[:, None] + fine_off.reshape(-1)
        theta_start = _log_rates(_parabola_vertex(x_fine, fine, fine_spacing), log_ratio)

        # Refinement: accept the candidate if it lowers the loss and its Jacobian is usable.
        loss_c = member_loss[:, 0]
        jac_c = _jacobian(r, delta)
        usable = jnp.isfinite(loss_c) & jnp.all(jnp.isfinite(jac_c), axis=(-2, -1))
        better = lm_phase & usable & (loss_c < s.loss) & ~done
        gain = s.loss - loss_c
        small = jnp.max(jnp.abs(step), axis=-1) < tol
        stuck = s.lam * s.nu > LAMBDA_MAX
        converged = (
            lm_phase
            & ~first
            & ~done
            & (
                (better & (small | (gain <= tol * s.loss)))
                | (~better & jnp.isfinite(s.loss) & (small | stuck))
            )
        )
        failed = first & ~better
        # Nielsen's damping update: shrink λ by how well the model predicted the decrease,
        # grow it geometrically (×2, ×4, ×8, ...) on consecutive rejections.
        quality = gain / jnp.where(predicted > 0, predicted, jnp.inf)
        shrink = jnp.where(first, 1.0, jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * quality - 1.0) ** 3))
        keep = done | ~lm_phase
        lam = jnp.where(keep, s.lam, jnp.where(better, s.lam * shrink, s.lam * s.nu))
        nu = jnp.where(keep, s.nu, jnp.where(better, 2.0, 2.0 * s.nu))
        iters = jnp.where(keep, s.iters, s.k + 1)

        b1, b2 = better[:, None], better[:, None, None]
        next_phase = jnp.where(
            coarse_phase & coarse_end, 1, jnp.where(fine_phase & fine_end, 2, s.phase)
        )
        return _State(
            phase=next_phase,
            k=jnp.where(next_phase != s.phase, 0, s.k + 1),
            coarse=jnp.where(coarse_phase, coarse, s.coarse),
            fine=jnp.where(fine_phase, fine, s.fine),
            centre=jnp.where(coarse_phase, centre, s.centre),
            theta=jnp.where(fine_phase & fine_end, theta_start, jnp.where(b1, theta_c, s.theta)),
            z=jnp.where(b2, z[:, 0], s.z),
            r=jnp.where(b1, r[:, 0], s.r),
            jac=jnp.where(b2, jac_c, s.jac),
            loss=jnp.where(better, loss_c, s.loss),
            lam=lam,
            nu=nu,
            done=done | converged | failed,
            conv=(s.conv | flat | converged) & ~failed,
            iters=iters,
        )

    def cond(s: _State):
        return (s.phase < 2) | ((s.k < options.max_iter) & ~jnp.all(s.done))

    def full(shape, value, dt=dtype):
        return jnp.full(shape, value, dt)

    init = _State(
        phase=jnp.asarray(0),
        k=jnp.asarray(0),
        coarse=full((n, n_coarse * members), jnp.inf),
        fine=full((n, n_fine * members), jnp.inf),
        centre=full((n,), 0.0),
        theta=full((n, 2), 0.0),
        z=full((n, n_times, 3), jnp.nan),
        r=full((n, 3 * n_times), 0.0),
        jac=full((n, 3 * n_times, 2), 0.0),
        loss=full((n,), jnp.inf),
        lam=full((n,), LAMBDA_INIT),
        nu=full((n,), 2.0),
        done=jnp.zeros((n,), bool),
        conv=jnp.zeros((n,), bool),
        iters=jnp.zeros((n,), jnp.int32),
    )
    s = jax.lax.while_loop(cond, body, init)
    found = jnp.isfinite(s.loss)
    rates = jnp.where(found[:, None], jnp.exp(s.theta), jnp.nan)
    # A fit that ran off the scanned range (typically towards zero rates, when the theory
    # cannot follow the record at all and a frozen trajectory is the best it can do) has
    # converged to nothing meaningful.
    scale = jnp.mean(s.theta, axis=-1)
    inside = (scale >= math.log(lo)) & (scale <= math.log(hi))
    return RateFit(
        eta_h=rates[:, 0],
        eta_y=rates[:, 1],
        loss=jnp.where(found, s.loss, jnp.nan),
        r2=r_squared(z_obs, s.z),
        success=s.conv & found & inside,
        num_iters=s.iters,
        z_fit=s.z,
    )


# ``options`` is static (hashable FitOptions); ``normalize`` is traced, and callers pass
# options whose own ``normalize`` is fixed (``static_options``), so that both losses share
# one compilation.


@functools.partial(jax.jit, static_argnames=("options",))
def _fit_shared(ts, z_obs, dx2, dy2, normalize, options: FitOptions):
    return _fit_core(ts, z_obs, dx2, dy2, normalize, options)


@functools.partial(jax.jit, static_argnames=("options",))
def _fit_each(ts, z_obs, dx2, dy2, normalize, options: FitOptions):
    # Per-run time grids cannot share one stacked solve: vmap runs of one.
    def one(t, z, a, b):
        fit = _fit_core(t, z[None], a[None], b[None], normalize, options)
        return jax.tree_util.tree_map(lambda x: x[0], fit)

    return jax.vmap(one)(ts, z_obs, dx2, dy2)


def static_options(options: FitOptions) -> FitOptions:
    """The static argument of ``_fit_shared``/``_fit_each`` for ``options``: the same
    settings with ``normalize`` fixed (it is passed traced instead)."""
    return dataclasses.replace(options, normalize=True)
