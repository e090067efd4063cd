"""Exact consequences of the theory (docs/theory.md §3) and its many-point use (§6)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from rep_align import checks


def conserved_quantity(
    z: Float[ArrayLike, "... 3"],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """C = h / (η_h dx2) − y / (η_y h), constant along every trajectory of the theory.

    Equation (3.1) of docs/theory.md §3 (both terms decrease at rate w).

    Arguments:
        z: states ``(..., 3)`` = (h, y, w).
        eta_h, eta_y: effective rates per step (> 0).
        dx2: squared input distance (> 0).

    Returns:
        C in units of steps, shape ``z.shape[:-1]`` broadcast with the parameters.

    Raises:
        ValueError: for concrete non-positive or non-finite rates or dx2.
    """
    checks.values("eta_h", eta_h, positive=True)
    checks.values("eta_y", eta_y, positive=True)
    checks.values("dx2", dx2, positive=True)
    z = jnp.asarray(z)
    h, y = z[..., 0], z[..., 1]
    return h / (eta_h * dx2) - y / (eta_y * h)


def _a_terms(h0, y0, eta_h, eta_y, dx2, dy2):
    ratio = eta_h / eta_y
    a_low2 = ratio * dx2 * dy2
    a_high = h0 - ratio * dx2 * y0 / h0
    return a_high, a_low2


def final_distance(
    h0: Float[ArrayLike, "..."],
    y0: Float[ArrayLike, "..."],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Converged squared representational distance h∞, equation (3.2) of docs/theory.md.

    The positive root of h² − A_high h − A_low² = 0 with A_low² = (η_h/η_y) dx2 dy2 and
    A_high = h0 − (η_h/η_y) dx2 y0/h0; evaluated without cancellation for either sign of
    A_high. Depends on the rates only through η_h/η_y.

    Arguments:
        h0, y0: initial squared hidden and output distances (h0 > 0, y0 >= 0).
        eta_h, eta_y: effective rates per step (> 0).
        dx2, dy2: squared input and target distances (>= 0).

    Returns:
        h∞, the arguments' broadcast shape.

    Raises:
        ValueError: concrete h0 <= 0, y0 < 0, non-positive rates, negative dx2 or dy2,
            or non-finite values.
    """
    checks.values("h0", h0, positive=True)
    checks.values("y0", y0, nonnegative=True)
    checks.values("eta_h", eta_h, positive=True)
    checks.values("eta_y", eta_y, positive=True)
    checks.values("dx2", dx2, nonnegative=True)
    checks.values("dy2", dy2, nonnegative=True)
    return final_distance_unchecked(h0, y0, eta_h, eta_y, dx2, dy2)


def final_distance_unchecked(h0, y0, eta_h, eta_y, dx2, dy2):
    """``final_distance`` without argument checks (positional), for internal callers."""
    a_high, a_low2 = _a_terms(h0, y0, eta_h, eta_y, dx2, dy2)
    root = jnp.sqrt(0.25 * a_high**2 + a_low2)
    pos = a_high >= 0
    # For A_high < 0 the textbook form A_high/2 + root cancels; use the conjugate form.
    denom = jnp.where(pos, 1.0, root - 0.5 * a_high)
    return jnp.where(pos, 0.5 * a_high + root, a_low2 / denom)


