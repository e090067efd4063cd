"""Ablations (docs/theory.md §4): the theory and each altered system (4.1)-(4.4) fitted to
the same runs; the theory should fit best.

Declared once (``EXPERIMENT``). The runs are the preset over seeds under the trajectory
protocol, read through the driver's ``Runs.seeds`` (store ``<preset>-<hash>``): in quick
mode the two-point experiment's quick runs (same seeds, same store, nothing retrained),
at full size 5 seeds. Each variant of ``theory.VARIANTS`` is fitted to all runs with
``fit.fit_records``; a variant that cannot be integrated for a run (the ablated systems can
run into h = 0 in finite time) counts as failed for that run and is left out of its mean.

One rule decides whether the theory fits best: the checks (``checks``), one per ablation,
"its mean fit loss lies above the theory's". A variant without a finite mean fit loss
(every run failed) is no measurement, and like every non-finite value it does not pass:
the report then says the theory was not shown to fit better than it, rather than counting
a failed fit as a win.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rep_align import checks, fit, theory
from rep_align.experiments import two_points
from rep_align.experiments._protocol import Check, Experiment, Headline, spread
from rep_align.experiments.common import observed
from rep_align.presets import TWO_POINT_PRESETS

__all__ = [
    "EXPERIMENT",
    "AblationsResult",
    "AblationsSettings",
    "VariantFit",
    "analyse",
    "checks_for",
    "figures",
    "headlines",
    "settings",
]


@dataclasses.dataclass(frozen=True)
class AblationsSettings:
    """What the ablations run.

    Attributes:
        preset: two-point preset (trajectory protocol).
        seeds: runs (seeds 0, 1, …) every variant is fitted to.
        variants: the systems fitted (``theory.VARIANTS``); "theory" must be among them,
            the others are compared with it.
        small: networks shrunk to width ≤ 64, depth ≤ 4 (``TwoPointPreset.quick``).
    """

    preset: str
    seeds: int
    variants: tuple[str, ...] = theory.VARIANTS
    small: bool = False

    def __post_init__(self) -> None:
        checks.choice("preset", self.preset, TWO_POINT_PRESETS)
        checks.integer("seeds", self.seeds, minimum=1)
        variants = tuple(checks.choice("variants", v, theory.VARIANTS) for v in self.variants)
        if "theory" not in variants:
            raise ValueError(f"variants must include 'theory' to compare with, got {variants}")
        object.__setattr__(self, "variants", variants)
        checks.boolean("small", self.small)


def settings(quick: bool) -> AblationsSettings:
    """The ``default`` preset at its own size; quick: the two-point experiment's quick
    seeds (4, one store), full: 5 seeds (reproduction/ablations.json)."""
    seeds = two_points.settings(True).seeds if quick else 5
    return AblationsSettings(preset="default", seeds=seeds)


@dataclasses.dataclass(frozen=True)
class VariantFit:
    """One variant fitted to every run.

    Attributes:
        fit_loss: per run (NaN where it failed).
        mean_fit_loss, std_fit_loss: over the runs it fitted (``_protocol.spread``).
        r2_h, r2_y, r2_w: means over the runs it fitted.
        failed: runs it could not fit.
    """

    fit_loss: tuple[float, ...]
    mean_fit_loss: float
    std_fit_loss: float
    r2_h: float
    r2_y: float
    r2_w: float
    failed: int

    @property
    def n_fitted(self) -> int:
        """Runs it fitted."""
        return len(self.fit_loss) - self.failed


@dataclasses.dataclass(frozen=True)
class AblationsResult:
    """Fit quality of the theory and its ablations on the same runs.

    Attributes:
        config: the preset as run.
        seeds: number of runs.
        variants: one ``VariantFit`` per variant, in the order of the settings.
    """

    config: Mapping[str, Any]
    seeds: int
    variants: Mapping[str, VariantFit]


def analyse(settings: AblationsSettings, runs: Any) -> AblationsResult:
    """Every variant fitted to the stored runs of the preset over ``settings.seeds``."""
    preset = two_points.protocol_preset(settings.preset, quick=settings.small)
    stored = runs.seeds(preset.config, range(settings.seeds), name=preset.name)
    ts, z_obs = observed(stored.records, preset.layer)
    table = {}
    for k, v in enumerate(settings.variants):
        res = fit.fit_records(
            ts, z_obs, dx2=preset.dx2, dy2=preset.dy2, options=fit.FitOptions(variant=v)
        )
        loss = np.asarray(res.loss, float)
        ok = np.isfinite(loss) & res.success
        over = spread(np.where(ok, loss, np.nan))
        r2 = np.nanmean(np.where(ok[:, None], res.r2, np.nan), axis=0)
        table[v] = VariantFit(
            fit_loss=tuple(float(x) for x in loss),
            mean_fit_loss=over.mean,
            std_fit_loss=over.std,
            r2_h=float(r2[0]),
            r2_y=float(r2[1]),
            r2_w=float(r2[2]),
            failed=int(np.sum(~ok)),
        )
        runs.say(
            f"  [{k + 1}/{len(settings.variants)} variants] {v}: mean fit loss"
            f" {over.mean:.3g} ({int(np.sum(~ok))} failed)"
        )
    return AblationsResult(config=preset.describe(), seeds=settings.seeds, variants=table)


def _name(variant: str) -> str:
    return f"{variant}: mean fit loss"


def headlines(result: AblationsResult, settings: AblationsSettings) -> list[Headline]:
    """Mean fit loss of every variant over the runs it fitted (``n``: those runs), the
    theory's first."""
    rows = result.variants
    order = sorted(rows, key=lambda v: v != "theory")
    return [
        Headline(_name(v), rows[v].mean_fit_loss, rows[v].std_fit_loss, rows[v].n_fitted)
        for v in order
    ]


def checks_for(settings: AblationsSettings) -> list[Check]:
    """One check per ablation: its mean fit loss lies above the theory's (module docstring:
    a variant with no finite mean does not pass)."""
    return [
        Check(
            _name(v),
            ">",
            _name("theory"),
            source=(
                "docs/theory.md §7, ablations (2_points_alternative.ipynb): every ablation "
                "fits visibly and measurably worse than the theory; a variant with no finite "
                "mean fit loss (no run fitted) is no measurement and does not pass"
            ),
            label="above the theory's",
        )
        for v in settings.variants
        if v != "theory"
    ]


def figures(result: AblationsResult, settings: AblationsSettings) -> dict[str, Any]:
    """Mean fit loss per variant (``ablations.png``)."""
    from rep_align import plots

    return {"ablations.png": plots.ablation_bars(dataclasses.asdict(result))}


EXPERIMENT = Experiment(
    name="ablations",
    title="Ablations",
    claim=(
        "Each of four altered theories (docs/theory.md §4) fits the same runs visibly "
        "and measurably worse than the theory."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=checks_for,
    figures=figures,
)
