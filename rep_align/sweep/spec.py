"""Sweep specs: fixed settings and axes whose product is the set of runs (TOML or Python).

A ``SweepSpec`` names fixed settings and *axes* (lists of values) of ``RunConfig``; the
product of the axes is the set of runs, in plan order (first axis slowest). A spec may
instead list its runs one by one (``per_run``: each run's settings on top of the fixed
ones), for a set of runs that is not a product, such as an experiment's many-point runs.
Specs are validated on construction, before anything is compiled; ``load_spec`` reads the
TOML layout documented at ``spec_from_dict`` and ``SweepSpec.to_toml`` writes it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rep_align.config import (
    FIELDS,
    FLOW_ONLY,
    TWO_POINT_ONLY,
    RunConfig,
    check_setting,
    coerce_setting,
)

__all__ = ["FORMAT", "SweepSpec", "count_runs", "load_spec", "spec_from_dict"]

#: Format tag written to every manifest and chunk file of a results store.
FORMAT = "rep_align.sweep/1"

# Execution and output options of a spec (top level of the TOML file).
_OPTIONS = ("name", "fit", "save_trajectories", "memory_budget_mb", "max_chunk", "runs_per_device")


def _generate(name: str, table: Mapping[str, Any]) -> list:
    """Values of a generator table: ``{range = N}``, ``{range = [a, b(, step)]}``,
    ``{linspace = [a, b, n]}`` or ``{geomspace = [a, b, n]}``."""
    if len(table) != 1 or next(iter(table)) not in ("range", "linspace", "geomspace"):
        raise ValueError(
            f"axis {name!r}: a generator table needs exactly one key, 'range', 'linspace' or "
            f"'geomspace', got {sorted(table)}"
        )
    ((how, args),) = table.items()
    args = list(args) if isinstance(args, list | tuple) else [args]
    if how == "range":
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise ValueError(f"axis {name!r}: range needs N or [start, stop(, step)] integers")
        return list(range(*args))
    if len(args) != 3 or not isinstance(args[2], int) or isinstance(args[2], bool):
        raise ValueError(f"axis {name!r}: {how} needs [start, stop, num]")
    try:
        return [float(v) for v in getattr(np, how)(float(args[0]), float(args[1]), args[2])]
    except (TypeError, ValueError) as err:
        raise ValueError(f"axis {name!r}: {how}{args}: {err}") from None


def _expand_axis(name: str, values: Any) -> tuple:
    """An axis as given (list, or a table {range|linspace|geomspace = [...]}) → values."""
    if isinstance(values, Mapping):
        values = _generate(name, values)
    elif isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"axis {name!r}: expected a list of values, got {values!r}")
    if name == "pair":
        values = [tuple(v) if isinstance(v, list | tuple) else v for v in values]
    return tuple(values)


def _settings(where: str, table: Any) -> dict[str, Any]:
    """One table of settings (a mapping, ``(name, value)`` pairs as a normalised spec holds
    them, or a ``RunConfig``'s changes), coerced and checked."""
    if isinstance(table, RunConfig):
        table = table.changes()
    elif isinstance(table, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in table):
        table = dict(table)
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: expected a table of settings, got {table!r}")
    out = {}
    for name, value in table.items():
        if name not in FIELDS:
            raise ValueError(
                f"{where}: unknown setting {name!r}; known settings: {', '.join(FIELDS)}"
            )
        try:
            value = coerce_setting(name, value)
            check_setting(name, value)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        out[name] = value
    return out


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A declarative sweep: fixed settings, axes, and output/execution options.

    The runs are the Cartesian product of the axes (first axis slowest), each applied on top
    of ``RunConfig``'s defaults and ``fixed``. Build it directly, with ``spec_from_dict`` or
    from a TOML file with ``load_spec``; it is validated on construction.

    Attributes:
        axes: ordered ``((name, (v1, v2, ...)), ...)``; a ``dict`` is accepted. Names are
            ``RunConfig`` fields; each axis must be non-empty without duplicate values.
        fixed: ``((name, value), ...)`` settings shared by all runs; a ``dict`` is accepted.
        name: label of the sweep (default "sweep").
        fit: fit the effective rates (eta_h, eta_y, eta_m) of docs/theory.md §5 to every
            run with ``rep_align.fit.fit_records`` (default False).
        save_trajectories: store the recorded trajectories, not only per-run scalars
            (default True).
        memory_budget_mb: memory per device a chunk may use, by ``estimate_run_bytes``
            (default 2048 MiB). Changes results only by floating-point rounding (module
            note).
        max_chunk: cap on runs per device per chunk (default 1024). Changes results only by
            floating-point rounding (module note).
        runs_per_device: 0 (default) sizes chunks by the budget and ``max_chunk`` as above;
            n ≥ 1 gives every chunk exactly n runs per device (the last one padded), on as
            many devices as the group needs, so that a run's numbers do not depend on how
            many runs the sweep has (the experiments use 4; docs/architecture.md).
        per_run: the runs listed one by one instead of ``axes``: each a table of settings
            applied on top of ``fixed`` (a mapping, or a ``RunConfig``, whose settings that
            differ from the defaults are taken), in plan order. Stored normalised: the
            settings every run shares move to ``fixed``, each table keeps the rest.

    Raises:
        ValueError: naming the problem: an unknown setting or option, an empty axis, a value
            of the wrong type or range (negative width, unknown activation, lr ≤ 0, ...),
            duplicate axis values, a setting both fixed and swept, a setting that does not
            apply (dx2 for "xor", rtol for "descent"), an incompatible combination (a CNN
            too short for its kernels, record_every not dividing steps, ...), both
            ``axes`` and ``per_run``, a run listed twice, ``fit`` with points runs.
    """

    axes: tuple[tuple[str, tuple], ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    name: str = "sweep"
    fit: bool = False
    save_trajectories: bool = True
    memory_budget_mb: float = 2048.0
    max_chunk: int = 1024
    runs_per_device: int = 0
    per_run: tuple[tuple[tuple[str, Any], ...], ...] = ()

    def __post_init__(self) -> None:
        axes = self.axes.items() if isinstance(self.axes, Mapping) else self.axes
        fixed = self.fixed.items() if isinstance(self.fixed, Mapping) else self.fixed
        norm_axes = []
        for name, values in axes:
            if name not in FIELDS:
                raise ValueError(f"unknown axis {name!r}; known settings: {', '.join(FIELDS)}")
            values = _expand_axis(name, values)
            if not values:
                raise ValueError(f"axis {name!r} is empty: give at least one value")
            values = tuple(coerce_setting(name, v) for v in values)
            for v in values:
                check_setting(name, v)
            if len(set(values)) != len(values):
                raise ValueError(f"axis {name!r} has duplicate values: {list(values)}")
            norm_axes.append((name, values))
        names = [n for n, _ in norm_axes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"axis {sorted(dup)[0]!r} is given more than once")
        norm_fixed = []
        for name, value in fixed:
            if name not in FIELDS:
                raise ValueError(f"unknown setting {name!r}; known settings: {', '.join(FIELDS)}")
            if name in names:
                raise ValueError(f"setting {name!r} is both fixed and an axis; give it once")
            value = coerce_setting(name, value)
            check_setting(name, value)
            norm_fixed.append((name, value))
        if self.per_run:
            if norm_axes:
                raise ValueError("give axes or per_run (the runs one by one), not both")
            norm_fixed, per_run = _factor(dict(norm_fixed), self.per_run)
            object.__setattr__(self, "per_run", per_run)
        object.__setattr__(self, "axes", tuple(norm_axes))
        object.__setattr__(self, "fixed", tuple(sorted(norm_fixed)))
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"option 'name' must be a non-empty string, got {self.name!r}")
        for opt in ("fit", "save_trajectories"):
            if not isinstance(getattr(self, opt), bool):
                raise ValueError(
                    f"option {opt!r} must be true or false, got {getattr(self, opt)!r}"
                )
        budget = self.memory_budget_mb
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
            raise ValueError(f"option 'memory_budget_mb' must be > 0, got {budget!r}")
        mc = self.max_chunk
        if isinstance(mc, bool) or not isinstance(mc, int) or mc < 1:
            raise ValueError(f"option 'max_chunk' must be a positive integer, got {mc!r}")
        rpd = self.runs_per_device
        if isinstance(rpd, bool) or not isinstance(rpd, int) or rpd < 0:
            raise ValueError(f"option 'runs_per_device' must be an integer ≥ 0, got {rpd!r}")
        self._check_runs()

    # -- derived ------------------------------------------------------------------------

    @property
    def num_runs(self) -> int:
        """Number of runs: the product of the axis lengths, or of the listed runs."""
        return len(self.per_run) if self.per_run else math.prod(len(v) for _, v in self.axes)

    def runs(self) -> list[RunConfig]:
        """Every run of the sweep, in plan order (product of the axes, first axis slowest;
        or the order of ``per_run``)."""
        return list(self._runs)

    @property
    def spec_hash(self) -> str:
        """Hash of what decides the stored results: the set of run ids and output options."""
        ids = sorted(r.run_id for r in self.runs())
        text = json.dumps(
            {"format": FORMAT, "runs": ids, "fit": self.fit, "traj": self.save_trajectories}
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_toml(self) -> str:
        """The spec as TOML text that ``load_spec`` reads back to an equal spec."""
        lines = [
            f"name = {_toml_value(self.name)}",
            f"fit = {_toml_value(self.fit)}",
            f"save_trajectories = {_toml_value(self.save_trajectories)}",
            f"memory_budget_mb = {_toml_value(float(self.memory_budget_mb))}",
            f"max_chunk = {_toml_value(self.max_chunk)}",
            *([f"runs_per_device = {self.runs_per_device}"] if self.runs_per_device else []),
            "",
            "[fixed]",
        ]
        lines += [f"{k} = {_toml_value(v)}" for k, v in self.fixed]
        if self.per_run:
            for table in self.per_run:
                lines += ["", "[[per_run]]", *(f"{k} = {_toml_value(v)}" for k, v in table)]
            return "\n".join(lines) + "\n"
        lines += ["", "[axes]"]
        lines += [f"{k} = {_toml_value(list(v))}" for k, v in self.axes]
        return "\n".join(lines) + "\n"

    # -- validation ---------------------------------------------------------------------

    def _check_runs(self) -> None:
        base = dict(self.fixed)
        if self.per_run:
            tables = [dict(t) for t in self.per_run]
            for table in tables:
                _check_applicable({**base, **table}, {})
        else:
            _check_applicable(base, dict(self.axes))
            names = [n for n, _ in self.axes]
            combos = itertools.product(*(v for _, v in self.axes))
            tables = [dict(zip(names, combo, strict=True)) for combo in combos]
        # Every run is checked on construction (RunConfig checks its settings in
        # combination); name the axis values (or the listed run) of the first that fails.
        runs = []
        for k, table in enumerate(tables):
            try:
                runs.append(RunConfig(**base, **table))
            except ValueError as err:
                where = ", ".join(f"{n}={v!r}" for n, v in table.items())
                if self.per_run:
                    where = f"run {k} of per_run" + (f": {where}" if where else "")
                raise ValueError(
                    f"{err} (in the run with {where})" if where else str(err)
                ) from None
        ids = [r.run_id for r in runs]
        if len(set(ids)) != len(ids):
            first = next(i for i, r in enumerate(ids) if ids.index(r) != i)
            raise ValueError(f"run {first} of per_run repeats run {ids.index(ids[first])}")
        if self.fit and any(r.record == "points" for r in runs):
            raise ValueError(
                "option 'fit' fits the rates of pair runs (docs/theory.md §5); it does not "
                "apply to record 'points' runs"
            )
        object.__setattr__(self, "_runs", tuple(runs))


def _check_applicable(base: Mapping[str, Any], axes: Mapping[str, tuple]) -> None:
    """Settings set (fixed or swept) that no run of the method or task uses are refused."""
    set_names = set(base) | set(axes)
    if "flow" not in axes.get("method", (base.get("method", "descent"),)):
        for n in FLOW_ONLY:
            if n in set_names:
                raise ValueError(f"setting {n!r} applies only to method 'flow'")
    if "two_points" not in axes.get("task", (base.get("task", "two_points"),)):
        for n in TWO_POINT_ONLY:
            if n in set_names:
                raise ValueError(f"setting {n!r} applies only to task 'two_points'")


def _factor(fixed: dict[str, Any], per_run: Sequence[Any]) -> tuple[list, tuple]:
    """``(fixed, per_run)`` normalised: the settings every listed run shares (values
    included) become fixed, each run's table keeps the rest, both sorted by name.

    Raises:
        ValueError: for a table that is not one, an unknown or invalid setting, or a
            setting both fixed and set per run.
    """
    if isinstance(per_run, Mapping) or not isinstance(per_run, Sequence):
        raise ValueError(f"per_run must be a list of tables of settings, got {per_run!r}")
    runs = []
    for k, table in enumerate(per_run):
        table = _settings(f"run {k} of per_run", table)
        both = sorted(set(table) & set(fixed))
        if both:
            raise ValueError(f"setting {both[0]!r} is both fixed and set in run {k} of per_run")
        runs.append({**fixed, **table})
    common = {n: v for n, v in runs[0].items() if all(n in r and r[n] == v for r in runs[1:])}
    tables = tuple(tuple(sorted((n, v) for n, v in r.items() if n not in common)) for r in runs)
    return sorted(common.items()), tables


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def spec_from_dict(data: Mapping[str, Any]) -> SweepSpec:
    """Build a ``SweepSpec`` from the parsed TOML layout.

    Layout: top-level options (``name``, ``fit``, ``save_trajectories``,
    ``memory_budget_mb``, ``max_chunk``, ``runs_per_device``), a table ``[fixed]`` of
    settings and a table ``[axes]`` of lists (or generator tables ``{range = N}``,
    ``{range = [a, b]}``, ``{linspace = [start, stop, num]}``,
    ``{geomspace = [start, stop, num]}``); or, instead of ``[axes]``, the runs one by one
    as an array of tables ``[[per_run]]``, each with the settings of one run on top of
    ``[fixed]``.

    Raises:
        ValueError: for an unknown top-level key or table, or anything ``SweepSpec`` rejects.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a sweep spec must be a table, got {type(data).__name__}")
    unknown = [k for k in data if k not in (*_OPTIONS, "fixed", "axes", "per_run")]
    if unknown:
        raise ValueError(
            f"unknown top-level key {unknown[0]!r} in sweep spec; expected "
            f"{', '.join(_OPTIONS)}, [fixed], [axes] and [[per_run]]"
        )
    for table in ("fixed", "axes"):
        if table in data and not isinstance(data[table], Mapping):
            raise ValueError(f"[{table}] must be a table")
    per_run = data.get("per_run", [])
    if not isinstance(per_run, list):
        raise ValueError("per_run must be an array of tables ([[per_run]])")
    return SweepSpec(
        axes=tuple(dict(data.get("axes", {})).items()),
        fixed=tuple(dict(data.get("fixed", {})).items()),
        per_run=tuple(per_run),
        **{k: data[k] for k in _OPTIONS if k in data},
    )


def count_runs(path: str | os.PathLike) -> int:
    """Number of runs of the spec in the TOML file ``path``, counted from its axes (or its
    listed runs) without building them, so that a huge spec is sized in milliseconds.

    Raises:
        ValueError: for TOML syntax errors and axes that do not expand (``load_spec``'s
            messages); other mistakes are found by ``load_spec``.
        FileNotFoundError: if there is no such file.
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from None
    per_run = data.get("per_run")
    if isinstance(per_run, list) and per_run:
        return len(per_run)
    axes = data.get("axes", {})
    if not isinstance(axes, Mapping):
        raise ValueError(f"{path}: [axes] must be a table")
    try:
        return math.prod(len(_expand_axis(k, v)) for k, v in axes.items())
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep spec from a TOML file (layout: ``spec_from_dict``).

    Raises:
        ValueError: for TOML syntax errors (with the file name) and invalid specs.
        FileNotFoundError: if there is no such file.
    """
    text = Path(path).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from None
    try:
        return spec_from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
