"""Where does the theory hold? The two-point task over width × depth × gain, every run fitted.

The paper says the theory describes networks "once they are flexible enough"; this maps
where that begins. Declared once (``EXPERIMENT``; a command of its own, ``rep-align
validity``, not a stage of ``rep-align reproduce``). One sweep per gain (a leaky-ReLU MLP on
the two-point task of docs/presets.md, read out at the middle hidden layer, the learning
rate of the preset with that gain under the trajectory protocol: lr/2 and 6,000 full-batch
steps), over widths, depths and seeds, with the effective rates fitted to every run by the
sweep engine (``SweepSpec.fit``). The analysis reads each store as an ``xarray.Dataset``
(``SweepResults.to_xarray``), averages R² of h, y, w and the fitted rates over the
converged seeds of every (width, depth), and states where mean R² w ≥ ``R2_W_BOUND``
begins: for each gain and depth, the smallest width from which every larger width meets it.

Quick mode keeps the protocol and the network family and shrinks the map (fewer widths,
depths and seeds); its cells are the same measurements as the full map's cells of the same
size, so they mean the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rep_align import checks
from rep_align.experiments._protocol import Check, Experiment, Headline
from rep_align.experiments.two_points import MEAN_R2_BOUNDS
from rep_align.files import jsonable
from rep_align.presets import get_preset
from rep_align.sweep import SweepSpec
from rep_align.sweep.store import CONVERGED_LOSS

__all__ = [
    "CHECKS",
    "EXPERIMENT",
    "GAINS",
    "R2_W_BOUND",
    "GainMap",
    "ValidityResult",
    "ValiditySettings",
    "analyse",
    "figures",
    "headlines",
    "settings",
    "validity_specs",
]

#: Gains mapped, each with the learning rate of the preset of that gain.
GAINS = {0.9: "gain_0.9", 1.0: "default", 1.1: "gain_1.1"}
#: Mean R² w at least this counts as "the theory holds" (the bound of the two-point
#: experiment's check on the default preset).
R2_W_BOUND = MEAN_R2_BOUNDS["r2_w"]


@dataclasses.dataclass(frozen=True)
class ValiditySettings:
    """The map's axes.

    Attributes:
        widths, depths: of the leaky-ReLU MLPs.
        seeds: seeds per cell.
        gains: gains mapped (keys of ``GAINS``).
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int
    gains: tuple[float, ...] = tuple(GAINS)

    def __post_init__(self) -> None:
        for name in ("widths", "depths"):
            values = tuple(checks.integer(name, v, minimum=1) for v in getattr(self, name))
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct positive integers, got {values}")
            object.__setattr__(self, name, values)
        checks.integer("seeds", self.seeds, minimum=1)
        gains = tuple(float(checks.choice("gains", g, GAINS)) for g in self.gains)
        if not gains:
            raise ValueError("gains must name at least one gain, got ()")
        object.__setattr__(self, "gains", gains)


def settings(quick: bool) -> ValiditySettings:
    """Full: widths 16-512, depths 2-20, 4 seeds; quick: widths 16, 64, 256, depths 2, 4,
    8, 2 seeds; every gain of ``GAINS``."""
    if quick:
        return ValiditySettings(widths=(16, 64, 256), depths=(2, 4, 8), seeds=2)
    return ValiditySettings(
        widths=(16, 32, 64, 128, 256, 512), depths=(2, 4, 8, 12, 16, 20), seeds=4
    )


