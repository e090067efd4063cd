"""Training dynamics of real networks: gradient descent and gradient flow.

Both routines record, inside the compiled loop, the loss and the pair observables of
THEORY.md section 1 (h at every hidden layer, y, w, m) and return a ``Trajectory``.
Parameters are never stored per step.

Conventions shared by ``train`` and ``gradient_flow``:

- Loss L = 0.5 · mean over points and output units of (ŷ − y*)² (THEORY.md §1).
- Time is in gradient-descent steps: ``train`` takes θ ← θ − lr·∇L once per step, and
  ``gradient_flow`` integrates dθ/dt = −lr·∇L(θ), so both trajectories line up at the same
  times (the flow is the lr → 0 limit of descent at fixed lr·steps).
- Each call handles one run. Configuration that decides shapes (the network, number of
  steps, recording interval, batch size, pair, optimizer kind, solver) is static; the
  numbers (learning rate, gain, data values, PRNG key, initial parameters) are traced, so
  ``jax.vmap`` over seeds, gains, learning rates or data geometry works and a second call
  with new values of the same shapes compiles nothing.
- Inside the compiled loop nothing raises: a run whose loss becomes non-finite is flagged
  (``Trajectory.diverged``, ``Trajectory.diverged_step``) and its records from that step on
  are NaN, so a sweep survives one diverging member.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from rep_align.networks import Network, _check_gain
from rep_align.observables import pair_observables

__all__ = ["Trajectory", "gradient_flow", "loss_fn", "train", "train_ensemble"]

_FORMAT = "rep_align.Trajectory/1"

# Number of times each compiled core has been traced; tests use it to check that new
# values of the same shapes do not recompile.
_TRACE_COUNTS: dict[str, int] = {"train": 0, "flow": 0}


class Trajectory(eqx.Module):
    """Recorded training dynamics of one run (or a batch of runs, with leading axes).

    Shapes are for one run; vmapped runs add leading batch axes to every field.

    Attributes:
        times: (T,) record times in gradient steps (floats, for descent and flow alike).
        loss: (T,) full-batch loss 0.5·mse, evaluated without dropout.
        h: (T, num_hidden) squared representational distance ‖Δh‖² of the pair, per
            hidden layer.
        y: (T,) squared output distance ‖Δŷ‖².
        w: (T,) y − Δy*·Δŷ.
        m: (T,) squared error of the pair's mean output.
        dx2, dy2: () squared input and target distances of the pair.
        diverged: () True if the loss became non-finite.
        diverged_step: () first step with non-finite loss, −1 if none. For gradient flow,
            the first save time (rounded down) at which the loss was non-finite.
            Records at and after that time are NaN.
        n_steps: () gradient-descent steps taken, or solver steps (accepted and rejected)
            of gradient flow.
        solver_ok: () False if the ODE solver failed (e.g. max_steps reached); records it
            did not reach are NaN. Always True for ``train``.
    """

    times: Float[Array, " T"]
    loss: Float[Array, " T"]
    h: Float[Array, "T layers"]
    y: Float[Array, " T"]
    w: Float[Array, " T"]
    m: Float[Array, " T"]
    dx2: Float[Array, ""]
    dy2: Float[Array, ""]
    diverged: Bool[Array, ""]
    diverged_step: Int[Array, ""]
    n_steps: Int[Array, ""]
    solver_ok: Bool[Array, ""]

    @property
    def num_hidden(self) -> int:
        """Number of hidden layers recorded (last axis of ``h``)."""
        return self.h.shape[-1]

    def save(self, path: str) -> None:
        """Write every field to an ``.npz`` file at exactly ``path`` (no pickling).

        Batched (vmapped) trajectories are saved as they are, with their leading axes.
        """
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}
        with open(path, "wb") as fh:
            np.savez(fh, __format__=np.asarray(_FORMAT), **arrays)

    @classmethod
    def load(cls, path: str) -> Trajectory:
        """Read a file written by ``save``; fields come back as NumPy arrays, bit for bit.

        Raises:
            ValueError: if the file is not a saved ``Trajectory``.
        """
        with np.load(path, allow_pickle=False) as data:
            if "__format__" not in data.files or str(data["__format__"]) != _FORMAT:
                raise ValueError(f"{path!r} is not a saved rep_align Trajectory ({_FORMAT})")
            names = [f.name for f in dataclasses.fields(cls)]
            missing = [n for n in names if n not in data.files]
            if missing:
                raise ValueError(f"{path!r} lacks Trajectory fields {missing}")
            return cls(**{n: data[n] for n in names})


class _Record(NamedTuple):
    loss: Array
    h: Array
    y: Array
    w: Array
    m: Array


def loss_fn(
    params: PyTree,
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    train: bool = False,
    key: PRNGKeyArray | None = None,
) -> tuple[Float[Array, ""], tuple[Array, tuple[Array, ...]]]:
    """L = 0.5 · mean((ŷ − y*)²) over points and output units, with the forward pass.

    Returns:
        ``(loss, (output, hiddens))``, ready for ``jax.value_and_grad(..., has_aux=True)``
        so the observables reuse the forward pass that the gradient needed anyway.
    """
    out, hiddens = network.apply(params, x, train=train, key=key)
    return 0.5 * jnp.mean((out - y) ** 2), (out, hiddens)


def _record(loss: Array, x: Array, y: Array, out: Array, hiddens: tuple, pair) -> _Record:
    obs = pair_observables(x, y, out, hiddens, pair=pair)
    return _Record(loss, obs.h, obs.y, obs.w, obs.m)


def _observe(params: PyTree, network: Network, x: Array, y: Array, pair) -> _Record:
    loss, (out, hiddens) = loss_fn(params, network, x, y)
    return _record(loss, x, y, out, hiddens, pair)


OptimizerSpec = str | optax.GradientTransformation | Callable[[Any], optax.GradientTransformation]


def _make_optimizer(optimizer: OptimizerSpec, lr: Array | None) -> optax.GradientTransformation:
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if optimizer == "sgd":
        return optax.sgd(lr)
    if optimizer == "adam":
        return optax.adam(lr)
    return optimizer(lr)


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_positive_scalar(name: str, value: Any) -> None:
    if not _is_concrete(value):
        return
    v = np.asarray(value)
    if v.shape != () or not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"{name} must be a scalar, got {value!r}")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _prepare_data(network: Network, x: Any, y: Any, pair: Any) -> tuple[Array, Array, tuple]:
    """Validate shapes and the pair, and cast the data to the network's dtype."""
    if not isinstance(network, Network):
        raise ValueError(f"network must come from make_network, got {type(network).__name__}")
    x = jnp.asarray(x, network.dtype)
    y = jnp.asarray(y, network.dtype)
    if x.ndim != 2 or x.shape[1] != network.in_dim:
        raise ValueError(f"x must have shape (n, {network.in_dim}), got {tuple(x.shape)}")
    if y.ndim != 2 or y.shape != (x.shape[0], network.out_dim):
        raise ValueError(
            f"y must have shape ({x.shape[0]}, {network.out_dim}), got {tuple(y.shape)}"
        )
    n = x.shape[0]
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in pair)
    ):
        raise ValueError(f"pair must be two integer indices, got {pair!r}")
    a, b = (int(i) for i in pair)
    if a == b or not (0 <= a < n and 0 <= b < n):
        raise ValueError(f"pair must be two distinct indices in [0, {n}), got {pair!r}")
    return x, y, (a, b)


