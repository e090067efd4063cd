"""Pieces of the rate fit: the loss's weights and residuals (docs/theory.md (5.1)), the
starting ratio from the conserved quantity (docs/theory.md (3.1)), the batched solve, the
finite-difference Jacobian, the Levenberg-Marquardt step and the scan's parabola."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from rep_align import theory
from rep_align.fit._options import FLOOR_REL, MAX_LOG_STEP, FitOptions


def _residual_weights(z_obs, normalize):
    """Weights (N, 3) so that Σ weight·(theory − record)² is the loss, docs/theory.md (5.1)
    (``rep_align.fit``'s docstring).

    ``normalize`` is traced (a bool array), so both choices share one compilation.
    """
    n_times = z_obs.shape[-2]
    plain = jnp.full(z_obs.shape[:-2] + (3,), 1.0 / (3 * n_times), z_obs.dtype)
    ss_tot = jnp.sum((z_obs - jnp.mean(z_obs, axis=-2, keepdims=True)) ** 2, axis=-2)
    floor = n_times * FLOOR_REL**2 * jnp.mean(z_obs**2, axis=-2)
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

    Each variant conserves a quantity that mixes h and y (docs/theory.md (3.1) for the
    theory; the same argument for the ablations of §4), multiplied out here so that
    nothing is divided by a small h:

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
        jnp.broadcast_arrays(log_scale + 0.5 * log_ratio, log_scale - 0.5 * log_ratio),
        -1,
    )


def _solve(theta, z0, ts, dx2, dy2, options: FitOptions):
    """Theory (or ablation) trajectories for log-rates ``theta`` (..., 2), batched."""
    rates = jnp.exp(theta)
    return theory.solve(
        z0,
        ts,
        eta_h=rates[..., 0],
        eta_y=rates[..., 1],
        dx2=dx2,
        dy2=dy2,
        variant=options.variant,
        rtol=options.rtol,
        atol=options.atol,
        max_steps=options.max_steps,
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
    step = step * jnp.minimum(1.0, MAX_LOG_STEP / jnp.where(size > 0, size, 1.0))
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


def start_ratio(z_obs, *, dx2, dy2, variant: str = "theory"):
    """The fit's first estimate of η_h/η_y (step 1 of the procedure in ``rep_align.fit``):
    least squares of the conserved-quantity relation of ``variant`` over every recorded
    time, with the rich-regime fallback.

    Arguments:
        z_obs: recorded (h, y, w), ``(..., T, 3)``.
        dx2, dy2: squared input and target distances, broadcasting against the batch.
        variant: ``"theory"`` or an ablation (``theory.VARIANTS``).

    Returns:
        The ratio estimate, shape of the batch.
    """
    z_obs = jnp.asarray(z_obs)
    dx2 = jnp.broadcast_to(jnp.asarray(dx2, z_obs.dtype), z_obs.shape[:-2])
    dy2 = jnp.broadcast_to(jnp.asarray(dy2, z_obs.dtype), z_obs.shape[:-2])
    return _start_ratio(z_obs, dx2, dy2, variant)
