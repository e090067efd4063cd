"""The context-blobs task (docs/presets.md, "Context blobs")."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rep_align import checks

__all__ = ["ContextBlobs", "context_blobs"]


class ContextBlobs(eqx.Module):
    """The context-blobs dataset: inputs, targets and the labels its figures need.

    ``R = 2·grid²`` rows; see ``context_blobs`` for their order and the input layout.

    Attributes:
        x: inputs, shape (R, pixels² + 2): the flattened image, then the two context units.
        y: targets, shape (R, 1): μx in context 0, μy in context 1.
        context: the context of each row, 0 or 1, shape (R,), int32.
        mu_x, mu_y: the blob's centre in each row, shape (R,), same dtype as ``x``.
    """

    x: Float[Array, "rows features"]
    y: Float[Array, "rows 1"]
    context: Int[Array, " rows"]
    mu_x: Float[Array, " rows"]
    mu_y: Float[Array, " rows"]


def context_blobs(*, grid: int = 30, pixels: int = 5, dtype: Any = None) -> ContextBlobs:
    """Gaussian blobs whose target is one coordinate of their centre, chosen by context.

    An image is the Gaussian exp(−((u − μx)² + (v − μy)²)/2) evaluated on a
    ``pixels × pixels`` grid of points (u, v) spanning [−1, 1]² (both ends included) and
    divided by its sum, so each image sums to 1. The centres (μx, μy) lie on a
    ``grid × grid`` grid spanning [−1, 1]² the same way. Each image appears twice: with
    context units (1, 0) and target μx (context 0), and with (0, 1) and target μy
    (context 1). Defaults are the paper's (docs/presets.md, "Context blobs"): 1,800 rows
    of 27 inputs.

    Input layout (pixels first, then the two context units): column ``r·pixels + c`` holds
    the pixel in row ``r`` and column ``c`` of the image, at u = t[c] and v = t[r] with
    t = linspace(−1, 1, pixels), so ``x[:, :pixels**2].reshape(-1, pixels, pixels)`` gives
    images indexed [v, u]; columns ``pixels²`` and ``pixels² + 1`` are the context units.

    Row order: rows 0 … grid²−1 are context 0, rows grid² … 2·grid²−1 context 1, the same
    images in the same order in both halves. Within a half, row ``i·grid + j`` has
    μx = m[i] and μy = m[j] with m = linspace(−1, 1, grid) (μx varies slowest).

    The values are computed in float64 and rounded once to ``dtype``.

    Arguments:
        grid: centres per axis (≥ 1); default 30.
        pixels: pixels per axis (≥ 1); default 5.
        dtype: float dtype; default JAX's default float.

    Returns:
        A ``ContextBlobs`` with x of shape (2·grid², pixels² + 2), y of shape
        (2·grid², 1) and the per-row labels ``context``, ``mu_x``, ``mu_y``.

    Raises:
        ValueError: for a grid or pixels that is not an integer ≥ 1, or a dtype that is
            not a float dtype.
    """
    grid = checks.integer("grid", grid, minimum=1)
    pixels = checks.integer("pixels", pixels, minimum=1)
    dtype = checks.float_dtype("dtype", dtype)

    m = np.linspace(-1.0, 1.0, grid)
    mu_x, mu_y = (a.ravel() for a in np.meshgrid(m, m, indexing="ij"))
    t = np.linspace(-1.0, 1.0, pixels)
    v, u = (a.ravel() for a in np.meshgrid(t, t, indexing="ij"))
    d2 = (u[None, :] - mu_x[:, None]) ** 2 + (v[None, :] - mu_y[:, None]) ** 2
    images = np.exp(-d2 / 2.0)
    images /= images.sum(axis=1, keepdims=True)

    n = grid * grid
    units = np.zeros((2 * n, 2))
    units[:n, 0] = 1.0
    units[n:, 1] = 1.0
    x = np.concatenate([np.concatenate([images, images]), units], axis=1)
    y = np.concatenate([mu_x, mu_y])[:, None]
    return ContextBlobs(
        x=jnp.asarray(x, dtype),
        y=jnp.asarray(y, dtype),
        context=jnp.asarray(np.repeat([0, 1], n), jnp.int32),
        mu_x=jnp.asarray(np.tile(mu_x, 2), dtype),
        mu_y=jnp.asarray(np.tile(mu_y, 2), dtype),
    )
