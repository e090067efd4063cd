"""Fitting effective learning rates to recorded trajectories (THEORY.md section 5).

Given the recorded h, y, w of one pair of training points at save times ``ts`` (gradient
steps), ``fit_rates`` finds the encoder and decoder rates (η_h, η_y) whose theory trajectory,
started from the recorded first state (h0, y0, w0), best matches the record in the least
squares sense; ``fit_eta_m`` then fits the mean-output rate η_m to the recorded loss curve,
with y and w from the fitted trajectory. Any ablation of THEORY.md section 4 can be fitted
in place of the theory (``variant=``).

Procedure, per run:

1. **Ratio.** Along every theory trajectory C = h/(η_h dx2) − y/(η_y h) is conserved
   (THEORY.md section 3). Multiplied out, h·h0·(h − h0) = ρ·dx2·(y·h0 − y0·h) with
   ρ = η_h/η_y holds at *every* recorded time, so ρ is estimated by least squares over the
   whole record. At the last time of a converged record this is exactly the relation of
   ``theory.final_distance`` solved for the ratio, and for small initial weights it becomes
   the reference study's rich-regime relation h∞² ≈ ρ·dx2·dy2; using every time makes it
   hold in the lazy regime and for records that have not converged, and averages noise.
   Each ablation conserves its own such quantity (see ``_ratio_relation``), so fitting a
   variant starts from its own exact relation. Where the estimate is not positive (noise
   on records that barely move) the rich-regime relation with the last recorded h is used.
2. **Scale scan.** At this ratio the overall scale c = √(η_h η_y) is scanned over
   ``scan_range`` (10⁻⁶ … 10², 33 log-spaced points by default), from small to large
   scales, a few scales per solve; then a fine scan of 9 points over ±1 coarse spacing
   around the best one (a trajectory whose representation difference flips sign, h passing
   near 0, fits only in a valley narrower than the coarse spacing), and a parabola through
   the best fine point. Failed solves count as +inf. The coarse scan stops early once
   every run's loss has risen 100-fold above its best, or before a chunk of scales that
   could need more than ``scan_max_steps`` steps of the (explicit) solver: the step count
   grows at most linearly with the scale, linearly once the trajectory has converged and
   stability limits the step, and such large scales converge within a small fraction of
   the record, hopeless fits that only cost time.
3. **Refinement.** Levenberg-Marquardt on the log-rates θ = (log η_h, log η_y) with
   Nielsen's damping update and a trust bound of 1.5 per log-rate and step. Each iteration
   is one solve of the candidate together with its finite-difference neighbours. The theory
   is solved as one stacked system (one step size for all members), so the differences of
   its members are derivatives of the discretised solution itself, exact up to round-off:
   forward differences with δ = 10·√eps, 3 members. The ablations are solved member by
   member (their own steps) and use central differences with δ = 10⁻³, 5 members.

Why Gauss-Newton and finite differences: two parameters, 3T residuals that are nearly zero
at the optimum: Gauss-Newton converges in 3 to 10 solves (quadratically near the optimum),
where first-order methods (Adam via optax, L-BFGS on the summed loss) need hundreds of
solves and reverse-mode sweeps. An exact Jacobian would need forward-mode autodiff, which
``theory.solve`` does not support (its diffrax adjoint is reverse-mode only), or 3T
reverse-mode sweeps. ``optimistix.LevenbergMarquardt`` computes its Jacobian by autodiff of
the residual function and so cannot be used through ``theory.solve``; the 2×2 damped
normal equations are solved in closed form here instead.

Loss. The residuals are theory minus record for h, y and w at every save time. With
``normalize=True`` (default) each observable's sum of squared errors is divided by its sum
of squares about its mean, so the loss is the mean over h, y, w of (1 − R²) and none of the
three dominates by its units (h and y can differ by orders of magnitude); a floor of
(10⁻³ · RMS)² per time point keeps an observable that barely moves from being weighted
without bound. With ``normalize=False`` the loss is the plain mean squared error over time
and observables, as in the reference study. R² per observable is reported either way.

Success. ``RateFit.success`` is True where the refinement met its convergence test (relative
decrease of the loss, predicted or achieved, below 1e-8, or a log-step below 1e-8, or no
further decrease possible at the solver's precision) with a finite loss, at a scale
√(η_h η_y) inside ``scan_range``. A fit that runs off the range (towards zero rates, when
the model cannot follow the record at all and a frozen trajectory is its best answer) is
reported as failed with its rates, so it can be inspected.

Precision: fit in float64 (``jax.enable_x64``). In float32 ``theory.solve`` floors the
tolerances at about 7.6e-6 and the finite differences are coarser; the fit still runs,
with rates good to about 1e-3 relative instead of about 1e-8 (noise-free records).

Batches and speed: ``fit_rates`` fits all runs of a batch in one jitted call (compiled once
per shape and configuration). With a shared 1-D ``ts`` every iteration integrates all runs
and members as ONE stacked system; a run that has converged rides along with tiny rates, so
it costs no solver steps. ``fit_run`` fits one run and can be ``jax.vmap``-ed (slower than
``fit_rates``: under vmap each solve becomes a masked while loop). Per-run time grids are
fitted under vmap.

Ablations are integrated by ``theory.solve`` with the implicit Kvaerno5, member by member,
which is slower; some initial conditions make them fail (h reaching 0 in the (h, y, w) form).
Failed solves are +inf in the scan and rejected candidates in the refinement; nothing is
raised, and a run that cannot be fitted comes back with ``success=False``. A failing solve
costs up to ``max_steps`` solver steps: lower it for large ablation sweeps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from rep_align import theory

__all__ = ["RateFit", "EtaMFit", "fit_rates", "fit_run", "fit_eta_m", "r_squared"]


# ----------------------------------------------------------------------------------------
# Result containers
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RateFit:
    """Fitted (η_h, η_y) of one run or a batch of runs (a pytree; batch dims lead).

    Attributes:
        eta_h, eta_y: fitted rates per gradient step, shape ``batch``; ``nan`` where no
            finite fit was found.
        loss: final value of the fit objective (see the module docstring), ``batch``.
        r2: coefficient of determination of h, y and w (in that order), ``batch + (3,)``:
            1 − Σ_t (record − theory)² / Σ_t (record − mean of record)².
        success: ``batch`` bool; True where the refinement converged with a finite loss at a
            scale √(η_h η_y) inside the scanned range (module docstring).
        num_iters: refinement iterations used (one stacked solve each), ``batch``.
        z_fit: the fitted theory trajectory at ``ts``, ``batch + (T, 3)``, if requested
            (``return_trajectory=True``), else ``None``.
    """

    eta_h: Float[Array, "..."]
    eta_y: Float[Array, "..."]
    loss: Float[Array, "..."]
    r2: Float[Array, "... 3"]
    success: Bool[Array, "..."]
    num_iters: Int[Array, "..."]
    z_fit: Float[Array, "... times 3"] | None = None


jax.tree_util.register_dataclass(
    RateFit,
    data_fields=["eta_h", "eta_y", "loss", "r2", "success", "num_iters", "z_fit"],
    meta_fields=[],
)


@dataclasses.dataclass(frozen=True)
class EtaMFit:
    """Fitted mean-output rate η_m of one run or a batch of runs (a pytree).

    Attributes:
        eta_m: fitted rate per gradient step, shape ``batch``; ``nan`` where it is not
            determined (m0 = 0, or a non-finite input trajectory).
        loss: mean squared error between the recorded and the theory loss curve.
        r2: R² of the loss curve.
        success: True where the fit converged with a finite loss and m0 > 0.
    """

    eta_m: Float[Array, "..."]
    loss: Float[Array, "..."]
    r2: Float[Array, "..."]
    success: Bool[Array, "..."]


jax.tree_util.register_dataclass(
    EtaMFit, data_fields=["eta_m", "loss", "r2", "success"], meta_fields=[]
)


# ----------------------------------------------------------------------------------------
# Constants of the procedure (module docstring)
# ----------------------------------------------------------------------------------------

_FLOOR_REL = 1e-3  # normalisation floor, relative to an observable's RMS
_FINE_POINTS = 9  # scales in the fine scan, spanning ±1 coarse spacing
_SCAN_PASSED = 100.0  # the scan stops once every run's loss exceeds its best this many times
_MAX_LOG_STEP = 1.5  # trust bound on each log-rate per refinement step (a factor e^1.5)
_LAMBDA_INIT = 1e-3  # Marquardt damping, relative to the diagonal of JᵀJ
_LAMBDA_MAX = 1e8  # beyond this no step helps: we are at the minimum to solver precision
# Convergence: relative decrease of the loss, and log-step (relative change of a rate),
# below which the fit has converged. The solver's own error (rtol 1e-8 in the trajectory)
# moves the loss by about this much; asking for less only makes steps bounce off that
# noise. In float32 the floor is 100 ulps (about 1.2e-5).
_TOL = 1e-8


def _tol(dtype) -> float:
    return max(_TOL, 100 * float(jnp.finfo(dtype).eps))


_ETA_M_GRID = np.logspace(-8.0, 2.0, 41)


# ----------------------------------------------------------------------------------------
# Input validation (concrete values only)
# ----------------------------------------------------------------------------------------


def _concrete(x) -> np.ndarray | None:
    return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def _describe(v: np.ndarray) -> str:
    if v.ndim == 0:
        return repr(v.item())
    return f"array of shape {v.shape} (e.g. {', '.join(repr(float(s)) for s in v.ravel()[:3])})"


def _check_finite(name: str, x) -> None:
    v = _concrete(x)
    if v is not None and not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {_describe(v[~np.isfinite(v)])}")


def _check_sign(name: str, x, *, strict: bool) -> None:
    _check_finite(name, x)
    v = _concrete(x)
    if v is not None:
        bad = v <= 0 if strict else v < 0
        if np.any(bad):
            raise ValueError(f"{name} must be {'>' if strict else '>='} 0, got {_describe(v[bad])}")


def _check_times(ts, n_times: int) -> None:
    shape = jnp.shape(ts)
    if len(shape) < 1 or shape[-1] != n_times:
        raise ValueError(
            f"ts must have shape (..., T) with T = {n_times} (the time axis of the record),"
            f" got shape {shape}"
        )
    _check_finite("ts", ts)
    v = _concrete(ts)
    if v is not None and not np.all(np.diff(v, axis=-1) > 0):
        raise ValueError("ts must be strictly increasing along its last axis")


def _check_record(z_obs) -> int:
    shape = jnp.shape(z_obs)
    if len(shape) < 2 or shape[-1] != 3:
        raise ValueError(f"z_obs must have shape (..., T, 3) = (h, y, w) over time, got {shape}")
    if shape[-2] < 3:
        raise ValueError(f"z_obs needs at least 3 recorded times to fit 2 rates, got {shape[-2]}")
    _check_finite("z_obs", z_obs)
    v = _concrete(z_obs)
    if v is not None:
        if not np.all(v[..., 0, 0] > 0):
            raise ValueError(f"z_obs[..., 0, 0] (h0) must be > 0, got {_describe(v[..., 0, 0])}")
        if not np.all(v[..., 0, 1] >= 0):
            raise ValueError(f"z_obs[..., 0, 1] (y0) must be >= 0, got {_describe(v[..., 0, 1])}")
    return shape[-2]


# ----------------------------------------------------------------------------------------
# Pieces of the fit
# ----------------------------------------------------------------------------------------


def r_squared(
    observed: Float[ArrayLike, "... times k"], predicted: Float[ArrayLike, "... times k"]
) -> Float[Array, "... k"]:
    """R² per observable: 1 − Σ_t (obs − pred)² / Σ_t (obs − mean_t obs)².

    Arguments:
        observed, predicted: ``(..., T, K)`` arrays (for trajectories K = 3: h, y, w);
            they broadcast.

    Returns:
        ``(..., K)``; ``nan`` where the record is constant in time (R² undefined) or the
        prediction is not finite.
    """
    observed = jnp.asarray(observed)
    predicted = jnp.asarray(predicted)
    ss_res = jnp.sum((observed - predicted) ** 2, axis=-2)
    ss_tot = jnp.sum((observed - jnp.mean(observed, axis=-2, keepdims=True)) ** 2, axis=-2)
    return jnp.where(ss_tot > 0, 1.0 - ss_res / jnp.where(ss_tot > 0, ss_tot, 1.0), jnp.nan)


def _residual_weights(z_obs, normalize):
    """Weights (N, 3) so that Σ weight·(theory − record)² is the loss (module docstring).

    ``normalize`` is traced (a bool array), so both choices share one compilation.
    """
    n_times = z_obs.shape[-2]
    plain = jnp.full(z_obs.shape[:-2] + (3,), 1.0 / (3 * n_times), z_obs.dtype)
    ss_tot = jnp.sum((z_obs - jnp.mean(z_obs, axis=-2, keepdims=True)) ** 2, axis=-2)
    floor = n_times * _FLOOR_REL**2 * jnp.mean(z_obs**2, axis=-2)
    spread = 1.0 / (3.0 * (ss_tot + floor + jnp.finfo(z_obs.dtype).tiny))
    return jnp.where(normalize, spread, plain)


def _residuals(z, z_obs, sqrt_w):
    """Weighted residuals flattened over (time, observable): (..., 3T)."""
    r = (z - z_obs) * sqrt_w[..., None, :]
    return r.reshape(r.shape[:-2] + (-1,))


def _finite_loss(r):
    loss = jnp.sum(r * r, axis=-1)
    return jnp.where(jnp.isfinite(loss), loss, jnp.inf)


def _ratio_relation(h, y, h0, y0, dx2, variant):
    """Terms (a, b) of a relation a = ρ·b, ρ = η_h/η_y, exact along every trajectory.

    Each variant conserves a quantity that mixes h and y (THEORY.md section 3 for the
    theory; the same argument for the ablations), multiplied out here so that nothing is
    divided by a small h:

    - theory, flip_w (dh/dt and dy/dt unchanged): h/(η_h dx2) − y/(η_y h) is conserved,
      so h·h0·(h − h0) = ρ·dx2·(y·h0 − y0·h);
    - double_y: y/h² − 2 ln(h)/(ρ dx2) is conserved,
      so 2 h² h0² ln(h/h0) = ρ·dx2·(y·h0² − y0·h²);
    - double_h: y/√h − h^(3/2)/(3ρ dx2) is conserved,
      so √(h h0)·(h^(3/2) − h0^(3/2)) = ρ·3 dx2·(y √h0 − y0 √h);
    - no_eta_h_in_y: y − h²/(2ρ dx2) is conserved, so h² − h0² = ρ·2 dx2·(y − y0).
    """
    if variant in ("theory", "flip_w"):
        return h * h0 * (h - h0), dx2 * (y * h0 - y0 * h)
    if variant == "double_y":
        return 2 * h**2 * h0**2 * jnp.log(h / h0), dx2 * (y * h0**2 - y0 * h**2)
    if variant == "double_h":
        sh, sh0 = jnp.sqrt(h), jnp.sqrt(h0)
        return sh * sh0 * (h * sh - h0 * sh0), 3 * dx2 * (y * sh0 - y0 * sh)
    if variant == "no_eta_h_in_y":
        return h**2 - h0**2, 2 * dx2 * (y - y0)
    raise ValueError(f"unknown variant {variant!r}")


def _start_ratio(z_obs, dx2, dy2, variant):
    """Estimate ρ = η_h/η_y by least squares on ``_ratio_relation`` over all times.

    Falls back to the rich-regime relation h∞² = ρ·dx2·dy2 with the last recorded h where
    the estimate is not positive (noise on a record that barely moves), and to 1 where
    neither is usable. Recorded h <= 0 (only possible in noisy synthetic records) is
    left out.
    """
    h, y = z_obs[..., 0], z_obs[..., 1]
    h0, y0 = h[..., :1], y[..., :1]
    valid = h > 0
    a, b = _ratio_relation(jnp.where(valid, h, h0), y, h0, y0, dx2[..., None], variant)
    a, b = jnp.where(valid, a, 0.0), jnp.where(valid, b, 0.0)
    bb = jnp.sum(b * b, axis=-1)
    ratio = jnp.sum(a * b, axis=-1) / jnp.where(bb > 0, bb, 1.0)
    rich = h[..., -1] ** 2 / (dx2 * dy2)
    ok = jnp.isfinite(ratio) & (ratio > 0) & (bb > 0)
    rich_ok = jnp.isfinite(rich) & (rich > 0)
    return jnp.where(ok, ratio, jnp.where(rich_ok, rich, 1.0))


def _log_rates(log_scale, log_ratio):
    """θ = (log η_h, log η_y) from log √(η_h η_y) and log(η_h/η_y); broadcasts."""
    return jnp.stack(
        jnp.broadcast_arrays(log_scale + 0.5 * log_ratio, log_scale - 0.5 * log_ratio), -1
    )


def _solve(theta, z0, ts, dx2, dy2, cfg):
    """Theory (or ablation) trajectories for log-rates ``theta`` (..., 2), batched."""
    rates = jnp.exp(theta)
    return theory.solve(
        z0,
        ts,
        eta_h=rates[..., 0],
        eta_y=rates[..., 1],
        dx2=dx2,
        dy2=dy2,
        variant=cfg["variant"],
        rtol=cfg["rtol"],
        atol=cfg["atol"],
        max_steps=cfg["max_steps"],
        full_output=True,
    )


def _differences(variant: str, dtype) -> tuple[np.ndarray, float]:
    """Offsets (members, 2) of the log-rates solved together in a refinement step, and δ.

    The theory is solved as one stacked system: all members take the same steps, so
    differences between members are derivatives of the discretised solution and only
    round-off limits δ; forward differences (3 members) are then accurate to about δ.
    Ablations are solved member by member with their own steps, so differences carry the
    solver error (about rtol) divided by δ: central differences (5 members), larger δ.
    """
    eps = float(jnp.finfo(dtype).eps)
    if variant == "theory":
        delta = 10 * math.sqrt(eps)  # float64: 1.5e-7, float32: 3.5e-3
        offsets = [[0, 0], [delta, 0], [0, delta]]
    else:
        delta = max(1e-3, eps ** (1 / 4))
        offsets = [[0, 0], [delta, 0], [-delta, 0], [0, delta], [0, -delta]]
    return np.asarray(offsets), delta


def _jacobian(r, delta):
    """Jacobian (N, 3T, 2) from the residuals (N, members, 3T) of ``_differences``' members.

    Central differences where both neighbours were solved, one-sided where one failed,
    ``nan`` where both did.
    """
    centre = r[:, 0]
    if r.shape[1] == 3:
        return jnp.stack([(r[:, 1] - centre) / delta, (r[:, 2] - centre) / delta], axis=-1)

    def column(plus, minus):
        ok_p = jnp.all(jnp.isfinite(plus), axis=-1, keepdims=True)
        ok_m = jnp.all(jnp.isfinite(minus), axis=-1, keepdims=True)
        central = (plus - minus) / (2 * delta)
        forward = (plus - centre) / delta
        backward = (centre - minus) / delta
        one_sided = jnp.where(ok_p, forward, jnp.where(ok_m, backward, jnp.nan))
        return jnp.where(ok_p & ok_m, central, one_sided)

    return jnp.stack([column(r[:, 1], r[:, 2]), column(r[:, 3], r[:, 4])], axis=-1)


def _lm_step(jac, r, lam):
    """Damped Gauss-Newton step (N, 2) and the decrease of Σr² it predicts (N,).

    Solves (JᵀJ + λ diag JᵀJ) Δ = −Jᵀr per run in closed form; the step is trust-bounded.
    The predicted decrease is −(2 gᵀΔ + ΔᵀJᵀJΔ) with g = Jᵀr.
    """
    a = jnp.einsum("nmi,nmj->nij", jac, jac)
    g = jnp.einsum("nmi,nm->ni", jac, r)
    d = jnp.diagonal(a, axis1=-2, axis2=-1)
    # A rate the record is insensitive to (d = 0) must not make the system singular.
    d = jnp.maximum(d, 1e-12 * jnp.max(d, axis=-1, keepdims=True) + jnp.finfo(r.dtype).tiny)
    m00 = a[:, 0, 0] + lam * d[:, 0]
    m11 = a[:, 1, 1] + lam * d[:, 1]
    m01 = a[:, 0, 1]
    det = m00 * m11 - m01 * m01
    step = -jnp.stack([m11 * g[:, 0] - m01 * g[:, 1], m00 * g[:, 1] - m01 * g[:, 0]], -1)
    step = step / det[:, None]
    size = jnp.max(jnp.abs(step), axis=-1, keepdims=True)
    step = step * jnp.minimum(1.0, _MAX_LOG_STEP / jnp.where(size > 0, size, 1.0))
    predicted = -(2 * jnp.sum(g * step, -1) + jnp.einsum("ni,nij,nj->n", step, a, step))
    return step, predicted


def _parabola_vertex(x, losses, spacing):
    """Minimiser on a uniform grid, refined by the parabola through it and its neighbours.

    x, losses: (N, K). The vertex is used where both neighbours exist and are finite and
    the parabola opens upwards, and is moved at most one grid spacing.
    """
    n, k = losses.shape
    best = jnp.argmin(losses, axis=1)
    rows = jnp.arange(n)
    left = losses[rows, jnp.maximum(best - 1, 0)]
    mid = losses[rows, best]
    right = losses[rows, jnp.minimum(best + 1, k - 1)]
    curv = left - 2 * mid + right
    inner = (best > 0) & (best < k - 1) & jnp.isfinite(left + right) & (curv > 0)
    shift = 0.5 * spacing * (left - right) / jnp.where(inner, curv, 1.0)
    return x[rows, best] + jnp.where(inner, jnp.clip(shift, -spacing, spacing), 0.0)


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


def _fit_core(ts, z_obs, dx2, dy2, normalize, cfg):
    """Fit N runs sharing the 1-D time grid ``ts``: z_obs (N, T, 3), dx2, dy2 (N,).

    One loop, one solver call site per iteration (a compiled adaptive solve is large; one
    site instead of three cuts compilation time by about three): every iteration solves
    ``members`` log-rate pairs per run, all runs stacked, and the phase decides which:
    a chunk of the coarse scale scan, a chunk of the fine scan around the best coarse
    scale, or a refinement candidate with its finite-difference neighbours.
    """
    n, n_times, _ = z_obs.shape
    dtype = z_obs.dtype
    stacked = cfg["variant"] == "theory"
    sqrt_w = jnp.sqrt(_residual_weights(z_obs, normalize))
    log_ratio = jnp.log(_start_ratio(z_obs, dx2, dy2, cfg["variant"]))
    offsets_np, delta = _differences(cfg["variant"], dtype)
    offsets = jnp.asarray(offsets_np, dtype)
    members = offsets_np.shape[0]

    # Coarse scan grid in chunks of ``members`` scales, padded with the largest scale.
    lo, hi = cfg["scan_range"]
    log_scales = np.log(np.logspace(np.log10(lo), np.log10(hi), cfg["scan_points"]))
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
    n_fine = -(-_FINE_POINTS // members)
    fine_np = np.linspace(-spacing, spacing, n_fine * members)
    fine_spacing = float(fine_np[1] - fine_np[0])
    fine_off = jnp.asarray(fine_np.reshape(n_fine, members), dtype)

    z0 = z_obs[:, None, 0, :]
    tol = _tol(dtype)

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
        z, info = _solve(theta, z0, ts, dx2[:, None], dy2[:, None], cfg)
        r = _residuals(z, z_obs[:, None], sqrt_w[:, None])
        member_loss = _finite_loss(r)  # (N, members); failed solves are +inf

        # Coarse scan: stop after the last chunk, after a chunk that failed as a whole,
        # before a chunk that may exceed the step budget, or once every run's loss has
        # risen far above its best (larger scales make the theory converge ever earlier
        # in the record and fit it ever worse).
        coarse = jax.lax.dynamic_update_slice(s.coarse, member_loss, (0, k_coarse * members))
        steps = jnp.max(info.num_steps).astype(dtype)
        too_slow = (steps * growth[k_coarse] > cfg["scan_max_steps"]) if stacked else False
        passed = jnp.all(jnp.min(member_loss, axis=1) > _SCAN_PASSED * jnp.min(s.coarse, axis=1))
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
        stuck = s.lam * s.nu > _LAMBDA_MAX
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
        return (s.phase < 2) | ((s.k < cfg["max_iter"]) & ~jnp.all(s.done))

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
        lam=full((n,), _LAMBDA_INIT),
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


@functools.partial(jax.jit, static_argnames=("cfg",))
def _fit_shared(ts, z_obs, dx2, dy2, normalize, cfg):
    return _fit_core(ts, z_obs, dx2, dy2, normalize, dict(cfg))


@functools.partial(jax.jit, static_argnames=("cfg",))
def _fit_each(ts, z_obs, dx2, dy2, normalize, cfg):
    # Per-run time grids cannot share one stacked solve: vmap runs of one.
    def one(t, z, a, b):
        fit = _fit_core(t, z[None], a[None], b[None], normalize, dict(cfg))
        return jax.tree_util.tree_map(lambda x: x[0], fit)

    return jax.vmap(one)(ts, z_obs, dx2, dy2)


# ----------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------


def _config(variant, rtol, atol, max_steps, scan_max_steps, scan_range, scan_points, max_iter):
    """Validated, hashable configuration: the static part of the compiled fit."""
    if variant not in theory.VARIANTS:
        raise ValueError(f"variant must be one of {theory.VARIANTS}, got {variant!r}")
    if not (
        isinstance(rtol, int | float) and isinstance(atol, int | float) and rtol > 0 and atol > 0
    ):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")
    for name, value in (
        ("max_steps", max_steps),
        ("scan_max_steps", scan_max_steps),
        ("scan_points", scan_points),
        ("max_iter", max_iter),
    ):
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if scan_points < 3:
        raise ValueError(f"scan_points must be >= 3, got {scan_points}")
    try:
        lo, hi = (float(v) for v in scan_range)
    except (TypeError, ValueError):
        raise ValueError(f"scan_range must be a pair (low, high), got {scan_range!r}") from None
    if not (0 < lo < hi < math.inf):
        raise ValueError(f"scan_range must satisfy 0 < low < high < inf, got {scan_range!r}")
    items = dict(
        variant=variant,
        rtol=float(rtol),
        atol=float(atol),
        max_steps=max_steps,
        scan_max_steps=scan_max_steps,
        scan_range=(lo, hi),
        scan_points=scan_points,
        max_iter=max_iter,
    )
    return tuple(sorted(items.items()))


def _check_pair(dx2, dy2) -> None:
    _check_sign("dx2", dx2, strict=True)
    _check_sign("dy2", dy2, strict=False)


def fit_rates(
    ts: Float[ArrayLike, "... times"],
    z_obs: Float[ArrayLike, "... times 3"],
    *,
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    variant: str = "theory",
    normalize: bool = True,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 4_096,
    scan_max_steps: int = 2_048,
    scan_range: tuple[float, float] = (1e-6, 1e2),
    scan_points: int = 33,
    max_iter: int = 50,
    return_trajectory: bool = False,
) -> RateFit:
    """Fit (η_h, η_y) to the recorded h, y, w of one run or a batch of runs.

    THEORY.md section 5; the procedure (ratio from the conserved quantity, coarse and fine
    scan of the scale, Levenberg-Marquardt on log-rates) and the loss are described in the
    module docstring. The theory starts from the recorded first state ``z_obs[..., 0, :]``
    at ``ts[..., 0]``. All runs are fitted in one jitted call, compiled once per shape and
    configuration. With a 1-D ``ts`` shared by all runs, every solver call integrates all
    runs as one stacked system (fast); per-run time grids are fitted under ``jax.vmap``.

    Arguments:
        ts: save times in gradient steps, strictly increasing, ``(T,)`` shared by all runs
            or ``(..., T)`` per run.
        z_obs: recorded (h, y, w) at ``ts``, ``(..., T, 3)`` with T >= 3; h0 > 0 and
            y0 >= 0 at the first time.
        dx2, dy2: squared input (> 0) and target (>= 0) distances of each run's pair.
        variant: ``"theory"`` or an ablation of THEORY.md section 4 (``theory.VARIANTS``).
        normalize: divide each observable's squared error by its spread (default True;
            False: plain mean squared error over time and observables).
        rtol, atol: tolerances of every solve (as ``theory.solve``; default 1e-8, 1e-10).
        max_steps: step cap of every solve (default 4096); a refinement candidate that hits
            it is rejected, a scan chunk in which every solve fails ends the scan.
        scan_max_steps: step budget of the scan (default 2048): the theory's scan stops
            before a chunk that could need more (see the module docstring).
        scan_range, scan_points: range and number of log-spaced scales √(η_h η_y) scanned
            (default 10⁻⁶ … 10², 33 points: four per decade).
        max_iter: cap on refinement iterations (default 50; 3 to 10 are typical).
        return_trajectory: also return the fitted trajectory in ``z_fit``.

    Returns:
        A ``RateFit`` whose arrays have the broadcast batch shape of the arguments (without
        the time axis): rates per step, loss, R² of h, y, w, success, iterations, and the
        fitted trajectory if asked for.

    Raises:
        ValueError: on concrete bad input: ``z_obs`` not ``(..., T, 3)`` with T >= 3, h0 <= 0,
            y0 < 0, non-finite values, ``ts`` of the wrong length or not increasing,
            dx2 <= 0, dy2 < 0, batch shapes that do not broadcast, unknown ``variant``,
            or invalid solver/scan settings.
    """
    cfg = _config(variant, rtol, atol, max_steps, scan_max_steps, scan_range, scan_points, max_iter)
    n_times = _check_record(z_obs)
    _check_times(ts, n_times)
    _check_pair(dx2, dy2)
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
    n = math.prod(batch)
    z_flat = jnp.broadcast_to(z_obs, batch + (n_times, 3)).reshape(n, n_times, 3)
    dx2_flat = jnp.broadcast_to(dx2, batch).reshape(n)
    dy2_flat = jnp.broadcast_to(dy2, batch).reshape(n)
    if ts.ndim == 1:
        fit = _fit_shared(ts, z_flat, dx2_flat, dy2_flat, jnp.asarray(bool(normalize)), cfg)
    else:
        ts_flat = jnp.broadcast_to(ts, batch + (n_times,)).reshape(n, n_times)
        fit = _fit_each(ts_flat, z_flat, dx2_flat, dy2_flat, jnp.asarray(bool(normalize)), cfg)
    fit = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), fit)
    return fit if return_trajectory else dataclasses.replace(fit, z_fit=None)


def fit_run(
    ts: Float[ArrayLike, " times"],
    z_obs: Float[ArrayLike, "times 3"],
    *,
    dx2: Float[ArrayLike, ""],
    dy2: Float[ArrayLike, ""],
    variant: str = "theory",
    normalize: bool = True,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 4_096,
    scan_max_steps: int = 2_048,
    scan_range: tuple[float, float] = (1e-6, 1e2),
    scan_points: int = 33,
    max_iter: int = 50,
    return_trajectory: bool = False,
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
        variant: ``"theory"`` or an ablation of THEORY.md section 4 (``theory.VARIANTS``).
        normalize: divide each observable's squared error by its spread (default True;
            False: plain mean squared error over time and observables).
        rtol, atol: tolerances of every solve (as ``theory.solve``; default 1e-8, 1e-10).
        max_steps: step cap of every solve (default 4096); a refinement candidate that hits
            it is rejected, a scan chunk in which every solve fails ends the scan.
        scan_max_steps: step budget of the scan (default 2048): the theory's scan stops
            before a chunk that could need more (see the module docstring).
        scan_range, scan_points: range and number of log-spaced scales √(η_h η_y) scanned
            (default 10⁻⁶ … 10², 33 points: four per decade).
        max_iter: cap on refinement iterations (default 50; 3 to 10 are typical).
        return_trajectory: also return the fitted trajectory in ``z_fit``.

    Returns:
        A ``RateFit`` of scalars (``r2`` of shape (3,), ``z_fit`` (T, 3) if asked for).

    Raises:
        ValueError: on concrete bad input (see ``fit_rates``), and for batched shapes.
    """
    cfg = _config(variant, rtol, atol, max_steps, scan_max_steps, scan_range, scan_points, max_iter)
    if jnp.ndim(ts) != 1 or jnp.ndim(z_obs) != 2 or jnp.ndim(dx2) or jnp.ndim(dy2):
        raise ValueError(
            "fit_run fits one run: ts (T,), z_obs (T, 3), scalar dx2 and dy2; got shapes"
            f" {jnp.shape(ts)}, {jnp.shape(z_obs)}, {jnp.shape(dx2)}, {jnp.shape(dy2)}"
            " (use fit_rates or jax.vmap for batches)"
        )
    n_times = _check_record(z_obs)
    _check_times(ts, n_times)
    _check_pair(dx2, dy2)
    dtype = jnp.result_type(ts, z_obs, dx2, dy2, float)
    ts, z_obs, dx2, dy2 = (jnp.asarray(a, dtype) for a in (ts, z_obs, dx2, dy2))
    fit = _fit_shared(ts, z_obs[None], dx2[None], dy2[None], jnp.asarray(normalize, bool), cfg)
    fit = jax.tree_util.tree_map(lambda x: x[0], fit)
    return fit if return_trajectory else dataclasses.replace(fit, z_fit=None)