def rich_limit(
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """h∞ for small initial weights (h0, y0/h0 → 0): √(η_h/η_y) · √(dx2 · dy2).

    Equation (3.3) of docs/theory.md: independent of the initial representation, the rich
    (feature-learning) regime. Arguments as ``final_distance``; they broadcast.

    Raises:
        ValueError: concrete non-positive rates, negative dx2 or dy2, non-finite values.
    """
    checks.values("eta_h", eta_h, positive=True)
    checks.values("eta_y", eta_y, positive=True)
    checks.values("dx2", dx2, nonnegative=True)
    checks.values("dy2", dy2, nonnegative=True)
    return jnp.sqrt(eta_h / eta_y * dx2 * dy2)


def lazy_limit(
    h0: Float[ArrayLike, "..."],
    y0: Float[ArrayLike, "..."],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """h∞ when the initial state dominates (A_low² ≪ A_high²): max(A_high, 0).

    Equation (3.4) of docs/theory.md: A_high = h0 − (η_h/η_y) dx2 y0/h0 ≈ h0 for large
    initial weights (lazy regime: the initial representation is kept). This is the
    A_low → 0 limit of ``final_distance``; arguments as there, they broadcast.

    Raises:
        ValueError: concrete h0 <= 0, y0 < 0, non-positive rates, negative dx2, or
            non-finite values.
    """
    checks.values("h0", h0, positive=True)
    checks.values("y0", y0, nonnegative=True)
    checks.values("eta_h", eta_h, positive=True)
    checks.values("eta_y", eta_y, positive=True)
    checks.values("dx2", dx2, nonnegative=True)
    a_high, _ = _a_terms(h0, y0, eta_h, eta_y, dx2, 0.0)
    return jnp.maximum(a_high, 0.0)


# Relative defect |y·dy2 − (y − w)²| / (y·dy2 + (y − w)²) of a first state up to which it
# counts as one of a pair with one output unit (defect 0: Δŷ ∥ Δy*). Rounding leaves a few
# ulps (float32 records: ~1e-7); the README's example state, not a one-output one, has 0.15.
_ONE_OUTPUT_DEFECT = 1e-5


def _error_sq(y, w, dy2, out_dim: int):
    """‖e‖² = ‖Δŷ − Δy*‖² of a pair from (y, w) at times (..., T), without cancellation
    near a perfect fit.

    ‖e‖² = 2w − y + dy2 in exact arithmetic; near a perfect fit that difference of numbers
    of order dy2 keeps the rounding of y (and any solver error) as an absolute error of
    order ε·dy2, a floor. Split e into its parts along and across Δy* instead:
    ‖e‖² = (Δy*·e)²/dy2 + ‖Δŷ⊥‖², with Δy*·e = (y − dy2) − w (as Δy*·Δŷ = y − w) and
    ‖Δŷ⊥‖² = y − (y − w)²/dy2. The first part is the square of a small number whose
    rounding is relative to itself (y − dy2 is exact when y is within a factor 2 of dy2).
    With one output unit Δŷ ∥ Δy*, so the second part is 0: it is dropped when
    ``out_dim == 1`` and the first state is a one-output state (``_ONE_OUTPUT_DEFECT``),
    which the theory keeps one (docs/theory.md (2.4)-(2.6) conserve Δŷ ∥ Δy*). Otherwise
    it is computed as it stands (clamped at 0 against rounding), resolved to about ε·y.
    For dy2 = 0, e = Δŷ and ‖e‖² = y.
    """
    positive = dy2 > 0
    safe = jnp.where(positive, dy2, 1.0)
    along = (y - dy2) - w
    u = y - w
    across = jnp.maximum(y - u * u / safe, 0.0)
    if out_dim == 1:
        a, b = y[..., :1] * safe, u[..., :1] * u[..., :1]
        across = jnp.where(jnp.abs(a - b) <= _ONE_OUTPUT_DEFECT * (a + b), 0.0, across)
    return jnp.where(positive, along * along / safe + across, y)


def loss_curve(
    ts: Float[ArrayLike, "... times"],
    z: Float[ArrayLike, "... times 3"],
    *,
    eta_m: Float[ArrayLike, "..."],
    m0: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    out_dim: int = 1,
) -> Float[Array, "... times"]:
    """Training loss 0.5·mse of the pair along a theory trajectory, equation (3.5).

    L(t) = ¼ (2 m0 exp(−2 η_m (t − t0)) + ½ ‖e(t)‖²) / out_dim, with t0 = ts[0] the time of
    ``m0`` (the squared error of the pair's mean output) and ‖e‖² = ‖Δŷ − Δy*‖² =
    2w − y + dy2, so that this is (3.5) of docs/theory.md §3.

    ‖e‖² is evaluated without the cancellation of 2w − y + dy2 near a perfect fit, where
    that difference of numbers of order dy2 keeps the rounding of y, and any solver error
    in y and w, as a floor of the loss (the rounding of y alone: up to ε·dy2/16, 4e-9 in
    float32 for dy2 = 0.5). Instead ‖e‖² = (Δy*·e)²/dy2 + ‖Δŷ⊥‖², the squares of the
    error's parts along and across Δy*, with Δy*·e = (y − dy2) − w and
    ‖Δŷ⊥‖² = y − (y − w)²/dy2. The first has relative rounding: it falls with the error
    down to a floor of order ε²·dy2. With one output unit Δŷ and Δy* are numbers and the
    second is 0 (y·dy2 = (y − w)²); for ``out_dim == 1`` it is dropped when the first
    state satisfies this to a relative 1e-5 (rounding leaves ~1e-7 in float32), as the
    theory then keeps it so. Otherwise, and for ``out_dim > 1``, it is computed as it
    stands (clamped at 0 against rounding) and is resolved only to about ε·y. Where
    nothing cancels, the result equals the plain (3.5) to rounding, or to the
    solver's tolerance where its error moves a one-output state off y·dy2 = (y − w)².
    For dy2 = 0, ‖e‖² = y.

    Arguments:
        ts: times in steps, ``(..., T)``.
        z: (h, y, w) at ``ts``, ``(..., T, 3)`` (e.g. the output of ``solve``).
        eta_m: effective rate of the mean output per step (>= 0), broadcasts with the
            batch dimensions.
        m0: initial squared error of the mean output (>= 0).
        dy2: squared target distance (>= 0).
        out_dim: number of output units the mean squared error averages over (>= 1);
            default 1.

    Returns:
        The loss at ``ts``, shape ``(..., T)``.

    Raises:
        ValueError: for concrete negative or non-finite eta_m, m0, dy2, or a bad out_dim.
    """
    checks.values("eta_m", eta_m, nonnegative=True)
    checks.values("m0", m0, nonnegative=True)
    checks.values("dy2", dy2, nonnegative=True)
    out_dim = checks.integer("out_dim", out_dim, minimum=1)
    ts = jnp.asarray(ts)
    z = jnp.asarray(z)
    eta_m = jnp.asarray(eta_m)[..., None]
    m0 = jnp.asarray(m0)[..., None]
    dy2 = jnp.asarray(dy2)[..., None]
    t = ts - ts[..., :1]
    y, w = z[..., 1], z[..., 2]
    err2 = _error_sq(y, w, dy2, out_dim)
    return 0.25 * (2.0 * m0 * jnp.exp(-2.0 * eta_m * t) + 0.5 * err2) / out_dim


# ----------------------------------------------------------------------------------------
# Many points (docs/theory.md §6)
# ----------------------------------------------------------------------------------------


def _check_square(name: str, m) -> None:
    shape = jnp.shape(m)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., n, n), got shape {shape}")


def pairwise_final_distances(
    dx2: Float[ArrayLike, "... n n"],
    dy2: Float[ArrayLike, "... n n"],
    h0: Float[ArrayLike, "... n n"],
    y0: Float[ArrayLike, "... n n"],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
) -> Float[Array, "... n n"]:
    """Predicted matrix of converged squared hidden distances, equation (6.1).

    Applies ``final_distance`` (3.2) to every pair (i, j) with the squared input/target
    distances ``dx2[i, j]``, ``dy2[i, j]`` and initial squared hidden/output distances
    ``h0[i, j]``, ``y0[i, j]``; the diagonal is 0 (docs/theory.md §6).

    Arguments:
        dx2, dy2, h0, y0: square matrices of squared distances ``(..., n, n)``; off the
            diagonal h0 > 0 and the others >= 0 are required.
        eta_h, eta_y: effective rates (> 0; e.g. fitted on the two-point task).

    Returns:
        ``(..., n, n)`` symmetric matrix (if the inputs are) of h∞ with zero diagonal.

    Raises:
        ValueError: for non-square matrices, or concrete non-finite entries, entries off
            the diagonal out of range, or non-positive rates.
    """
    for name, m in (("dx2", dx2), ("dy2", dy2), ("h0", h0), ("y0", y0)):
        _check_square(name, m)
        checks.values(name, m, finite=True)
    n = jnp.shape(h0)[-1]
    off = ~np.eye(n, dtype=bool)
    for name, m, strict in (
        ("h0", h0, True),
        ("y0", y0, False),
        ("dx2", dx2, False),
        ("dy2", dy2, False),
    ):
        v = checks.concrete(m)
        if v is not None:
            checks.values(
                f"{name} off the diagonal", v[..., off], positive=strict, nonnegative=not strict
            )
    checks.values("eta_h", eta_h, positive=True)
    checks.values("eta_y", eta_y, positive=True)
    eye = jnp.eye(n, dtype=bool)
    h0s = jnp.where(eye, 1.0, jnp.asarray(h0))  # placeholder on the diagonal, masked below
    eh = jnp.asarray(eta_h)[..., None, None]
    ey = jnp.asarray(eta_y)[..., None, None]
    h_inf = final_distance_unchecked(
        h0s, jnp.asarray(y0), eh, ey, jnp.asarray(dx2), jnp.asarray(dy2)
    )
    return jnp.where(eye, 0.0, h_inf)


def structure_heuristic(
    dx: Float[ArrayLike, "... n n"], dy: Float[ArrayLike, "... n n"]
) -> Float[Array, "... n n"]:
    """The MNIST-scale structure heuristic E·A·E, equation (6.2) of docs/theory.md.

    A = dx ∘ dy (entrywise product of the input and target distance matrices, distances,
    not squared) and E = exp(−A) entrywise; the result is the matrix product E A E,
    to be compared with learned squared hidden distances by Pearson correlation.

    Arguments:
        dx, dy: square matrices of (non-squared) distances ``(..., n, n)``, >= 0.

    Returns:
        ``(..., n, n)``.

    Raises:
        ValueError: for non-square matrices or concrete negative or non-finite entries.
    """
    _check_square("dx", dx)
    _check_square("dy", dy)
    checks.values("dx", dx, nonnegative=True)
    checks.values("dy", dy, nonnegative=True)
    a = jnp.asarray(dx) * jnp.asarray(dy)
    e = jnp.exp(-a)
    return e @ a @ e
