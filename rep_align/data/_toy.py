"""The two-point task, XOR and a tree-structured item set (docs/presets.md, "Two-point
task" and "XOR"; ``hierarchy`` for the universality experiment)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rep_align import checks

__all__ = ["hierarchy", "two_points", "xor"]


def two_points(
    *,
    dx2: float | Float[Array, ""] = 1.0,
    dy2: float | Float[Array, ""] = 0.5,
    in_dim: int = 1,
    out_dim: int = 1,
    dtype: Any = None,
) -> tuple[Float[Array, "2 in_dim"], Float[Array, "2 out_dim"]]:
    """The two-point task of docs/presets.md, with ‖Δx‖² = dx2 and ‖Δy*‖² = dy2.

    Inputs (−1, …, −1)/√d_in and (−1+√dx2, …, −1+√dx2)/√d_in; targets
    (0.6, …)/√d_out and (0.6+√dy2, …)/√d_out.

    Traceable in ``dx2`` and ``dy2`` (vmap over data geometry); the dimensions decide
    shapes and must be concrete.

    Arguments:
        dx2: squared input distance (≥ 0); default 1.0.
        dy2: squared target distance (≥ 0); default 0.5.
        in_dim, out_dim: input and output dimensions (≥ 1); default 1.
        dtype: float dtype; default JAX's default float.

    Returns:
        ``(x, y)`` with x of shape (2, in_dim) and y of shape (2, out_dim).

    Raises:
        ValueError: for a concrete dx2 or dy2 that is not a finite non-negative scalar, a
            dimension that is not an integer ≥ 1, or a dtype that is not a float dtype.
    """
    checks.values("dx2", dx2, nonnegative=True, scalar=True)
    checks.values("dy2", dy2, nonnegative=True, scalar=True)
    in_dim = checks.integer("in_dim", in_dim, minimum=1)
    out_dim = checks.integer("out_dim", out_dim, minimum=1)
    dtype = checks.float_dtype("dtype", dtype)
    dx = jnp.sqrt(jnp.asarray(dx2, dtype))
    dy = jnp.sqrt(jnp.asarray(dy2, dtype))
    x_rows = jnp.stack([jnp.asarray(-1.0, dtype), -1.0 + dx])
    y_rows = jnp.stack([jnp.asarray(0.6, dtype), 0.6 + dy])
    x = jnp.broadcast_to(x_rows[:, None], (2, in_dim)) / np.sqrt(in_dim)
    y = jnp.broadcast_to(y_rows[:, None], (2, out_dim)) / np.sqrt(out_dim)
    return x.astype(dtype), y.astype(dtype)


def xor(*, dtype: Any = None) -> tuple[Float[Array, "4 2"], Float[Array, "4 1"]]:
    """XOR: inputs (0,0), (0,1), (1,0), (1,1) with targets 0, 1, 1, 0.

    Arguments:
        dtype: float dtype; default JAX's default float.

    Returns:
        ``(x, y)`` with x of shape (4, 2) and y of shape (4, 1).

    Raises:
        ValueError: for a dtype that is not a float dtype.
    """
    dtype = checks.float_dtype("dtype", dtype)
    x = jnp.asarray([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype)
    y = jnp.asarray([[0.0], [1.0], [1.0], [0.0]], dtype)
    return x, y


def hierarchy(
    *, levels: int = 3, dtype: Any = None
) -> tuple[Float[Array, "n n"], Float[Array, "n f"]]:
    """Items at the leaves of a binary tree, with targets that encode the tree.

    The classic hierarchical task of the deep-linear-network literature (Saxe, McClelland
    and Ganguli, PNAS 2019): ``n = 2**levels`` items with one-hot inputs; the target of an
    item has one unit per tree node (1 root, 2, 4, …, n leaves: 2n − 1 units), set to 1 for
    the nodes on the item's path from the root and 0 elsewhere. Two items whose paths part
    at depth k (k = 1 below the root, …, ``levels`` at the leaves) have squared target
    distance 2·(levels − k + 1), so the output similarity is known and tree-shaped; all
    input distances are equal (√2), so any structure a network learns comes from the targets.

    Arguments:
        levels: depth of the tree (≥ 1); default 3 (8 items, 15 target units).
        dtype: float dtype; default JAX's default float.

    Returns:
        ``(x, y)`` with x of shape (n, n) (the identity) and y of shape (n, 2n − 1).

    Raises:
        ValueError: for levels that is not an integer in 1 … 10, or a bad dtype.
    """
    levels = checks.integer("levels", levels, minimum=1, maximum=10)
    dtype = checks.float_dtype("dtype", dtype)
    n = 2**levels
    y = np.zeros((n, 2 * n - 1))
    for item in range(n):
        for depth in range(levels + 1):
            # Node index of the item's ancestor at this depth, in breadth-first order.
            y[item, 2**depth - 1 + (item >> (levels - depth))] = 1.0
    return jnp.eye(n, dtype=dtype), jnp.asarray(y, dtype)
