"""The pairwise theory as a tool: predicted final representational distances of a data set.

Given a data set (inputs ``x`` and targets ``y*``, one row per point), docs/theory.md §6
predicts the matrix of squared hidden distances a network converges to by applying the
two-point result (3.2) to every pair of points, as if each pair were alone:

- from a given network's initial representations (hidden activations ``h0`` at the chosen
  layer and outputs ``y0``, one row per point), equation (6.1):
  ``H∞_ij = A_ij/2 + sqrt(A_ij²/4 + ρ Dx_ij Dy_ij)``, ``A_ij = H0_ij − ρ Dx_ij Y0_ij / H0_ij``;
- in the rich limit (small initial weights, no initial terms), equation (3.3) pair by pair:
  ``H∞_ij = sqrt(ρ Dx_ij Dy_ij)``.

Here ``Dx``, ``Dy``, ``H0``, ``Y0`` are matrices of *squared* Euclidean distances and
ρ = η_h/η_y is the ratio of the effective rates (docs/theory.md §5). Only the ratio enters.
With initial terms it matters and must be given (the reference study takes it from fits of
the two-point ``default`` preset: ``experiments.two_points.read_rates``); in the rich limit it only
multiplies the whole matrix by sqrt(ρ), so it defaults to 1.0 there.

``predict_distances`` returns squared distances; the reference compares their square roots
with a network's (unsquared) distance matrix (docs/presets.md, "XOR"), by their Pearson
correlation over the pairs (``upper_pearson``) and a slope through the origin
(``origin_slope``).

For data sets too large for N × N matrices, ``structure_prediction`` gives the structure
heuristic E·A·E of docs/theory.md (6.2) (``theory.structure_heuristic``) restricted to a
few analysed points, as the reference applies it to MNIST.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from rep_align import checks, metrics, theory
from rep_align.observables import cross_squared_distances, pairwise_squared_distances

__all__ = [
    "TwoPointRates",
    "origin_slope",
    "predict_distances",
    "structure_prediction",
    "upper_pearson",
]


def _matrix(name: str, a: Any) -> np.ndarray:
    """``a`` as a finite 2-D float array (concrete), or a ValueError naming ``name``."""
    try:
        arr = np.asarray(a)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name} must be a 2-D numeric array: {err}") from None
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (points, features), got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature per point, got shape {arr.shape}")
    checks.values(name, arr, finite=True)
    return arr


def _upper(a: ArrayLike) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise ValueError(f"expected a square matrix of at least 2 points, got shape {a.shape}")
    return a[np.triu_indices(a.shape[0], 1)]


def upper_pearson(a: ArrayLike, b: ArrayLike) -> float:
    """Pearson correlation of two (n, n) matrices over their upper-triangle entries (i < j),
    in float64 as a Python float: ``metrics.upper_pearson`` of the matrices cast to float64.

    NaN if an entry is not finite, either set of entries is constant, or n = 2 (one pair).

    Raises:
        ValueError: matrices that are not square, of fewer than 2 points, or of other sizes.
    """
    u, v = np.asarray(a, np.float64), np.asarray(b, np.float64)
    for m in (u, v):
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
            raise ValueError(f"expected a square matrix of at least 2 points, got shape {m.shape}")
    if u.shape != v.shape:
        raise ValueError(f"matrices of different sizes: {u.shape} and {v.shape}")
    if u.shape[0] == 2:
        return math.nan
    with jax.enable_x64(True):
        return float(metrics.upper_pearson(u, v))


def origin_slope(learned: ArrayLike, other: ArrayLike) -> float:
    """Least-squares slope through the origin over the upper-triangle entries:
    ``learned ≈ slope · other``, i.e. ``Σ l·o / Σ o²``. NaN for non-finite entries or an
    all-zero ``other``.

    Raises:
        ValueError: as ``upper_pearson``.
    """
    u, v = _upper(learned), _upper(other)
    if u.shape != v.shape:
        raise ValueError(f"matrices of different sizes: {np.shape(learned)} and {np.shape(other)}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        return math.nan
    den = float(v @ v)
    return float(u @ v) / den if den > 0 else math.nan


def _pairs(mask: np.ndarray, limit: int = 3) -> str:
    i, j = np.nonzero(np.triu(mask, 1))
    text = ", ".join(f"({a}, {b})" for a, b in zip(i[:limit], j[:limit], strict=True))
    return text + (", …" if i.size > limit else "")


def predict_distances(
    inputs: Float[ArrayLike, "n d_in"],
    targets: Float[ArrayLike, "n d_out"],
    *,
    hidden0: Float[ArrayLike, "n F"] | None = None,
    outputs0: Float[ArrayLike, "n d_out"] | None = None,
    eta_ratio: float | None = None,
) -> Float[Array, "n n"]:
    """Predicted matrix of final squared hidden distances of a data set (docs/theory.md §6).

    With ``hidden0`` and ``outputs0`` (a network's initial representations of the points):
    equation (6.1), ``theory.pairwise_final_distances``. Without them: the rich limit (3.3)
    for every pair, ``sqrt(eta_ratio · Dx_ij · Dy_ij)``. Take the square root to compare
    with a distance matrix.

    Arguments:
        inputs: (n, d_in) inputs, one row per point (n ≥ 2).
        targets: (n, d_out) targets, same number of rows.
        hidden0: (n, F) initial hidden activations at the read-out layer (flatten
            convolutional features first); give with ``outputs0`` or not at all. No two
            rows may coincide (the theory needs h0 > 0 for every pair; drop duplicated
            points first).
        outputs0: (n, d_out) initial network outputs; give with ``hidden0``.
        eta_ratio: η_h/η_y (> 0). Required with initial representations. In the rich limit
            it only scales the matrix (by sqrt(eta_ratio)) and defaults to 1.0.

    Returns:
        (n, n) symmetric matrix of squared distances with zero diagonal, in JAX's default
        float (float64 under ``jax.enable_x64``).

    Raises:
        ValueError: non-2-D or non-numeric arrays, different numbers of rows, fewer than
            2 points, non-finite entries, ``outputs0`` columns unlike ``targets``'s, only
            one of ``hidden0``/``outputs0``, a missing or non-positive ``eta_ratio``, or
            coincident initial hidden points.
    """
    x = _matrix("inputs", inputs)
    y = _matrix("targets", targets)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"inputs must hold at least 2 points, got {n}")
    if y.shape[0] != n:
        raise ValueError(
            f"targets must have one row per input: inputs has {n} rows, targets {y.shape[0]}"
        )
    if (hidden0 is None) != (outputs0 is None):
        given = "hidden0" if outputs0 is None else "outputs0"
        raise ValueError(
            f"{given} was given alone: pass both hidden0 and outputs0 (prediction from the "
            "initial network, eq. (6.1)) or neither (rich limit, eq. (3.3))"
        )
    rich = hidden0 is None
    if eta_ratio is None:
        if not rich:
            raise ValueError(
                "eta_ratio (η_h/η_y) is required with hidden0/outputs0; e.g. from "
                "experiments.two_points.read_rates on a `rep-align two-points` output"
            )
        eta_ratio = 1.0
    ratio = checks.real("eta_ratio", eta_ratio, positive=True)
    dtype = jnp.result_type(float)
    dx2 = pairwise_squared_distances(jnp.asarray(x, dtype))
    dy2 = pairwise_squared_distances(jnp.asarray(y, dtype))
    if rich:
        return theory.rich_limit(eta_h=ratio, eta_y=1.0, dx2=dx2, dy2=dy2)
    h = _matrix("hidden0", hidden0)
    out = _matrix("outputs0", outputs0)
    for name, m in (("hidden0", h), ("outputs0", out)):
        if m.shape[0] != n:
            raise ValueError(f"{name} must have one row per input ({n}), got {m.shape[0]} rows")
    if out.shape[1] != y.shape[1]:
        raise ValueError(
            f"outputs0 must have as many columns as targets ({y.shape[1]}), got {out.shape[1]}"
        )
    h0 = pairwise_squared_distances(jnp.asarray(h, dtype))
    y0 = pairwise_squared_distances(jnp.asarray(out, dtype))
    off = ~np.eye(n, dtype=bool)
    zero = off & ~(np.asarray(h0) > 0)
    if zero.any():
        raise ValueError(
            "hidden0 has coincident points (zero initial hidden distance) at pairs "
            f"{_pairs(zero)}: eq. (6.1) needs h0 > 0 for every pair; remove duplicated points"
        )
    return theory.pairwise_final_distances(dx2, dy2, h0, y0, eta_h=ratio, eta_y=1.0)


def structure_prediction(
    pixels: ArrayLike,
    targets: ArrayLike,
    rows: ArrayLike,
    *,
    block: int = 1000,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The structure heuristic E·A·E (docs/theory.md (6.2)) over N points, restricted to
    ``rows``, without forming N × N products.

    With A = d^x ∘ d^y over all N points (unsquared Euclidean distances of the inputs and
    of the targets) and E = exp(−A), both symmetric, ``(E A E)[S][:, S] = E[S, :] A
    E[S, :]ᵀ``; A is formed one block of rows at a time
    (``observables.cross_squared_distances``), so memory is O(block · N) and the cost one
    pass of input distances (``theory.structure_heuristic`` computes the same entries from
    the full matrices). The reference applies it to MNIST: raw 0–255 pixels, one-hot
    targets, the first 10,000 training images.

    Arguments:
        pixels: (N, p) inputs of the N points the product sums over (raw 0–255 pixel
            values for the reference's heuristic); distances are computed in float64.
        targets: (N, c) targets (one-hot for MNIST).
        rows: (k,) indices of the analysed points among the N.
        block: rows of A per step (default 1000).

    Returns:
        ``(h_hat, diagnostics)``: the (k, k) float64 matrix, and a dict with ``n``,
        ``e_is_same_target_indicator`` (whether E[S, :] is exactly 1 for equal targets and
        0 otherwise: then E·A·E depends only on the classes, docs/theory.md §6),
        ``min_a_between_targets`` (smallest A between points of different targets, among
        the analysed rows), ``nonzero_e_between_targets`` (how many such entries of E are
        not 0).

    Raises:
        ValueError: for shapes that disagree, non-finite or negative pixels, or rows
            outside 0 … N − 1.
    """
    x = np.asarray(pixels, np.float64)
    y = np.asarray(targets, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"pixels (N, p) and targets (N, c) must have the same N, got {x.shape} and {y.shape}"
        )
    checks.values("pixels", x, nonnegative=True)
    checks.values("targets", y)
    s = np.asarray(rows)
    n = x.shape[0]
    if s.ndim != 1 or s.size < 1 or s.dtype.kind not in "iu" or s.min() < 0 or s.max() >= n:
        raise ValueError(f"rows must be a 1-D array of indices in 0 … {n - 1}, got {rows!r}")
    block = checks.integer("block", block, minimum=1)
    with jax.enable_x64(True):
        xj, yj = jnp.asarray(x), jnp.asarray(y)

        def a_rows(i):  # rows i of A = d^x ∘ d^y: (len(i), N)
            dx = jnp.sqrt(cross_squared_distances(xj[i], xj))
            return dx * jnp.sqrt(cross_squared_distances(yj[i], yj))

        a_s = a_rows(s)
        e_s = jnp.exp(-a_s)  # (k, N)
        # A E[S]ᵀ, one block of rows at a time: (N, k)
        m = [
            jnp.matmul(a_rows(slice(i, min(n, i + block))), e_s.T, precision="highest")
            for i in range(0, n, block)
        ]
        h_hat = np.asarray(jnp.matmul(e_s, jnp.concatenate(m), precision="highest"))
        a_s, e_s = np.asarray(a_s), np.asarray(e_s)
    same = np.all(y[s][:, None, :] == y[None, :, :], axis=-1)
    diag = dict(
        n=int(n),
        e_is_same_target_indicator=bool(np.array_equal(e_s, same.astype(np.float64))),
        min_a_between_targets=float(a_s[~same].min()) if np.any(~same) else float("nan"),
        nonzero_e_between_targets=int(np.count_nonzero(e_s[~same])),
    )
    return 0.5 * (h_hat + h_hat.T), diag


@dataclasses.dataclass(frozen=True)
class TwoPointRates:
    """Effective rates fitted on a two-point preset: the means over its converged seeds
    (``from_rows``, or ``experiments.two_points.read_rates`` for a ``rep-align two-points`` output).

    Attributes:
        eta_h, eta_y: means over the converged seeds of the fitted rates (per step).
        ratio: ``eta_h / eta_y`` (the ratio of the means, as the reference study takes it).
        seeds: the converged seeds used.
        n_seeds: seeds in the summary (converged or not).
        preset: the preset read.
        source: the file read.
    """

    eta_h: float
    eta_y: float
    ratio: float
    seeds: tuple[int, ...]
    n_seeds: int
    preset: str
    source: str

    @classmethod
    def from_rows(
        cls, rows: Sequence[Any], *, preset: str = "default", source: str = ""
    ) -> TwoPointRates:
        """The mean fitted η_h, η_y over the converged seeds with finite rates (the
        reference study's ``etas_h["default"]``, ``etas_y["default"]``, docs/presets.md
        "XOR"), and their ratio.

        Arguments:
            rows: per-seed fits, each a mapping (or an object) with ``seed``, ``eta_h``,
                ``eta_y`` and ``converged`` (``experiments.two_points.analyse_preset``'s
                seeds; a missing rate is None or NaN).
            preset: the preset they fit.
            source: where they come from (for the record and the error messages).

        Raises:
            ValueError: no converged seed with finite rates, or mean rates that are not
                positive.
        """

        def get(row: Any, key: str) -> Any:
            return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)

        def finite(v: Any) -> bool:
            return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

        used = [
            r
            for r in rows
            if get(r, "converged") and finite(get(r, "eta_h")) and finite(get(r, "eta_y"))
        ]
        if not used:
            raise ValueError(f"{source}: preset {preset!r} has no converged seed with fitted rates")
        eta_h = float(np.mean([float(get(r, "eta_h")) for r in used]))
        eta_y = float(np.mean([float(get(r, "eta_y")) for r in used]))
        if not (eta_h > 0 and eta_y > 0):
            raise ValueError(
                f"{source}: mean rates of {preset!r} are not positive ({eta_h}, {eta_y})"
            )
        return cls(
            eta_h=eta_h,
            eta_y=eta_y,
            ratio=eta_h / eta_y,
            seeds=tuple(int(get(r, "seed")) for r in used),
            n_seeds=len(rows),
            preset=preset,
            source=source,
        )
