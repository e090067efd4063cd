"""The paper's two-point experiment: train presets over seeds, fit the effective theory,
summarise how well it describes each network (docs/theory.md §7, first row).

A sweep plus an analysis. For each preset (docs/presets.md, "Two-point task") with the
trajectory protocol (lr/2, 2 × epochs), the seeds are one sweep (``common.seed_spec``:
blocks of 4 per device, so a seed's record does not depend on how many seeds run with it),
stored under ``out/sweeps/<preset>-<hash>`` and resumed from there. The analysis fits h (at the
preset's read-out layer), y and w of all seeds by the theory (``fit.fit_records``,
float64), η_m to the loss curve, and the analytic h∞ (docs/theory.md, eq. (3.2)) from the
fitted rates. A run counts as converged when its final loss is below 1e-2 (the paper's
filter); means and standard deviations over seeds are taken over the converged seeds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rep_align import fit, theory
from rep_align.experiments.common import (
    SeedRuns,
    Status,
    nanstats,
    observed,
    store_root,
    train_seeds,
)
from rep_align.files import write_json
from rep_align.presets import TWO_POINT_PRESETS, TwoPointPreset, get_preset
from rep_align.sweep.store import CONVERGED_LOSS

__all__ = [
    "GOOD_FIT",
    "SEED_KEYS",
    "PresetResult",
    "TwoPointsResult",
    "analyse_preset",
    "preset_run_config",
    "protocol_preset",
    "run_preset",
    "run_two_points",
]

#: R² thresholds (h, y, w) of a good fit, applied to every preset's mean over converged
#: seeds.
GOOD_FIT = {"r2_h": 0.99, "r2_y": 0.995, "r2_w": 0.96}

#: Keys of each per-seed entry of ``summary.json`` (``presets.<name>.seeds``).
SEED_KEYS = (
    "seed",
    "eta_h",
    "eta_y",
    "eta_m",
    "fit_loss",
    "r2_h",
    "r2_y",
    "r2_w",
    "h0",
    "y0",
    "w0",
    "h_final",
    "y_final",
    "w_final",
    "loss_final",
    "h_inf_theory",
    "converged",
)


def protocol_preset(name: str, *, quick: bool) -> TwoPointPreset:
    """Preset ``name`` under the trajectory protocol, reduced in size when ``quick``."""
    preset = get_preset(name).trajectory_protocol()
    return preset.quick() if quick else preset


def preset_run_config(preset: TwoPointPreset, *, float64: bool = False):
    """The ``RunConfig`` the experiment trains for ``preset`` (as given: apply the protocol
    first). ``float64`` trains in float64 from the float32 runs' initial parameters."""
    if float64:
        return preset.config.replace(dtype="float64", init_dtype="float32")
    return preset.config


@dataclasses.dataclass(frozen=True)
class PresetResult:
    """One preset over seeds: per-seed fits and their summary.

    Attributes:
        config: the preset as run (``TwoPointPreset.describe()`` plus record_every and
            precision).
        seeds: per-seed entries with ``SEED_KEYS``.
        mean, std: over converged seeds, per numeric key.
        n_seeds, n_converged, diverged: counts.
        fit_quality: "good" (every mean R² at least ``GOOD_FIT``), "poor" or
            "no converged seeds".
        arrays: records and fitted trajectories for figures: ``ts (T,)``, ``z_obs`` and
            ``z_fit (R, T, 3)``, ``loss`` and ``theory_loss (R, T)``, ``converged (R,)``.
            Not part of ``to_json``.
        trained, reused: runs trained by this call and runs found in the store.
    """

    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]
    n_seeds: int
    n_converged: int
    diverged: int
    fit_quality: str
    arrays: Mapping[str, np.ndarray] = dataclasses.field(repr=False, compare=False)
    trained: int = 0
    reused: int = 0

    def to_json(self) -> dict[str, Any]:
        """The entry of ``summary.json`` (everything but ``arrays`` and the run counts)."""
        return dict(
            config=dict(self.config),
            seeds=[dict(r) for r in self.seeds],
            mean=dict(self.mean),
            std=dict(self.std),
            n_seeds=self.n_seeds,
            n_converged=self.n_converged,
            diverged=self.diverged,
            fit_quality=self.fit_quality,
        )


