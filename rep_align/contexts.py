"""How a representation arranges points seen in several contexts (docs/theory.md §7, context
blobs; docs/presets.md, "Context blobs").

The context-blobs task shows every input in two contexts (a context unit added to it); lazy
networks keep the input geometry, so the two copies stay apart, while rich ones organise
the representation by the task. The numbers that say which, from a distance matrix d of n
points with integer context labels:

- ``upper_pearson`` (``metrics``): Pearson r between d and the input's (or the targets')
  distances over the pairs i < j;
- ``context_ratio``: the mean distance between points of different contexts over the mean
  distance between distinct points of the same context;
- ``paired_ratio``: the mean distance between given pairs of rows (the two copies of one
  input) over the same within-context mean;

and ``blob_metrics`` all of them at every record of one run, from its hidden
representations (Euclidean distances, ``observables.squared_distances``, in float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from rep_align import checks
from rep_align.metrics import pearson
from rep_align.observables import squared_distances

__all__ = ["METRICS", "blob_metrics", "context_ratio", "paired_ratio"]

#: The columns of ``blob_metrics``.
METRICS = ("r_input", "r_target", "ratio", "paired_ratio")


def _upper_mask(n: int) -> np.ndarray:
    return np.triu(np.ones((n, n), bool), k=1)


def _check_square(name: str, d: ArrayLike, n: int | None = None) -> int:
    shape = jnp.shape(d)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2:
        raise ValueError(f"{name} must be a square (n, n) matrix with n >= 2, got shape {shape}")
    if n is not None and shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}), got {shape}")
    return int(shape[0])


def _context_masks(context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    same = context[:, None] == context[None, :]
    off = ~np.eye(context.size, dtype=bool)
    return same & off, ~same


def _check_context(context: ArrayLike, n: int) -> np.ndarray:
    c = checks.concrete(context)
    if c is None:
        raise ValueError("context must be concrete (not traced)")
    if c.shape != (n,) or c.dtype.kind not in "iu":
        raise ValueError(f"context must be an integer array of shape ({n},), got {c!r}")
    values, counts = np.unique(c, return_counts=True)
    if values.size < 2 or counts.max() < 2:
        raise ValueError(
            "context must hold at least two contexts, one of them with two points or more"
        )
    return c


def context_ratio(d: Float[ArrayLike, "n n"], context: Int[ArrayLike, " n"]) -> Float[Array, ""]:
    """Between-context over within-context mean distance.

    ratio = mean{d_ij : c_i ≠ c_j} / mean{d_ij : c_i = c_j, i ≠ j}, every ordered pair
    counted once in its mean (the matrix is symmetric, so ordered and unordered pairs give
    the same means). 1 when the contexts are mixed as much as points within a context
    are spread; large when the contexts are far apart compared with their own spread.

    Arguments:
        d: (n, n) distances.
        context: (n,) concrete integer context labels, at least two contexts and a context
            with two points or more.

    Returns:
        Scalar ratio (NaN if every within-context distance is 0).

    Raises:
        ValueError: for a matrix that is not square, or context labels as above.
    """
    n = _check_square("d", d)
    within, between = _context_masks(_check_context(context, n))
    d = jnp.asarray(d)
    return _masked_mean(d, between) / _masked_mean(d, within)


def _masked_mean(d: Array, mask: np.ndarray) -> Array:
    m = jnp.asarray(mask)
    return jnp.sum(jnp.where(m, d, 0.0)) / jnp.sum(m)


def paired_ratio(
    d: Float[ArrayLike, "n n"],
    context: Int[ArrayLike, " n"],
    pairs: Int[ArrayLike, "m 2"],
) -> Float[Array, ""]:
    """Mean distance between paired points over the mean within-context distance.

    ratio = mean_k d[pairs[k, 0], pairs[k, 1]] / mean{d_ij : c_i = c_j, i ≠ j}. For the
    blobs, pair k is the same image in context 0 (row k) and context 1 (row k + 900): the
    ratio says how far apart the context puts two copies of one input, in units of the
    spread within a context.

    Arguments:
        d: (n, n) distances.
        context: (n,) concrete integer context labels (as ``context_ratio``).
        pairs: (m, 2) concrete row indices, m ≥ 1.

    Returns:
        Scalar ratio (NaN if every within-context distance is 0).

    Raises:
        ValueError: for a matrix that is not square, context labels as in
            ``context_ratio``, or pairs that are not (m, 2) indices in 0 … n − 1.
    """
    n = _check_square("d", d)
    within, _ = _context_masks(_check_context(context, n))
    p = _check_pairs(pairs, n)
    d = jnp.asarray(d)
    return jnp.mean(d[p[:, 0], p[:, 1]]) / _masked_mean(d, within)


def _check_pairs(pairs: ArrayLike, n: int) -> np.ndarray:
    p = checks.concrete(pairs)
    if p is None or p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 1 or p.dtype.kind not in "iu":
        raise ValueError(f"pairs must be concrete integer indices of shape (m, 2), got {pairs!r}")
    if p.min() < 0 or p.max() >= n:
        raise ValueError(f"pairs must index rows 0 … {n - 1}")
    return p.astype(np.int64)


@jax.jit
def _distances(points: Array) -> Array:
    return jnp.sqrt(squared_distances(points))


@jax.jit
def _metrics_core(h, d_x, d_y, upper, within, between, p0, p1):
    d_h = _distances(h)
    within_mean = _masked_mean(d_h, within)
    return jnp.stack(
        [
            pearson(d_h, d_x, mask=upper),
            pearson(d_h, d_y, mask=upper),
            _masked_mean(d_h, between) / within_mean,
            jnp.mean(d_h[p0, p1]) / within_mean,
        ]
    )


def blob_metrics(
    hidden: Float[ArrayLike, "T n F"],
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "n out"],
    context: Int[ArrayLike, " n"],
    pairs: Int[ArrayLike, "m 2"],
) -> np.ndarray:
    """The numbers ``METRICS`` of every record of one run.

    Arguments:
        hidden: (T, n, F) hidden representations of the n points at T records.
        x: (n, d) inputs; their Euclidean distances are the input geometry.
        y: (n, out) targets; their Euclidean distances are the task geometry.
        context: (n,) context labels; pairs: (m, 2) paired rows (``paired_ratio``).

    Returns:
        (T, 4) float64 NumPy array with columns r_input, r_target, ratio, paired_ratio
        (NaN for a record with a non-finite entry), computed in float64.

    Raises:
        ValueError: for shapes that disagree, or context and pairs as in
            ``context_ratio`` and ``paired_ratio``.
    """
    hidden = np.asarray(hidden)
    if hidden.ndim != 3:
        raise ValueError(f"hidden must have shape (T, n, F), got {hidden.shape}")
    n = hidden.shape[1]
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[0] != n or y.ndim != 2 or y.shape[0] != n:
        raise ValueError(
            f"x and y must have {n} rows (as hidden), got shapes {x.shape} and {y.shape}"
        )
    within, between = _context_masks(_check_context(context, n))
    p = _check_pairs(pairs, n)
    # float64: the means run over 1.6 million pairs.
    with jax.enable_x64(True):
        d_x = _distances(jnp.asarray(x, jnp.float64))
        d_y = _distances(jnp.asarray(y, jnp.float64))
        masks = [jnp.asarray(m) for m in (_upper_mask(n), within, between)]
        index = [jnp.asarray(p[:, 0]), jnp.asarray(p[:, 1])]
        # One record per call (one compilation per (n, F), whatever T is).
        out = [
            np.asarray(_metrics_core(jnp.asarray(h, jnp.float64), d_x, d_y, *masks, *index))
            for h in hidden
        ]
    return np.stack(out).astype(np.float64)
