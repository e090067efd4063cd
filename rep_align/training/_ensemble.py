"""Many runs of ``train`` at once, split over the local devices: ``train_ensemble``."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from rep_align import checks
from rep_align.networks import Network
from rep_align.training._descent import OptimizerSpec, train
from rep_align.training._trajectory import Trajectory, prepare_data


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
    x, y, pair = prepare_data(network, x, y, pair)
    keys = jnp.asarray(keys)
    if keys.ndim != 1 or not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        raise ValueError(f"keys must be a 1-D array of PRNG keys, got {keys.dtype}{keys.shape}")
    n = keys.shape[0]

    def per_run(name, value, default):
        v = np.asarray(default if value is None else value, dtype=float)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != n):
            raise ValueError(f"{name} must be a scalar or have shape ({n},), got {v.shape}")
        checks.values(name, v, positive=True)
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
        vmap_size = checks.integer("vmap_size", vmap_size, minimum=1)
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
