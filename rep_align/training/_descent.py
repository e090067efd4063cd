"""Gradient descent (any optax optimiser) of one run in one compiled scan: ``train``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from rep_align import checks
from rep_align.networks import Network
from rep_align.training import _fused
from rep_align.training._trajectory import (
    Trajectory,
    finish,
    initial_params,
    loss_fn,
    observe,
    prepare_data,
    record,
    split_run_key,
)

OptimizerSpec = str | optax.GradientTransformation | Callable[[Any], optax.GradientTransformation]


def _make_optimizer(optimizer: OptimizerSpec, lr: Array | None) -> optax.GradientTransformation:
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if optimizer == "sgd":
        return optax.sgd(lr)
    if optimizer == "adam":
        return optax.adam(lr)
    return optimizer(lr)


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
        "fused",
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
    fused: bool,
):
    init_key, shuffle_key, dropout_key = split_run_key(key)
    params = initial_params(network, params, gain, init_key)
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

    def one_step(state, step, observed=None):
        params, opt_state, perm, div = state
        xb, yb, perm = minibatch(step, perm)
        if fused:
            # A few points: kernel gradients as outer products that XLA fuses into the
            # update, the same numbers as autodiff bit for bit on the CPU (``_fused``).
            (loss, (out, hiddens)), grads = _fused.value_and_grad(params, network, xb, yb)
        else:
            dkey = jax.random.fold_in(dropout_key, step) if network.stochastic else None
            (loss, (out, hiddens)), grads = grad_fn(params, network, xb, yb, train=True, key=dkey)
            # Kernels updated in place, not copied each step (``_fused.in_place``).
            params = _fused.in_place(params, grads, network)
            if observed is not None:
                # A record at θ_t ran its own forward pass: the update also comes after it.
                params = _fused.after_all(params, observed)
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
                new = record(loss, x, y, out, hiddens, pair)
                # Keep the record of the chunk's first step (taken at θ_start).
                rec = jax.tree_util.tree_map(lambda a, b: jnp.where(j == 0, a, b), new, rec)
                return (state, rec), None

            (state, rec), _ = jax.lax.scan(
                inner, (state, empty), jnp.arange(record_every, dtype=jnp.int32)
            )
        else:
            rec = observe(state[0], network, x, y, pair)
            # The chunk's first step is ordered after the record's read of θ_start, so the
            # parameters are updated in place rather than copied for the record.
            state = one_step(state, start, observed=rec.loss)[0]

            def inner(state, j):
                return one_step(state, start + j)[0], None

            if record_every > 1:
                steps_left = jnp.arange(1, record_every, dtype=jnp.int32)
                state, _ = jax.lax.scan(inner, state, steps_left)
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
    empty = jax.eval_shape(lambda p: observe(p, network, x, y, pair), params)
    empty = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), empty)
    state, recs = jax.lax.scan(chunk, state, jnp.arange(n_chunks, dtype=jnp.int32))
    params, _, _, div = state
    final = observe(params, network, x, y, pair)
    div = jnp.where((div < 0) & ~jnp.isfinite(final.loss), steps, div)
    recs = jax.tree_util.tree_map(lambda r, f: jnp.concatenate([r, f[None]]), recs, final)
    times = (jnp.arange(n_chunks + 1) * record_every).astype(x.dtype)
    traj = finish(times, recs, x, y, pair, div, jnp.asarray(steps), jnp.asarray(True))
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
    ``record_every`` steps between them); for plain SGD with an MLP or ResNet and at most
    four points per step the kernels' gradients are written so that XLA fuses them into
    the update, the same numbers bit for bit on the CPU (docs/architecture.md, "The fused
    SGD step"). Records are taken at steps 0, k, 2k, …, steps (k = ``record_every``),
    from the full dataset without dropout. One run per call; vmap
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
    x, y, pair = prepare_data(network, x, y, pair)
    steps = checks.integer("steps", steps, minimum=0)
    record_every = checks.integer("record_every", record_every, minimum=1)
    if steps % record_every:
        raise ValueError(f"record_every={record_every} must divide steps={steps}")
    if batch_size is not None:
        batch_size = checks.integer("batch_size", batch_size, minimum=1)
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
        checks.values("lr", lr, positive=True, scalar=True)
        lr = jnp.asarray(lr, network.dtype)
    if params is not None and gain is not None:
        raise ValueError("pass either params or gain, not both (gain only affects init)")
    gain = network.gain if gain is None else gain
    checks.values("gain", gain, positive=True, scalar=True)
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
        fused=_fused.supported(
            network, x.shape[0] if batch_size is None else batch_size, optimizer
        ),
    )
