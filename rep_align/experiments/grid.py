"""Final-distance grid (docs/theory.md §7, second row): measured vs predicted h∞.

Two sweeps plus an analysis:

1. *rates*: the preset on its standard two-point task (dx2 = 1, dy2 = 0.5) under the
   trajectory protocol, ``rate_seeds`` seeds, all fitted together (``fit.fit_records``);
   the median η_h/η_y and η_y over seeds give the theory's rates (h∞ depends on the rates
   only through their ratio);
2. *grid*: a 5 × 5 grid of input distance dx ∈ [0.5, 1.5] and target distance dy ∈ [0, 1]
   (dx2 = dx², dy2 = dy²) times ``seeds`` seeds under the grid protocol of docs/presets.md
   ("Protocols"): learning rate lr/5, up to 40,000 epochs, each run stopped at its first
   record (every 100 epochs) with loss below 1e-4 (``RunConfig.stop_loss``; the engine
   trains the runs still going in segments), a run still above 1e-3 discarded.

The measured converged distance (h at the read-out layer where the run stopped) is compared
with the theory's h∞ (docs/theory.md, eq. (3.2)) at each run's own h0 and y0. Both sweeps
live under ``out/sweeps/`` and resume from there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from rep_align import fit
from rep_align.experiments.common import (
    SEED_BLOCK,
    Status,
    observed,
    store_for,
    store_root,
    train_seeds,
)
from rep_align.files import write_json
from rep_align.presets import (
    GRID_DISCARD_LOSS,
    GRID_MAX_EPOCHS,
    GRID_STOP_EVERY,
    GRID_STOP_LOSS,
    get_preset,
)
from rep_align.sweep import SweepSpec, load_results, run_sweep

__all__ = ["GRID_DX", "GRID_DY", "GridResult", "grid_spec", "run_grid"]

GRID_DX = np.linspace(0.5, 1.5, 5)
GRID_DY = np.linspace(0.0, 1.0, 5)
#: Seeds of the two-point fit that provides the rates start here (apart from the grid's).
RATE_SEED0 = 100


@dataclasses.dataclass(frozen=True)
class GridResult:
    """The final-distance grid.

    Attributes:
        config: the grid preset as run, with seeds, max_epochs, epochs_run (the longest
            run), stop_loss, discard_loss and quick.
        rates: the theory's eta_h, eta_y, their ratio and where they come from.
        stats: Pearson r, OLS slope and intercept of measured on predicted h∞ over the kept
            runs, n_kept, n_runs.
        runs: per run: dx2, dy2, seed, h0, y0, h_measured, h_theory, loss_final, epochs
            (where it stopped), kept.
    """

    config: Mapping[str, Any]
    rates: Mapping[str, Any]
    stats: Mapping[str, Any]
    runs: tuple[Mapping[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        """The content of ``grid.json``."""
        return dict(
            config=dict(self.config),
            rates=dict(self.rates),
            stats=dict(self.stats),
            runs=[dict(r) for r in self.runs],
        )


def grid_spec(
    name: str = "default", *, seeds: int = 2, quick: bool = False, max_epochs: int = GRID_MAX_EPOCHS
) -> SweepSpec:
    """The grid's runs as a sweep: dx2 × dy2 × seed under the grid protocol."""
    base = get_preset(name)
    if base.optimizer != "sgd":
        raise ValueError(
            f"the grid protocol is plain gradient descent; preset {name!r} uses {base.optimizer!r}"
        )
    if max_epochs < GRID_STOP_EVERY or max_epochs % GRID_STOP_EVERY:
        raise ValueError(
            f"max_epochs must be a positive multiple of {GRID_STOP_EVERY}, got {max_epochs}"
        )
    preset = (base.quick() if quick else base).grid_protocol(max_epochs=max_epochs)
    fixed = {k: v for k, v in preset.config.changes().items() if k not in ("dx2", "dy2", "seed")}
    return SweepSpec(
        axes={
            "dx2": [float(v) for v in GRID_DX**2],
            "dy2": [float(v) for v in GRID_DY**2],
            "seed": list(range(seeds)),
        },
        fixed=fixed,
        name=f"grid_{name}",
        runs_per_device=SEED_BLOCK,
    )


