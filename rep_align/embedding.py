"""Low-dimensional pictures of representations: classical multidimensional scaling.

The context-blobs figures (docs/theory.md §7, "context blobs") show the layer-2
representations of all 1,800 points in three dimensions. Classical (Torgerson) MDS finds the
configuration whose Euclidean distances best match a given distance matrix in the sense of
the double-centred inner products: with the squared distances D (n × n) and the centring
matrix J = I − 11ᵀ/n,

    B = −½ J D J,   B = V Λ Vᵀ (eigenvalues λ₁ ≥ λ₂ ≥ …),   X = V_k Λ_k^{1/2}

(the k largest eigenvalues, negative ones clipped to 0). If D holds the squared distances of
points in ℝ^m, B is their centred Gram matrix, and for k ≥ m the configuration X
reproduces D exactly, up to a rotation or reflection (Torgerson 1952; Borg & Groenen,
*Modern Multidimensional Scaling*, 2005, ch. 12). For Euclidean distances it is the same as
projecting the centred points on their first k principal components.

For points given as coordinates, ``mds_of_points`` computes the same embedding from the
p × p covariance instead of the n × n matrix B (the nonzero eigenvalues of XᵀX and XXᵀ
agree), which is much cheaper when p ≪ n (100 hidden units, 1,800 points).

Everything is pure JAX; the functions handle one example (batch with ``jax.vmap``;
``dims`` is static).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from rep_align import checks

__all__ = ["MDS", "classical_mds", "mds_of_points", "stress"]


class MDS(eqx.Module):
    """A classical-MDS embedding.

    Attributes:
        coords: (n, k) coordinates, centred (columns sum to 0). Each axis is signed so that
            its entry of largest magnitude is positive, which makes the result deterministic
            (an eigenvector's sign is otherwise arbitrary).
        eigenvalues: (k,) the k largest eigenvalues of B = −½ J D J, descending (before
            clipping: a negative one means D is not Euclidean along that axis).
        explained: () the k clipped eigenvalues' sum over the sum of all positive
            eigenvalues of B: 1 when k axes hold the whole configuration.
    """

    coords: Float[Array, "n k"]
    eigenvalues: Float[Array, " k"]
    explained: Float[Array, ""]


def _check_square(name: str, d: ArrayLike) -> int:
    shape = jnp.shape(d)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {shape}")
    if shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 points, got shape {shape}")
    checks.values(name, d, nonnegative=True)
    return int(shape[0])


def classical_mds(d2: Float[ArrayLike, "n n"], *, dims: int = 3) -> MDS:
    """Classical MDS of a matrix of squared distances (module docstring).

    Arguments:
        d2: squared distances between n points, (n, n), symmetric (only its symmetric part
            B is used), ≥ 0, zero diagonal; e.g. ``observables.squared_distances(points)``.
        dims: number of axes k (1 … n); static. Default 3.

    Returns:
        An ``MDS`` with coords (n, k), the k largest eigenvalues and the explained
        fraction, in the floating dtype of ``d2``.

    Raises:
        ValueError: if ``d2`` is not square with n ≥ 2, a concrete entry is negative or not
            finite, or ``dims`` is not an integer in 1 … n.
    """
    n = _check_square("d2", d2)
    dims = checks.integer("dims", dims, minimum=1, maximum=n)
    d2 = jnp.asarray(d2)
    if not jnp.issubdtype(d2.dtype, jnp.floating):
        d2 = d2.astype(float)
    return _classical_mds(d2, dims)


@functools.partial(jax.jit, static_argnums=1)
def _classical_mds(d2: Array, dims: int) -> MDS:
    d2 = 0.5 * (d2 + d2.T)
    # −½ J D J without forming J: subtract row and column means, add back the grand mean.
    row = jnp.mean(d2, axis=1, keepdims=True)
    b = -0.5 * (d2 - row - row.T + jnp.mean(d2))
    lam, vec = jnp.linalg.eigh(b)  # ascending
    lam_k, vec_k = lam[::-1][:dims], vec[:, ::-1][:, :dims]
    coords = vec_k * jnp.sqrt(jnp.maximum(lam_k, 0.0))
    big = jnp.argmax(jnp.abs(coords), axis=0)
    sign = jnp.where(coords[big, jnp.arange(dims)] < 0, -1.0, 1.0).astype(coords.dtype)
    positive = jnp.sum(jnp.maximum(lam, 0.0))
    explained = jnp.sum(jnp.maximum(lam_k, 0.0)) / jnp.where(positive > 0, positive, 1.0)
    return MDS(coords=coords * sign, eigenvalues=lam_k, explained=explained)


def mds_of_points(points: Float[ArrayLike, "n p"], *, dims: int = 3) -> MDS:
    """Classical MDS of the Euclidean distances between the rows of ``points``.

    The same embedding as ``classical_mds(observables.squared_distances(points))`` (up to
    rounding, and the sign convention makes the axes agree too; axes with equal
    eigenvalues may mix), computed from the eigenvectors W of the p × p matrix XᵀX of the
    centred points X: coords = X W_k.

    Arguments:
        points: (n, p) coordinates, n ≥ 2, finite when concrete.
        dims: number of axes k (1 … n); static. Default 3. Axes beyond p have
            coordinate 0.

    Returns:
        An ``MDS`` as ``classical_mds``; ``eigenvalues`` beyond min(n, p) are 0.

    Raises:
        ValueError: if ``points`` is not 2-D with n ≥ 2, has a non-finite concrete entry,
            or ``dims`` is not an integer in 1 … n.
    """
    shape = jnp.shape(points)
    if len(shape) != 2 or shape[0] < 2:
        raise ValueError(f"points must have shape (n, p) with n >= 2, got {shape}")
    checks.values("points", points)
    dims = checks.integer("dims", dims, minimum=1, maximum=shape[0])
    x = jnp.asarray(points)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    return _mds_of_points(x, dims)


@functools.partial(jax.jit, static_argnums=1)
def _mds_of_points(x: Array, dims: int) -> MDS:
    x = x - jnp.mean(x, axis=0, keepdims=True)
    p = x.shape[1]
    lam, vec = jnp.linalg.eigh(jnp.matmul(x.T, x, precision=jax.lax.Precision.HIGHEST))
    lam, vec = jnp.maximum(lam[::-1], 0.0), vec[:, ::-1]
    k = min(dims, p)
    coords = jnp.matmul(x, vec[:, :k], precision=jax.lax.Precision.HIGHEST)
    lam_k = lam[:k]
    if dims > p:
        coords = jnp.pad(coords, ((0, 0), (0, dims - p)))
        lam_k = jnp.pad(lam_k, (0, dims - p))
    big = jnp.argmax(jnp.abs(coords), axis=0)
    sign = jnp.where(coords[big, jnp.arange(dims)] < 0, -1.0, 1.0).astype(coords.dtype)
    total = jnp.sum(lam)
    explained = jnp.sum(lam_k) / jnp.where(total > 0, total, 1.0)
    return MDS(coords=coords * sign, eigenvalues=lam_k, explained=explained)


def stress(d: Float[ArrayLike, "n n"], coords: Float[ArrayLike, "n k"]) -> Float[Array, ""]:
    """Kruskal's stress-1 of an embedding: how far its distances are from the given ones.

    stress = √( Σ_{i<j} (d_ij − ‖x_i − x_j‖)² / Σ_{i<j} d_ij² ), 0 for an exact embedding
    (Kruskal 1964). Note ``d`` holds distances, not squared distances.

    Arguments:
        d: distances between n points, (n, n), ≥ 0.
        coords: (n, k) embedding of the same points.

    Returns:
        Scalar stress ≥ 0 (NaN if every d_ij is 0).

    Raises:
        ValueError: if ``d`` is not square with n ≥ 2 (entries ≥ 0, finite when concrete)
            or ``coords`` does not have n rows.
    """
    n = _check_square("d", d)
    if jnp.ndim(coords) != 2 or jnp.shape(coords)[0] != n:
        raise ValueError(f"coords must have shape ({n}, k), got {jnp.shape(coords)}")
    d = jnp.asarray(d, jnp.result_type(jnp.asarray(d).dtype, float))
    x = jnp.asarray(coords, d.dtype)
    diff = x[:, None, :] - x[None, :, :]
    e = jnp.sqrt(jnp.sum(diff**2, axis=-1))
    upper = np.triu(np.ones((n, n), bool), k=1)
    num = jnp.sum(jnp.where(upper, (d - e) ** 2, 0.0))
    den = jnp.sum(jnp.where(upper, d**2, 0.0))
    return jnp.sqrt(num / den)