def _split_key(key: PRNGKeyArray) -> tuple[PRNGKeyArray, PRNGKeyArray, PRNGKeyArray]:
    """(init, shuffle, dropout) keys; ``train`` and ``gradient_flow`` share the init key."""
    init_key, shuffle_key, dropout_key = jax.random.split(key, 3)
    return init_key, shuffle_key, dropout_key


def _initial_params(
    network: Network, params: PyTree | None, gain: Any, init_key: PRNGKeyArray
) -> PyTree:
    if params is not None:
        return params
    return network.init(init_key, gain=gain)


def _finish(
    times: Array,
    recs: _Record,
    x: Array,
    y: Array,
    pair: tuple[int, int],
    diverged_step: Array,
    n_steps: Array,
    solver_ok: Array,
) -> Trajectory:
    """Blank out records from the divergence on and pack a ``Trajectory``."""
    a, b = pair
    diverged = diverged_step >= 0
    bad = diverged & (times >= diverged_step)
    recs = jax.tree_util.tree_map(
        lambda v: jnp.where(bad.reshape(bad.shape + (1,) * (v.ndim - 1)), jnp.nan, v), recs
    )
    return Trajectory(
        times=times,
        loss=recs.loss,
        h=recs.h,
        y=recs.y,
        w=recs.w,
        m=recs.m,
        dx2=jnp.sum((x[b] - x[a]) ** 2),
        dy2=jnp.sum((y[b] - y[a]) ** 2),
        diverged=diverged,
        diverged_step=diverged_step.astype(jnp.int32),
        n_steps=jnp.asarray(n_steps, jnp.int32),
        solver_ok=jnp.asarray(solver_ok, bool),
    )


