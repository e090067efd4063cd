"""Ablations (docs/theory.md §4): the theory and each altered system (4.1)-(4.4) fitted to
the same runs; the theory should fit best.

A sweep (the preset over seeds under the trajectory protocol, stored under
``out/sweeps/<preset>-<hash>``, shared with the two-point experiment run into the same
directory) plus an analysis: each variant of ``theory.VARIANTS`` fitted to all runs with
``fit.fit_records``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rep_align import fit, theory
from rep_align.experiments.common import Status, nanstats, observed, store_root, train_seeds
from rep_align.experiments.two_points import protocol_preset
from rep_align.files import write_json

__all__ = ["AblationsResult", "run_ablations"]


@dataclasses.dataclass(frozen=True)
class AblationsResult:
    """Fit quality of the theory and its ablations on the same runs.

    Attributes:
        config: the preset as run.
        seeds: number of runs.
        variants: per variant: fit_loss (per run), mean_fit_loss, std_fit_loss, r2_h, r2_y,
            r2_w (means over the runs it fitted), failed (runs it could not fit).
        theory_best: every ablation's mean fit loss is above the theory's.
    """

    config: Mapping[str, Any]
    seeds: int
    variants: Mapping[str, Mapping[str, Any]]
    theory_best: bool

    def to_json(self) -> dict[str, Any]:
        """The content of ``ablations.json``."""
        return dict(
            config=dict(self.config),
            seeds=self.seeds,
            variants={k: dict(v) for k, v in self.variants.items()},
            theory_best=self.theory_best,
        )


def run_ablations(
    name: str = "default",
    *,
    seeds: int = 5,
    quick: bool = False,
    out: str | None = None,
    variants: Sequence[str] | None = None,
) -> AblationsResult:
    """Fit the theory and each ablation of docs/theory.md §4 to the same runs.

    A variant that cannot be integrated for a run (the ablated systems can run into h = 0
    in finite time) counts as failed for that run and is left out of its mean. Writes
    ``out/ablations.json`` and ``out/ablations.png`` when ``out`` is given.
    """
    variants = list(theory.VARIANTS if variants is None else variants)
    preset = protocol_preset(name, quick=quick)
    with store_root(out) as root:
        runs = train_seeds(preset.config, range(seeds), root=root, name=name)
    ts, z_obs = observed(runs.records, preset.layer)
    status = Status(len(variants), "variants")
    table = {}
    for v in variants:
        res = fit.fit_records(
            ts, z_obs, dx2=preset.dx2, dy2=preset.dy2, options=fit.FitOptions(variant=v)
        )
        loss = np.asarray(res.loss, float)
        ok = np.isfinite(loss) & res.success
        mean, std = nanstats(np.where(ok, loss, np.nan))
        r2 = np.nanmean(np.where(ok[:, None], res.r2, np.nan), axis=0)
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
    result = AblationsResult(
        config=preset.describe(),
        seeds=seeds,
        variants=table,
        theory_best=bool(np.isfinite(base) and all(not np.isfinite(o) or o > base for o in others)),
    )
    if out:
        from rep_align import plots

        write_json(os.path.join(out, "ablations.json"), result.to_json())
        plots.save(plots.ablation_bars(result.to_json()), os.path.join(out, "ablations.png"))
    return result
