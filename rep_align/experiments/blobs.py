"""The context-blobs experiment (docs/theory.md §7, "context blobs"; docs/presets.md,
"Context blobs"): does the hidden layer keep the input geometry (lazy, high init) or
reorganise it by the task (rich, low init)?

A sweep plus an analysis. For each regime of ``presets.BLOB_PRESETS`` (high, low and very
low init) and each activation (leaky ReLU, as the published runs; tanh, as the settings
file states), the seeds are ``experiments.points.PointsRun``s of task "blobs" (4 × 100 MLP,
SGD at the row's learning rate on 0.5·mse, batch 64), recorded at layer 2 for all 1,800
points at initialisation, at the end and at four times in between, cached under
``out/sweeps/blobs`` and resumed from there. The analysis, per regime and seed, at every
record:

- ``r_input``: Pearson correlation between the hidden and the input Euclidean distances
  over all pairs i < j of the 1,800 points (``distance_correlation``); ``r_target`` the
  same with the target distances |y*_i − y*_j|;
- ``ratio``: the between/within-context distance ratio (``context_ratio``): the mean
  hidden distance between points of different contexts over the mean distance between
  distinct points of the same context;
- ``paired_ratio``: the mean distance between the two copies of one image (the same blob
  in context 0 and in context 1; rows i and i + 900) over the same within-context mean
  (``paired_ratio``);

the values at initialisation (record 0) are reported next to the final ones, and the
input's own ratios as the reference (the context units make them large). For the figures,
the final layer-2 representation of the first seed of each regime is embedded in 3-D by
classical MDS (``embedding.mds_of_points``) and coloured by context, μx and μy.

The paper's visual claim, as numbers (issue 13's acceptance, leaky ReLU, mean over ≥ 2
seeds): at high init r_input ≥ 0.95 (the input geometry is kept; the contexts stay apart,
ratio far above 1); at low and very low init r_input < 0.5 (ratio near 1).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from rep_align import checks, data
from rep_align.embedding import mds_of_points
from rep_align.experiments.common import Status, nanstats, store_root
from rep_align.experiments.points import PointsRun, train_points, write_settings
from rep_align.files import write_json
from rep_align.observables import squared_distances
from rep_align.presets import BLOB_PRESETS, BlobPreset

__all__ = [
    "ACTIVATIONS",
    "METRICS",
    "QUICK_EPOCHS",
    "SETTLED_TOL",
    "RECORDS",
    "REGIMES",
    "BlobRegimeResult",
    "BlobsResult",
    "analyse_regime",
    "blob_metrics",
    "blob_runs",
    "context_ratio",
    "distance_correlation",
    "paired_ratio",
    "run_blobs",
]

REGIMES = tuple(BLOB_PRESETS)
ACTIVATIONS = ("leaky_relu", "tanh")

#: Records per run after the initial one (every epochs/10 epochs).
RECORDS = 10

#: The per-record numbers of the analysis (module docstring).
METRICS = ("r_input", "r_target", "ratio", "paired_ratio")

#: ``--quick``'s epochs per regime (network, data, learning rate and batches unchanged).
#: Chosen from full-size leaky-ReLU runs (seed 0, records every tenth of the run): r_input
#: and the ratio reach their final values by 10 % of the run at high init (75 of 750
#: epochs), by 30 % at low init (the drop from 0.90 to 0.13 happens between epochs 300 and
#: 450 of 1,500), but only after 65-70 % at very low init (the loss sits on its plateau
#: until epoch ~1,300 of 2,000, then r falls from 0.88 to 0.04), so very low init keeps all
#: of its epochs. Whether a run's r has settled is checked, not assumed (``SETTLED_TOL``).
QUICK_EPOCHS = MappingProxyType({"high_init": 150, "low_init": 600, "vlow_init": 2000})

#: A run's r_input counts as settled when it changes by less than this over the last
#: fifth of the run (its last three records).
SETTLED_TOL = 0.02

#: Issue 13's acceptance thresholds on the mean r_input (leaky ReLU).
HIGH_R_MIN = 0.95
LOW_R_MAX = 0.5


# ----------------------------------------------------------------------------- numbers


def _upper_mask(n: int) -> np.ndarray:
    return np.triu(np.ones((n, n), bool), k=1)


def _pearson(a: Array, b: Array, mask: Array) -> Array:
    """Pearson r of the entries of a and b where mask (NaN if either is constant there)."""
    w = mask.astype(a.dtype)
    count = jnp.sum(w)
    ma, mb = jnp.sum(w * a) / count, jnp.sum(w * b) / count
    da, db = w * (a - ma), w * (b - mb)
    return jnp.sum(da * db) / jnp.sqrt(jnp.sum(da * da) * jnp.sum(db * db))


def _check_square(name: str, d: ArrayLike, n: int | None = None) -> int:
    shape = jnp.shape(d)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2:
        raise ValueError(f"{name} must be a square (n, n) matrix with n >= 2, got shape {shape}")
    if n is not None and shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}), got {shape}")
    return int(shape[0])


def distance_correlation(
    d_a: Float[ArrayLike, "n n"], d_b: Float[ArrayLike, "n n"]
) -> Float[Array, ""]:
    """Pearson correlation of two distance matrices over the pairs i < j.

    The n(n−1)/2 entries above the diagonal of each (the diagonal and the lower triangle
    are ignored), as ``metrics.rsa(..., method="pearson")``, but a traced or concrete
    constant matrix gives NaN instead of raising (an analysis over seeds must survive a
    collapsed representation).

    Arguments:
        d_a, d_b: (n, n) distances between the same n ≥ 3 points.

    Returns:
        Scalar r in [−1, 1], or NaN.

    Raises:
        ValueError: if the matrices are not square of the same size n ≥ 3.
    """
    n = _check_square("d_a", d_a)
    _check_square("d_b", d_b, n)
    if n < 3:
        raise ValueError("distance_correlation needs n >= 3 points (>= 2 pairs)")
    a, b = jnp.asarray(d_a), jnp.asarray(d_b)
    dtype = jnp.result_type(a.dtype, b.dtype, float)
    return _pearson(a.astype(dtype), b.astype(dtype), jnp.asarray(_upper_mask(n)))


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
            _pearson(d_h, d_x, upper),
            _pearson(d_h, d_y, upper),
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
    """The analysis numbers ``METRICS`` of every record of one run.

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


