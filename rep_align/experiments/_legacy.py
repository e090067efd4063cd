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