# ----------------------------------------------------------------------------------------
# Mean-output rate
# ----------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("out_dim", "max_iter"))
def _fit_eta_m_core(ts, loss_obs, z_fit, m0, dy2, *, out_dim, max_iter):
    def model(log_eta):
        return theory.loss_curve(ts, z_fit, eta_m=jnp.exp(log_eta), m0=m0, dy2=dy2, out_dim=out_dim)

    def sse(log_eta):
        r = model(log_eta) - loss_obs
        return jnp.sum(r * r, axis=-1)

    # Coarse scan on a fixed grid, every grid point at once (no ODE solve is involved).
    grid = jnp.log(jnp.asarray(_ETA_M_GRID, loss_obs.dtype))
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
        step = jnp.clip(step, -_MAX_LOG_STEP, _MAX_LOG_STEP)
        x_c = x + step
        f_c = sse(x_c)
        better = jnp.isfinite(f_c) & (f_c < f) & ~done
        small = jnp.abs(step) < _tol(x.dtype)
        converged = ~done & (
            (better & (small | (f - f_c <= _tol(x.dtype) * f)))
            | (~better & (small | (lam * 10.0 > _LAMBDA_MAX)))
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
        jnp.full(batch, _LAMBDA_INIT, loss_obs.dtype),
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
    """Fit the mean-output rate η_m to a recorded loss curve (THEORY.md sections 3 and 5).

    The model is ``theory.loss_curve``: L(t) = ¼ (2 m0 e^(−2 η_m (t − t0)) + w(t) +
    ½ (dy2 − y(t))) / out_dim, with y and w from the fitted trajectory ``z_fit`` (e.g.
    ``fit_rates(..., return_trajectory=True).z_fit``). Plain least squares over time in
    log η_m: a scan over 10⁻⁸ … 10² (41 points) followed by Levenberg-Marquardt with
    exact derivatives. Leading batch dimensions broadcast; the function also vmaps.

    Arguments:
        ts: times in gradient steps, ``(..., T)``; ``ts[..., 0]`` is the time of ``m0``.
        loss_obs: recorded training loss (0.5·mse of the pair) at ``ts``, ``(..., T)``.
        z_fit: theory (h, y, w) at ``ts``, ``(..., T, 3)``.
        m0: initial squared error of the pair's mean output (> 0 for η_m to be defined).
        dy2: squared target distance of the pair.
        out_dim: number of output units the mean squared error averages over.
        max_iter: cap on refinement iterations.

    Returns:
        An ``EtaMFit`` with the broadcast batch shape: eta_m (``nan`` where m0 = 0 or
        the inputs are not finite), loss (mean squared error), R² of the loss curve,
        success.

    Raises:
        ValueError: on concrete bad input: shapes that do not match, non-finite
            ``loss_obs`` or ``ts``, ``ts`` not increasing, negative ``m0`` or ``dy2``,
            ``out_dim`` or ``max_iter`` not a positive int.
    """
    if not (isinstance(out_dim, int) and out_dim > 0):
        raise ValueError(f"out_dim must be a positive int, got {out_dim!r}")
    if not (isinstance(max_iter, int) and max_iter > 0):
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    shape = jnp.shape(z_fit)
    if len(shape) < 2 or shape[-1] != 3:
        raise ValueError(f"z_fit must have shape (..., T, 3), got {shape}")
    n_times = shape[-2]
    if jnp.shape(loss_obs)[-1:] != (n_times,):
        raise ValueError(
            f"loss_obs must have shape (..., T) with T = {n_times}, got {jnp.shape(loss_obs)}"
        )
    _check_times(ts, n_times)
    _check_finite("loss_obs", loss_obs)
    _check_sign("m0", m0, strict=False)
    _check_sign("dy2", dy2, strict=False)
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
