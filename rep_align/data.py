"""Toy datasets of the reference study, as plain arrays (PRESETS.md)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["two_points", "xor"]


def _float_dtype(dtype: Any) -> Any:
    # None means JAX's default float: float32, or float64 under jax_enable_x64.
    return jnp.result_type(float) if dtype is None else dtype


def _check_nonnegative(name: str, value: Any) -> None:
    """Raise for a concrete negative or non-finite scalar; traced values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value)
    if v.shape != () or not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"{name} must be a scalar, got {value!r}")
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be finite and non-negative, got {value!r}")


def _check_dim(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def two_points(
    *,
    dx2: float | Float[Array, ""] = 1.0,
    dy2: float | Float[Array, ""] = 0.5,
    in_dim: int = 1,
    out_dim: int = 1,
    dtype: Any = None,
) -> tuple[Float[Array, "2 in_dim"], Float[Array, "2 out_dim"]]:
    """The two-point task of PRESETS.md, with ‖Δx‖² = dx2 and ‖Δy*‖² = dy2.

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
        ValueError: for a concrete negative or non-finite dx2 or dy2, or a dimension < 1.
    """
    _check_nonnegative("dx2", dx2)
    _check_nonnegative("dy2", dy2)
    _check_dim("in_dim", in_dim)
    _check_dim("out_dim", out_dim)
    dtype = _float_dtype(dtype)
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
    """
    dtype = _float_dtype(dtype)
    x = jnp.asarray([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype)
    y = jnp.asarray([[0.0], [1.0], [1.0], [0.0]], dtype)
    return x, y
