"""Where does the theory hold? The two-point task over width × depth × gain, every run fitted.

The paper says the theory describes networks "once they are flexible enough"; this maps
where that begins. One sweep per gain (a leaky-ReLU MLP on the two-point task of
docs/presets.md, read out at the middle hidden layer, the learning rate of the preset with
that gain under the trajectory protocol: lr/2 and 6,000 full-batch steps), over widths,
depths and seeds, with the effective rates fitted to every run by the sweep engine
(``SweepSpec.fit``). The analysis reads each store as an ``xarray.Dataset``
(``SweepResults.to_xarray``), averages R² of h, y, w and the fitted rates over the
converged seeds of every (width, depth), and states where mean R² w ≥ 0.95 begins: for each
gain and depth, the smallest width from which every larger width meets it.

Quick mode keeps the protocol and the network family and shrinks the map (fewer widths,
depths and seeds); its cells are the same measurements as the full map's cells of the same
size, so they mean the same thing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rep_align.experiments.common import store_for
from rep_align.files import write_json
from rep_align.presets import get_preset
from rep_align.sweep import SweepSpec, load_results, run_sweep
from rep_align.sweep.store import CONVERGED_LOSS

__all__ = ["GAINS", "ValidityResult", "run_validity", "validity_specs"]

#: Gains mapped, each with the learning rate of the preset of that gain.
GAINS = {0.9: "gain_0.9", 1.0: "default", 1.1: "gain_1.1"}
FULL = dict(widths=(16, 32, 64, 128, 256, 512), depths=(2, 4, 8, 12, 16, 20), seeds=4)
QUICK = dict(widths=(16, 64, 256), depths=(2, 4, 8), seeds=2)
#: The bound on mean R² of w that counts as "the theory holds" here.
R2_W_BOUND = 0.95


def validity_specs(
    *,
    widths: Sequence[int] = FULL["widths"],
    depths: Sequence[int] = FULL["depths"],
    seeds: int = FULL["seeds"],
    gains: Mapping[float, str] = GAINS,
) -> dict[float, SweepSpec]:
    """One sweep spec per gain: width × depth × seed, fitted."""
    specs = {}
    for gain, name in gains.items():
        base = get_preset(name).trajectory_protocol().config
        specs[gain] = SweepSpec(
            axes={"width": list(widths), "depth": list(depths), "seed": list(range(seeds))},
            fixed=dict(
                arch="mlp",
                activation="leaky_relu",
                gain=float(gain),
                lr=base.lr,
                steps=base.steps,
                record_every=base.record_every,
            ),
            name=f"validity_gain_{gain:g}",
            fit=True,
        )
    return specs


@dataclasses.dataclass(frozen=True)
class ValidityResult:
    """The map of fit quality over width × depth, per gain.

    Attributes:
        widths, depths, gains: the map's axes.
        seeds: seeds per cell.
        cells: per gain, arrays (width, depth) of mean R² h, y, w, mean η_h, η_y (over
            converged seeds) and the number of converged seeds.
        boundary: per gain and depth, the smallest width from which every larger width has
            mean R² w ≥ 0.95 (None where no width does).
        quick: whether this is the quick map.
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    gains: tuple[float, ...]
    seeds: int
    cells: Mapping[float, Mapping[str, np.ndarray]]
    boundary: Mapping[float, Mapping[int, int | None]]
    quick: bool

    def to_json(self) -> dict[str, Any]:
        """The content of ``validity.json``."""
        return dict(
            widths=list(self.widths),
            depths=list(self.depths),
            gains=list(self.gains),
            seeds=self.seeds,
            quick=self.quick,
            bound=dict(r2_w=R2_W_BOUND, converged_if_final_loss_below=CONVERGED_LOSS),
            cells={
                f"{g:g}": {k: np.asarray(v).tolist() for k, v in c.items()}
                for g, c in self.cells.items()
            },
            boundary={
                f"{g:g}": {str(d): w for d, w in b.items()} for g, b in self.boundary.items()
            },
        )


def _cells(ds, widths, depths) -> dict[str, np.ndarray]:
    keys = ("r2_h", "r2_y", "r2_w", "eta_h", "eta_y")
    out = {k: np.full((len(widths), len(depths)), np.nan) for k in keys}
    out["n_converged"] = np.zeros((len(widths), len(depths)), int)
    for i, w in enumerate(widths):
        for j, d in enumerate(depths):
            cell = ds.sel(width=w, depth=d)
            ok = cell.converged.values & cell.fit_ok.values
            out["n_converged"][i, j] = int(ok.sum())
            for k in keys:
                v = cell[k].values[ok]
                v = v[np.isfinite(v)]
                if v.size:
                    out[k][i, j] = float(np.mean(v))
    return out


def _boundary(r2_w: np.ndarray, widths, depths) -> dict[int, int | None]:
    """Per depth: the smallest width from which every larger width meets the bound."""
    out: dict[int, int | None] = {}
    for j, d in enumerate(depths):
        good = np.nan_to_num(r2_w[:, j], nan=-np.inf) >= R2_W_BOUND
        start = None
        for i in range(len(widths) - 1, -1, -1):
            if not good[i]:
                break
            start = widths[i]
        out[int(d)] = start
    return out


def run_validity(
    *,
    quick: bool = False,
    out: str | None = None,
    seeds: int | None = None,
    widths: Sequence[int] | None = None,
    depths: Sequence[int] | None = None,
    progress=None,
) -> ValidityResult:
    """Map mean R² (h, y, w) and the fitted rates over width × depth for each gain.

    Arguments:
        quick: the quick map (widths 16, 64, 256; depths 2, 4, 8; 2 seeds).
        out: directory for ``validity.json``, the heatmaps and the sweep stores
            (``out/sweeps/validity_gain_*-<hash>``); default ``runs/validity``.
        seeds: seeds per cell (default 4, or 2 when quick).
        widths, depths: override the map's widths and depths.
        progress: optional ``progress(done, total)`` per sweep.

    Returns:
        A ``ValidityResult``.
    """
    size = dict(QUICK if quick else FULL)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        size["seeds"] = seeds
    if widths is not None:
        size["widths"] = tuple(int(w) for w in widths)
    if depths is not None:
        size["depths"] = tuple(int(d) for d in depths)
    out = out or "runs/validity"
    specs = validity_specs(**size)
    cells, boundary = {}, {}
    for gain, spec in specs.items():
        store = store_for(os.path.join(out, "sweeps"), spec)
        run_sweep(spec, store, progress=progress)
        ds = load_results(store).to_xarray()
        cells[gain] = _cells(ds, size["widths"], size["depths"])
        boundary[gain] = _boundary(cells[gain]["r2_w"], size["widths"], size["depths"])
    result = ValidityResult(
        widths=tuple(size["widths"]),
        depths=tuple(size["depths"]),
        gains=tuple(specs),
        seeds=size["seeds"],
        cells=cells,
        boundary=boundary,
        quick=quick,
    )
    write_json(os.path.join(out, "validity.json"), result.to_json())
    from rep_align import plots

    plots.save(plots.validity_heatmaps(result.to_json()), os.path.join(out, "validity.png"))
    return result
