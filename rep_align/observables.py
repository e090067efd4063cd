"""Observables of docs/theory.md §1: a pair's distances, and full distance matrices.

All functions handle one example (one network, one dataset); batch them with ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

__all__ = [
    "PairObservables",
    "hidden_squared_distances",
    "pair_observables",
    "squared_distances",
]


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
    gram = jnp.matmul(flat, flat.T, precision=jax.lax.Precision.HIGHEST)
    d = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
    d = 0.5 * (d + d.T)
    return jnp.where(jnp.eye(a.shape[0], dtype=bool), 0.0, d)


def hidden_squared_distances(hiddens: Sequence[Float[Array, "n ..."]]) -> Float[Array, "L n n"]:
    """``squared_distances`` of every hidden layer, stacked to shape (len(hiddens), n, n)."""
    return jnp.stack([squared_distances(hl) for hl in hiddens])