def run_grid(
    name: str = "default",
    *,
    seeds: int = 2,
    quick: bool = False,
    out: str | None = None,
    max_epochs: int = GRID_MAX_EPOCHS,
    rate_seeds: int = 3,
) -> GridResult:
    """Measured vs predicted converged distance over the 5 × 5 (dx, dy) grid.

    Arguments:
        name: two-point preset.
        seeds: seeds per grid point.
        quick: small network (width ≤ 64, depth ≤ 4), same protocol.
        out: directory for ``grid.json``, ``grid.png`` and the sweep stores.
        max_epochs: cap on epochs (docs/presets.md: 40,000), a multiple of 100.
        rate_seeds: seeds of the two-point fit that provides η_h/η_y.

    Returns:
        A ``GridResult``.

    Raises:
        ValueError: for seeds < 1, an Adam preset, a bad max_epochs.
        RuntimeError: if no rates could be fitted.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if rate_seeds < 1:
        raise ValueError(f"rate_seeds must be >= 1, got {rate_seeds}")
    spec = grid_spec(name, seeds=seeds, quick=quick, max_epochs=max_epochs)
    status = Status(2, "stages")
    with store_root(out) as root:
        # 1. the rate ratio, from the standard two-point task (trajectory protocol)
        tp = get_preset(name).trajectory_protocol()
        tp = tp.quick() if quick else tp
        rate_runs = train_seeds(
            tp.config,
            range(RATE_SEED0, RATE_SEED0 + rate_seeds),
            root=root,
            name=f"grid_{name}_rates",
        )
        ts, z_obs = observed(rate_runs.records, tp.layer)
        fitted = fit.fit_records(ts, z_obs, dx2=tp.dx2, dy2=tp.dy2)
        if not np.any(np.isfinite(fitted.eta_h)):
            raise RuntimeError(f"could not fit effective rates for preset {name!r}")
        ratio = float(np.nanmedian(fitted.eta_h / fitted.eta_y))
        eta_y = float(np.nanmedian(fitted.eta_y))
        status.step(f"rates: eta_h/eta_y {ratio:.4g}")
        # 2. the grid
        store = store_for(root, spec)
        run_sweep(spec, store)
        table = load_results(store).table
    status.step(f"grid: {len(table['run_id'])} runs")
    h0, y0 = table["h0"].astype(float), table["y0"].astype(float)
    h_end, loss = table["h_final"], table["loss_final"]
    dx2, dy2 = table["dx2"], table["dy2"]
    kept = np.isfinite(loss) & (loss <= GRID_DISCARD_LOSS) & (h0 > 0)
    h_th = fit.predicted_final_distance(h0, y0, ratio * eta_y, eta_y, dx2, dy2)
    meas, pred = h_end[kept].astype(float), h_th[kept]
    if kept.sum() >= 3:
        r = float(np.corrcoef(meas, pred)[0, 1])
        slope, intercept = (float(v) for v in np.polyfit(pred, meas, 1))
    else:
        r = slope = intercept = float("nan")
    preset = spec.runs()[0]
    config = get_preset(name).describe() | dict(
        width=preset.width,
        depth=preset.depth,
        layer=preset.layer,
        lr=preset.lr,
        epochs=preset.steps,
        seeds=seeds,
        max_epochs=max_epochs,
        epochs_run=int(np.max(table["stop_step"])),
        stop_loss=GRID_STOP_LOSS,
        discard_loss=GRID_DISCARD_LOSS,
        quick=quick,
    )
    result = GridResult(
        config=config,
        rates=dict(
            eta_h=ratio * eta_y,
            eta_y=eta_y,
            ratio=ratio,
            source="median fit over seeds of the two-point task, trajectory protocol",
        ),
        stats=dict(
            pearson_r=r,
            slope=slope,
            intercept=intercept,
            n_kept=int(kept.sum()),
            n_runs=int(kept.size),
        ),
        runs=tuple(
            dict(
                dx2=float(a),
                dy2=float(b),
                seed=int(s),
                h0=float(c),
                y0=float(d),
                h_measured=float(e),
                h_theory=float(f),
                loss_final=float(g),
                epochs=int(q),
                kept=bool(k),
            )
            for a, b, s, c, d, e, f, g, q, k in zip(
                dx2,
                dy2,
                table["seed"],
                h0,
                y0,
                h_end,
                h_th,
                loss,
                table["stop_step"],
                kept,
                strict=True,
            )
        ),
    )
    if out:
        from rep_align import plots

        write_json(os.path.join(out, "grid.json"), result.to_json())
        plots.save(
            plots.grid_scatter(
                meas,
                pred,
                result.stats,
                f"final-distance grid: {name}" + (" (quick)" if quick else ""),
                config=result.config,
            ),
            os.path.join(out, "grid.png"),
        )
    return result