# ----------------------------------------------------------------------------- runs


def _epochs(preset: BlobPreset, quick: bool) -> int:
    return QUICK_EPOCHS.get(preset.name, preset.epochs) if quick else preset.epochs


def blob_runs(
    preset: BlobPreset,
    seeds: Sequence[int],
    *,
    activation: str | None = None,
    epochs: int | None = None,
    float64: bool = False,
) -> list[PointsRun]:
    """The ``PointsRun``s of one regime over ``seeds``.

    Arguments:
        preset: a row of ``BLOB_PRESETS``.
        seeds: PRNG seeds, one run each.
        activation: "leaky_relu" or "tanh"; default the preset's (leaky ReLU).
        epochs: training epochs, a multiple of ``RECORDS``; default the preset's.
        float64: train in float64.

    Returns:
        One run per seed: all 1,800 points recorded at layer 2 every epochs/10 epochs.

    Raises:
        ValueError: for an unknown activation or epochs that are not a positive multiple
            of ``RECORDS``.
    """
    activation = checks.choice(
        "activation", preset.activation if activation is None else activation, ACTIVATIONS
    )
    epochs = preset.epochs if epochs is None else checks.integer("epochs", epochs, minimum=1)
    if epochs % RECORDS:
        raise ValueError(f"epochs must be a multiple of {RECORDS}, got {epochs}")
    return [
        PointsRun(
            task="blobs",
            arch=preset.arch,
            width=preset.width,
            depth=preset.depth,
            activation=activation,
            gain=preset.gain,
            optimizer=preset.optimizer,
            lr=preset.lr,
            epochs=epochs,
            batch_size=preset.batch_size,
            record_every=epochs // RECORDS,
            layer=preset.layer,
            seed=int(s),
            dtype="float64" if float64 else "float32",
        )
        for s in seeds
    ]


# ----------------------------------------------------------------------------- analysis


