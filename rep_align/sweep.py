"""Sweeps over networks, optimisers, data geometry and seeds as compiled, vmapped, sharded jobs.

A sweep is declared, not programmed: a ``SweepSpec`` names fixed settings and *axes* (lists of
values); the product of the axes is the set of runs. Each run is one ``RunConfig`` (every
setting of one training run, with defaults for what the spec leaves out) and has a stable id,
a hash of its full configuration.

Execution
---------
Settings split into two kinds (STYLE.md: "configuration that decides array shapes is static;
everything numeric is traced"):

- *static* (``STATIC_FIELDS``): task, architecture, width, depth, activation, dims, method,
  optimizer, steps, record_every, batch size, pair, read-out layer, dtype, ... Runs that agree
  on all of them form a *group*, and each group is compiled exactly once.
- *traced* (``TRACED_FIELDS``): gain, lr, dx2, dy2, seed (and rtol, atol of gradient flow).
  Within a group they are the inputs of one ``jax.vmap``-ed function, so new values never
  recompile.

A group runs as a sequence of *chunks*. A chunk holds ``per_device × n_devices`` runs:
``per_device`` is the largest batch that fits the memory budget (an estimate of the bytes one
run needs, from its parameter count, optimiser state and record length; see
``estimate_run_bytes``), capped by ``SweepSpec.max_chunk``. The chunk is split over all
devices with ``jax.shard_map``: each device runs its own independent vmapped batch, with no
communication, so adaptive diffrax while-loops (``method = "flow"``) are never sharded
automatically (which is known to be very slow). The last chunk of a group is padded with
copies of a real run (dropped before writing), so every chunk has the same shape and the group
compiles once. Within a group, runs are ordered by (lr, gain) before chunking so that an
adaptive solve's chunk holds runs of similar stiffness (an adaptive solve under vmap takes as
many steps as its slowest member). The same spec therefore runs unchanged on one CPU, eight
GPUs or a TPU slice, and gives the same numbers: a run's result does not depend on which
chunk or device computed it (up to floating-point reassociation that XLA may choose for a
different batch size; the tests check 1 vs 4 devices and chunked vs unchunked). On the
two-point task with leaky-ReLU networks that reassociation is not harmless: the second input
starts on every unit's kink and the rounding grows to per-cent differences in the records
within a few hundred steps (measured on the default 20 × 500 network, whose CPU code changes
between 8 and 12 runs per batch). To compare runs of two sweeps member by member, run both
with chunks of the same shape: the same ``max_chunk``, ``memory_budget_mb`` and device count,
and enough runs in each group to fill a chunk (``rep-align two-points`` trains its seeds in
blocks of 4 for this reason).

Multi-host
----------
On several hosts (e.g. a TPU pod slice or a GPU cluster), start the same program on every
host, call ``jax.distributed.initialize()`` (with coordinator address, process count and id
where the cluster does not provide them) before anything else touches JAX, and call
``run_sweep`` with an output directory on a file system all hosts share. Each process takes
the runs whose position in the plan is ≡ ``jax.process_index()`` (mod
``jax.process_count()``), runs them on its own local devices (``jax.local_devices()``) and
writes its own chunk files; no cross-host communication happens during the sweep. Resuming
works per process as on one host. ``process_index`` and ``process_count`` can also be passed
explicitly, e.g. to split a sweep over independent batch jobs without ``jax.distributed``.

Results store
-------------
One directory per sweep, readable with NumPy alone (no rep_align, no pickle)::

    DIR/manifest.json         format tag, spec hash, name, run and group counts, versions
    DIR/spec.toml             the spec in canonical form (``rep-align sweep DIR/spec.toml``)
    DIR/chunks/*.npz          one file per finished chunk: per-run columns (run_id, every
                              setting, status flags, summary scalars, fitted rates) and,
                              unless ``save_trajectories = false``, the recorded
                              trajectories ``loss (n, T)``, ``h (n, T, L)``, ``y``, ``w``,
                              ``m (n, T)`` with ``times (T,)`` in gradient steps
    DIR/results.csv           one row per finished run (the scalar columns), rewritten at the
                              end of every ``run_sweep`` call

Why NumPy ``.npz`` plus JSON/CSV: ``.npz`` is a zip of ``.npy`` arrays, NumPy's documented
and versioned binary format, loaded with ``numpy.load(path)`` (and by readers in Julia, R,
C++, ...), exact in every dtype and free of pickle. One small file per chunk, written to a
temporary name and moved into place with ``os.replace`` (atomic on POSIX), makes the store
crash-safe with no locking: a killed sweep leaves complete chunks or none, never a torn file,
which appending to a single HDF5/netCDF/Parquet file cannot promise. Groups with different
record lengths or depths sit in different files, so nothing ragged needs padding. Parquet
(pyarrow) or netCDF (xarray + h5netcdf) would add heavy dependencies that this library does
not otherwise need and are not installed here; ``results.csv`` gives spreadsheet and pandas
users the per-run table directly.

Resume and safety: a finished run is one whose id appears in a chunk file. Re-running the same
spec into the same directory skips finished runs and runs only the rest, so an interrupted
sweep completes with every run exactly once. The manifest stores the spec's hash (over the run
ids and output options; execution options such as the memory budget do not count, since they
do not change results); a different spec pointed at the same directory raises
``SpecMismatchError`` before any compute, so results of two specs never mix.

Inside compiled code nothing raises: a run whose loss becomes non-finite carries
``diverged = True`` (and ``diverged_step``), a gradient-flow run whose solver failed carries
``solver_ok = False``, and the sweep goes on.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import hashlib
import io
import itertools
import json
import math
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "FORMAT",
    "RunConfig",
    "STATIC_FIELDS",
    "TRACED_FIELDS",
    "SpecMismatchError",
    "SweepResults",
    "SweepReport",
    "SweepSpec",
    "estimate_run_bytes",
    "load_results",
    "load_spec",
    "run_sweep",
    "spec_from_dict",
]

#: Format tag written to every manifest and chunk file of a results store.
FORMAT = "rep_align.sweep/1"

_TASKS = ("two_points", "xor")
_METHODS = ("descent", "flow")
_OPTIMIZERS = ("sgd", "adam")
_DTYPES = ("float32", "float64")
_AXIS = "runs"  # the mesh axis that chunks are split over

# Number of times a group's function was traced; tests check one trace per group.
_TRACE_COUNT: dict[str, int] = {"group": 0}


# ------------------------------------------------------------------------------ configs


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run of a sweep (defaults: a small two-point MLP).

    Values are coerced to the field's type (``gain=1`` becomes 1.0, so equal settings give
    equal ids) and range-checked on construction (``ValueError`` naming the setting).

    Attributes:
        task: "two_points" (PRESETS.md; uses dx2, dy2, in_dim, out_dim) or "xor" (4 points,
            2 inputs, 1 output; dx2, dy2, in_dim, out_dim do not apply).
        arch, width, depth, activation, dropout_rate, kernel_size, channels: the network, as
            ``networks.make_network`` takes them. Default "mlp", 64, 4, "leaky_relu".
        gain: Xavier-normal init gain (> 0). Traced. Default 1.0.
        method: "descent" (``training.train``, optax in ``lax.scan``) or "flow"
            (``training.gradient_flow``, diffrax; time in steps at ``lr``). Default "descent".
        optimizer: "sgd" or "adam" (descent only). Default "sgd".
        lr: learning rate (> 0). Traced. Default 0.01.
        steps: gradient steps (descent) or flow time in steps (≥ 1). Default 2000.
        record_every: steps between records of the observables; divides ``steps``. Default 10.
        batch_size: mini-batch size, 0 for full batch (default; descent only).
        dx2, dy2: squared input and target distances of the two points (≥ 0). Traced.
            Defaults 1.0, 0.5.
        in_dim, out_dim: data dimensions (two_points only). Default 1, 1.
        seed: PRNG seed (integer in [0, 2³²)), traced. Default 0.
        pair: indices of the recorded pair of points. Default (0, 1).
        layer: hidden layer whose h is summarised and fitted: an index (negative counts from
            the last) or "middle" = depth // 2, the reference study's read-out (default).
        rtol, atol, max_steps: gradient-flow tolerances (traced) and step cap (flow only).
            Defaults 1e-5, 1e-8, 100000.
        dtype: "float32" (default) or "float64".
    """

    task: str = "two_points"
    arch: str = "mlp"
    width: int = 64
    depth: int = 4
    activation: str = "leaky_relu"
    dropout_rate: float = 0.1
    kernel_size: int = 11
    channels: int = 20
    gain: float = 1.0
    method: str = "descent"
    optimizer: str = "sgd"
    lr: float = 0.01
    steps: int = 2000
    record_every: int = 10
    batch_size: int = 0
    dx2: float = 1.0
    dy2: float = 0.5
    in_dim: int = 1
    out_dim: int = 1
    seed: int = 0
    pair: tuple[int, int] = (0, 1)
    layer: int | str = "middle"
    rtol: float = 1e-5
    atol: float = 1e-8
    max_steps: int = 100_000
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name))
            _check_value(f.name, value)
            object.__setattr__(self, f.name, value)

    def canonical(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (floats as floats, pair as a list)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit id: SHA-256 of the canonical JSON of every setting."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def static_key(self) -> tuple:
        """The settings that decide array shapes and code: runs sharing them share a group."""
        return tuple(getattr(self, name) for name in STATIC_FIELDS)

    @property
    def layer_index(self) -> int:
        """``layer`` resolved to a non-negative index into the recorded hidden layers."""
        n = self.depth + 2 if self.arch == "cnn" else self.depth
        if self.layer == "middle":
            return self.depth // 2
        return int(self.layer) % n


_FIELD_TYPES: dict[str, type] = {
    "task": str,
    "arch": str,
    "width": int,
    "depth": int,
    "activation": str,
    "dropout_rate": float,
    "kernel_size": int,
    "channels": int,
    "gain": float,
    "method": str,
    "optimizer": str,
    "lr": float,
    "steps": int,
    "record_every": int,
    "batch_size": int,
    "dx2": float,
    "dy2": float,
    "in_dim": int,
    "out_dim": int,
    "seed": int,
    "pair": tuple,
    "layer": object,
    "rtol": float,
    "atol": float,
    "max_steps": int,
    "dtype": str,
}

#: Numeric settings that are traced (vmapped) inside a group: changing them never recompiles.
TRACED_FIELDS: tuple[str, ...] = ("gain", "lr", "dx2", "dy2", "seed", "rtol", "atol")
#: Settings that decide shapes or code; runs that share all of them form one compiled group.
STATIC_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(RunConfig) if f.name not in TRACED_FIELDS
)
_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunConfig))
_FLOW_ONLY = ("rtol", "atol", "max_steps")
_TWO_POINT_ONLY = ("dx2", "dy2", "in_dim", "out_dim")