# --------------------------------------------------------------------------- descent


@functools.partial(
    jax.jit,
    static_argnames=(
        "network",
        "steps",
        "record_every",
        "optimizer",
        "batch_size",
        "pair",
        "progress",
        "return_params",
    ),
)
def _train_core(
    x: Array,
    y: Array,
    key: PRNGKeyArray,
    lr: Array | None,
    gain: Array,
    params: PyTree | None,
    *,
    network: Network,
    steps: int,
    record_every: int,
    optimizer: OptimizerSpec,
    batch_size: int | None,
    pair: tuple[int, int],
    progress: Callable[[int, float], None] | None,
    return_params: bool,
):
    _TRACE_COUNTS["train"] += 1
    init_key, shuffle_key, dropout_key = _split_key(key)
    params = _initial_params(network, params, gain, init_key)
    opt = _make_optimizer(optimizer, lr)
    n = x.shape[0]
    n_chunks = steps // record_every
    # Full batch without dropout: the training forward pass at θ_t is exactly the
    # evaluation forward pass, so the records reuse it instead of running another.
    reuse_forward = batch_size is None and not network.stochastic
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def minibatch(step: Array, perm: Array) -> tuple[Array, Array, Array]:
        if batch_size is None:
            return x, y, perm
        per_epoch = n // batch_size
        j = step % per_epoch
        # A fresh permutation at each epoch start, carried through the epoch's steps.
        perm = jax.lax.cond(
            j == 0,
            lambda: jax.random.permutation(
                jax.random.fold_in(shuffle_key, step // per_epoch), n
            ).astype(jnp.int32),
            lambda: perm,
        )
        idx = jax.lax.dynamic_slice_in_dim(perm, j * batch_size, batch_size)
        return x[idx], y[idx], perm

    def one_step(state, step):
        params, opt_state, perm, div = state
        xb, yb, perm = minibatch(step, perm)
        dkey = jax.random.fold_in(dropout_key, step) if network.stochastic else None
        (loss, (out, hiddens)), grads = grad_fn(params, network, xb, yb, train=True, key=dkey)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        div = jnp.where((div < 0) & ~jnp.isfinite(loss), step, div)
        return (params, opt_state, perm, div), (loss, out, hiddens)

    def chunk(state, i):
        start = i * record_every
        if reuse_forward:

            def inner(carry, j):
                state, rec = carry
                state, (loss, out, hiddens) = one_step(state, start + j)
                new = _record(loss, x, y, out, hiddens, pair)
                # Keep the record of the chunk's first step (taken at θ_start).
                rec = jax.tree_util.tree_map(lambda a, b: jnp.where(j == 0, a, b), new, rec)
                return (state, rec), None

            (state, rec), _ = jax.lax.scan(
                inner, (state, empty), jnp.arange(record_every, dtype=jnp.int32)
            )
        else:
            rec = _observe(state[0], network, x, y, pair)

            def inner(state, j):
                return one_step(state, start + j)[0], None

            state, _ = jax.lax.scan(inner, state, jnp.arange(record_every, dtype=jnp.int32))
        if progress is not None:
            every = max(1, n_chunks // 200)
            jax.lax.cond(
                i % every == 0,
                lambda: jax.debug.callback(progress, start + record_every, rec.loss),
                lambda: None,
            )
        return state, rec

    perm0 = jnp.arange(n, dtype=jnp.int32)
    div0 = jnp.asarray(-1, jnp.int32)
    state = (params, opt.init(params), perm0, div0)
    # Placeholder for the record carried through the inner scan (only shapes matter).
    empty = jax.eval_shape(lambda p: _observe(p, network, x, y, pair), params)
    empty = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), empty)
    state, recs = jax.lax.scan(chunk, state, jnp.arange(n_chunks, dtype=jnp.int32))
    params, _, _, div = state
    final = _observe(params, network, x, y, pair)
    div = jnp.where((div < 0) & ~jnp.isfinite(final.loss), steps, div)
    recs = jax.tree_util.tree_map(lambda r, f: jnp.concatenate([r, f[None]]), recs, final)
    times = (jnp.arange(n_chunks + 1) * record_every).astype(x.dtype)
    traj = _finish(times, recs, x, y, pair, div, jnp.asarray(steps), jnp.asarray(True))
    return (traj, params) if return_params else traj


