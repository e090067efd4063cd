"""Distance matrices and their comparisons: RDMs, Pearson correlation, RSA, RDM distance."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from rep_align import checks
from rep_align.metrics._common import _dot, _floats, _matrix, _pair
from rep_align.observables import squared_distances

_METRICS = ("euclidean", "sqeuclidean", "correlation")
_METHODS = ("pearson", "spearman")


def _safe_sqrt(d2: Array) -> Array:
    pos = d2 > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1)), 0)


def rdm(x: Float[Array, "n p"], *, metric: str = "euclidean") -> Float[Array, "n n"]:
    """Representational distance matrix of n points (Kriegeskorte et al. 2008).

    D_ij for rows x_i, x_j:

    - "euclidean" (default): ‖x_i − x_j‖₂. Its gradient at coincident points (the
      diagonal included) is taken as 0 instead of the undefined derivative of √0.
    - "sqeuclidean": ‖x_i − x_j‖²₂ (rsatoolbox's "euclidean" is this divided by p).
    - "correlation": 1 − r_ij, r_ij the Pearson correlation of the p entries of x_i and
      x_j (as ``scipy.spatial.distance.pdist(x, "correlation")``); needs p ≥ 2.

    Both come from a Gram matrix at full precision (of the column-centred points; of the
    centred, unit-norm rows for "correlation"), clipped at 0 (and 2), symmetrised, with an
    exactly zero diagonal.

    Handles one example; batch with ``jax.vmap``.

    Arguments:
        x: n points with p features, shape (n, p).
        metric: "euclidean", "sqeuclidean" or "correlation".

    Returns:
        Symmetric (n, n) matrix in the dtype of x.

    Raises:
        ValueError: if x is not 2-D with n ≥ 2, a concrete x has a non-finite entry, the
            metric is unknown, or for "correlation" p < 2 or a concrete row is constant.
    """
    metric = checks.choice("metric", metric, _METRICS)
    _matrix("x", x, min_rows=2)
    (x,) = _floats(x)
    if metric == "correlation":
        if x.shape[1] < 2:
            raise ValueError(f"x needs ≥ 2 features for metric='correlation', got {x.shape}")
        c = checks.concrete(x)
        if c is not None and np.any(np.ptp(c, axis=1) == 0):
            row = int(np.argmax(np.ptp(c, axis=1) == 0))
            raise ValueError(
                f"x's rows must vary across features for metric='correlation', "
                f"but row {row} is constant: {checks.describe(c[row])}"
            )
        z = x - jnp.mean(x, axis=1, keepdims=True)
        z = z / jnp.sqrt(jnp.sum(z**2, axis=1, keepdims=True))
        d = jnp.clip(1 - _dot(z, z.T), 0, 2)
        d = 0.5 * (d + d.T)
        return jnp.where(jnp.eye(x.shape[0], dtype=bool), 0, d)
    d2 = squared_distances(x)
    return d2 if metric == "sqeuclidean" else _safe_sqrt(d2)


def _upper(a: Array) -> Array:
    i, j = np.triu_indices(a.shape[0], k=1)
    return a[i, j]


def _ranks(v: Array) -> Array:
    """1-based ranks of the entries of v, tied entries sharing the mean of their ranks."""
    s = jnp.sort(v)
    below = jnp.searchsorted(s, v, side="left")
    upto = jnp.searchsorted(s, v, side="right")
    return (below + upto + 1).astype(v.dtype) / 2


def pearson(
    a: Float[Array, "..."],
    b: Float[Array, "..."],
    *,
    mask: Bool[Array, "..."] | None = None,
) -> Float[Array, ""]:
    """Pearson correlation of the entries of ``a`` and ``b`` where ``mask`` is True.

    r = Σ δa·δb / √(Σ δa² · Σ δb²), δa = a − mean(a), δb = b − mean(b), sums and means
    over the entries where ``mask`` is True (all without a mask); the others are ignored,
    whatever their values. Values are not checked: r is NaN if either set of entries is
    constant or not finite, so a sweep's analysis survives a collapsed or diverged run.
    Entries are not rescaled: Σδa²·Σδb² must lie within the dtype's range (float32: below
    about 3e38; divide the entries by their largest first if not, as ``rsa`` does).
    Handles one example; batch with ``jax.vmap``.

    Arguments:
        a: array of any shape.
        b: array of the same shape.
        mask: boolean array of that shape (may be traced), or None (every entry).

    Returns:
        Scalar r in [−1, 1] (or NaN), in the floating dtype of the inputs.

    Raises:
        ValueError: if the shapes of a, b and mask differ.
    """
    if np.shape(a) != np.shape(b) or (mask is not None and np.shape(mask) != np.shape(a)):
        shapes = [np.shape(a), np.shape(b)] + ([] if mask is None else [np.shape(mask)])
        raise ValueError(f"a, b (and mask) must have the same shape, got {shapes}")
    a, b = _floats(a, b)
    mask = jnp.ones(a.shape, bool) if mask is None else jnp.asarray(mask)
    count = jnp.sum(mask.astype(a.dtype))
    ma, mb = (jnp.sum(jnp.where(mask, v, 0)) / count for v in (a, b))
    da, db = jnp.where(mask, a - ma, 0), jnp.where(mask, b - mb, 0)
    return jnp.sum(da * db) / jnp.sqrt(jnp.sum(da * da) * jnp.sum(db * db))


def upper_pearson(a: Float[Array, "n n"], b: Float[Array, "n n"]) -> Float[Array, ""]:
    """Pearson correlation of two (n, n) matrices over their entries above the diagonal.

    ``pearson`` over the n(n−1)/2 entries i < j (diagonal and lower triangle ignored): as
    ``rsa(a, b)``, but NaN instead of an error for a constant or non-finite matrix. Handles
    one example; batch with ``jax.vmap``.

    Arguments:
        a, b: (n, n) matrices of the same n ≥ 3 points (e.g. distance matrices, ``rdm``).

    Returns:
        Scalar r in [−1, 1], or NaN, in the floating dtype of the inputs.

    Raises:
        ValueError: if the matrices are not square of the same size n ≥ 3.
    """
    n = np.shape(a)[0] if np.ndim(a) == 2 else 0
    if np.shape(a) != (n, n) or np.shape(b) != (n, n) or n < 3:
        raise ValueError(
            f"a and b must be (n, n) with the same n >= 3, got {np.shape(a)}, {np.shape(b)}"
        )
    return pearson(a, b, mask=jnp.asarray(np.triu(np.ones((n, n), bool), k=1)))


def rsa(
    rdm_a: Float[Array, "n n"],
    rdm_b: Float[Array, "n n"],
    *,
    method: str = "pearson",
) -> Float[Array, ""]:
    """Representational similarity analysis: correlation of two distance matrices.

    Compares the m = n(n−1)/2 entries above the diagonal, d_a = (A_ij)_{i<j} and
    d_b = (B_ij)_{i<j} (Kriegeskorte et al. 2008); the diagonal and the lower triangle are
    ignored (symmetry is assumed, not checked).

    - "pearson" (default): r = ⟨d_a − mean, d_b − mean⟩ / (‖d_a − mean‖ ‖d_b − mean‖),
      as rsatoolbox's ``compare(method="corr")``. Invariant to positive affine maps of
      either matrix's entries.
    - "spearman": the Pearson r of the ranks of d_a and d_b, tied entries sharing the mean
      of their ranks (as ``scipy.stats.spearmanr`` and rsatoolbox's "spearman"; its
      "rho-a" agrees only without ties). Invariant to increasing maps of either matrix.
      Ranks are piecewise constant: the gradient is zero wherever it exists and undefined
      where entries tie or cross, so it carries no information for optimisation.

    Both are ``pearson`` of the entries (or ranks) divided by their largest magnitude,
    which leaves r as it is and keeps the sums within float32's range. Handles one
    example; batch with ``jax.vmap``.

    Arguments:
        rdm_a: distance matrix of n points, shape (n, n), e.g. from ``rdm``.
        rdm_b: distance matrix of the same points, shape (n, n).
        method: "pearson" or "spearman".

    Returns:
        Scalar correlation in [−1, 1], in the dtype of the inputs; NaN if traced entries
        above the diagonal are all equal.

    Raises:
        ValueError: if the matrices are not square with the same n ≥ 3 (fewer than two
            entries above the diagonal have no correlation), a concrete entry is not
            finite or all concrete entries above a diagonal are equal, or the method is
            unknown.
    """
    method = checks.choice("method", method, _METHODS)
    _pair(("rdm_a", "rdm_b"), rdm_a, rdm_b, min_rows=3, square=True)
    for name, m in (("rdm_a", rdm_a), ("rdm_b", rdm_b)):
        a = checks.concrete(m)
        if a is not None and np.ptp(a[np.triu_indices(a.shape[0], k=1)]) == 0:
            raise ValueError(f"{name}'s entries above the diagonal must not all be equal")
    a, b = (_upper(m) for m in _floats(rdm_a, rdm_b))
    if method == "spearman":
        a, b = _ranks(a), _ranks(b)
    # r is invariant to scaling; entries of size ≤ 1 keep Σδa²·Σδb² within float32's range.
    return pearson(a / jnp.max(jnp.abs(a)), b / jnp.max(jnp.abs(b)))


def rdm_distance(a: Float[Array, "n n"], b: Float[Array, "n n"]) -> Float[Array, ""]:
    """Scale-dependent distance between two distance matrices of the same n points.

    Δ(A, B) = ‖A − B‖_F / √(‖A‖_F ‖B‖_F), over all entries. For symmetric matrices with
    zero diagonals (as from ``rdm``) it equals the same formula over the entries above the
    diagonal, as every norm then doubles the same squared terms.

    Δ ≥ 0, Δ(A, B) = Δ(B, A), and Δ = 0 iff A = B. It is invariant to scaling both matrices
    by the same c > 0 and to relabelling the points (the same permutation of the rows and
    columns of both), but, unlike ``rsa``, not to scaling or shifting one of them: Δ(A, cA)
    = |1 − c|/√c. So it tests whether two distance matrices agree in magnitude, e.g. a
    predicted and a measured one. It is not claimed to be a metric.

    Handles one example; batch with ``jax.vmap``.

    Arguments:
        a: distance matrix, shape (n, n).
        b: distance matrix of the same points, shape (n, n).

    Returns:
        Scalar Δ in the dtype of the inputs.

    Raises:
        ValueError: if the matrices are not square with the same n ≥ 2, a concrete entry is
            not finite, or a concrete matrix is all zeros.
    """
    _pair(("a", "b"), a, b, min_rows=2, square=True)
    for name, m in (("a", a), ("b", b)):
        c = checks.concrete(m)
        if c is not None and not np.any(c):
            raise ValueError(f"{name} must not be all zeros")
    a, b = _floats(a, b)
    norm = lambda m: jnp.sqrt(jnp.sum(m**2))  # noqa: E731
    return norm(a - b) / jnp.sqrt(norm(a) * norm(b))
