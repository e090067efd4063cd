"""The paper's two-point experiment: train presets over seeds, fit the effective theory,
summarise how well it describes each network (THEORY.md section 7, first row).

For each preset (PRESETS.md's two-point table) with the trajectory protocol (lr/2, 2 ×
epochs): the seeds are trained vmapped, in blocks of 4 (so a seed's record does not depend
on how many seeds run with it: ``_common.train_batch``); h (at the preset's read-out
layer), y and w are fitted by the theory (``rep_align.fit``, float64); η_m is fitted to the loss
curve; the analytic h∞ follows from the fitted rates. A run counts as converged when its
final loss is below 1e-2 (the paper's filter); means and standard deviations over seeds
are taken over the converged seeds.
"""

from __future__ import annotations

import os

import numpy as np

from rep_align.experiments._common import (
    CONVERGED_LOSS,
    Status,
    fit_eta_m,
    fit_observed,
    nanstats,
    observed,
    preset_config,
    quick_preset,
    record_every_for,
    train_batch,
    write_json,
)
from rep_align.presets import TWO_POINT_PRESETS, TwoPointPreset, get_preset

__all__ = ["run_preset", "run_two_points", "GOOD_FIT", "SEED_KEYS"]

#: R² thresholds (h, y, w) of a good fit: the acceptance bounds of issue 4 for the
#: ``default`` preset, applied to every preset's mean over converged seeds.
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
    return quick_preset(preset) if quick else preset


def run_preset(
    preset: TwoPointPreset, seeds, *, record_every: int | None = None, float64: bool = False
) -> dict:
    """Train, fit and summarise one preset over ``seeds``.

    Returns a dict with ``seeds`` (list of per-seed dicts with ``SEED_KEYS``), ``mean``
    and ``std`` over converged seeds, ``n_converged``, ``fit_quality`` ("good", "poor" or
    "no converged seeds") and, under the key ``"_arrays"``, the record and fitted
    trajectories for plotting (not for JSON).
    """
    from rep_align import theory

    seeds = np.asarray(seeds)
    record_every = record_every or record_every_for(preset.epochs)
    traj = train_batch(preset, seeds, record_every=record_every, float64=float64)
    ts, z_obs = observed(traj, preset.layer)
    loss = np.asarray(traj.loss, np.float64)
    m = np.asarray(traj.m, np.float64)
    rates = fit_observed(ts, z_obs, dx2=preset.dx2, dy2=preset.dy2, trajectory=True)
    n = len(seeds)
    nan = np.full(n, np.nan)
    if rates is None:
        eta_h = eta_y = fit_loss = nan
        r2 = np.full((n, 3), np.nan)
        z_fit = np.full_like(z_obs, np.nan)
    else:
        eta_h, eta_y, fit_loss, r2, z_fit = (
            rates.eta_h,
            rates.eta_y,
            rates.loss,
            rates.r2,
            rates.z_fit,
        )
    em = fit_eta_m(ts, loss, z_fit, m0=m[:, 0], dy2=preset.dy2, out_dim=preset.out_dim)
    eta_m = nan if em is None else em.eta_m
    h0, y0, w0 = z_obs[:, 0, 0], z_obs[:, 0, 1], z_obs[:, 0, 2]
    ok = np.isfinite(eta_h) & np.isfinite(eta_y) & (h0 > 0)
    h_inf = np.full(n, np.nan)
    if ok.any():
        h_inf[ok] = np.asarray(
            theory.final_distance(
                h0[ok], y0[ok], eta_h=eta_h[ok], eta_y=eta_y[ok], dx2=preset.dx2, dy2=preset.dy2
            )
        )
    converged = np.isfinite(loss[:, -1]) & (loss[:, -1] < CONVERGED_LOSS)
    rows = []
    for i, seed in enumerate(seeds):
        rows.append(
            dict(
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
        )
    rows = [
        {k: (float(v) if k not in ("seed", "converged") else v) for k, v in r.items()} for r in rows
    ]
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
    if rates is not None and em is not None:
        from rep_align import theory as th

        fin = np.isfinite(eta_m)
        if fin.any():
            theory_loss[fin] = np.asarray(
                th.loss_curve(
                    ts,
                    z_fit[fin],
                    eta_m=eta_m[fin],
                    m0=m[fin, 0],
                    dy2=preset.dy2,
                    out_dim=preset.out_dim,
                )
            )
    return dict(
        config=preset_config(
            preset, record_every=record_every, precision="float64" if float64 else "float32"
        ),
        seeds=rows,
        mean=mean,
        std=std,
        n_seeds=n,
        n_converged=int(converged.sum()),
        diverged=int(np.sum(np.asarray(traj.diverged))),
        fit_quality=quality,
        _arrays=dict(
            ts=ts, z_obs=z_obs, z_fit=z_fit, loss=loss, theory_loss=theory_loss, converged=converged
        ),
    )


def run_two_points(
    names,
    *,
    seeds: int = 5,
    quick: bool = False,
    out: str | None = None,
    first_seed: int = 0,
    float64: bool = False,
) -> dict:
    """Run ``run_preset`` for every name (``"all"`` = every two-point preset), write
    ``out/summary.json`` and figures when ``out`` is given, and return the summary.
    ``float64`` trains in float64 from the float32 runs' initial parameters (see
    ``train_batch``); the paper's runs are float32 (the default).

    Raises:
        ValueError: unknown preset names or ``seeds < 1``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    names = list(TWO_POINT_PRESETS) if names in ("all", ["all"]) else list(names)
    presets = [protocol_preset(n, quick=quick) for n in names]  # validates every name first
    status = Status(len(presets), "presets")
    summary: dict = {
        "settings": dict(
            protocol="trajectory (lr/2, 2x epochs)",
            quick=quick,
            precision="float64" if float64 else "float32",
            seeds=seeds,
            converged_if_final_loss_below=CONVERGED_LOSS,
            good_fit=GOOD_FIT,
            mean_and_std_over="converged seeds",
        ),
        "presets": {},
    }
    for preset in presets:
        res = run_preset(preset, np.arange(first_seed, first_seed + seeds), float64=float64)
        arrays = res.pop("_arrays")
        summary["presets"][preset.name] = res
        if out:
            from rep_align.experiments import plots

            plots.save(
                plots.two_point_trajectories(preset, arrays, res),
                os.path.join(out, f"{preset.name}_trajectories.png"),
            )
            # the records themselves, so that fits can be redone without retraining
            np.savez_compressed(
                os.path.join(out, f"{preset.name}_records.npz"),
                seeds=np.arange(first_seed, first_seed + seeds),
                **arrays,
            )
            write_json(os.path.join(out, "summary.json"), summary)
        m = res["mean"]
        status.step(
            f"{preset.name}: R2 h {m['r2_h']:.3f} y {m['r2_y']:.3f} w {m['r2_w']:.3f}"
            f", {res['n_converged']}/{seeds} converged, fit {res['fit_quality']}"
        )
    if out:
        from rep_align.experiments import plots

        plots.save(plots.two_point_overview(summary), os.path.join(out, "r2_overview.png"))
        write_json(os.path.join(out, "summary.json"), summary)
    return summary