def train(
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    key: PRNGKeyArray,
    lr: float | Float[Array, ""] | None,
    steps: int,
    optimizer: OptimizerSpec = "sgd",
    batch_size: int | None = None,
    record_every: int = 1,
    pair: tuple[int, int] = (0, 1),
    params: PyTree | None = None,
    gain: float | Float[Array, ""] | None = None,
    progress: Callable[[int, float], None] | None = None,
    return_params: bool = False,
) -> Trajectory | tuple[Trajectory, PyTree]:
    """Train ``network`` on (x, y) by an optax optimiser, recording the pair observables.

    The whole run is one compiled ``lax.scan`` (outer over records, inner over the
    ``record_every`` steps between them). Records are taken at steps 0, k, 2k, …, steps
    (k = ``record_every``), from the full dataset without dropout. One run per call; vmap
    over ``key``, ``lr``, ``gain``, ``x``/``y`` values or ``params`` for sweeps.

    Arguments:
        network: from ``make_network``.
        x: inputs (n, in_dim); y: targets (n, out_dim). Cast to ``network.dtype``.
        key: PRNG key (keyword-only). Split into the initialisation key (unused when
            ``params`` is given), the mini-batch shuffling key and the dropout key, so the
            same key gives the same bits.
        lr: learning rate (> 0), traced. Must be None when ``optimizer`` is an optax
            ``GradientTransformation`` (which carries its own).
        steps: number of optimiser updates (≥ 0).
        optimizer: "sgd" (plain gradient descent, the reference protocol), "adam", an
            optax ``GradientTransformation``, or a function ``lr -> GradientTransformation``
            (keeps lr traced). Default "sgd".
        batch_size: None (default) for full batch. Otherwise each step uses ``batch_size``
            points of a permutation drawn afresh every epoch of n // batch_size steps (the
            n mod batch_size points left over in each epoch are skipped).
        record_every: k ≥ 1, steps between records; must divide ``steps``. Default 1.
        pair: indices (a, b) of the recorded pair; default (0, 1).
        params: initial parameters; default ``network.init`` with the init key.
        gain: Xavier-normal gain overriding ``network.gain`` (traced; not with ``params``).
        progress: optional host function ``progress(step, loss)`` called from inside the
            compiled loop about 200 times per run (for progress bars; not under vmap).
        return_params: also return the final parameters.

    Returns:
        A ``Trajectory`` with T = steps // record_every + 1 records (times in steps), or
        ``(trajectory, final_params)`` if ``return_params``.

    Raises:
        ValueError: for invalid concrete arguments (shapes, sizes, lr ≤ 0, record_every
            not dividing steps, a pair out of range, both ``params`` and ``gain``, an
            unknown optimizer name).
    """
    x, y, pair = _prepare_data(network, x, y, pair)
    steps = _check_int("steps", steps, 0)
    record_every = _check_int("record_every", record_every, 1)
    if steps % record_every:
        raise ValueError(f"record_every={record_every} must divide steps={steps}")
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
        if batch_size > x.shape[0]:
            raise ValueError(f"batch_size={batch_size} exceeds the {x.shape[0]} data points")
    if isinstance(optimizer, optax.GradientTransformation):
        if lr is not None:
            raise ValueError("lr must be None when optimizer is a GradientTransformation")
    elif isinstance(optimizer, str):
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or optax, got {optimizer!r}")
    elif not callable(optimizer):
        raise ValueError(f"optimizer must be a name, optax or callable, got {optimizer!r}")
    if not isinstance(optimizer, optax.GradientTransformation):
        if lr is None:
            raise ValueError("lr is required unless optimizer is a GradientTransformation")
        _check_positive_scalar("lr", lr)
        lr = jnp.asarray(lr, network.dtype)
    if params is not None and gain is not None:
        raise ValueError("pass either params or gain, not both (gain only affects init)")
    gain = network.gain if gain is None else gain
    _check_gain(gain)
    return _train_core(
        x,
        y,
        key,
        lr,
        jnp.asarray(gain, network.dtype),
        params,
        network=network,
        steps=steps,
        record_every=record_every,
        optimizer=optimizer,
        batch_size=batch_size,
        pair=pair,
        progress=progress,
        return_params=return_params,
    )