@dataclasses.dataclass(frozen=True)
class TwoPointsResult:
    """The two-point experiment over presets: ``settings`` and one ``PresetResult`` each."""

    settings: Mapping[str, Any]
    presets: Mapping[str, PresetResult]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return {
            "settings": dict(self.settings),
            "presets": {k: v.to_json() for k, v in self.presets.items()},
        }


def analyse_preset(
    preset: TwoPointPreset, runs: SeedRuns, *, float64: bool = False
) -> PresetResult:
    """Fit and summarise the stored runs of one preset (the analysis half of the experiment).

    Arguments:
        preset: the preset as it ran.
        runs: its runs over seeds (``common.train_seeds``).
        float64: whether it trained in float64 (recorded in the config).
    """
    seeds = runs.seeds
    ts, z_obs = observed(runs.records, preset.layer)
    loss = np.asarray(runs.records["loss"], np.float64)
    m = np.asarray(runs.records["m"], np.float64)
    n = len(seeds)
    rates = fit.fit_records(ts, z_obs, dx2=preset.dx2, dy2=preset.dy2, return_trajectory=True)
    eta_h, eta_y, fit_loss, r2, z_fit = (
        rates.eta_h,
        rates.eta_y,
        rates.loss,
        rates.r2,
        rates.z_fit,
    )
    em = fit.fit_eta_m_records(ts, loss, z_fit, m0=m[:, 0], dy2=preset.dy2, out_dim=preset.out_dim)
    eta_m = em.eta_m
    h0, y0, w0 = z_obs[:, 0, 0], z_obs[:, 0, 1], z_obs[:, 0, 2]
    h_inf = fit.predicted_final_distance(h0, y0, eta_h, eta_y, preset.dx2, preset.dy2)
    converged = np.isfinite(loss[:, -1]) & (loss[:, -1] < CONVERGED_LOSS)
    rows = []
    for i, seed in enumerate(seeds):
        row = dict(
            seed=int(seed),
            eta_h=eta_h[i],
            eta_y=eta_y[i],
            eta_m=eta_m[i],
            fit_loss=fit_loss[i],
            r2_h=r2[i, 0],
            r2_y=r2[i, 1],
            r2_w=r2[i, 2],
            h0=h0[i],
            y0=y0[i],
            w0=w0[i],
            h_final=z_obs[i, -1, 0],
            y_final=z_obs[i, -1, 1],
            w_final=z_obs[i, -1, 2],
            loss_final=loss[i, -1],
            h_inf_theory=h_inf[i],
            converged=bool(converged[i]),
        )
        rows.append({k: (v if k in ("seed", "converged") else float(v)) for k, v in row.items()})
    numeric = [k for k in SEED_KEYS if k not in ("seed", "converged")]
    chosen = [r for r in rows if r["converged"]]
    mean = {k: nanstats([r[k] for r in chosen])[0] for k in numeric}
    std = {k: nanstats([r[k] for r in chosen])[1] for k in numeric}
    if not chosen:
        quality = "no converged seeds"
    elif all(np.isfinite(mean[k]) and mean[k] >= v for k, v in GOOD_FIT.items()):
        quality = "good"
    else:
        quality = "poor"
    theory_loss = np.full_like(loss, np.nan)
    fin = np.isfinite(eta_m)
    if fin.any():
        theory_loss[fin] = np.asarray(
            theory.loss_curve(
                ts,
                z_fit[fin],
                eta_m=eta_m[fin],
                m0=m[fin, 0],
                dy2=preset.dy2,
                out_dim=preset.out_dim,
            )
        )
    config = preset.describe() | dict(
        record_every=preset.config.record_every, precision="float64" if float64 else "float32"
    )
    return PresetResult(
        config=config,
        seeds=tuple(rows),
        mean=mean,
        std=std,
        n_seeds=n,
        n_converged=int(converged.sum()),
        diverged=int(np.sum(runs.table["diverged"])),
        fit_quality=quality,
        arrays=dict(
            ts=ts, z_obs=z_obs, z_fit=z_fit, loss=loss, theory_loss=theory_loss, converged=converged
        ),
        trained=runs.report.completed,
        reused=runs.report.skipped,
    )


