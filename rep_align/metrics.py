"""Representation-similarity metrics: linear CKA, RSA, orthogonal Procrustes, RDM distance.

Each function compares the representations of one set of n points (rows) and handles one
example; batch with ``jax.vmap``. Everything is pure JAX and works under ``jit``, ``vmap``
and ``grad`` (Spearman RSA has a zero gradient wherever it has one, see ``rsa``). Results
take the floating dtype of the inputs (integer inputs become JAX's default float). Matrix
products run at full precision (GPUs and TPUs would otherwise use TF32/bf16 passes).

Shapes are checked always (they are static); values are checked only when concrete
(``rep_align.checks``): finite, and not constant where the metric would divide by zero.
Traced degenerate inputs give NaN instead of raising, so a vmapped sweep survives them.

References:
    Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of neural network
    representations revisited", ICML (linear CKA).
    Song, Smola, Gretton, Bedo & Borgwardt (2012), "Feature selection via dependence
    maximization", JMLR 13 (unbiased HSIC); used for debiased CKA by Nguyen, Raghu &
    Kornblith (2021), "Do wide and deep networks learn the same things?", ICLR.
    Kriegeskorte, Mur & Bandettini (2008), "Representational similarity analysis",
    Front. Syst. Neurosci. 2:4 (RDMs and RSA).
    Williams, Kunz, Kornblith & Linderman (2021), "Generalized shape metrics on neural
    representations", NeurIPS (Procrustes shape distance).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rep_align import checks
from rep_align.observables import squared_distances

__all__ = [
    "cka",
    "cka_from_grams",
    "procrustes",
    "rdm",
    "rdm_distance",
    "rsa",
]

_SIDES = ("auto", "features", "gram")
_METRICS = ("euclidean", "sqeuclidean", "correlation")
_METHODS = ("pearson", "spearman")


def _dot(a: Array, b: Array) -> Array:
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _floats(*arrays) -> list[Array]:
    dtype = jnp.result_type(*(jnp.asarray(a).dtype for a in arrays), float)
    return [jnp.asarray(a, dtype=dtype) for a in arrays]


def _matrix(name: str, x, *, min_rows: int, square: bool = False) -> None:
    """Raise unless ``x`` is a 2-D numeric array with ≥ ``min_rows`` rows (square if asked)
    whose entries, if concrete, are finite."""
    shape = np.shape(x)
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {shape}")
    if square and shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {shape}")
    if shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} rows (points), got shape {shape}")
    if shape[1] < 1:
        raise ValueError(f"{name} must have at least one column, got shape {shape}")
    checks.values(name, x)


def _pair(names: tuple[str, str], x, y, *, min_rows: int, square: bool = False) -> None:
    _matrix(names[0], x, min_rows=min_rows, square=square)
    _matrix(names[1], y, min_rows=min_rows, square=square)
    if np.shape(x)[0] != np.shape(y)[0] or (square and np.shape(x) != np.shape(y)):
        raise ValueError(
            f"{names[0]} and {names[1]} must describe the same n points, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )


def _varies(name: str, x) -> None:
    a = checks.concrete(x)
    if a is not None and np.all(np.ptp(a, axis=0) == 0):
        raise ValueError(f"{name} must vary across its points (rows), got {checks.describe(a)}")


def _centred_unit(x: Array) -> Array:
    """Columns centred over the points, then scaled to unit Frobenius norm."""
    x = x - jnp.mean(x, axis=0, keepdims=True)
    return x / jnp.sqrt(jnp.sum(x**2))


# -- CKA ----------------------------------------------------------------------------------


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


# -- RSA ----------------------------------------------------------------------------------


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


def _pearson(a: Array, b: Array) -> Array:
    a = a - jnp.mean(a)
    b = b - jnp.mean(b)
    return jnp.sum(a * b) / (jnp.sqrt(jnp.sum(a**2)) * jnp.sqrt(jnp.sum(b**2)))


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

    Handles one example; batch with ``jax.vmap``.

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
    return _pearson(a, b)


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


# -- Procrustes ---------------------------------------------------------------------------


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