def validity_specs(settings: ValiditySettings) -> dict[float, SweepSpec]:
    """One sweep spec per gain: width × depth × seed, fitted."""
    specs = {}
    for gain in settings.gains:
        base = get_preset(GAINS[gain]).trajectory_protocol().config
        specs[gain] = SweepSpec(
            axes={
                "width": list(settings.widths),
                "depth": list(settings.depths),
                "seed": list(range(settings.seeds)),
            },
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
class GainMap:
    """The map at one gain: arrays (width, depth) of means over the converged, fitted
    seeds of each cell (NaN where none), and where the theory holds.

    Attributes:
        gain: the initial gain.
        preset: the preset whose learning rate it trains with.
        r2_h, r2_y, r2_w, eta_h, eta_y: mean R² and fitted rates.
        n_converged: converged, fitted seeds per cell.
        boundary: per depth, the smallest width from which every larger width has mean
            R² w ≥ ``R2_W_BOUND`` (None where no width does).
    """

    gain: float
    preset: str
    r2_h: np.ndarray
    r2_y: np.ndarray
    r2_w: np.ndarray
    eta_h: np.ndarray
    eta_y: np.ndarray
    n_converged: np.ndarray
    boundary: Mapping[int, int | None]


@dataclasses.dataclass(frozen=True)
class ValidityResult:
    """The map of fit quality over width × depth, one ``GainMap`` per gain.

    Attributes:
        widths, depths: the map's axes.
        seeds: seeds per cell.
        r2_w_bound: the bound on mean R² w of the boundary.
        converged_if_final_loss_below: a seed counts where its final loss is below this.
        maps: one per gain.
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int
    r2_w_bound: float
    converged_if_final_loss_below: float
    maps: tuple[GainMap, ...]


_KEYS = ("r2_h", "r2_y", "r2_w", "eta_h", "eta_y")


def _cells(ds, widths, depths) -> dict[str, np.ndarray]:
    out = {k: np.full((len(widths), len(depths)), np.nan) for k in _KEYS}
    out["n_converged"] = np.zeros((len(widths), len(depths)), int)
    for i, w in enumerate(widths):
        for j, d in enumerate(depths):
            cell = ds.sel(width=w, depth=d)
            ok = cell.converged.values & cell.fit_converged.values
            out["n_converged"][i, j] = int(ok.sum())
            for k in _KEYS:
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


def analyse(settings: ValiditySettings, runs: Any) -> ValidityResult:
    """Every gain's sweep, trained (or read back) and averaged per cell."""
    maps = []
    for gain, spec in validity_specs(settings).items():
        ds = runs.sweep(spec).to_xarray()
        cells = _cells(ds, settings.widths, settings.depths)
        maps.append(
            GainMap(
                gain=gain,
                preset=GAINS[gain],
                **cells,
                boundary=_boundary(cells["r2_w"], settings.widths, settings.depths),
            )
        )
    return ValidityResult(
        widths=settings.widths,
        depths=settings.depths,
        seeds=settings.seeds,
        r2_w_bound=R2_W_BOUND,
        converged_if_final_loss_below=CONVERGED_LOSS,
        maps=tuple(maps),
    )


def _name(gain: float) -> str:
    return f"gain {gain:g}: depths where the theory holds from some width on"


def headlines(result: ValidityResult, settings: ValiditySettings) -> list[Headline]:
    """Per gain, the number of depths with a boundary (``n``: depths mapped); the note
    lists each depth's boundary."""
    out = []
    for m in result.maps:
        found = [w for w in m.boundary.values() if w is not None]
        where = "; ".join(
            f"L={d}: {'none' if w is None else f'P ≥ {w}'}" for d, w in m.boundary.items()
        )
        note = f"mean R² w ≥ {R2_W_BOUND:g} from width: {where}"
        out.append(Headline(_name(m.gain), float(len(found)), n=len(m.boundary), note=note))
    return out


#: The verdict: at the default network's gain, the theory holds from some width on at some
#: depth of the map.
CHECKS = (
    Check(
        _name(1.0),
        ">=",
        1.0,
        source=(
            "the paper's 'once they are flexible enough' (docs/theory.md §7) as this "
            "project states it: at the default gain, wide enough networks of some depth "
            "mapped reach the two-point experiment's bound on mean R² w"
        ),
        label="≥ 1 depth",
    ),
)


def figures(result: ValidityResult, settings: ValiditySettings) -> dict[str, Any]:
    """Heatmaps of mean R² and the fitted rates per gain (``validity.png``)."""
    from rep_align import plots

    return {"validity.png": plots.validity_heatmaps(jsonable(result))}


EXPERIMENT = Experiment(
    name="validity",
    title="Where the two-point theory holds: width × depth × gain (not in the paper)",
    claim=(
        "This project's map of the paper's 'once they are flexible enough': leaky-ReLU MLPs "
        f"on the two-point task are fitted by the theory (mean R² w ≥ {R2_W_BOUND:g}) from "
        "some width on, and where that begins depends on depth and gain."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=CHECKS,
    figures=figures,
    ours=True,
)
