"""Stage adapters: experiments not yet declared with the protocol (``_protocol``), run
through their former ``reproduce`` stage functions. Each experiment's module replaces its
entry here with an ``EXPERIMENT`` declaration; this module goes when the last one has.

A stage's experiment writes its own files into ``<experiment dir>/stage`` (the driver owns
the experiment directory itself).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rep_align.experiments._protocol import Experiment, Headline

__all__ = ["LEGACY", "StageSettings"]


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    title: str
    claim: str
    run: Callable[[Path, bool], Mapping[str, Any]]
    headlines: Callable[[Mapping[str, Any], bool], list[Headline]]
    settings: Callable[[bool], Mapping[str, Any]]
    tolerance: Mapping[str, float] = dataclasses.field(default_factory=dict)
    directory: str | None = None
    figures: tuple[str, ...] = ("*.png",)


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """A stage's settings: the mode and the stage's own description of what it runs."""

    quick: bool
    described: Mapping[str, Any]


# --------------------------------------------------------------------------------------
# helpers


def _mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return math.nan, math.nan, 0
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / len(v)) if len(v) > 1 else math.nan
    return m, sd, len(v)


def _check(value: float, op: str, bound: float) -> bool | None:
    if not math.isfinite(value):
        return False
    return {">=": value >= bound, "<": value < bound, "<=": value <= bound, ">": value > bound}[op]


# --------------------------------------------------------------------------------------
# stages: universality and the lazy limit (the title claim, and its other end)


def _universality_settings(quick: bool) -> dict[str, Any]:
    return dict(seeds=2 if quick else 5, members="all", tasks=["xor", "hierarchy"], size="256 x 4")


def _universality_run(out: Path, quick: bool) -> Mapping[str, Any]:
    from rep_align.experiments.universality import run_universality

    return run_universality(
        seeds=_universality_settings(quick)["seeds"], quick=quick, out=str(out)
    ).to_json()


def _universality_headlines(result: Mapping[str, Any], quick: bool) -> list[Headline]:
    heads = []
    for task, cmp in result["comparison"].items():
        regimes = result["tasks"][task]
        n = regimes["small"]["offdiag"]["n"]
        heads.append(
            Headline(
                f"{task}: mean CKA between architectures, small init",
                cmp["small_mean"],
                cmp["small_std"] if n > 1 else math.nan,
                n,
                "> large init",
                _check(cmp["difference"], ">", 0.0),
                note=(
                    f"at initialisation {cmp['small_initial']:.3g}; seed ranges "
                    f"{'separate' if cmp['seed_ranges_separate'] else 'overlap'}"
                ),
            )
        )
        heads.append(
            Headline(
                f"{task}: mean CKA between architectures, large init",
                cmp["large_mean"],
                cmp["large_std"] if n > 1 else math.nan,
                regimes["large"]["offdiag"]["n"],
                note=f"at initialisation {cmp['large_initial']:.3g}",
            )
        )
        heads.append(
            Headline(
                f"{task}: mean RSA with the rich limit (3.3), small init",
                cmp["mean_rsa_rich_small"],
                n=n,
                criterion="> large init",
                agrees=_check(cmp["mean_rsa_rich_small"] - cmp["mean_rsa_rich_large"], ">", 0.0),
                note=f"large init {cmp['mean_rsa_rich_large']:.3g} (means over architectures)",
            )
        )
    return heads


def _lazy_settings(quick: bool) -> dict[str, Any]:
    return dict(seeds=1 if quick else 3, task="hierarchy", size="MLP 1024 x 2", steps=1000)


def _lazy_run(out: Path, quick: bool) -> Mapping[str, Any]:
    from rep_align.experiments.lazy import run_lazy

    return run_lazy(seeds=_lazy_settings(quick)["seeds"], quick=quick, out=str(out)).to_json()


def _lazy_headlines(result: Mapping[str, Any], quick: bool) -> list[Headline]:
    from rep_align.experiments.lazy import RICH_FACTOR

    v, tol = result["verdict"], result["tolerance"]
    n = {r: len(result["runs"][r]) for r in ("large", "small")}
    heads = []
    for regime, gain in (("large", "large gain"), ("small", "small gain")):
        err = v[regime]["max_output_error"]
        if regime == "large":
            crit, ok = f"≤ {tol}", v["large_within_tolerance"]
        else:
            crit, ok = f"≥ {RICH_FACTOR * tol:g}", v["small_fails_kernel"]
        heads.append(
            Headline(
                f"{gain}: output error vs kernel prediction (max over training)",
                err["mean"],
                n=n[regime],
                criterion=crit,
                agrees=bool(ok),
                note=f"worst seed {err['max']:.3g}",
            )
        )
        heads.append(
            Headline(
                f"{gain}: hidden change ‖D_t − D_0‖/‖D_0‖ (max)",
                v[regime]["max_hidden_change"]["mean"],
                n=n[regime],
            )
        )
        heads.append(
            Headline(
                f"{gain}: kernel distance ‖K_T − K_0‖/‖K_0‖",
                v[regime]["final_kernel_distance"]["mean"],
                n=n[regime],
            )
        )
    return heads


# --------------------------------------------------------------------------------------
# registry and reference values

#: Full-size headline values measured by this project (``reproduction/``), used to label
#: quick numbers when no full run is stored in the same output directory.
FULL_REFERENCE: dict[str, dict[str, Any]] = {}


LEGACY: dict[str, Experiment] = {}


def register_stage(stage: Stage) -> None:
    def analyse(settings: StageSettings, runs: Any) -> Mapping[str, Any]:
        where = runs.out / "stage"
        where.mkdir(parents=True, exist_ok=True)
        return stage.run(where, settings.quick)

    LEGACY[stage.name] = Experiment(
        name=stage.name,
        title=stage.title,
        claim=stage.claim,
        settings=lambda quick: StageSettings(quick, dict(stage.settings(quick))),
        analyse=analyse,
        headlines=lambda result, settings: stage.headlines(result, settings.quick),
        tolerance=dict(stage.tolerance),
        full_reference=FULL_REFERENCE.get(stage.name),
        figures=lambda result, settings: None,
    )


register_stage(
    Stage(
        name="universality",
        title="Universality: architectures align (the title claim)",
        claim=(
            "Different architectures, flexible enough and started from small weights, learn "
            "aligned representations, organised as the rich limit of the pairwise theory; "
            "from large weights each keeps its own initial geometry (docs/theory.md §3, §6)."
        ),
        run=_universality_run,
        headlines=_universality_headlines,
        settings=_universality_settings,
    )
)
register_stage(
    Stage(
        name="lazy",
        title="The lazy limit: training as the linearised network (not in the paper)",
        claim=(
            "At large initial gain a wide network's outputs follow the prediction of its "
            "tangent kernel at init, its hidden distances and its kernel barely move; at small "
            "gain the kernel prediction fails (docs/theory.md (3.4))."
        ),
        run=_lazy_run,
        headlines=_lazy_headlines,
        settings=_lazy_settings,
    )
)
