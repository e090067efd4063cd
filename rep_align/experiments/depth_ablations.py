"""Depth profile and ablations (THEORY.md sections 4, 5 and 7).

- ``run_depth``: one run of a preset (trajectory protocol), the theory fitted separately at
  every hidden layer: a profile of effective rates and fit quality over depth.
- ``run_ablations``: runs of a preset over seeds, each of ``theory.VARIANTS`` fitted to the
  same records; the theory should fit best.
"""

from __future__ import annotations

import os

import numpy as np

from rep_align.experiments._common import (
    Status,
    fit_observed,
    nanstats,
    num_hidden,
    observed,
    preset_config,
    record_every_for,
    train_batch,
    write_json,
)
from rep_align.experiments.two_points import protocol_preset

__all__ = ["run_depth", "run_ablations"]


def run_depth(
    name: str = "default", *, seed: int = 0, quick: bool = False, out: str | None = None
) -> dict:
    """Fit (η_h, η_y) at every hidden layer of one run of preset ``name``.

    Returns ``{"config", "seed", "layers": [{layer, eta_h, eta_y, fit_loss, r2_h, r2_y,
    r2_w, success}, ...], "trend"}`` where ``trend`` compares the mean R² of the later half
    of the layers with the earlier half. Writes ``out/depth.json`` and ``out/depth.png``.
    """
    preset = protocol_preset(name, quick=quick)
    traj = train_batch(preset, np.array([seed]), record_every=record_every_for(preset.epochs))
    n_layers = num_hidden(preset.arch, preset.depth)
    ts, z = observed(traj, 0)  # times, y and w; h of every layer is stacked below
    h_all = np.asarray(traj.h, np.float64)[0]  # (T, L)
    z_layers = np.stack(
        [np.stack([h_all[:, k], z[0, :, 1], z[0, :, 2]], -1) for k in range(n_layers)]
    )  # (L, T, 3)
    dx2 = np.asarray(traj.dx2)[0]
    dy2 = np.asarray(traj.dy2)[0]
    res = fit_observed(ts, z_layers, dx2=dx2, dy2=dy2)
    rows = []
    for k in range(n_layers):
        rows.append(
            dict(
                layer=k,
                eta_h=float(res.eta_h[k]),
                eta_y=float(res.eta_y[k]),
                fit_loss=float(res.loss[k]),
                r2_h=float(res.r2[k, 0]),
                r2_y=float(res.r2[k, 1]),
                r2_w=float(res.r2[k, 2]),
                success=bool(res.success[k]),
            )
        )
    half = n_layers // 2
    mean_r2 = np.nanmean(res.r2, axis=1)
    early, late = float(np.nanmean(mean_r2[:half])), float(np.nanmean(mean_r2[half:]))
    early_loss = float(np.nanmean(res.loss[:half]))
    late_loss = float(np.nanmean(res.loss[half:]))
    result = dict(
        config=preset_config(preset),
        seed=seed,
        final_loss=float(np.asarray(traj.loss)[0, -1]),
        layers=rows,
        trend=dict(
            mean_r2_early_layers=early,
            mean_r2_late_layers=late,
            mean_fit_loss_early_layers=early_loss,
            mean_fit_loss_late_layers=late_loss,
            late_fit_at_least_as_good=bool(late_loss <= early_loss),
        ),
    )
    if out:
        from rep_align.experiments import plots

        write_json(os.path.join(out, "depth.json"), result)
        plots.save(plots.depth_profile(result), os.path.join(out, "depth.png"))
    return result


def run_ablations(
    name: str = "default",
    *,
    seeds: int = 5,
    quick: bool = False,
    out: str | None = None,
    variants=None,
) -> dict:
    """Fit the theory and each ablation of THEORY.md section 4 to the same runs.

    Returns ``{"config", "variants": {variant: {fit_loss (per run), mean_fit_loss,
    std_fit_loss, r2 (mean per observable), failed}}, "theory_best"}``; ``theory_best`` is
    True when every ablation's mean fit loss is higher than the theory's. A variant that
    cannot be integrated for a run (the ablated systems can run into h = 0 in finite
    time) counts as failed for that run and is left out of its mean. Writes
    ``out/ablations.json`` and ``out/ablations.png``.
    """
    from rep_align import theory

    variants = list(theory.VARIANTS if variants is None else variants)
    preset = protocol_preset(name, quick=quick)
    traj = train_batch(preset, np.arange(seeds), record_every=record_every_for(preset.epochs))
    ts, z_obs = observed(traj, preset.layer)
    status = Status(len(variants), "variants")
    table = {}
    for v in variants:
        res = fit_observed(ts, z_obs, dx2=preset.dx2, dy2=preset.dy2, variant=v)
        loss = np.full(seeds, np.nan) if res is None else np.asarray(res.loss, float)
        ok = np.isfinite(loss) & (np.zeros(seeds, bool) if res is None else res.success)
        mean, std = nanstats(np.where(ok, loss, np.nan))
        r2 = (
            np.full(3, np.nan)
            if res is None
            else np.nanmean(np.where(ok[:, None], res.r2, np.nan), axis=0)
        )
        table[v] = dict(
            fit_loss=loss.tolist(),
            mean_fit_loss=mean,
            std_fit_loss=std,
            r2_h=float(r2[0]),
            r2_y=float(r2[1]),
            r2_w=float(r2[2]),
            failed=int(np.sum(~ok)),
        )
        status.step(f"{v}: mean fit loss {mean:.3g} ({int(np.sum(~ok))} failed)")
    base = table.get("theory", {}).get("mean_fit_loss", np.nan)
    others = [t["mean_fit_loss"] for k, t in table.items() if k != "theory"]
    result = dict(
        config=preset_config(preset),
        seeds=seeds,
        variants=table,
        theory_best=bool(np.isfinite(base) and all(not np.isfinite(o) or o > base for o in others)),
    )
    if out:
        from rep_align.experiments import plots

        write_json(os.path.join(out, "ablations.json"), result)
        plots.save(plots.ablation_bars(result), os.path.join(out, "ablations.png"))
    return result
