"""Depth profile (docs/theory.md §5 and §7): the theory fitted at every hidden layer of one
run, a profile of effective rates and fit quality over depth.

A sweep (one seed of the preset under the trajectory protocol, stored under
``out/sweeps/<preset>-<hash>``, shared with the two-point experiment run into the same
directory) plus an analysis: h of each hidden layer, with the run's y and w, fitted
separately, all layers in one ``fit.fit_records`` call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rep_align import fit
from rep_align.experiments.common import observed, store_root, train_seeds
from rep_align.experiments.two_points import protocol_preset
from rep_align.files import write_json

__all__ = ["DepthResult", "run_depth"]


@dataclasses.dataclass(frozen=True)
class DepthResult:
    """Fitted rates per hidden layer of one run.

    Attributes:
        config: the preset as run.
        seed: the run's seed.
        final_loss: its final training loss.
        layers: per layer: layer, eta_h, eta_y, fit_loss, r2_h, r2_y, r2_w, success.
        trend: mean R² and mean fit loss of the earlier and the later half of the layers,
            and whether the later half fits at least as well.
    """

    config: Mapping[str, Any]
    seed: int
    final_loss: float
    layers: tuple[Mapping[str, Any], ...]
    trend: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The content of ``depth.json``."""
        return dict(
            config=dict(self.config),
            seed=self.seed,
            final_loss=self.final_loss,
            layers=[dict(r) for r in self.layers],
            trend=dict(self.trend),
        )


def run_depth(
    name: str = "default",
    *,
    seed: int = 0,
    quick: bool = False,
    out: str | None = None,
    store_seeds: Sequence[int] | None = None,
) -> DepthResult:
    """Fit (η_h, η_y) at every hidden layer of one run of preset ``name``.

    Writes ``out/depth.json`` and ``out/depth.png`` when ``out`` is given.

    Arguments:
        name: two-point preset (trajectory protocol).
        seed: the run's seed.
        quick: small network (width ≤ 64, depth ≤ 4).
        out: output directory; its sweep stores are ``out/sweeps/<preset>-<hash>``, shared
            with ``rep-align two-points`` and ``ablations`` run into the same directory.
        store_seeds: the seeds of the store to read the run from (default ``[seed]``);
            pass the seeds of a two-point run in the same ``out`` to reuse its stored runs.

    Raises:
        ValueError: if ``seed`` is not in ``store_seeds``.
    """
    preset = protocol_preset(name, quick=quick)
    store_seeds = [seed] if store_seeds is None else [int(s) for s in store_seeds]
    if seed not in store_seeds:
        raise ValueError(f"seed {seed} is not among store_seeds {store_seeds}")
    with store_root(out) as root:
        runs = train_seeds(preset.config, store_seeds, root=root, name=name)
    runs = dataclasses.replace(
        runs,
        seeds=runs.seeds[[store_seeds.index(seed)]],
        records={
            k: (v if k == "times" else np.asarray(v)[[store_seeds.index(seed)]])
            for k, v in runs.records.items()
        },
        table={k: np.asarray(v)[[store_seeds.index(seed)]] for k, v in runs.table.items()},
    )
    n_layers = preset.config.num_hidden
    ts, z = observed(runs.records, 0)  # times, y and w; h of every layer is stacked below
    h_all = np.asarray(runs.records["h"], np.float64)[0]  # (T, L)
    z_layers = np.stack(
        [np.stack([h_all[:, k], z[0, :, 1], z[0, :, 2]], -1) for k in range(n_layers)]
    )  # (L, T, 3)
    dx2 = np.asarray(runs.table["data_dx2"])[0]
    dy2 = np.asarray(runs.table["data_dy2"])[0]
    res = fit.fit_records(ts, z_layers, dx2=dx2, dy2=dy2)
    rows = tuple(
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
        for k in range(n_layers)
    )
    half = n_layers // 2
    mean_r2 = np.nanmean(res.r2, axis=1)
    early, late = float(np.nanmean(mean_r2[:half])), float(np.nanmean(mean_r2[half:]))
    early_loss = float(np.nanmean(res.loss[:half]))
    late_loss = float(np.nanmean(res.loss[half:]))
    result = DepthResult(
        config=preset.describe(),
        seed=seed,
        final_loss=float(np.asarray(runs.records["loss"])[0, -1]),
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
        from rep_align import plots

        write_json(os.path.join(out, "depth.json"), result.to_json())
        plots.save(plots.depth_profile(result.to_json()), os.path.join(out, "depth.png"))
    return result
