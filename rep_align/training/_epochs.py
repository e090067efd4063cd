"""Epoch-based training on a whole dataset, recording the representations of probe points.

``train`` (``_descent``) follows one pair of points; the many-point experiments (XOR,
context blobs, MNIST, the universality experiment) need instead the hidden and output
representations of a set of *probe* points, the training loss and the accuracy, recorded
every few epochs. ``train_epochs`` does that in one compiled scan.

Epochs follow the reference training loop (PyTorch ``DataLoader`` with ``shuffle=True``
and ``drop_last=False``, docs/presets.md "Context blobs" and "MNIST"): each epoch draws a
fresh permutation of the data and takes one step per consecutive batch of
``batch_size`` points, including the last, smaller batch of the ``n mod batch_size``
points left over (dropped only with ``drop_last=True``). Each step's loss is the mean over
the batch's points, as ``nn.MSELoss`` computes it, times 0.5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from rep_align import checks
from rep_align.networks import Network
from rep_align.training import _fused
from rep_align.training._descent import OptimizerSpec, _make_optimizer
from rep_align.training._trajectory import initial_params, loss_fn, split_run_key

__all__ = ["Snapshots", "train_epochs"]


class Snapshots(eqx.Module):
    """Records of an epoch-based run: loss, accuracy and the probe points' representations.

    Shapes are for one run; vmapped runs add leading axes to every field.

    Attributes:
        epochs: (T,) epochs completed at each record (0 is the initial network).
        loss: (T,) 0.5 · mse over the whole training set, without dropout.
        accuracy: (T,) fraction of training points whose largest output is at the largest
            target (argmax match); NaN for a single output unit.
        hidden: (T, P, F) hidden activations of the P probe points at the recorded layer,
            flattened to F features.
        outputs: (T, P, out_dim) network outputs of the probe points.
        diverged: () True if a training step's loss became non-finite; records from the
            first record after it on are NaN.
        diverged_epoch: () epoch in which the loss first became non-finite, −1 if never.
    """

    epochs: Int[Array, " T"]
    loss: Float[Array, " T"]
    accuracy: Float[Array, " T"]
    hidden: Float[Array, "T P F"]
    outputs: Float[Array, "T P out"]
    diverged: Bool[Array, ""]
    diverged_epoch: Int[Array, ""]

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Every field as a NumPy array (for ``np.savez``)."""
        return {name: np.asarray(getattr(self, name)) for name in self.__dataclass_fields__}


def _evaluate(params, network, x, y, probe, layer):
    loss, (out, hiddens) = loss_fn(params, network, x, y)
    if y.shape[1] > 1:
        acc = jnp.mean(jnp.argmax(out, axis=1) == jnp.argmax(y, axis=1))
    else:
        acc = jnp.asarray(jnp.nan, out.dtype)
    hid = hiddens[layer][probe]
    return loss, acc.astype(out.dtype), hid.reshape(hid.shape[0], -1), out[probe]


