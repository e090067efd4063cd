"""Argument checks and dtype handling shared by the metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from rep_align import checks


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