def train_ensemble(
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    keys: PRNGKeyArray,
    lr: float | Float[Array, " B"] | None,
    steps: int,
    gain: float | Float[Array, " B"] | None = None,
    optimizer: OptimizerSpec = "sgd",
    batch_size: int | None = None,
    record_every: int = 1,
    pair: tuple[int, int] = (0, 1),
    return_params: bool = False,
    devices: Any = None,
    vmap_size: int | None | str = "auto",
) -> Trajectory | tuple[Trajectory, PyTree]:
    """``train`` for B runs at once (seeds, and optionally learning rates or gains).

    One compiled program for all runs: they are split into one independent part per local
    device (``rep_align.devices.vmap_over_devices``), so that on a CPU with one host device
    per core (rep_align's default) every core trains its share, and on each device the runs
    are vmapped ``vmap_size`` at a time. Each run gives the same trajectory as ``train``
    with its key, lr and gain (up to floating-point reassociation). Repeated calls with the
    same shapes and settings compile nothing.

    Arguments:
        network, x, y, steps, optimizer, batch_size, record_every, pair, return_params: as
            in ``train``, shared by all runs.
        keys: B PRNG keys, one per run (e.g. ``jax.random.split(key, B)``).
        lr: one learning rate (> 0) for all runs, or B of them; None only with an optax
            ``GradientTransformation``.
        gain: init gain, one for all runs or B of them; default ``network.gain``.
        devices: devices to split the runs over. Default: ``jax.local_devices()``, except
            on a CPU for networks with more than 8 MiB of parameters, which run on the
            first device only: XLA already spreads one such run over the cores, and two at
            once compete for the shared cache (measured on 2 cores, 8 runs of the 20×500
            default MLP: 9 % slower on two devices; 16 runs of a 256×8 MLP with 2 MiB of
            parameters: 1.7 times faster on two).
        vmap_size: runs vmapped together on a device (the groups run one after another),
            or None to vmap all of a device's runs. Default "auto": on a CPU as many as fit
            in 1 MiB of parameters (at least 1), since vmapping large networks there is
            slower than running them one by one from cache (``vmap_over_devices``); on
            other backends all.

    Returns:
        A ``Trajectory`` whose fields have a leading axis of length B (and the final
        parameters with that axis, if ``return_params``).

    Raises:
        ValueError: as ``train``, and for keys that are not a 1-D batch, or lr or gain
            not positive or not broadcastable to B.
    """
    x, y, pair = _prepare_data(network, x, y, pair)
    keys = jnp.asarray(keys)
    if keys.ndim != 1 or not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        raise ValueError(f"keys must be a 1-D array of PRNG keys, got {keys.dtype}{keys.shape}")
    n = keys.shape[0]

    def per_run(name, value, default):
        v = np.asarray(default if value is None else value, dtype=float)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != n):
            raise ValueError(f"{name} must be a scalar or have shape ({n},), got {v.shape}")
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
        return jnp.broadcast_to(jnp.asarray(v, network.dtype), (n,))

    gains = per_run("gain", gain, network.gain)
    custom = isinstance(optimizer, optax.GradientTransformation)
    if custom and lr is not None:
        raise ValueError("lr must be None when optimizer is a GradientTransformation")
    if not custom and lr is None:
        raise ValueError("lr is required unless optimizer is a GradientTransformation")
    lrs = jnp.zeros((n,), network.dtype) if custom else per_run("lr", lr, lr)
    param_bytes = _param_bytes(network)
    cpu = jax.default_backend() == "cpu"
    if vmap_size == "auto":
        vmap_size = max(1, 2**20 // param_bytes) if cpu else None
    elif vmap_size is not None:
        vmap_size = _check_int("vmap_size", vmap_size, 1)
    if devices is None and cpu and param_bytes > 8 * 2**20:
        devices = jax.local_devices()[:1]
    fn = _ensemble_function(
        network,
        steps,
        optimizer,
        batch_size,
        record_every,
        pair,
        return_params,
        None if devices is None else tuple(devices),
        vmap_size,
    )
    xs = jnp.broadcast_to(x, (n, *x.shape))
    ys = jnp.broadcast_to(y, (n, *y.shape))
    return fn(keys, lrs, gains, xs, ys)


@functools.lru_cache(maxsize=32)
def _param_bytes(network: Network) -> int:
    shapes = jax.eval_shape(network.init, jax.random.key(0))
    return sum(a.size * a.dtype.itemsize for a in jax.tree_util.tree_leaves(shapes))


@functools.lru_cache(maxsize=32)
def _ensemble_function(
    network, steps, optimizer, batch_size, record_every, pair, ret, devices, vmap_size
):
    # Cached on the static settings, so repeated calls reuse one jitted function.
    from rep_align.devices import vmap_over_devices

    custom = isinstance(optimizer, optax.GradientTransformation)

    def one(key, lr, gain, x, y):
        return train(
            network,
            x,
            y,
            key=key,
            lr=None if custom else lr,
            steps=steps,
            gain=gain,
            optimizer=optimizer,
            batch_size=batch_size,
            record_every=record_every,
            pair=pair,
            return_params=ret,
        )

    return vmap_over_devices(
        one, devices=None if devices is None else list(devices), batch_size=vmap_size
    )


# ----------------------------------------------------------------------------- flow


@functools.partial(
    jax.jit,
    static_argnames=("network", "pair", "solver", "max_steps", "progress", "return_params"),
)
def _flow_core(
    x: Array,
    y: Array,
    key: PRNGKeyArray,
    lr: Array,
    gain: Array,
    params: PyTree | None,
    ts: Array,
    rtol: Array,
    atol: Array,
    dt0: Array | None,
    *,
    network: Network,
    pair: tuple[int, int],
    solver: diffrax.AbstractSolver,
    max_steps: int,
    progress: bool,
    return_params: bool,
):
    _TRACE_COUNTS["flow"] += 1
    params = _initial_params(network, params, gain, _split_key(key)[0])
    grad = jax.grad(lambda p: loss_fn(p, network, x, y)[0])

    def field(t, theta, args):
        return jax.tree_util.tree_map(lambda g: -lr * g, grad(theta))

    subs = [
        diffrax.SubSaveAt(ts=ts, fn=lambda t, theta, args: _observe(theta, network, x, y, pair))
    ]
    if return_params:
        subs.append(diffrax.SubSaveAt(t1=True))
    meter = diffrax.TqdmProgressMeter(refresh_steps=500) if progress else diffrax.NoProgressMeter()
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        t0=jnp.zeros((), ts.dtype),
        t1=ts[-1],
        dt0=dt0,
        y0=params,
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
        progress_meter=meter,
    )
    # Saves the solver never reached come back as inf: blank them.
    reached = jnp.isfinite(sol.ts[0])
    recs = jax.tree_util.tree_map(
        lambda v: jnp.where(reached.reshape(reached.shape + (1,) * (v.ndim - 1)), v, jnp.nan),
        sol.ys[0],
    )
    bad = reached & ~jnp.isfinite(recs.loss)
    first_bad = jnp.floor(ts[jnp.argmax(bad)]).astype(jnp.int32)
    div = jnp.where(jnp.any(bad), first_bad, -1)
    ok = sol.result == diffrax.RESULTS.successful
    traj = _finish(ts, recs, x, y, pair, div, sol.stats["num_steps"], ok)
    if return_params:
        return traj, jax.tree_util.tree_map(lambda v: v[0], sol.ys[1])
    return traj


