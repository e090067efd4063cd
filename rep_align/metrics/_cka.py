"""Linear CKA (Kornblith et al. 2019), biased and debiased, from features or Gram matrices."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from rep_align import checks
from rep_align.metrics._common import _centred_unit, _dot, _floats, _pair, _varies

_SIDES = ("auto", "features", "gram")


def _hsic_features(u: Array, v: Array, debiased: bool) -> Array:
    """n(n−3)·HSIC_u (debiased) or (n−1)²·HSIC (biased) of the linear kernels of the centred
    features u (n, p), v (n, q), with memory O(p·q)."""
    n = u.shape[0]
    cross = jnp.sum(_dot(v.T, u) ** 2)
    if not debiased:
        return cross
    a, b = jnp.sum(u**2, axis=1), jnp.sum(v**2, axis=1)
    return cross - n / (n - 2) * jnp.sum(a * b) + jnp.sum(a) * jnp.sum(b) / ((n - 1) * (n - 2))


def _hsic_grams(k: Array, l: Array, debiased: bool) -> Array:
    """n(n−3)·HSIC_u (debiased) or (n−1)²·HSIC (biased) of the (n, n) Gram matrices k, l."""
    n = k.shape[0]
    if not debiased:
        centre = lambda g: g - g.mean(0, keepdims=True) - g.mean(1, keepdims=True) + g.mean()  # noqa: E731
        return jnp.sum(centre(k) * centre(l))
    off = ~jnp.eye(n, dtype=bool)
    k, l = jnp.where(off, k, 0), jnp.where(off, l, 0)
    kr, lr = jnp.sum(k, axis=1), jnp.sum(l, axis=1)
    return (
        jnp.sum(k * l)
        + jnp.sum(kr) * jnp.sum(lr) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * jnp.sum(kr * lr)
    )


def _cka_grams(k: Array, l: Array, debiased: bool) -> Array:
    k = k / jnp.sqrt(jnp.sum(k**2))
    l = l / jnp.sqrt(jnp.sum(l**2))
    kl, kk, ll = (_hsic_grams(a, b, debiased) for a, b in ((k, l), (k, k), (l, l)))
    return kl / (jnp.sqrt(kk) * jnp.sqrt(ll))


def _uses_features(n: int, p: int, q: int) -> bool:
    return p * p + q * q + p * q <= 2 * n * n


def cka(
    x: Float[Array, "n p"],
    y: Float[Array, "n q"],
    *,
    debiased: bool = False,
    side: str = "auto",
) -> Float[Array, ""]:
    """Linear centred kernel alignment (CKA) of two representations of the same n points.

    With the linear kernels K = XXᵀ, L = YYᵀ and the centring matrix H = I − 11ᵀ/n,
    CKA = HSIC(K, L) / √(HSIC(K, K)·HSIC(L, L)), HSIC(K, L) = tr(KHLH)/(n−1)²
    (Kornblith et al. 2019). It lies in [0, 1], is 1 for identical inputs and is invariant
    to orthogonal transforms and isotropic scaling of x or of y (not to general linear maps).

    With ``debiased=True`` HSIC is replaced by the unbiased estimator of Song et al. (2012),
    as in Nguyen, Raghu & Kornblith (2021): with K̃, L̃ = K, L with zeroed diagonals,
    HSIC_u = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2·1ᵀK̃L̃1/(n−2)] / (n(n−3)).
    Debiased CKA is near 0 for independent features even when p ≫ n, where linear CKA is
    biased upwards. It can be negative, and is NaN if HSIC_u(K, K) or HSIC_u(L, L) is ≤ 0
    (possible for very small n).

    Two exact evaluations, chosen statically from the shapes (``side="auto"``):

    - "features": from the centred features X̃, Ỹ (both HSICs are invariant to centring):
      CKA = ‖ỸᵀX̃‖²_F / (‖X̃ᵀX̃‖_F ‖ỸᵀỸ‖_F); debiased, with a, b the squared row norms of
      X̃, Ỹ, n(n−3)·HSIC_u = ‖ỸᵀX̃‖²_F − n/(n−2)·aᵀb + ‖X̃‖²_F ‖Ỹ‖²_F/((n−1)(n−2)), which
      follows from K̃1 = −a for centred X̃. Memory O(p² + q² + pq).
    - "gram": from the (n, n) Gram matrices (``cka_from_grams``). Memory O(n²).

    "auto" takes the features side when p² + q² + pq ≤ 2n² (fewer stored entries).

    Handles one example; batch with ``jax.vmap``.

    Arguments:
        x: representation of n points, shape (n, p).
        y: representation of the same points, shape (n, q).
        debiased: use the unbiased HSIC estimator; default False.
        side: "auto" (default), "features" or "gram"; both sides give the same value up to
            rounding.

    Returns:
        Scalar CKA in the dtype of the inputs.

    Raises:
        ValueError: if x or y is not 2-D, their numbers of rows differ, n < 2 (n < 4 when
            debiased), a concrete input has a non-finite entry or is the same at every
            point, or an option is unknown.
    """
    debiased = checks.boolean("debiased", debiased)
    side = checks.choice("side", side, _SIDES)
    _pair(("x", "y"), x, y, min_rows=4 if debiased else 2)
    _varies("x", x)
    _varies("y", y)
    x, y = _floats(x, y)
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    x, y = _centred_unit(x), _centred_unit(y)
    if side == "features" or (side == "auto" and _uses_features(n, p, q)):
        xy, xx, yy = (_hsic_features(a, b, debiased) for a, b in ((x, y), (x, x), (y, y)))
        return xy / (jnp.sqrt(xx) * jnp.sqrt(yy))
    return _cka_grams(_dot(x, x.T), _dot(y, y.T), debiased)


def cka_from_grams(
    k: Float[Array, "n n"],
    l: Float[Array, "n n"],  # noqa: E741
    *,
    debiased: bool = False,
) -> Float[Array, ""]:
    """CKA of two kernels given as Gram matrices of the same n points (see ``cka``).

    Biased: CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F) with H = I − 11ᵀ/n. Debiased: the same
    ratio with the unbiased HSIC_u of Song et al. (2012) (formula in ``cka``), which uses the
    Gram matrices with zeroed diagonals. Any symmetric kernel matrices may be given (the
    symmetry is assumed, not checked); for K = XXᵀ, L = YYᵀ this is ``cka(x, y)``.
    Invariant to scaling K or L by a positive factor. Memory O(n²).

    Handles one example; batch with ``jax.vmap``.

    Arguments:
        k: Gram matrix of the first representation, shape (n, n).
        l: Gram matrix of the second, shape (n, n).
        debiased: use the unbiased HSIC estimator; default False.

    Returns:
        Scalar CKA in the dtype of the inputs; NaN if HKH or HLH is zero (debiased: if
        HSIC_u(K, K) or HSIC_u(L, L) is ≤ 0).

    Raises:
        ValueError: if k or l is not square, their shapes differ, n < 2 (n < 4 when
            debiased), or a concrete input has a non-finite entry.
    """
    debiased = checks.boolean("debiased", debiased)
    _pair(("k", "l"), k, l, min_rows=4 if debiased else 2, square=True)
    k, l = _floats(k, l)  # noqa: E741
    return _cka_grams(k, l, debiased)