# Execution and output options of a spec (top level of the TOML file).
_OPTIONS = ("name", "fit", "save_trajectories", "memory_budget_mb", "max_chunk")


def _coerce(name: str, value: Any) -> Any:
    """Convert one TOML/Python value to the field's type, or raise naming the setting."""
    kind = _FIELD_TYPES[name]
    bad = ValueError(f"setting {name!r}: expected {kind.__name__}, got {value!r}")
    if kind is str:
        if not isinstance(value, str):
            raise bad
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            if isinstance(value, float | np.floating) and float(value).is_integer():
                return int(value)
            raise bad
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise bad
        return float(value)
    if kind is tuple:  # pair
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in value)
        ):
            raise ValueError(f"setting 'pair': expected two integers, got {value!r}")
        return (int(value[0]), int(value[1]))
    # layer: an int or "middle"
    if isinstance(value, str):
        if value != "middle":
            raise ValueError(f"setting 'layer': expected an integer or 'middle', got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"setting 'layer': expected an integer or 'middle', got {value!r}")
    return int(value)


def _check_value(name: str, v: Any) -> None:
    """Range and choice checks of a single (coerced) setting."""

    def fail(why: str) -> ValueError:
        return ValueError(f"setting {name!r}: {why}, got {v!r}")

    from rep_align.networks import ACTIVATIONS, ARCHITECTURES

    choices = {
        "task": _TASKS,
        "arch": ARCHITECTURES,
        "activation": tuple(ACTIVATIONS),
        "method": _METHODS,
        "optimizer": _OPTIMIZERS,
        "dtype": _DTYPES,
    }
    if name in choices:
        if v not in choices[name]:
            raise fail(f"must be one of {choices[name]}")
    elif name in ("width", "depth", "kernel_size", "channels", "steps", "record_every"):
        if v < 1:
            raise fail("must be a positive integer")
    elif name in ("in_dim", "out_dim", "max_steps"):
        if v < 1:
            raise fail("must be a positive integer")
    elif name == "batch_size":
        if v < 0:
            raise fail("must be ≥ 0 (0 = full batch)")
    elif name == "seed":
        if not 0 <= v < 2**32:
            raise fail("must be an integer in [0, 2**32)")
    elif name in ("gain", "lr", "rtol", "atol"):
        if not (math.isfinite(v) and v > 0):
            raise fail("must be positive and finite")
    elif name in ("dx2", "dy2"):
        if not (math.isfinite(v) and v >= 0):
            raise fail("must be finite and ≥ 0")
    elif name == "dropout_rate":
        if not 0.0 <= v < 1.0:
            raise fail("must lie in [0, 1)")
    elif name == "pair":
        if v[0] == v[1] or min(v) < 0:
            raise fail("must be two distinct non-negative indices")


def _check_config(cfg: RunConfig) -> None:
    """Checks that involve several settings of one run (shapes, applicability)."""
    from rep_align.networks import make_network

    make_network(
        cfg.arch,
        in_dim=cfg.in_dim if cfg.task == "two_points" else 2,
        out_dim=cfg.out_dim if cfg.task == "two_points" else 1,
        width=cfg.width,
        depth=cfg.depth,
        activation=cfg.activation,
        gain=cfg.gain,
        dropout_rate=cfg.dropout_rate,
        kernel_size=cfg.kernel_size,
        channels=cfg.channels,
    )
    if cfg.steps % cfg.record_every:
        raise ValueError(f"record_every={cfg.record_every} must divide steps={cfg.steps}")
    n_points = 2 if cfg.task == "two_points" else 4
    if max(cfg.pair) >= n_points:
        raise ValueError(
            f"pair={list(cfg.pair)} out of range for task {cfg.task!r} ({n_points} points)"
        )
    if cfg.batch_size > n_points:
        raise ValueError(
            f"batch_size={cfg.batch_size} exceeds the {n_points} points of {cfg.task!r}"
        )
    n_hidden = cfg.depth + 2 if cfg.arch == "cnn" else cfg.depth
    if isinstance(cfg.layer, int) and not -n_hidden <= cfg.layer < n_hidden:
        raise ValueError(f"layer={cfg.layer} out of range for {n_hidden} hidden layers")
    if cfg.method == "flow":
        if cfg.optimizer != "sgd":
            raise ValueError("method 'flow' is gradient flow: optimizer must be 'sgd'")
        if cfg.batch_size:
            raise ValueError("method 'flow' is full-batch: batch_size must be 0")


# ------------------------------------------------------------------------------ the spec


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
        fit: fit the effective rates (eta_h, eta_y, eta_m) of THEORY.md section 5 to every
            run with ``rep_align.fit.fit_rates`` (default False).
        save_trajectories: store the recorded trajectories, not only per-run scalars
            (default True).
        memory_budget_mb: memory per device a chunk may use, by ``estimate_run_bytes``
            (default 2048 MiB). Changes results only by floating-point rounding (module
            note).
        max_chunk: cap on runs per device per chunk (default 1024). Changes results only by
            floating-point rounding (module note).

    Raises:
        ValueError: naming the problem: an unknown setting or option, an empty axis, a value
            of the wrong type or range (negative width, unknown activation, lr ≤ 0, ...),
            duplicate axis values, a setting both fixed and swept, a setting that does not
            apply (dx2 for "xor", rtol for "descent"), an incompatible combination (a CNN
            too short for its kernels, record_every not dividing steps, ...), or ``fit``
            without ``rep_align.fit``.
    """

    axes: tuple[tuple[str, tuple], ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    name: str = "sweep"
    fit: bool = False
    save_trajectories: bool = True
    memory_budget_mb: float = 2048.0
    max_chunk: int = 1024

    def __post_init__(self) -> None:
        axes = self.axes.items() if isinstance(self.axes, Mapping) else self.axes
        fixed = self.fixed.items() if isinstance(self.fixed, Mapping) else self.fixed
        norm_axes = []
        for name, values in axes:
            if name not in _FIELDS:
                raise ValueError(f"unknown axis {name!r}; known settings: {', '.join(_FIELDS)}")
            values = _expand_axis(name, values)
            if not values:
                raise ValueError(f"axis {name!r} is empty: give at least one value")
            values = tuple(_coerce(name, v) for v in values)
            for v in values:
                _check_value(name, v)
            if len(set(values)) != len(values):
                raise ValueError(f"axis {name!r} has duplicate values: {list(values)}")
            norm_axes.append((name, values))
        names = [n for n, _ in norm_axes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"axis {sorted(dup)[0]!r} is given more than once")
        norm_fixed = []
        for name, value in fixed:
            if name not in _FIELDS:
                raise ValueError(f"unknown setting {name!r}; known settings: {', '.join(_FIELDS)}")
            if name in names:
                raise ValueError(f"setting {name!r} is both fixed and an axis; give it once")
            value = _coerce(name, value)
            _check_value(name, value)
            norm_fixed.append((name, value))
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
        self._check_runs()

    # -- derived ------------------------------------------------------------------------

    @property
    def num_runs(self) -> int:
        """Number of runs: the product of the axis lengths."""
        return math.prod(len(v) for _, v in self.axes)

    def runs(self) -> list[RunConfig]:
        """Every run of the sweep, in plan order (product of the axes, first axis slowest)."""
        names = [n for n, _ in self.axes]
        base = dict(self.fixed)
        return [
            RunConfig(**base, **dict(zip(names, combo, strict=True)))
            for combo in itertools.product(*(v for _, v in self.axes))
        ]

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
            "",
            "[fixed]",
        ]
        lines += [f"{k} = {_toml_value(v)}" for k, v in self.fixed]
        lines += ["", "[axes]"]
        lines += [f"{k} = {_toml_value(list(v))}" for k, v in self.axes]
        return "\n".join(lines) + "\n"

    # -- validation ---------------------------------------------------------------------

    def _check_runs(self) -> None:
        set_names = {n for n, _ in self.axes} | {n for n, _ in self.fixed}
        base = dict(self.fixed)
        method_values = dict(self.axes).get("method", (base.get("method", "descent"),))
        task_values = dict(self.axes).get("task", (base.get("task", "two_points"),))
        if "flow" not in method_values:
            for n in _FLOW_ONLY:
                if n in set_names:
                    raise ValueError(f"setting {n!r} applies only to method 'flow'")
        if "two_points" not in task_values:
            for n in _TWO_POINT_ONLY:
                if n in set_names:
                    raise ValueError(f"setting {n!r} applies only to task 'two_points'")
        if self.fit:
            try:
                from rep_align import fit as _fit  # noqa: F401
            except ImportError as err:
                raise ValueError(
                    f"option 'fit' needs rep_align.fit, which could not be imported ({err})"
                ) from None
        # Combination checks once per distinct static configuration (cheap: no compute).
        seen: set = set()
        for run in self.runs():
            key = run.static_key
            if key in seen:
                continue
            seen.add(key)
            try:
                _check_config(run)
            except ValueError as err:
                where = ", ".join(f"{n}={getattr(run, n)!r}" for n, _ in self.axes)
                raise ValueError(
                    f"{err} (in the run with {where})" if where else str(err)
                ) from None


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
    ``memory_budget_mb``, ``max_chunk``), a table ``[fixed]`` of settings and a table
    ``[axes]`` of lists (or generator tables ``{range = N}``, ``{range = [a, b]}``,
    ``{linspace = [start, stop, num]}``, ``{geomspace = [start, stop, num]}``).

    Raises:
        ValueError: for an unknown top-level key or table, or anything ``SweepSpec`` rejects.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a sweep spec must be a table, got {type(data).__name__}")
    unknown = [k for k in data if k not in (*_OPTIONS, "fixed", "axes")]
    if unknown:
        raise ValueError(
            f"unknown top-level key {unknown[0]!r} in sweep spec; expected "
            f"{', '.join(_OPTIONS)}, [fixed] and [axes]"
        )
    for table in ("fixed", "axes"):
        if table in data and not isinstance(data[table], Mapping):
            raise ValueError(f"[{table}] must be a table")
    return SweepSpec(
        axes=tuple(dict(data.get("axes", {})).items()),
        fixed=tuple(dict(data.get("fixed", {})).items()),
        **{k: data[k] for k in _OPTIONS if k in data},
    )


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


# ------------------------------------------------------------------------ one group


@dataclasses.dataclass(frozen=True)
class _Group:
    """Runs sharing their static settings; ``runs`` in execution order."""

    key: str  # short hash of the static settings
    static: RunConfig  # the first run, for its static settings
    runs: tuple[RunConfig, ...]


def _groups(runs: Iterable[RunConfig]) -> list[_Group]:
    by_key: dict[tuple, list[RunConfig]] = {}
    for r in runs:
        by_key.setdefault(r.static_key, []).append(r)
    groups = []
    for key, members in by_key.items():
        text = json.dumps([list(k) if isinstance(k, tuple) else k for k in key])
        # Similar stiffness side by side (matters for adaptive flow solves under vmap).
        members = sorted(members, key=lambda r: (r.lr, r.gain, r.dx2, r.dy2, r.seed))
        gkey = hashlib.sha256(text.encode()).hexdigest()[:8]
        groups.append(_Group(key=gkey, static=members[0], runs=tuple(members)))
    return groups


def _network(cfg: RunConfig):
    from rep_align.networks import make_network

    two = cfg.task == "two_points"
    return make_network(
        cfg.arch,
        in_dim=cfg.in_dim if two else 2,
        out_dim=cfg.out_dim if two else 1,
        width=cfg.width,
        depth=cfg.depth,
        activation=cfg.activation,
        gain=1.0,
        dropout_rate=cfg.dropout_rate,
        kernel_size=cfg.kernel_size,
        channels=cfg.channels,
        dtype=jnp.dtype(cfg.dtype),
    )


def estimate_run_bytes(cfg: RunConfig) -> int:
    """Rough peak memory of one run of ``cfg`` inside a vmapped chunk, in bytes.

    Counts parameters, gradients and updates (×3, plus 2 Adam moments), a factor 2 for
    XLA's temporaries, the forward activations of all points, and the recorded observables
    ``(steps/record_every + 1) × (layers + 4)`` (twice: scan buffer and output). Gradient
    flow adds Tsit5's 7 stages and error estimate. Meant for sizing chunks, not exact.
    """
    net = _network(cfg)
    dummy = jax.eval_shape(lambda k: net.init(k), jax.random.key(0))
    n_params = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(dummy))
    item = jnp.dtype(cfg.dtype).itemsize
    copies = 3 + (2 if cfg.optimizer == "adam" else 0) + (9 if cfg.method == "flow" else 0)
    n_points = 2 if cfg.task == "two_points" else 4
    act = n_points * sum(math.prod(s) for s in net.hidden_shapes) * 4
    n_rec = cfg.steps // cfg.record_every + 1
    records = 2 * n_rec * (net.num_hidden + 4)
    return int(item * (2 * copies * n_params + act + records) + 4096)


def _run_one(cfg: RunConfig, p: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """One run of the group of ``cfg`` for traced settings ``p``: records and summaries."""
    from rep_align import data, training

    net = _network(cfg)
    dtype = net.dtype
    if cfg.task == "two_points":
        x, y = data.two_points(
            dx2=p["dx2"], dy2=p["dy2"], in_dim=cfg.in_dim, out_dim=cfg.out_dim, dtype=dtype
        )
    else:
        x, y = data.xor(dtype=dtype)
    key = jax.random.key(p["seed"])
    if cfg.method == "descent":
        traj = training.train(
            net,
            x,
            y,
            key=key,
            lr=p["lr"],
            steps=cfg.steps,
            optimizer=cfg.optimizer,
            batch_size=cfg.batch_size or None,
            record_every=cfg.record_every,
            pair=cfg.pair,
            gain=p["gain"],
        )
    else:
        traj = training.gradient_flow(
            net,
            x,
            y,
            lr=p["lr"],
            t_max=float(cfg.steps),
            save_every=float(cfg.record_every),
            key=key,
            gain=p["gain"],
            pair=cfg.pair,
            rtol=p["rtol"],
            atol=p["atol"],
            max_steps=cfg.max_steps,
        )
    li = cfg.layer_index
    return {
        "times": traj.times,
        "loss": traj.loss,
        "h": traj.h,
        "y": traj.y,
        "w": traj.w,
        "m": traj.m,
        "data_dx2": traj.dx2,
        "data_dy2": traj.dy2,
        "diverged": traj.diverged,
        "diverged_step": traj.diverged_step,
        "n_steps": traj.n_steps,
        "solver_ok": traj.solver_ok,
        "h0": traj.h[0, li],
        "y0": traj.y[0],
        "w0": traj.w[0],
        "loss_final": traj.loss[-1],
        "h_final": traj.h[-1, li],
        "y_final": traj.y[-1],
        "w_final": traj.w[-1],
    }


def _group_function(cfg: RunConfig, mesh: Mesh) -> Callable:
    """The compiled function of a group: traced inputs (chunk,) → outputs (chunk, ...)."""

    def per_device(p):
        _TRACE_COUNT["group"] += 1
        return jax.vmap(functools.partial(_run_one, cfg))(p)

    sharded = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=P(_AXIS),
        out_specs=P(_AXIS),
        # Each device runs an independent batch; nothing is replicated or communicated,
        # so the varying-manual-axes check has nothing to verify.
        check_vma=False,
    )
    return jax.jit(sharded)


def _traced_inputs(runs: Sequence[RunConfig], dtype: str) -> dict[str, np.ndarray]:
    out = {n: np.asarray([getattr(r, n) for r in runs], dtype) for n in TRACED_FIELDS}
    out["seed"] = np.asarray([r.seed for r in runs], np.uint32)
    return out


# ---------------------------------------------------------------------------- store


class SpecMismatchError(ValueError):
    """The output directory holds results of a different spec (or is not a sweep store)."""


_CHUNKS = "chunks"
_MANIFEST = "manifest.json"
_SCALARS = (
    "data_dx2",
    "data_dy2",
    "diverged",
    "diverged_step",
    "n_steps",
    "solver_ok",
    "h0",
    "y0",
    "w0",
    "loss_final",
    "h_final",
    "y_final",
    "w_final",
)
_TRAJ = ("loss", "h", "y", "w", "m")


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write via a temporary file in the same directory, then ``os.replace`` into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _prepare_store(out: Path, spec: SweepSpec, *, writer: bool) -> None:
    """Create the store or check that it belongs to ``spec``."""
    manifest = out / _MANIFEST
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except json.JSONDecodeError as err:
            raise SpecMismatchError(f"{manifest} is not valid JSON ({err})") from None
        if old.get("format") != FORMAT:
            raise SpecMismatchError(f"{out} is not a {FORMAT} results store")
        if old.get("spec_hash") != spec.spec_hash:
            raise SpecMismatchError(
                f"{out} holds results of a different spec ({old.get('name')!r}, hash "
                f"{old.get('spec_hash')}); this spec ({spec.name!r}) has hash {spec.spec_hash}. "
                "Results of two specs are never mixed: choose another output directory, "
                "or delete the old one to start over."
            )
        return
    if out.exists() and any(p.name != _CHUNKS for p in out.iterdir()):
        raise SpecMismatchError(
            f"{out} exists, is not empty and has no {_MANIFEST}: not a sweep results store; "
            "choose another output directory"
        )
    if not writer:
        return
    (out / _CHUNKS).mkdir(parents=True, exist_ok=True)
    from rep_align import __version__

    meta = {
        "format": FORMAT,
        "spec_hash": spec.spec_hash,
        "name": spec.name,
        "num_runs": spec.num_runs,
        "num_groups": len(_groups(spec.runs())),
        "axes": {k: list(v) for k, v in spec.axes},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rep_align_version": __version__,
        "jax_version": jax.__version__,
    }
    _atomic_write(out / "spec.toml", lambda fh: fh.write(spec.to_toml().encode()))
    _atomic_write(manifest, lambda fh: fh.write(json.dumps(meta, indent=2).encode()))


def _chunk_files(out: Path) -> list[Path]:
    return sorted((out / _CHUNKS).glob("*.npz")) if (out / _CHUNKS).exists() else []


def _finished_ids(out: Path) -> set[str]:
    done: set[str] = set()
    for path in _chunk_files(out):
        with np.load(path, allow_pickle=False) as f:
            done.update(str(i) for i in f["run_id"])
    return done


def _write_chunk(
    out: Path,
    group: _Group,
    runs: Sequence[RunConfig],
    res: Mapping[str, np.ndarray],
    spec: SweepSpec,
    fitted: Mapping[str, np.ndarray] | None,
) -> Path:
    ids = [r.run_id for r in runs]
    digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
    path = out / _CHUNKS / f"{group.key}-{digest}.npz"
    cols: dict[str, np.ndarray] = {
        "__format__": np.asarray(FORMAT),
        "spec_hash": np.asarray(spec.spec_hash),
        "group": np.asarray(group.key),
        "run_id": np.asarray(ids),
        "layer_index": np.full(len(runs), group.static.layer_index, np.int32),
    }
    for name in _FIELDS:
        vals = [getattr(r, name) for r in runs]
        if name == "pair":
            cols[name] = np.asarray(vals, np.int64)
        elif name == "layer":
            cols[name] = np.asarray([str(v) for v in vals])
        else:
            cols[name] = np.asarray(vals)
    for name in _SCALARS:
        cols[name] = res[name]
    if spec.save_trajectories:
        cols["times"] = res["times"][0]
        for name in _TRAJ:
            cols[name] = res[name]
    for name, v in (fitted or {}).items():
        cols[name] = v

    def write(fh):
        np.savez(fh, **cols)

    _atomic_write(path, write)
    return path


# ------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class SweepReport:
    """What one ``run_sweep`` call did.

    Attributes:
        out: the results directory.
        num_runs: runs in the spec (for this process, if several share the sweep).
        skipped: runs found finished already (resumed).
        completed: runs computed by this call.
        diverged: runs of this call flagged diverged or with a failed solver.
        num_groups, num_chunks: compiled groups and chunks executed by this call.
        seconds: wall time of this call.
    """

    out: Path
    num_runs: int
    skipped: int
    completed: int
    diverged: int
    num_groups: int
    num_chunks: int
    seconds: float


_FIT_COLUMNS = ("eta_h", "eta_y", "eta_m", "fit_loss", "r2_h", "r2_y", "r2_w", "fit_ok")


def _fit_chunk(cfg: RunConfig, res: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fit effective rates to every run of a chunk with ``rep_align.fit`` (THEORY.md §5).

    Fits (eta_h, eta_y) to h (read-out layer), y, w with ``fit.fit_rates`` and then eta_m to
    the loss curve with ``fit.fit_eta_m``, in float64. Runs that cannot be fitted (non-finite
    records, h0 = 0, dx2 = 0) get NaN and ``fit_ok = False``. The fitted batch is padded to
    the chunk size, so the fit also compiles once per group. eta_m is fitted for the
    two-point task only (its loss is the pair's loss).
    """
    from rep_align import fit

    n = len(res["h0"])
    z = np.stack([res["h"][:, :, cfg.layer_index], res["y"], res["w"]], axis=-1)
    ok = np.all(np.isfinite(z), axis=(1, 2)) & (z[:, 0, 0] > 0) & (z[:, 0, 1] >= 0)
    ok &= (res["data_dx2"] > 0) & np.isfinite(res["loss"]).all(axis=1)
    out = {k: np.full(n, np.nan) for k in _FIT_COLUMNS}
    out["fit_ok"] = np.zeros(n, bool)
    if not np.any(ok):
        return out
    idx = np.flatnonzero(ok)
    idx = np.concatenate([idx, np.full(n - len(idx), idx[0])])
    ts = np.asarray(res["times"][0], np.float64)
    with jax.enable_x64(True):
        rates = fit.fit_rates(
            ts,
            np.asarray(z[idx], np.float64),
            dx2=np.asarray(res["data_dx2"][idx], np.float64),
            dy2=np.asarray(res["data_dy2"][idx], np.float64),
            return_trajectory=cfg.task == "two_points",
        )
        r2 = np.asarray(rates.r2)
        sel = slice(0, int(ok.sum()))
        rows = idx[sel]
        out["eta_h"][rows] = np.asarray(rates.eta_h)[sel]
        out["eta_y"][rows] = np.asarray(rates.eta_y)[sel]
        out["fit_loss"][rows] = np.asarray(rates.loss)[sel]
        for k, name in enumerate(("r2_h", "r2_y", "r2_w")):
            out[name][rows] = r2[sel, k]
        out["fit_ok"][rows] = np.asarray(rates.success)[sel]
        if cfg.task == "two_points":
            z_fit = np.asarray(rates.z_fit)
            good = np.all(np.isfinite(z_fit), axis=(1, 2))
            if np.any(good):
                m0 = np.asarray(res["m"][idx, 0], np.float64)
                z_fit = np.where(good[:, None, None], z_fit, z_fit[np.argmax(good)])
                eta_m = fit.fit_eta_m(
                    ts,
                    np.asarray(res["loss"][idx], np.float64),
                    z_fit,
                    m0=m0,
                    dy2=np.asarray(res["data_dy2"][idx], np.float64),
                    out_dim=cfg.out_dim,
                )
                out["eta_m"][rows] = np.where(good, np.asarray(eta_m.eta_m), np.nan)[sel]
    return out


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike,
    *,
    devices: Sequence[jax.Device] | None = None,
    progress: Callable[[int, int], None] | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> SweepReport:
    """Run (or resume) a sweep, writing each finished chunk to the store at ``out``.

    Validation happens before anything is compiled: the spec validates on construction, and
    the store is checked against it here. Runs already in the store are skipped, so calling
    this again after an interruption completes the sweep with every run exactly once.

    Arguments:
        spec: the sweep.
        out: results directory (created if missing; see the module docstring for its layout).
        devices: devices to spread chunks over; default ``jax.local_devices()``.
        progress: optional ``progress(done, total)`` called once at the start (with the runs
            already finished) and after every chunk.
        process_index, process_count: this process's share of the plan (runs whose plan
            position ≡ index mod count); default ``jax.process_index()``,
            ``jax.process_count()`` (multi-host with ``jax.distributed``).

    Returns:
        A ``SweepReport``.

    Raises:
        SpecMismatchError: if ``out`` holds another spec's results or is not a sweep store.
        ValueError: for an invalid ``process_index``/``process_count`` or empty ``devices``.
    """
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        raise ValueError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    out = Path(out)
    pcount = jax.process_count() if process_count is None else int(process_count)
    pindex = jax.process_index() if process_index is None else int(process_index)
    if pcount < 1 or not 0 <= pindex < pcount:
        raise ValueError(f"process_index={pindex} must lie in [0, process_count={pcount})")
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty")
    _prepare_store(out, spec, writer=True)
    if pcount == 1:  # leftovers of a killed writer; with several processes they may be live
        for tmp in (out / _CHUNKS).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    mine = [r for i, r in enumerate(spec.runs()) if i % pcount == pindex]
    done = _finished_ids(out)
    todo = [r for r in mine if r.run_id not in done]
    total = len(mine)
    finished = total - len(todo)
    if progress is not None:
        progress(finished, total)
    mesh = Mesh(np.asarray(devices), (_AXIS,))
    n_dev = len(devices)
    n_chunks = n_bad = 0
    groups = _groups(todo)
    for group in groups:
        cfg = group.static
        with jax.enable_x64(cfg.dtype == "float64"):
            per_dev = estimate_run_bytes(cfg)
            fit_in = int(spec.memory_budget_mb * 2**20 // per_dev)
            per_device = max(1, min(spec.max_chunk, fit_in, math.ceil(len(group.runs) / n_dev)))
            size = per_device * n_dev
            fn = _group_function(cfg, mesh)
            sharding = NamedSharding(mesh, P(_AXIS))
            for start in range(0, len(group.runs), size):
                runs = group.runs[start : start + size]
                padded = list(runs) + [runs[-1]] * (size - len(runs))
                inputs = jax.device_put(_traced_inputs(padded, cfg.dtype), sharding)
                n_real = len(runs)
                res = {k: np.asarray(v)[:n_real] for k, v in fn(inputs).items()}
                fitted = _fit_chunk(cfg, res) if spec.fit else None
                _write_chunk(out, group, runs, res, spec, fitted)
                n_bad += int(np.sum(res["diverged"] | ~res["solver_ok"]))
                n_chunks += 1
                finished += len(runs)
                if progress is not None:
                    progress(finished, total)
    if pindex == 0:
        _write_csv(out)
    return SweepReport(
        out=out,
        num_runs=total,
        skipped=total - len(todo),
        completed=len(todo),
        diverged=n_bad,
        num_groups=len(groups),
        num_chunks=n_chunks,
        seconds=time.perf_counter() - t_start,
    )


# ------------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class SweepResults:
    """The finished runs of a results store, as read by ``load_results``.

    Attributes:
        spec: the sweep spec stored with the results.
        table: per-run columns, one entry per finished run in plan order: ``run_id``,
            ``group``, every ``RunConfig`` setting, ``layer_index``, the status flags
            ``diverged``, ``diverged_step``, ``solver_ok``, ``n_steps``, the summaries
            ``data_dx2``, ``data_dy2``, ``h0``, ``y0``, ``w0``, ``loss_final``, ``h_final``,
            ``y_final``, ``w_final`` (h at the read-out layer), ``converged`` (finite and
            final loss below the threshold given to ``load_results``) and, if the sweep
            fitted rates, ``eta_h``, ``eta_y``, ``eta_m`` (two-point task only),
            ``fit_loss``, ``r2_h``, ``r2_y``, ``r2_w``, ``fit_ok`` (``rep_align.fit``'s
            success flag; NaN rates and False for runs that could not be fitted, e.g.
            diverged ones) and the analytic ``h_inf_theory`` (THEORY.md section 3) from
            h0, y0 and the fitted rates.
        directory: where the store lives.
    """

    spec: SweepSpec
    table: Mapping[str, np.ndarray]
    directory: Path

    def __len__(self) -> int:
        return len(self.table["run_id"])

    @property
    def num_missing(self) -> int:
        """Runs of the spec not finished yet."""
        return self.spec.num_runs - len(self)

    def trajectories(self, group: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Recorded trajectories of one group (see ``table["group"]``).

        Returns:
            ``(run_ids, arrays)`` with arrays ``times (T,)``, ``loss, y, w, m (n, T)``,
            ``h (n, T, L)``, rows in the order of ``run_ids``.

        Raises:
            ValueError: if the sweep did not save trajectories or the group is unknown.
        """
        if not self.spec.save_trajectories:
            raise ValueError("this sweep was run with save_trajectories = false")
        ids, parts = [], {n: [] for n in _TRAJ}
        times = None
        for path in _chunk_files(self.directory):
            with np.load(path, allow_pickle=False) as f:
                if str(f["group"]) != group:
                    continue
                ids.extend(str(i) for i in f["run_id"])
                times = f["times"]
                for n in _TRAJ:
                    parts[n].append(f[n])
        if times is None:
            raise ValueError(f"no finished runs in group {group!r}")
        return np.asarray(ids), {"times": times, **{n: np.concatenate(v) for n, v in parts.items()}}


def load_results(out: str | os.PathLike, *, converged_loss: float = 1e-2) -> SweepResults:
    """Read a results store written by ``run_sweep`` (finished runs only).

    Arguments:
        out: the results directory.
        converged_loss: a run counts as ``converged`` if its final loss is finite and below
            this (default 1e-2, the reference study's filter).

    Returns:
        A ``SweepResults``.

    Raises:
        SpecMismatchError: if ``out`` is not a results store.
        FileNotFoundError: if ``out`` does not exist.
    """
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"no results directory {out}")
    if not (out / _MANIFEST).exists():
        raise SpecMismatchError(f"{out} has no {_MANIFEST}: not a sweep results store")
    spec = load_spec(out / "spec.toml")
    _prepare_store(out, spec, writer=False)
    cols: dict[str, list] = {}
    for path in _chunk_files(out):
        with np.load(path, allow_pickle=False) as f:
            n = len(f["run_id"])
            names = [k for k in f.files if k not in ("__format__", "spec_hash", "times", *_TRAJ)]
            for k in names:
                v = f[k]
                v = np.full(n, v) if v.ndim == 0 else v
                cols.setdefault(k, []).append(v)
    table: dict[str, np.ndarray] = {}
    if cols:
        lengths = {k: sum(len(p) for p in v) for k, v in cols.items()}
        total = lengths["run_id"]
        table = {k: np.concatenate(v) for k, v in cols.items() if lengths[k] == total}
        order_of = {r.run_id: i for i, r in enumerate(spec.runs())}
        order = np.argsort([order_of.get(str(i), len(order_of)) for i in table["run_id"]])
        table = {k: v[order] for k, v in table.items()}
        lf = table["loss_final"]
        table["converged"] = np.isfinite(lf) & (lf < converged_loss)
        if "eta_h" in table:
            table["h_inf_theory"] = _h_inf(table)
    else:
        table = {"run_id": np.asarray([], str)}
    return SweepResults(spec=spec, table=table, directory=out)


def _h_inf(table: Mapping[str, np.ndarray]) -> np.ndarray:
    """Analytic h∞ (THEORY.md section 3) from each run's h0, y0 and fitted rates; NaN where
    those are not valid (diverged runs, failed fits)."""
    from rep_align.theory import final_distance

    args = [table[k] for k in ("h0", "y0", "eta_h", "eta_y", "data_dx2", "data_dy2")]
    ok = np.all([np.isfinite(a) for a in args], axis=0)
    ok &= (table["h0"] > 0) & (table["y0"] >= 0) & (table["eta_h"] > 0) & (table["eta_y"] > 0)
    out = np.full(len(ok), np.nan)
    if np.any(ok):
        h0, y0, eh, ey, dx2, dy2 = (np.asarray(a[ok], np.float64) for a in args)
        out[ok] = np.asarray(final_distance(h0, y0, eta_h=eh, eta_y=ey, dx2=dx2, dy2=dy2))
    return out


def _write_csv(out: Path) -> None:
    """Rewrite ``results.csv``: the scalar columns of every finished run."""
    res = load_results(out)
    names = [k for k, v in res.table.items() if v.ndim == 1]
    if "pair" in res.table:
        names.insert(names.index("layer_index"), "pair")

    def fmt(k: str, i: int) -> str:
        v = res.table[k][i]
        if k == "pair":
            return f"{int(v[0])} {int(v[1])}"
        if isinstance(v, np.floating):
            return repr(float(v))
        if isinstance(v, np.bool_):
            return "true" if v else "false"
        return str(v)

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(names)
    for i in range(len(res)):
        w.writerow([fmt(k, i) for k in names])
    _atomic_write(out / "results.csv", lambda fh: fh.write(buf.getvalue().encode()))
