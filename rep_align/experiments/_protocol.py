"""The shape every experiment has: one frozen declaration, read by the driver, the CLI, the
report and the tests alike (docs/architecture.md, "Experiments").

An ``Experiment`` names a claim and says, once, in its own module:

- ``settings(quick)``: what it runs, the quick and the full mode side by side (a frozen
  dataclass; ``rep-align NAME --quick`` and the stage of ``rep-align reproduce --quick`` get
  the same object);
- ``plan(settings)``: the sweeps it needs, which the driver trains (or finds stored) before
  the analysis;
- ``analyse(settings, runs)``: from stored records to a typed result (``runs`` is the
  driver's ``Runs``: it trains what the plan did not foresee and reads every run back);
- ``headlines(result, settings)``: the numbers the report shows;
- ``checks``: the verdicts, as data (``Check``): headline, comparison, bound, and where the
  bound comes from;
- ``figures(result, settings)``: ``{file name: matplotlib figure}``.

An experiment never opens a file: the driver (``experiments._driver``) decides where
results go, resumes, times, captures errors and writes ``summary.json`` and the figures.

Spread over seeds. Every "mean ± spread over seeds" in the project is ``spread``: the mean
and the population standard deviation (``ddof = 0``) of the finite values, and how many
there were; the standard deviation is NaN for fewer than two values (one seed has no
spread).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Check",
    "Experiment",
    "Headline",
    "Spread",
    "apply_checks",
    "spread",
]

_OPS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    ">=": (operator.ge, "≥"),
    ">": (operator.gt, ">"),
    "<=": (operator.le, "≤"),
    "<": (operator.lt, "<"),
}


@dataclasses.dataclass(frozen=True)
class Spread:
    """Mean and spread of one quantity over seeds (module docstring: the convention).

    Attributes:
        mean: mean of the finite values (NaN if none).
        std: population standard deviation (ddof 0) of the finite values; NaN for fewer
            than two.
        n: number of finite values.
    """

    mean: float
    std: float
    n: int


def spread(values: Sequence[float] | np.ndarray) -> Spread:
    """``Spread`` of the finite entries of ``values`` (None and non-finite entries are
    left out)."""
    v = np.asarray([math.nan if x is None else x for x in np.ravel(values)], np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Spread(math.nan, math.nan, 0)
    std = float(np.std(v)) if v.size > 1 else math.nan
    return Spread(float(np.mean(v)), std, int(v.size))


@dataclasses.dataclass(frozen=True)
class Check:
    """One verdict, as data: headline ``key`` compared with ``bound``.

    Attributes:
        key: the name of the headline it judges.
        op: ">=", ">", "<=" or "<".
        bound: a number, or the name of another headline of the same experiment whose value
            is the bound (e.g. an ablation's fit loss must lie above the theory's).
        source: where the bound comes from: the paper's figure or text, the reference
            code's behaviour on the same settings, or a stated null.
        label: the criterion in words (default: the comparison and the bound, "≥ 0.99").

    A value that is not finite never passes (a diverged or missing measurement is not
    agreement), and neither does a comparison with a bound that is not finite.
    """

    key: str
    op: str
    bound: float | str
    source: str
    label: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {list(_OPS)}, got {self.op!r}")
        if not self.source:
            raise ValueError(f"check of {self.key!r} must say where its bound comes from")

    @property
    def criterion(self) -> str:
        """The criterion in words."""
        if self.label:
            return self.label
        return (
            f"{_OPS[self.op][1]} {self.bound:g}"
            if not isinstance(self.bound, str)
            else (f"{_OPS[self.op][1]} {self.bound}")
        )

    def holds(self, value: float, values: Mapping[str, float] | None = None) -> bool:
        """Whether ``value`` passes; ``values`` maps headline names to values (for a bound
        that names another headline).

        Raises:
            KeyError: if the bound names a headline missing from ``values``.
        """
        bound = self.bound
        if isinstance(bound, str):
            bound = (values or {})[bound]
        value, bound = float(value), float(bound)
        if not (math.isfinite(value) and math.isfinite(bound)):
            return False
        return bool(_OPS[self.op][0](value, bound))


@dataclasses.dataclass(frozen=True)
class Headline:
    """One measured number of an experiment, and its verdict.

    Attributes:
        name: what was measured, e.g. "default: mean R² w".
        value: the measurement (mean over seeds where there are seeds).
        spread: standard deviation over seeds (NaN for one seed or none; ``spread``).
        n: number of seeds (or runs, layers: ``note`` says which where not seeds) behind it.
        criterion: the check in words ("" when the number is only reported).
        agrees: whether the check holds (None when there is no check).
        comparable: False when a quick value differs from the full-size one beyond the
            experiment's tolerance; True otherwise.
        note: free text (e.g. the full-size value and the tolerance).
        source: where the check's bound comes from ("" without a check).
    """

    name: str
    value: float
    spread: float = math.nan
    n: int = 1
    criterion: str = ""
    agrees: bool | None = None
    comparable: bool = True
    note: str = ""
    source: str = ""


def apply_checks(headlines: Sequence[Headline], checks: Sequence[Check]) -> list[Headline]:
    """``headlines`` with each check's criterion, verdict and source filled in.

    Raises:
        ValueError: if a headline has two checks.
    """
    values = {h.name: h.value for h in headlines}
    by_key: dict[str, Check] = {}
    for c in checks:
        if c.key in by_key:
            raise ValueError(f"headline {c.key!r} has two checks")
        by_key[c.key] = c
    out = []
    for h in headlines:
        c = by_key.get(h.name)
        if c is None:
            out.append(h)
            continue
        out.append(
            dataclasses.replace(
                h, criterion=c.criterion, agrees=c.holds(h.value, values), source=c.source
            )
        )
    return out


def _none(*_: Any) -> Any:
    return None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment, declared once (module docstring).

    Attributes:
        name: key, directory and ``reproduce`` stage name, e.g. "xor".
        title: heading of its report section.
        claim: the claim it tests, in one or two sentences (the paper's, or this project's
            where ``ours`` is True).
        settings: ``settings(quick) -> S``, a frozen dataclass of everything it runs.
        analyse: ``analyse(settings, runs) -> result`` (a dataclass, or a mapping).
        headlines: ``headlines(result, settings) -> [Headline]`` (unchecked: the driver
            applies ``checks``).
        plan: ``plan(settings) -> [SweepSpec]``: sweeps trained before ``analyse``.
        checks: the verdicts (``Check``), or a function ``checks(settings) -> [Check]``
            for checks that depend on the settings (e.g. on the variants run).
        figures: ``figures(result, settings) -> {file name: matplotlib figure}``.
        tolerance: for quick settings that shrink something: ``{headline: max |quick −
            full|}``; a quick number further from the full-size one is labelled "not
            comparable".
        full_reference: full-size headline values measured by this project, for labelling
            quick numbers when no full run is at hand: ``{"source": text, "values": {name:
            value}}``.
        ours: True for this project's additions (the claim is ours, not the paper's).
    """

    name: str
    title: str
    claim: str
    settings: Callable[[bool], Any]
    analyse: Callable[[Any, Any], Any]
    headlines: Callable[[Any, Any], list[Headline]]
    plan: Callable[[Any], Sequence[Any]] = lambda settings: ()
    checks: Sequence[Check] | Callable[[Any], Sequence[Check]] = ()
    figures: Callable[[Any, Any], Mapping[str, Any] | None] = _none
    tolerance: Mapping[str, float] = dataclasses.field(default_factory=dict)
    full_reference: Mapping[str, Any] | None = None
    ours: bool = False

    def checks_for(self, settings: Any) -> list[Check]:
        """The experiment's checks at ``settings``."""
        return list(self.checks(settings) if callable(self.checks) else self.checks)

    def verdicts(self, result: Any, settings: Any) -> list[Headline]:
        """The headlines of ``result`` with their checks applied."""
        return apply_checks(self.headlines(result, settings), self.checks_for(settings))