def gradient_flow(
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    lr: float | Float[Array, ""],
    t_max: float | None = None,
    save_every: float | None = None,
    ts: Float[Array, " T"] | None = None,
    key: PRNGKeyArray | None = None,
    params: PyTree | None = None,
    gain: float | Float[Array, ""] | None = None,
    pair: tuple[int, int] = (0, 1),
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    dt0: float | None = None,
    max_steps: int = 100_000,
    progress: bool = False,
    return_params: bool = False,
) -> Trajectory | tuple[Trajectory, PyTree]:
    """Integrate gradient flow dθ/dt = −lr·∇L(θ) with diffrax, recording the observables.

    Time is in units of gradient-descent steps at learning rate ``lr``: the flow at time t
    is what ``train`` with that lr approaches after t steps as lr → 0 (at fixed lr·t), so
    the two trajectories line up; integer step times are exact in float32. The network is
    evaluated without dropout (the flow of the deterministic network). The observables are
    computed at the save times through ``SaveAt(fn=...)``, so memory does not grow with
    parameters × saves. One run per call; vmap for sweeps, but note that an adaptive solve
    under vmap takes as many steps as its slowest member.

    Accuracy and cost: the error control acts on the parameters (RMS norm), so ``rtol``
    must be small enough for the observables, which are differences of nearly equal hidden
    activations. Measured on the 20×500 default MLP (float32): adaptive Tsit5 needs
    rtol ≤ 1e-4 to agree with small-lr descent, and it then costs more gradient
    evaluations (6 per Tsit5 step) than 6,000 plain descent steps. Gradient flow is the
    reference for the lr → 0 limit and for checks (conservation laws); for long runs of
    large networks small-lr ``train`` is cheaper.

    Kinks: with ReLU-family activations the vector field is discontinuous where a
    pre-activation crosses 0, which costs the adaptive solver many small steps (thousands
    where a smooth activation needs tens). On the paper's exact two-point data (dx2 = 1)
    the second input is 0 and the biases start at 0, so every pre-activation of that point
    starts exactly on the kink and the flow from there is not unique. Measured on 32-wide
    leaky-ReLU MLPs of depth 4–8 over 5,000 steps at lr 1e-3: descent at lr and lr/5 agree
    within ~1 %, but the flow follows another branch, 0.03–50 % away in h depending on the
    seed (fixed-step Tsit5 converges to the same other branch, so it is the higher-order
    method's choice, not a tolerance problem). Away from the kink (e.g. dx2 = 0.81) flow
    and descent agree within 0.1 %. Compare flow and descent on such data with care.

    Arguments:
        network: from ``make_network``.
        x: inputs (n, in_dim); y: targets (n, out_dim). Cast to ``network.dtype``.
        lr: learning rate setting the time unit (> 0), traced.
        t_max, save_every: save at 0, save_every, …, t_max (t_max a multiple of
            save_every, default save_every = 1). Alternatively give ``ts``.
        ts: increasing save times (T,) ≥ 0, traced; integration runs from 0 to ts[-1].
        key: PRNG key for the initial parameters; required unless ``params`` is given.
        params: initial parameters. gain: init gain override (traced; not with params).
        pair: indices (a, b) of the recorded pair; default (0, 1).
        solver: a diffrax solver; default ``diffrax.Tsit5()``.
        rtol, atol: tolerances of the PID step-size controller; defaults 1e-5, 1e-8.
        dt0: initial step of the adaptive solver; default None lets diffrax choose.
        max_steps: cap on solver steps (static); reaching it sets ``solver_ok`` False.
        progress: show diffrax's tqdm progress meter.
        return_params: also return the parameters at ts[-1].

    Returns:
        A ``Trajectory`` with ``n_steps`` the solver's steps and ``solver_ok`` its status,
        or ``(trajectory, final_params)`` if ``return_params``.

    Raises:
        ValueError: for invalid concrete arguments, or neither/both of ``key``/``params``,
            or neither/both of ``ts``/``t_max``.
    """
    x, y, pair = _prepare_data(network, x, y, pair)
    _check_positive_scalar("lr", lr)
    _check_positive_scalar("rtol", rtol)
    _check_positive_scalar("atol", atol)
    max_steps = _check_int("max_steps", max_steps, 1)
    if (key is None) == (params is None):
        raise ValueError("pass exactly one of key (to initialise) or params")
    if params is not None and gain is not None:
        raise ValueError("pass either params or gain, not both (gain only affects init)")
    if (ts is None) == (t_max is None):
        raise ValueError("pass exactly one of ts or t_max")
    if ts is None:
        _check_positive_scalar("t_max", t_max)
        save_every = 1.0 if save_every is None else save_every
        _check_positive_scalar("save_every", save_every)
        n_saves = round(float(t_max) / float(save_every))
        if not np.isclose(n_saves * float(save_every), float(t_max)):
            raise ValueError(f"t_max={t_max} must be a multiple of save_every={save_every}")
        ts = jnp.arange(n_saves + 1, dtype=network.dtype) * jnp.asarray(save_every, network.dtype)
    else:
        if save_every is not None:
            raise ValueError("save_every applies to t_max, not to ts")
        ts = jnp.asarray(ts, network.dtype)
        if ts.ndim != 1 or ts.shape[0] < 1:
            raise ValueError(f"ts must be a non-empty 1-D array, got shape {tuple(ts.shape)}")
        if _is_concrete(ts):
            t = np.asarray(ts)
            if not (np.all(np.isfinite(t)) and t[0] >= 0 and np.all(np.diff(t) >= 0) and t[-1] > 0):
                raise ValueError(f"ts must be finite, non-negative, increasing, ending > 0: {t}")
    gain = network.gain if gain is None else gain
    _check_gain(gain)
    if dt0 is not None:
        _check_positive_scalar("dt0", dt0)
        dt0 = jnp.asarray(dt0, network.dtype)
    if key is None:
        key = jax.random.key(0)  # unused: params are given
    return _flow_core(
        x,
        y,
        key,
        jnp.asarray(lr, network.dtype),
        jnp.asarray(gain, network.dtype),
        params,
        ts,
        jnp.asarray(rtol, network.dtype),
        jnp.asarray(atol, network.dtype),
        dt0,
        network=network,
        pair=pair,
        solver=diffrax.Tsit5() if solver is None else solver,
        max_steps=max_steps,
        progress=progress,
        return_params=return_params,
    )
