"""Depth profile (docs/theory.md §5 and §7): the theory fitted at every hidden layer of one
run, a profile of effective rates and fit quality over depth.

Declared once (``EXPERIMENT``). It reads one seed of the two-point experiment's stored runs
of the preset (trajectory protocol): ``settings`` takes the two-point experiment's seeds in
the same mode, so the store (``<preset>-<hash>``, keyed by its seeds) is the one
``two_points`` trained and nothing is retrained when both run on one store. The analysis
(``depth_profile``) fits h of each hidden layer, with the run's y and w, separately, all
layers in one ``fit.fit_records`` call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rep_align import checks, fit
from rep_align.experiments import two_points
from rep_align.experiments._protocol import Check, Experiment, Headline
from rep_align.experiments.common import SeedRuns, observed
from rep_align.presets import TWO_POINT_PRESETS, TwoPointPreset

__all__ = [
    "CHECKS",
    "EXPERIMENT",
    "DepthResult",
    "DepthSettings",
    "DepthTrend",
    "analyse",
    "depth_profile",
    "figures",
    "headlines",
    "settings",
]


@dataclasses.dataclass(frozen=True)
class DepthSettings:
    """What the depth profile runs.

    Attributes:
        preset: two-point preset (trajectory protocol).
        seed: the run whose layers are fitted.
        store_seeds: the seeds of the stored runs it is read from (the two-point
            experiment's, so that their store is shared); ``seed`` must be among them.
        small: networks shrunk to width ≤ 64, depth ≤ 4 (``TwoPointPreset.quick``).
    """

    preset: str
    seed: int
    store_seeds: tuple[int, ...]
    small: bool = False

    def __post_init__(self) -> None:
        checks.choice("preset", self.preset, TWO_POINT_PRESETS)
        checks.integer("seed", self.seed, minimum=0)
        seeds = tuple(checks.integer("store_seeds", s, minimum=0) for s in self.store_seeds)
        if self.seed not in seeds:
            raise ValueError(f"seed {self.seed} is not among store_seeds {list(seeds)}")
        object.__setattr__(self, "store_seeds", seeds)
        checks.boolean("small", self.small)


def settings(quick: bool) -> DepthSettings:
    """The ``default`` preset's seed 0, read from the two-point experiment's runs of the
    same mode (quick: seeds 0-3; full: seeds 0-2), at the presets' own size."""
    tp = two_points.settings(quick)
    return DepthSettings(preset="default", seed=0, store_seeds=tp.seed_list, small=tp.small)


@dataclasses.dataclass(frozen=True)
class DepthTrend:
    """Mean R² (over h, y, w) and mean fit loss of the earlier and the later half of the
    layers (the later half has the middle layer when their number is odd)."""

    mean_r2_early_layers: float
    mean_r2_late_layers: float
    mean_fit_loss_early_layers: float
    mean_fit_loss_late_layers: float


@dataclasses.dataclass(frozen=True)
class DepthResult:
    """Fitted rates per hidden layer of one run.

    Attributes:
        config: the preset as run (``TwoPointPreset.describe()``).
        seed: the run's seed.
        final_loss: its final training loss.
        layers: per layer: layer, eta_h, eta_y, fit_loss, r2_h, r2_y, r2_w, success.
        trend: the two halves of the layers compared.
    """

    config: Mapping[str, Any]
    seed: int
    final_loss: float
    layers: tuple[Mapping[str, Any], ...]
    trend: DepthTrend


def depth_profile(preset: TwoPointPreset, runs: SeedRuns, seed: int) -> DepthResult:
    """Fit (η_h, η_y) at every hidden layer of the run of ``seed`` among ``runs``.

    Arguments:
        preset: the preset as it ran (trajectory protocol, quick or not).
        runs: stored runs of the preset over seeds (``Runs.seeds``).
        seed: the seed whose run is fitted.

    Raises:
        ValueError: if ``seed`` is not among ``runs.seeds``.
    """
    have = [int(s) for s in runs.seeds]
    if seed not in have:
        raise ValueError(f"seed {seed} is not among the stored seeds {have}")
    i = have.index(seed)
    n_layers = preset.config.num_hidden
    ts, z = observed(runs.records, 0)  # times, y and w; h of every layer is stacked below
    h_all = np.asarray(runs.records["h"], np.float64)[i]  # (T, L)
    z_layers = np.stack(
        [np.stack([h_all[:, k], z[i, :, 1], z[i, :, 2]], -1) for k in range(n_layers)]
    )  # (L, T, 3)
    dx2 = np.asarray(runs.table["data_dx2"])[i]
    dy2 = np.asarray(runs.table["data_dy2"])[i]
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
    return DepthResult(
        config=preset.describe(),
        seed=seed,
        final_loss=float(np.asarray(runs.records["loss"])[i, -1]),
        layers=rows,
        trend=DepthTrend(
            mean_r2_early_layers=float(np.nanmean(mean_r2[:half])),
            mean_r2_late_layers=float(np.nanmean(mean_r2[half:])),
            mean_fit_loss_early_layers=float(np.nanmean(res.loss[:half])),
            mean_fit_loss_late_layers=float(np.nanmean(res.loss[half:])),
        ),
    )


def analyse(settings: DepthSettings, runs: Any) -> DepthResult:
    """The profile of ``settings.seed``, read from the stored runs of ``store_seeds``."""
    preset = two_points.protocol_preset(settings.preset, quick=settings.small)
    stored = runs.seeds(preset.config, settings.store_seeds, name=preset.name)
    return depth_profile(preset, stored, settings.seed)


EARLY = "fit loss, first half of the layers (mean)"
LATE = "fit loss, second half of the layers (mean)"


def headlines(result: DepthResult, settings: DepthSettings) -> list[Headline]:
    """Mean fit loss of the earlier and of the later half of the layers (``n``: layers)."""
    n = len(result.layers)
    return [
        Headline(EARLY, result.trend.mean_fit_loss_early_layers, n=n // 2),
        Headline(
            LATE,
            result.trend.mean_fit_loss_late_layers,
            n=n - n // 2,
            note="the reference's stored output: fit loss 22 at layer 0, 0.09 at layer 11",
        ),
    ]


#: The verdict: the theory fits the later layers at least as well as the earlier ones.
CHECKS = (
    Check(
        LATE,
        "<=",
        EARLY,
        source=(
            "the reference notebook's stored output (2_points_depth.ipynb, docs/theory.md §7): "
            "the fit loss falls from 22 at layer 0 to 0.09 at layer 11 and is 1.5-3 at "
            "layers 17-19, so the later half of the layers fits better than the first"
        ),
        label="at most the first half's",
    ),
)


def figures(result: DepthResult, settings: DepthSettings) -> dict[str, Any]:
    """Fitted rates and fit quality per layer (``depth.png``)."""
    from rep_align import plots

    return {"depth.png": plots.depth_profile(dataclasses.asdict(result))}


EXPERIMENT = Experiment(
    name="depth",
    title="Depth profile",
    claim=(
        "Fitted rates and fit loss vary smoothly with the read-out layer; the theory fits "
        "best in the middle and later layers, where both encoder and decoder are deep."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=CHECKS,
    figures=figures,
)
