"""One training run, as one typed configuration: ``RunConfig``.

Every setting of a run lives here, with its validation and the methods that build what the
run needs (``network()``, ``data()``, ``layer_index``). The sweep engine, the experiments,
the presets and the CLI all describe runs with it, so "the run with these settings" means
the same thing everywhere, and two runs with equal settings have equal ids.

Settings split into two kinds (docs/architecture.md, "Static and traced settings"):

- *static* (``STATIC_FIELDS``): task, architecture, sizes, activation, method, optimizer,
  steps, record_every, batch size, pair, read-out layer, dtypes, stopping rule. They decide
  shapes and code: runs that share them share one compiled program.
- *traced* (``TRACED_FIELDS``): gain, lr, dx2, dy2, seed, rtol, atol. They are inputs of that
  program, so new values never recompile.

Run ids. ``RunConfig.run_id`` hashes the canonical JSON of the settings. Settings added
after the first release (``ADDED_FIELDS``) enter the canonical form only when they differ
from their default, so the ids of runs that do not use them never change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from rep_align import checks
from rep_align.networks import num_hidden

__all__ = [
    "ADDED_FIELDS",
    "DTYPES",
    "FIELDS",
    "METHODS",
    "OPTIMIZERS",
    "RunConfig",
    "STATIC_FIELDS",
    "TASKS",
    "TRACED_FIELDS",
    "coerce_setting",
    "check_setting",
    "num_hidden",
]

TASKS = ("two_points", "xor")
METHODS = ("descent", "flow")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")
_INIT_DTYPES = ("auto", *DTYPES)

#: Points of each task (the recorded pair indexes into them).
_N_POINTS = {"two_points": 2, "xor": 4}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run (defaults: a small two-point MLP).

    Values are coerced to the field's type (``gain=1`` becomes 1.0, so equal settings give
    equal ids) and checked on construction, alone and in combination (``ValueError``
    naming the setting and the value).

    Attributes:
        task: "two_points" (docs/presets.md, "Two-point task"; uses dx2, dy2, in_dim,
            out_dim) or "xor" (4 points, 2 inputs, 1 output; dx2, dy2, in_dim, out_dim do
            not apply).
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
        dtype: "float32" (default) or "float64": the dtype the run trains in.
        init_dtype: "auto" (default: draw the initial parameters in ``dtype``), or
            "float32" with ``dtype = "float64"``: draw them in float32 and cast, so a
            float64 run starts from exactly the parameters of its float32 twin and the two
            differ only by rounding along the way.
        stop_loss: 0 (default: train all ``steps``), or a loss below which a run stops, at
            its first record (every ``record_every`` steps) below it; records after the
            stop are NaN and ``stop_step`` says where it stopped (docs/presets.md,
            "Protocols": the final-distance grid). Descent with "sgd" only.
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
    init_dtype: str = "auto"
    stop_loss: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = coerce_setting(f.name, getattr(self, f.name))
            check_setting(f.name, value)
            object.__setattr__(self, f.name, value)
        self._check_combination()

    # -- identity -----------------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (floats as floats, pair as a list).

        Settings of ``ADDED_FIELDS`` appear only when they differ from their default (module
        docstring: run ids stay stable as settings are added)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ADDED_FIELDS and v == f.default:
                continue
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

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the defaults (enough to rebuild this run:
        ``RunConfig(**cfg.changes()) == cfg``); what a sweep spec's ``fixed`` table needs."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (validated like a new configuration)."""
        return dataclasses.replace(self, **changes)

    # -- what the run is made of ----------------------------------------------------------

    @property
    def n_points(self) -> int:
        """Number of data points of the task."""
        return _N_POINTS[self.task]

    @property
    def data_dims(self) -> tuple[int, int]:
        """(input, output) dimensions of the task's data."""
        return (self.in_dim, self.out_dim) if self.task == "two_points" else (2, 1)

    @property
    def num_hidden(self) -> int:
        """Number of recorded hidden activations of the run's network."""
        return num_hidden(self.arch, self.depth)

    @property
    def layer_index(self) -> int:
        """``layer`` resolved to a non-negative index into the recorded hidden layers."""
        if self.layer == "middle":
            return self.depth // 2
        return int(self.layer) % self.num_hidden

    def network(self, *, dtype: str | None = None, gain: float = 1.0):
        """The run's network (``networks.make_network``).

        Arguments:
            dtype: parameter dtype; default the run's ``dtype``.
            gain: the network's default init gain; default 1, since the engine applies the
                run's gain at initialisation (``Network.init(key, gain=...)``), so that it
                can be traced. Pass ``self.gain`` for a network that initialises as the run.
        """
        import jax.numpy as jnp

        from rep_align.networks import make_network

        in_dim, out_dim = self.data_dims
        return make_network(
            self.arch,
            in_dim=in_dim,
            out_dim=out_dim,
            width=self.width,
            depth=self.depth,
            activation=self.activation,
            gain=gain,
            dropout_rate=self.dropout_rate,
            kernel_size=self.kernel_size,
            channels=self.channels,
            dtype=jnp.dtype(self.dtype if dtype is None else dtype),
        )

    def data(self, *, dx2: Any = None, dy2: Any = None, dtype: Any = None):
        """The task's data ``(x, y)``: shapes (n_points, in_dim) and (n_points, out_dim).

        Arguments:
            dx2, dy2: override the run's squared distances, e.g. with traced values (two-point
                task only); default the run's.
            dtype: float dtype; default the run's ``dtype``.
        """
        from rep_align import data

        dtype = self.dtype if dtype is None else dtype
        if self.task == "two_points":
            return data.two_points(
                dx2=self.dx2 if dx2 is None else dx2,
                dy2=self.dy2 if dy2 is None else dy2,
                in_dim=self.in_dim,
                out_dim=self.out_dim,
                dtype=dtype,
            )
        return data.xor(dtype=dtype)

    # -- validation -----------------------------------------------------------------------

    def _check_combination(self) -> None:
        """Checks that involve several settings (shapes, applicability)."""
        self.network()  # make_network checks sizes, e.g. a CNN too short for its kernels
        if self.steps % self.record_every:
            raise ValueError(f"record_every={self.record_every} must divide steps={self.steps}")
        if max(self.pair) >= self.n_points:
            raise ValueError(
                f"pair={list(self.pair)} out of range for task {self.task!r} "
                f"({self.n_points} points)"
            )
        if self.batch_size > self.n_points:
            raise ValueError(
                f"batch_size={self.batch_size} exceeds the {self.n_points} points of {self.task!r}"
            )
        n = self.num_hidden
        if isinstance(self.layer, int) and not -n <= self.layer < n:
            raise ValueError(f"layer={self.layer} out of range for {n} hidden layers")
        if self.method == "flow":
            if self.optimizer != "sgd":
                raise ValueError("method 'flow' is gradient flow: optimizer must be 'sgd'")
            if self.batch_size:
                raise ValueError("method 'flow' is full-batch: batch_size must be 0")
        if self.init_dtype != "auto" and self.init_dtype != self.dtype:
            if not (self.init_dtype == "float32" and self.dtype == "float64"):
                raise ValueError(
                    f"init_dtype={self.init_dtype!r} with dtype={self.dtype!r}: only 'auto' or "
                    "'float32' with dtype 'float64' (start a float64 run from float32 draws)"
                )
            if self.method != "descent":
                raise ValueError("init_dtype 'float32' applies to method 'descent' only")
        if self.stop_loss > 0 and (self.method != "descent" or self.optimizer != "sgd"):
            raise ValueError(
                "stop_loss applies to method 'descent' with optimizer 'sgd' (an optimiser "
                f"state is not carried across the stopping checks), got method={self.method!r}, "
                f"optimizer={self.optimizer!r}"
            )


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
    "init_dtype": str,
    "stop_loss": float,
}