@dataclasses.dataclass(frozen=True)
class BlobRegimeResult:
    """One regime and activation over seeds.

    Attributes:
        regime, activation: e.g. "high_init", "leaky_relu".
        config: the preset as run (gain, lr, epochs, width, depth, layer, batch_size,
            optimizer, loss, precision, record_every).
        seeds: per-seed entries: seed, every ``METRICS`` name at the end and with suffix
            ``_init`` at initialisation, ``loss_init``, ``loss_final``, ``diverged``.
        mean, std: over the seeds that did not diverge, per numeric key.
        epochs: (T,) epochs of the records.
        over_training: per ``METRICS`` name and "loss", a (seeds, T) list of the values
            at each record.
        mds: the 3-D classical MDS of the first seed's final representation: ``seed``,
            ``explained`` (fraction of the variance in 3 axes), ``eigenvalues``; the
            coordinates are in ``arrays``.
        settled: r_input settled in every seed (``SETTLED_TOL``).
        comparable_with_full: True for full-size runs; for quick ones, ``settled``.
        arrays: ``coords`` (n, 3) of that embedding and ``coords_init`` of the same seed's
            initial representation. Not part of ``to_json``.
    """

    regime: str
    activation: str
    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]
    epochs: tuple[int, ...]
    over_training: Mapping[str, list]
    mds: Mapping[str, Any]
    settled: bool
    comparable_with_full: bool
    arrays: Mapping[str, np.ndarray] = dataclasses.field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """This regime's entry of ``summary.json``."""
        return dict(
            regime=self.regime,
            activation=self.activation,
            config=dict(self.config),
            seeds=[dict(s) for s in self.seeds],
            mean=dict(self.mean),
            std=dict(self.std),
            epochs=list(self.epochs),
            over_training={k: v for k, v in self.over_training.items()},
            mds=dict(self.mds),
            settled=self.settled,
            comparable_with_full=self.comparable_with_full,
        )


@dataclasses.dataclass(frozen=True)
class BlobsResult:
    """The context-blobs experiment.

    Attributes:
        settings: how it ran (quick, seeds, activations, precision, definitions).
        input: the input's own ``ratio``, ``paired_ratio`` and ``r_target``, the
            reference for the hidden ones.
        regimes: activation → regime → ``BlobRegimeResult``.
        acceptance: issue 13's checks on the mean r_input, per activation.
        timings: measured wall-clock seconds (train, analysis per activation) and the
            number of runs trained by this call (``runs_trained_<activation>``; 0 when every
            run came from the cache, and the train time is then only reading it).
    """

    settings: Mapping[str, Any]
    input: Mapping[str, float]
    regimes: Mapping[str, Mapping[str, BlobRegimeResult]]
    acceptance: Mapping[str, Any]
    timings: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return dict(
            settings=dict(self.settings),
            input=dict(self.input),
            regimes={
                act: {name: r.to_json() for name, r in res.items()}
                for act, res in self.regimes.items()
            },
            acceptance=dict(self.acceptance),
            timings=dict(self.timings),
        )


def _blob_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y, context, (μx, μy) and the (900, 2) copy pairs of the blob data, float64."""
    with jax.enable_x64(True):
        b = data.context_blobs(dtype=jnp.float64)
        x, y = np.asarray(b.x), np.asarray(b.y)
        context = np.asarray(b.context)
        mu = np.stack([np.asarray(b.mu_x), np.asarray(b.mu_y)], axis=1)
    half = x.shape[0] // 2
    pairs = np.stack([np.arange(half), np.arange(half) + half], axis=1)
    return x, y, context, mu, pairs


def analyse_regime(
    preset: BlobPreset,
    runs: Sequence[PointsRun],
    records: Sequence[Mapping[str, np.ndarray]],
    *,
    quick: bool = False,
) -> BlobRegimeResult:
    """Summarise the stored runs of one regime (the analysis half of the experiment).

    Arguments:
        preset: the regime's preset.
        runs: its runs (``blob_runs``), one per seed, all with the same activation and
            epochs.
        records: their stored ``Snapshots`` arrays (``train_points``), in the same order.
        quick: whether they are quick runs (sets ``comparable_with_full``).

    Returns:
        A ``BlobRegimeResult``.
    """
    x, y, context, _, pairs = _blob_data()
    first = runs[0]
    rows, curves = [], {k: [] for k in (*METRICS, "loss")}
    for run, rec in zip(runs, records, strict=True):
        hidden = np.asarray(rec["hidden"])
        m = blob_metrics(hidden, x, y, context, pairs)
        loss = np.asarray(rec["loss"], np.float64)
        row: dict[str, Any] = {"seed": run.seed}
        for j, name in enumerate(METRICS):
            row[name] = float(m[-1, j])
            row[f"{name}_init"] = float(m[0, j])
            curves[name].append([float(v) for v in m[:, j]])
        row["loss_init"], row["loss_final"] = float(loss[0]), float(loss[-1])
        row["diverged"] = bool(np.asarray(rec["diverged"]))
        tail = m[-3:, 0]
        row["r_input_settled"] = bool(
            not row["diverged"] and np.all(np.isfinite(tail)) and np.ptp(tail) < SETTLED_TOL
        )
        curves["loss"].append([float(v) for v in loss])
        rows.append(row)
    numeric = [k for k in rows[0] if k not in ("seed", "diverged", "r_input_settled")]
    ok = [r for r in rows if not r["diverged"]]
    mean = {k: nanstats([r[k] for r in ok])[0] for k in numeric}
    std = {k: nanstats([r[k] for r in ok])[1] for k in numeric}
    hid0 = np.asarray(records[0]["hidden"])
    arrays: dict[str, np.ndarray] = {}
    mds: dict[str, Any] = {"seed": first.seed}
    for tag, t in (("coords_init", 0), ("coords", -1)):
        if np.all(np.isfinite(hid0[t])):
            emb = mds_of_points(jnp.asarray(hid0[t], jnp.float32))
            arrays[tag] = np.asarray(emb.coords, np.float64)
            key = "explained" if t == -1 else "explained_init"
            mds[key] = float(emb.explained)
            if t == -1:
                mds["eigenvalues"] = [float(v) for v in np.asarray(emb.eigenvalues)]
        else:
            arrays[tag] = np.full((hid0.shape[1], 3), np.nan)
            mds["explained" if t == -1 else "explained_init"] = float("nan")
    config = dict(
        name=preset.name,
        gain=preset.gain,
        lr=preset.lr,
        epochs=first.epochs,
        preset_epochs=preset.epochs,
        width=first.width,
        depth=first.depth,
        layer=first.layer,
        batch_size=first.batch_size,
        optimizer=first.optimizer,
        loss="0.5*mse",
        activation=first.activation,
        record_every=first.record_every,
        precision=first.dtype,
    )
    return BlobRegimeResult(
        regime=preset.name,
        activation=first.activation,
        config=config,
        seeds=tuple(rows),
        mean=mean,
        std=std,
        epochs=tuple(int(e) for e in np.asarray(records[0]["epochs"])),
        over_training=curves,
        mds=mds,
        settled=all(r["r_input_settled"] for r in rows),
        comparable_with_full=(not quick) or all(r["r_input_settled"] for r in rows),
        arrays=arrays,
    )


def _input_reference() -> dict[str, float]:
    """The input's own numbers (r_input = 1 by definition)."""
    x, y, context, _, pairs = _blob_data()
    # Zero columns leave the distances as they are and share the hidden layer's program.
    width = BLOB_PRESETS[REGIMES[0]].width
    padded = np.pad(x, ((0, 0), (0, max(0, width - x.shape[1]))))
    m = blob_metrics(padded[None], x, y, context, pairs)[0]
    return {name: float(v) for name, v in zip(METRICS, m, strict=True) if name != "r_input"}


