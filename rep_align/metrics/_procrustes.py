"""Orthogonal Procrustes shape distance (Williams et al. 2021)."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from rep_align import checks
from rep_align.metrics._common import _centred_unit, _dot, _floats, _pair, _varies


def _narrow(x: Array) -> Array:
    """An (n, n) stand-in for a centred x (n, p) with p > n: Rᵀ from xᵀ = QR. Then
    xᵀy = Q·(Rᵀ)ᵀy with Q's columns orthonormal, so every nuclear norm below is kept."""
    if x.shape[1] <= x.shape[0]:
        return x
    return jnp.linalg.qr(x.T, mode="reduced")[1].T


def procrustes(
    x: Float[Array, "n p"],
    y: Float[Array, "n q"],
    *,
    angular: bool = False,
) -> Float[Array, ""]:
    """Orthogonal Procrustes distance between two representations of the same n points.

    x and y are centred over the points and scaled to unit Frobenius norm, X̂, Ŷ; if p ≠ q
    the narrower is padded with zero columns to max(p, q) features (implicitly: padding
    changes no nonzero singular value of X̂ᵀŶ, so it is not materialised). Then
    (Williams et al. 2021)

        d² = min over orthogonal Q of ‖X̂ − ŶQ‖²_F = 2 − 2‖X̂ᵀŶ‖_*   (default),
        θ = arccos ‖X̂ᵀŶ‖_*                                           (``angular=True``),

    with ‖·‖_* the nuclear norm (sum of singular values; ‖X̂ᵀŶ‖_* ∈ [0, 1]). d² ∈ [0, 2]
    and θ ∈ [0, π/2]; both are 0 iff Ŷ is an orthogonal transform of X̂, are symmetric,
    and are invariant to translations, isotropic scalings and orthogonal transforms of
    either input. θ is a metric on these shapes; its gradient is unbounded as θ → 0. When
    p > n (or q > n) the input is first replaced by an (n, n) factor with the same Gram
    matrix (QR of its transpose), so the SVD is at most (n, n).

    Handles one example; batch with ``jax.vmap``.

    Arguments:
        x: representation of n points, shape (n, p).
        y: representation of the same points, shape (n, q).
        angular: return the angle θ (radians) instead of d²; default False.

    Returns:
        Scalar d² (or θ) in the dtype of the inputs.

    Raises:
        ValueError: if x or y is not 2-D, their numbers of rows differ, n < 2, or a concrete
            input has a non-finite entry or is the same at every point.
    """
    angular = checks.boolean("angular", angular)
    _pair(("x", "y"), x, y, min_rows=2)
    _varies("x", x)
    _varies("y", y)
    x, y = (_narrow(_centred_unit(m)) for m in _floats(x, y))
    nuclear = jnp.minimum(jnp.sum(jnp.linalg.svd(_dot(x.T, y), compute_uv=False)), 1)
    if angular:
        return jnp.arccos(nuclear)
    return 2 - 2 * nuclear