#: Every setting, in declaration order.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunConfig))
#: Settings added after the first store format; in a run's id only when not at their default.
ADDED_FIELDS: tuple[str, ...] = ("init_dtype", "stop_loss")
#: Numeric settings that are traced (vmapped) inside a group: changing them never recompiles.
TRACED_FIELDS: tuple[str, ...] = ("gain", "lr", "dx2", "dy2", "seed", "rtol", "atol")
#: Settings that decide shapes or code; runs that share all of them form one compiled group.
STATIC_FIELDS: tuple[str, ...] = tuple(n for n in FIELDS if n not in TRACED_FIELDS)
#: Settings that apply only to some methods or tasks (a spec may not set them otherwise).
FLOW_ONLY: tuple[str, ...] = ("rtol", "atol", "max_steps")
TWO_POINT_ONLY: tuple[str, ...] = ("dx2", "dy2", "in_dim", "out_dim")


def coerce_setting(name: str, value: Any) -> Any:
    """Convert one TOML/Python value to the type of setting ``name``, or raise naming it.

    Raises:
        ValueError: for an unknown setting or a value of the wrong type.
    """
    if name not in _FIELD_TYPES:
        raise ValueError(f"unknown setting {name!r}; known settings: {', '.join(FIELDS)}")
    kind = _FIELD_TYPES[name]
    label = f"setting {name!r}"
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{label}: expected str, got {value!r}")
        return value
    if kind is int:
        try:
            return checks.integer(label, value)
        except ValueError:
            raise ValueError(f"{label}: expected int, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) and not _is_np_real(value):
            raise ValueError(f"{label}: expected float, got {value!r}")
        return float(value)
    if kind is tuple:  # pair
        if not (isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_int, value))):
            raise ValueError(f"setting 'pair': expected two integers, got {value!r}")
        return (int(value[0]), int(value[1]))
    # layer: an int or "middle"
    if value == "middle" if isinstance(value, str) else _is_int(value):
        return value if isinstance(value, str) else int(value)
    raise ValueError(f"setting 'layer': expected an integer or 'middle', got {value!r}")


def _is_int(value: Any) -> bool:
    import numpy as np

    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_np_real(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.integer | np.floating)


def check_setting(name: str, v: Any) -> None:
    """Range and choice checks of one (coerced) setting.

    Raises:
        ValueError: ``setting 'name': why, got value``.
    """
    from rep_align.networks import ACTIVATIONS, ARCHITECTURES

    def fail(why: str) -> ValueError:
        return ValueError(f"setting {name!r}: {why}, got {v!r}")

    choices = {
        "task": TASKS,
        "arch": ARCHITECTURES,
        "activation": tuple(ACTIVATIONS),
        "method": METHODS,
        "optimizer": OPTIMIZERS,
        "dtype": DTYPES,
        "init_dtype": _INIT_DTYPES,
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
    elif name in ("dx2", "dy2", "stop_loss"):
        if not (math.isfinite(v) and v >= 0):
            raise fail("must be finite and ≥ 0")
    elif name == "dropout_rate":
        if not 0.0 <= v < 1.0:
            raise fail("must lie in [0, 1)")
    elif name == "pair":
        if v[0] == v[1] or min(v) < 0:
            raise fail("must be two distinct non-negative indices")