def _acceptance(regimes: Mapping[str, BlobRegimeResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, res in regimes.items():
        r = res.mean["r_input"]
        if name == "high_init":
            out[name] = dict(
                mean_r_input=r, threshold=f">= {HIGH_R_MIN}", passed=bool(r >= HIGH_R_MIN)
            )
        else:
            out[name] = dict(mean_r_input=r, threshold=f"< {LOW_R_MAX}", passed=bool(r < LOW_R_MAX))
    return out


def run_blobs(
    *,
    seeds: int = 3,
    regimes: Sequence[str] = REGIMES,
    activations: Sequence[str] = ACTIVATIONS,
    quick: bool = False,
    float64: bool = False,
    out: str | os.PathLike | None = None,
    first_seed: int = 0,
) -> BlobsResult:
    """Train (or resume) and analyse the context-blobs regimes; write the summary and
    figures when ``out`` is given.

    Full size is the reference's: every regime's epochs, width 100, 4 layers, batch 64.
    ``quick`` keeps the network, the data and the protocol, and trains ``QUICK_EPOCHS``
    (fewer epochs at high and low init, where the full runs' records show r settled long
    before the end); each regime's entry says whether r_input settled in every seed
    (``settled``), and only then are its quick numbers comparable with the full ones
    (``comparable_with_full``). The CLI also uses fewer seeds and leaky ReLU only.

    Runs are cached under ``out/sweeps/blobs/<run_id>.npz`` (``points.train_points``): a
    second call with the same ``out`` and settings trains nothing.

    Arguments:
        seeds: seeds per regime (≥ 1); default 3.
        regimes: names in ``BLOB_PRESETS``; default all three.
        activations: subset of ``ACTIVATIONS``; default both.
        quick: the quick variant (above).
        float64: train in float64.
        out: output directory for ``summary.json``, ``blobs_records.npz`` and the figures;
            None writes nothing (runs are trained in a temporary directory).
        first_seed: first seed (default 0).

    Returns:
        A ``BlobsResult``.

    Raises:
        ValueError: for seeds < 1, an unknown regime or activation.
    """
    seeds = checks.integer("seeds", seeds, minimum=1)
    first_seed = checks.integer("first_seed", first_seed, minimum=0)
    regimes = [checks.choice("regimes", r, REGIMES) for r in regimes]
    activations = [checks.choice("activations", a, ACTIVATIONS) for a in activations]
    if not regimes or not activations:
        raise ValueError("regimes and activations must not be empty")
    quick = checks.boolean("quick", quick)
    float64 = checks.boolean("float64", float64)
    seed_list = list(range(first_seed, first_seed + seeds))
    plan = {
        act: {
            name: blob_runs(
                BLOB_PRESETS[name],
                seed_list,
                activation=act,
                epochs=_epochs(BLOB_PRESETS[name], quick),
                float64=float64,
            )
            for name in regimes
        }
        for act in activations
    }
    status = Status(len(activations) * len(regimes), "blob regimes")
    settings = dict(
        quick=quick,
        epochs={name: _epochs(BLOB_PRESETS[name], quick) for name in regimes},
        comparable_with_full=(
            "per regime: regimes.<activation>.<regime>.comparable_with_full" if quick else True
        ),
        settled=(
            f"r_input changes by less than {SETTLED_TOL} over the last three records "
            "(the last fifth of the run)"
        ),
        seeds=seed_list,
        activations=list(activations),
        regimes=list(regimes),
        precision="float64" if float64 else "float32",
        layer=BLOB_PRESETS[regimes[0]].layer,
        points=1800,
        distances="Euclidean (not squared), all 1800·1799/2 pairs i < j",
        r_input="Pearson r between hidden and input distances over the pairs i < j",
        r_target="Pearson r between hidden and target (|y*_i - y*_j|) distances",
        ratio=(
            "mean distance between points of different contexts / mean distance between "
            "distinct points of the same context"
        ),
        paired_ratio=(
            "mean distance between the two copies of one image (rows i and i+900) / the "
            "same within-context mean"
        ),
        init="values with suffix _init are those of the initial network (record 0)",
        mean_and_std_over="seeds that did not diverge",
        mds="classical MDS (embedding.mds_of_points) of the first seed's final layer",
    )
    timings: dict[str, float] = {}
    done: dict[str, dict[str, BlobRegimeResult]] = {}
    with store_root(out) as root:
        cache = Path(root) / "blobs"
        all_runs = [r for act in plan.values() for rs in act.values() for r in rs]
        for act in activations:
            runs = [r for rs in plan[act].values() for r in rs]
            t0 = time.perf_counter()
            todo = _missing(cache, runs)
            print(f"blobs ({act}): {len(runs)} runs, {todo} to train", file=sys.stderr, flush=True)
            recs = train_points(runs, cache)
            timings[f"train_{act}"] = time.perf_counter() - t0
            timings[f"runs_trained_{act}"] = todo
            write_settings(cache, all_runs)
            t0 = time.perf_counter()
            done[act] = {}
            k = 0
            for name in regimes:
                n = len(plan[act][name])
                res = analyse_regime(
                    BLOB_PRESETS[name], plan[act][name], recs[k : k + n], quick=quick
                )
                k += n
                done[act][name] = res
                m = res.mean
                status.step(
                    f"{act} {name}: r_input {m['r_input']:.3f} (init {m['r_input_init']:.3f}),"
                    f" ratio {m['ratio']:.2f} (init {m['ratio_init']:.2f})"
                )
            timings[f"analysis_{act}"] = time.perf_counter() - t0
    result = BlobsResult(
        settings=settings,
        input=_input_reference(),
        regimes=done,
        acceptance={act: _acceptance(done[act]) for act in activations},
        timings=timings,
    )
    if out is not None:
        _write(result, Path(out))
    return result


def _missing(cache: Path, runs: Sequence[PointsRun]) -> int:
    """How many of ``runs`` are not stored under ``cache`` yet."""
    return sum(not (cache / f"{r.run_id}.npz").exists() for r in dict.fromkeys(runs))


def _write(result: BlobsResult, out: Path) -> None:
    from rep_align.plots import blobs as blob_plots
    from rep_align.plots import save

    out.mkdir(parents=True, exist_ok=True)
    _, _, context, mu, _ = _blob_data()
    summary = result.to_json()
    arrays = {"context": context, "mu_x": mu[:, 0], "mu_y": mu[:, 1]}
    for act, res in result.regimes.items():
        for name, r in res.items():
            for tag, a in r.arrays.items():
                arrays[f"{act}__{name}__{tag}"] = a
        save(
            blob_plots.mds_figure(summary, arrays, act),
            out / f"blobs_mds_{act}.png",
        )
    save(blob_plots.metrics_figure(summary), out / "blobs_metrics.png")
    np.savez_compressed(out / "blobs_mds.npz", **arrays)
    write_json(out / "summary.json", summary)