@functools.partial(
    jax.jit,
    static_argnames=(
        "network",
        "epochs",
        "record_every",
        "optimizer",
        "batch_size",
        "drop_last",
        "layer",
        "progress",
        "return_params",
    ),
)
def _epochs_core(
    x,
    y,
    key,
    lr,
    gain,
    params,
    probe,
    *,
    network: Network,
    epochs: int,
    record_every: int,
    optimizer: OptimizerSpec,
    batch_size: int,
    drop_last: bool,
    layer: int,
    progress,
    return_params: bool,
):
    init_key, shuffle_key, dropout_key = split_run_key(key)
    params = initial_params(network, params, gain, init_key)
    opt = _make_optimizer(optimizer, lr)
    n = x.shape[0]
    full = n // batch_size
    rest = 0 if drop_last else n % batch_size
    steps_per_epoch = full + (1 if rest else 0)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state, idx, count):
        params, opt_state, bad = state
        dkey = jax.random.fold_in(dropout_key, count) if network.stochastic else None
        (loss, _), grads = grad_fn(params, network, x[idx], y[idx], train=True, key=dkey)
        # Kernels updated in place, not copied each step (``_fused.in_place``).
        params = _fused.in_place(params, grads, network)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state, bad | ~jnp.isfinite(loss))

    def one_epoch(carry, epoch):
        state, div = carry
        if batch_size == n:
            perm = jnp.arange(n, dtype=jnp.int32)
        else:
            perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)
            perm = perm.astype(jnp.int32)
        head = perm[: full * batch_size].reshape(full, batch_size)
        base = epoch * steps_per_epoch

        def inner(state, j):
            return step(state, head[j], base + j), None

        state, _ = jax.lax.scan(inner, state, jnp.arange(full, dtype=jnp.int32))
        if rest:
            state = step(state, perm[full * batch_size :], base + full)
        div = jnp.where((div < 0) & state[2], epoch, div)
        return (state, div), None

    def chunk(carry, i):
        carry, _ = jax.lax.scan(
            one_epoch, carry, i * record_every + jnp.arange(record_every, dtype=jnp.int32)
        )
        rec = _evaluate(carry[0][0], network, x, y, probe, layer)
        if progress is not None:
            every = max(1, (epochs // record_every) // 100)
            jax.lax.cond(
                i % every == 0,
                lambda: jax.debug.callback(progress, (i + 1) * record_every, rec[0]),
                lambda: None,
            )
        return carry, rec

    first = _evaluate(params, network, x, y, probe, layer)
    state = (params, opt.init(params), jnp.asarray(False))
    carry = (state, jnp.asarray(-1, jnp.int32))
    carry, recs = jax.lax.scan(chunk, carry, jnp.arange(epochs // record_every, dtype=jnp.int32))
    (params, _, _), div = carry
    recs = jax.tree_util.tree_map(lambda f, r: jnp.concatenate([f[None], r]), first, recs)
    ep = jnp.arange(epochs // record_every + 1, dtype=jnp.int32) * record_every
    diverged = div >= 0
    bad = diverged & (ep > div)
    recs = jax.tree_util.tree_map(
        lambda v: jnp.where(bad.reshape(bad.shape + (1,) * (v.ndim - 1)), jnp.nan, v), recs
    )
    loss, acc, hid, out = recs
    snaps = Snapshots(ep, loss, acc, hid, out, diverged, div)
    return (snaps, params) if return_params else snaps


def train_epochs(
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    key: PRNGKeyArray,
    lr: float | Float[Array, ""] | None,
    epochs: int,
    layer: int,
    optimizer: OptimizerSpec = "sgd",
    batch_size: int | None = None,
    drop_last: bool = False,
    record_every: int = 1,
    probe: Int[Array, " P"] | None = None,
    params: PyTree | None = None,
    gain: float | Float[Array, ""] | None = None,
    progress: Callable[[int, float], None] | None = None,
    return_params: bool = False,
) -> Snapshots | tuple[Snapshots, PyTree]:
    """Train ``network`` for whole epochs, recording the probe points' representations.

    One compiled ``lax.scan``; records at epochs 0, k, 2k, …, ``epochs``
    (k = ``record_every``), each from the full training set without dropout. One run per
    call: vmap over ``key``, ``lr``, ``gain`` or ``params`` (traced) for seeds and sweeps.

    Arguments:
        network: from ``networks.make_network``.
        x: inputs (n, in_dim); y: targets (n, out_dim). Cast to ``network.dtype``.
        key: PRNG key, split by ``split_run_key`` into the init, shuffle and dropout keys
            (so the initial network is the one ``train`` draws from the same key).
        lr: learning rate (> 0), traced; None only with an optax optimizer.
        epochs: number of epochs (≥ 1); must be a multiple of ``record_every``.
        layer: index of the recorded hidden activation (0 … ``network.num_hidden`` − 1;
            negative counts from the last).
        optimizer: "sgd", "adam", an optax ``GradientTransformation`` or ``lr -> optax``.
        batch_size: points per step; None (default) for full batch (one step per epoch).
            Epoch ``e`` permutes the data with ``fold_in(shuffle_key, e)`` and steps
            through consecutive batches, the last smaller one included unless
            ``drop_last``.
        drop_last: skip the incomplete last batch of each epoch. Default False (the
            reference).
        record_every: epochs between records (≥ 1). Default 1.
        probe: indices of the recorded points (P of them); default all n points.
        params: initial parameters; default ``network.init`` from the init key.
        gain: Xavier-normal gain overriding ``network.gain`` (traced; not with ``params``).
        progress: optional host function ``progress(epoch, loss)`` called about 100 times
            per run from inside the compiled loop (not under vmap).
        return_params: also return the final parameters.

    Returns:
        ``Snapshots`` with T = epochs // record_every + 1 records, or
        ``(snapshots, final_params)``.

    Raises:
        ValueError: for bad shapes, epochs, record_every, batch_size, layer, probe
            indices, lr, or both ``params`` and ``gain``.
    """
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
    epochs = checks.integer("epochs", epochs, minimum=1)
    record_every = checks.integer("record_every", record_every, minimum=1)
    if epochs % record_every:
        raise ValueError(f"record_every={record_every} must divide epochs={epochs}")
    drop_last = checks.boolean("drop_last", drop_last)
    if batch_size is None:
        batch_size = n
    batch_size = checks.integer("batch_size", batch_size, minimum=1)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} data points")
    layer = checks.integer("layer", layer)
    if not -network.num_hidden <= layer < network.num_hidden:
        raise ValueError(
            f"layer={layer} is out of range for a network with {network.num_hidden} "
            "recorded hidden activations"
        )
    layer %= network.num_hidden
    if probe is None:
        probe = jnp.arange(n, dtype=jnp.int32)
    else:
        probe_np = np.asarray(probe)
        if probe_np.ndim != 1 or probe_np.size == 0 or probe_np.dtype.kind not in "iu":
            raise ValueError(f"probe must be a non-empty 1-D integer array, got {probe!r}")
        if probe_np.min() < 0 or probe_np.max() >= n:
            raise ValueError(f"probe indices must lie in [0, {n})")
        probe = jnp.asarray(probe_np, jnp.int32)
    if isinstance(optimizer, optax.GradientTransformation):
        if lr is not None:
            raise ValueError("lr must be None when optimizer is a GradientTransformation")
    else:
        if isinstance(optimizer, str) and optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or optax, got {optimizer!r}")
        if lr is None:
            raise ValueError("lr is required unless optimizer is a GradientTransformation")
        checks.values("lr", lr, positive=True, scalar=True)
        lr = jnp.asarray(lr, network.dtype)
    if params is not None and gain is not None:
        raise ValueError("pass either params or gain, not both (gain only affects init)")
    gain = network.gain if gain is None else gain
    checks.values("gain", gain, positive=True, scalar=True)
    return _epochs_core(
        x,
        y,
        key,
        lr,
        jnp.asarray(gain, network.dtype),
        params,
        probe,
        network=network,
        epochs=epochs,
        record_every=record_every,
        optimizer=optimizer,
        batch_size=batch_size,
        drop_last=drop_last,
        layer=layer,
        progress=progress,
        return_params=return_params,
    )