def run_preset(
    preset: TwoPointPreset,
    seeds: Sequence[int],
    *,
    root: str | os.PathLike | None = None,
    float64: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PresetResult:
    """Train (or resume), fit and summarise one preset over ``seeds``.

    Arguments:
        preset: the preset as it should run (apply ``trajectory_protocol`` first if wanted).
        seeds: PRNG seeds, one run each.
        root: directory of the sweep stores (this preset's is ``common.store_for``);
            default a temporary directory.
        float64: train in float64 from the float32 runs' initial parameters (about twice
            the time), so the two precisions differ only by rounding along the way.
        progress: optional ``progress(done, total)`` over the runs.
    """
    config = preset_run_config(preset, float64=float64)
    with store_root(None) if root is None else contextlib.nullcontext(Path(root)) as where:
        runs = train_seeds(config, seeds, root=where, name=preset.name, progress=progress)
    return analyse_preset(preset, runs, float64=float64)


def run_two_points(
    names,
    *,
    seeds: int = 5,
    quick: bool = False,
    out: str | None = None,
    first_seed: int = 0,
    float64: bool = False,
) -> TwoPointsResult:
    """Run ``run_preset`` for every name (``"all"`` = every two-point preset), write
    ``out/summary.json``, figures and records when ``out`` is given, and return the result.

    Runs are stored under ``out/sweeps/<preset>-<hash>`` (``common.store_for``): a second
    call with the same ``out`` and settings retrains nothing that is stored.

    Raises:
        ValueError: unknown preset names or ``seeds < 1``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    names = list(TWO_POINT_PRESETS) if names in ("all", ["all"]) else list(names)
    presets = [protocol_preset(n, quick=quick) for n in names]  # validates every name first
    status = Status(len(presets), "presets")
    settings = dict(
        protocol="trajectory (lr/2, 2x epochs)",
        quick=quick,
        precision="float64" if float64 else "float32",
        seeds=seeds,
        converged_if_final_loss_below=CONVERGED_LOSS,
        good_fit=GOOD_FIT,
        mean_and_std_over="converged seeds",
    )
    done: dict[str, PresetResult] = {}
    seed_list = np.arange(first_seed, first_seed + seeds)
    with store_root(out) as root:
        for preset in presets:
            res = run_preset(preset, seed_list, root=root, float64=float64)
            done[preset.name] = res
            if out:
                from rep_align import plots

                plots.save(
                    plots.two_point_trajectories(res.to_json(), res.arrays),
                    os.path.join(out, f"{preset.name}_trajectories.png"),
                )
                # the records themselves, so that fits can be redone without the store
                np.savez_compressed(
                    os.path.join(out, f"{preset.name}_records.npz"), seeds=seed_list, **res.arrays
                )
                write_json(
                    os.path.join(out, "summary.json"), TwoPointsResult(settings, done).to_json()
                )
            m = res.mean
            status.step(
                f"{preset.name}: R2 h {m['r2_h']:.3f} y {m['r2_y']:.3f} w {m['r2_w']:.3f}"
                f", {res.n_converged}/{seeds} converged, fit {res.fit_quality}"
                f" ({res.trained} runs trained, {res.reused} reused)"
            )
    result = TwoPointsResult(settings, done)
    if out:
        from rep_align import plots

        summary = result.to_json()
        plots.save(plots.two_point_overview(summary), os.path.join(out, "r2_overview.png"))
        write_json(os.path.join(out, "summary.json"), summary)
    return result
