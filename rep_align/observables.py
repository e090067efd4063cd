"""Observables of docs/theory.md §1: a pair's distances, and full distance matrices.

All functions handle one example (one network, one dataset); batch them with ``jax.vmap``.

Squared Euclidean distances between rows are computed here and nowhere else, in two ways
that round differently, each where it is needed:

- ``squared_distances`` (and ``cross_squared_distances`` between two sets of rows) from a
  Gram matrix: one matrix product, fast for many or wide rows; nearby rows lose relative
  precision to the cancellation of ‖a_i‖² + ‖a_j‖² − 2 a_i·a_j.
- ``pairwise_squared_distances`` from the differences themselves: coincident rows give
  exactly 0 and nearby rows keep their relative precision, which the theory's prediction
  (6.1) needs (it divides by initial distances); cost O(n² d) in row blocks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

__all__ = [
    "PairObservables",
    "cross_squared_distances",
    "hidden_squared_distances",
    "pair_observables",
    "pairwise_squared_distances",
    "squared_distances",
]

# Entries of the (n, n, d) difference block evaluated at once by pairwise_squared_distances.
_BLOCK_ENTRIES = 1 << 22


class PairObservables(eqx.Module):
    """The observables of docs/theory.md §1 for one pair of points (a, b), at every hidden layer.

    Attributes:
        dx2: ‖Δx‖², scalar.
        dy2: ‖Δy*‖², scalar.
        h: ‖Δh‖² per hidden layer, shape (num_hidden,); each layer flattened.
        y: ‖Δŷ‖², scalar.
        w: y − Δy*·Δŷ, scalar.
        m: ‖(ŷ_a+ŷ_b)/2 − (y*_a+y*_b)/2‖², scalar.
    """

    dx2: Float[Array, ""]
    dy2: Float[Array, ""]
    h: Float[Array, " layers"]
    y: Float[Array, ""]
    w: Float[Array, ""]
    m: Float[Array, ""]


def _flat_diff(a: Array, i: int | Int[Array, ""], j: int | Int[Array, ""]) -> Array:
    return (a[j] - a[i]).reshape(-1)


def pair_observables(
    x: Float[Array, "n in_dim"],
    y_target: Float[Array, "n out_dim"],
    output: Float[Array, "n out_dim"],
    hiddens: Sequence[Float[Array, "n ..."]],
    *,
    pair: tuple[int, int] = (0, 1),
) -> PairObservables:
    """dx2, dy2, h (every layer), y, w and m of points a, b = ``pair`` (docs/theory.md §1).

    Arguments:
        x: inputs, shape (n, …).
        y_target: targets y*, shape (n, …).
        output: network outputs ŷ, shape (n, …).
        hiddens: hidden activations, each (n, …); differences are flattened per layer.
        pair: indices (a, b) of the two points; default (0, 1). Differences are b − a.

    Returns:
        A ``PairObservables``; ``h`` has shape (len(hiddens),).
    """
    a, b = pair
    dx = _flat_diff(x, a, b)
    dys = _flat_diff(y_target, a, b)
    dyh = _flat_diff(output, a, b)
    h = jnp.stack([jnp.sum(_flat_diff(hl, a, b) ** 2) for hl in hiddens])
    y = jnp.sum(dyh**2)
    mean_err = ((output[a] + output[b]) - (y_target[a] + y_target[b])).reshape(-1) / 2
    return PairObservables(
        dx2=jnp.sum(dx**2),
        dy2=jnp.sum(dys**2),
        h=h,
        y=y,
        # Elementwise products, not a dot: TPUs run float32 dots at reduced precision.
        w=y - jnp.sum(dys * dyh),
        m=jnp.sum(mean_err**2),
    )


def _from_gram(sq_a: Array, sq_b: Array, gram: Array) -> Array:
    """‖a_i‖² + ‖b_j‖² − 2 a_i·b_j from the squared row norms and the Gram matrix, clipped at 0."""
    return jnp.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * gram, 0.0)


def _dot_t(a: Array, b: Array) -> Array:
    """a·bᵀ at full precision (GPUs and TPUs would otherwise use TF32/bf16 passes)."""
    return jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)


def squared_distances(a: Float[Array, "n ..."]) -> Float[Array, "n n"]:
    """Squared Euclidean distances between the rows of ``a`` (each row flattened).

    Computed from the Gram matrix of the centred rows (memory O(n²), not O(n²·d));
    centring first limits the cancellation of ‖a_i‖² + ‖a_j‖² − 2 a_i·a_j, the product
    runs at full precision (GPUs and TPUs would otherwise use TF32/bf16 passes), and the
    result is clipped at zero with an exactly zero diagonal.

    Arguments:
        a: array of shape (n, …).

    Returns:
        Symmetric matrix of shape (n, n).
    """
    flat = a.reshape(a.shape[0], -1)
    flat = flat - jnp.mean(flat, axis=0, keepdims=True)
    sq = jnp.sum(flat**2, axis=1)
    d = _from_gram(sq, sq, _dot_t(flat, flat))
    d = 0.5 * (d + d.T)
    return jnp.where(jnp.eye(a.shape[0], dtype=bool), 0.0, d)


def cross_squared_distances(
    a: Float[Array, "n ..."], b: Float[Array, "m ..."]
) -> Float[Array, "n m"]:
    """Squared Euclidean distances between the rows of ``a`` and the rows of ``b``.

    D_ij = ‖a_i‖² + ‖b_j‖² − 2 a_i·b_j (each row flattened), the product at full precision,
    clipped at zero. For blocks of a set too large for the full (N, N) matrix of
    ``squared_distances``: pass a block of rows as ``a`` and the whole set as ``b``, memory
    O(n·m). The rows are not centred (blocks of one set have no common centre of their
    own), so for rows far from the origin compared with their spread prefer
    ``squared_distances``; for integer-valued rows (e.g. raw pixels) of moderate size
    every product and sum is exact in float64.

    Handles one example; batch with ``jax.vmap``.

    Arguments:
        a: array of shape (n, …).
        b: array of shape (m, …), rows of the same size as a's.

    Returns:
        Matrix of shape (n, m).
    """
    fa, fb = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return _from_gram(jnp.sum(fa**2, axis=1), jnp.sum(fb**2, axis=1), _dot_t(fa, fb))


def pairwise_squared_distances(a: Float[ArrayLike, "n d"]) -> Float[Array, "n n"]:
    """Squared Euclidean distances ``D_ij = ‖a_i − a_j‖²`` between the rows of ``a``.

    Computed from the differences themselves (not from a Gram matrix), so coincident rows
    give exactly 0 and nearby rows keep their relative precision, which (6.1) needs: it
    divides by the initial hidden distances. Cost O(n² d), evaluated in row blocks of about
    4 M entries. The result is exactly symmetric with a zero diagonal.

    Arguments:
        a: (n, d) array, one row per point.

    Returns:
        (n, n) array in ``a``'s float dtype (JAX's default float for integer input).
    """
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    n, d = a.shape
    return _differences(a, batch=max(1, min(n, _BLOCK_ENTRIES // max(1, n * d))))


@functools.partial(jax.jit, static_argnames="batch")
def _differences(a, *, batch: int):
    rows = jax.lax.map(lambda ai: jnp.sum((a - ai) ** 2, axis=1), a, batch_size=batch)
    return jnp.where(jnp.eye(a.shape[0], dtype=bool), 0.0, rows)


def hidden_squared_distances(hiddens: Sequence[Float[Array, "n ..."]]) -> Float[Array, "L n n"]:
    """``squared_distances`` of every hidden layer, stacked to shape (len(hiddens), n, n)."""
    return jnp.stack([squared_distances(hl) for hl in hiddens])
