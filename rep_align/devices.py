"""Use every CPU core: one JAX host device per core, and independent work split over them.

How XLA's CPU backend uses cores (measured on a 2-core x86 machine with jaxlib 0.10;
``benchmarks/README.md``, case "cores"):

- One compiled program may spread its larger operations over the cores (intra-op
  threads): one ``train`` run of the default 20×500 MLP keeps 1.8 cores busy, and so
  does an ensemble of them. Nothing is left to gain for them.
- Programs made of many small operations (vmapped training of small networks, batched
  matrix products, while-loops with small bodies) keep one core busy, and two programs
  dispatched to the same device run one after the other. Dispatched to two devices, they
  run at the same time.

So independent work, such as the runs of an ensemble or the chunks of a sweep, uses every
core when JAX exposes one CPU device per core and the work is split between them, each
device running its part with no communication:

- ``sweep.run_sweep`` shards each chunk of runs over the local devices;
- ``training.train_ensemble`` and, for any function, ``vmap_over_devices`` (here) split a
  batch of runs over them: 1.7 times faster for 16 runs of a 256×8 MLP, 2.2 times for 64
  runs of a 64×4 MLP;
- ``theory.solve`` dispatches the stiffness-sorted groups of a large batch to every local
  device (10^4 trajectories: 1.6 times faster on 2 devices than on one, where the solve
  keeps 1.1 cores busy).

**Asking for one device per core.** Importing rep_align changes nothing in JAX. The
``rep-align`` commands and the benchmarks call ``use_host_devices()`` before anything
touches JAX; a script or notebook that wants the same calls it right after its imports::

    import rep_align
    rep_align.devices.use_host_devices()   # before the first JAX operation

It asks JAX for one CPU device per usable core (the ``jax_num_cpu_devices`` option), and
does nothing when

- JAX's backend is already initialised (an array was created, or ``jax.devices()`` was
  called): the device count can no longer change, and JAX says so, which is caught;
- the user chose a count: ``XLA_FLAGS`` contains ``--xla_force_host_platform_device_count``,
  the environment sets ``JAX_NUM_CPU_DEVICES``, or ``jax_num_cpu_devices`` was configured;
- the opt-out is set: ``REP_ALIGN_HOST_DEVICES=0`` (or ``1``, ``off``, ``false``, ``no``);
  ``REP_ALIGN_HOST_DEVICES=n`` with n ≥ 2 asks for exactly n devices instead;
- the process may use only one core.

Effect on JAX: on a CPU-only machine ``jax.devices()`` and ``jax.local_devices()`` list n
``CpuDevice``s instead of one and ``jax.device_count()`` is n. Arrays are still created on
``jax.devices()[0]`` and a single jitted call still runs there, with the same intra-op
threads as before. On a machine with a GPU or TPU, ``jax.devices()`` is unchanged (the
accelerators); only ``jax.devices("cpu")`` grows, so the setting is harmless there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ENV_VAR", "use_host_devices", "usable_cores", "vmap_over_devices"]

#: Environment variable: ``0``/``1``/``off`` keeps JAX's single CPU device; ``n`` ≥ 2 asks
#: for n host devices; unset means one per usable core.
ENV_VAR = "REP_ALIGN_HOST_DEVICES"

_OFF = {"0", "1", "off", "false", "no"}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def use_host_devices(n: int | None = None) -> int | None:
    """Ask JAX for ``n`` CPU devices (default: one per usable core) if that is still possible.

    See the module docstring for when this does nothing. Safe to call more than once.

    Arguments:
        n: number of host devices; default the ``REP_ALIGN_HOST_DEVICES`` environment
            variable if set to an integer ≥ 2, else ``usable_cores()``.

    Returns:
        The device count that was set, or None if nothing was changed.

    Raises:
        ValueError: if ``REP_ALIGN_HOST_DEVICES`` is neither an opt-out word nor an integer,
            or ``n`` < 1.
    """
    import jax

    from rep_align import checks

    setting = os.environ.get(ENV_VAR, "").strip().lower()
    if setting in _OFF:
        return None
    if n is None and setting:
        try:
            n = int(setting)
        except ValueError:
            raise ValueError(
                f"{ENV_VAR} must be an integer or one of {sorted(_OFF)}, got {setting!r}"
            ) from None
    if n is not None:
        n = checks.integer("n", n, minimum=1)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if "JAX_NUM_CPU_DEVICES" in os.environ or jax.config.jax_num_cpu_devices >= 0:
        return None
    n = usable_cores() if n is None else n
    if n < 2:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX's backend is already initialised: too late to change
        return None
    return n


def vmap_over_devices(
    fn: Callable[..., Any],
    *,
    devices: Sequence[Any] | None = None,
    batch_size: int | None = None,
) -> Callable[..., Any]:
    """``jax.jit(jax.vmap(fn))`` with the batch split into one independent part per device.

    Every positional argument of the returned function is batched along its leading axis
    (all the same length B; pytrees allowed). The batch is padded to a multiple of the
    number of devices with copies of its last member (dropped again from the outputs), and
    each device runs its part through ``jax.shard_map``, with no communication: all of it
    vmapped (``batch_size=None``), or ``batch_size`` members at a time, one group after
    another (``jax.lax.map``). With one device there is no ``shard_map``. Results do not
    depend on the number of devices or on ``batch_size`` (up to the floating-point
    reassociation XLA may choose for a different batch size).

    Why not always vmap: on a CPU, vmapping runs whose parameters are large streams all
    their parameters through memory at every step, and XLA runs the batched matrix
    products on one core, while runs one after another keep one run's parameters in cache
    and spread its products over the cores. Measured on 2 cores, training MLPs: 16 of
    width 256 and depth 8 (2 MiB of parameters each), one at a time 2.4 times faster than
    all vmapped; 8 of the 20×500 default (19 MiB each), 1.6 times; 64 of width 64 and depth
    4 (50 KiB each), vmapped 20 at a time or all equally fast.

    Arguments:
        fn: a function of one example; bind non-batched arguments with
            ``functools.partial`` or a closure.
        devices: devices to use; default ``jax.local_devices()``.
        batch_size: members vmapped together on a device; default None: all of them.

    Returns:
        A function of the batched arguments returning ``fn``'s outputs with a leading batch
        axis of length B. It compiles once per argument shape and device count.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devs = list(jax.local_devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices is empty")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if batch_size is None:
        per_device = jax.vmap(fn)
    else:
        # batch_size 1: the unbatched program itself, not a vmap over one member.
        size = None if int(batch_size) == 1 else int(batch_size)

        def per_device(*args):
            return jax.lax.map(lambda a: fn(*a), args, batch_size=size)

    if len(devs) == 1:
        batched = jax.jit(per_device)
        return lambda *args: batched(*jax.device_put(args, devs[0]))
    mesh = Mesh(np.asarray(devs), ("batch",))
    spec = PartitionSpec("batch")
    sharded = jax.jit(
        jax.shard_map(
            per_device,
            mesh=mesh,
            in_specs=spec,
            out_specs=spec,
            # Independent parts: nothing is replicated or communicated.
            check_vma=False,
        )
    )
    sharding = NamedSharding(mesh, spec)

    def call(*args):
        leaves = jax.tree_util.tree_leaves(args)
        if not leaves:
            raise ValueError("vmap_over_devices needs at least one batched argument")
        size = jnp.shape(leaves[0])[0]
        pad = -size % len(devs)

        def padded(a):
            a = jnp.asarray(a)
            if pad:
                a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)])
            return jax.device_put(a, sharding)

        out = sharded(*jax.tree_util.tree_map(padded, args))
        return jax.tree_util.tree_map(lambda v: v[:size], out) if pad else out

    return call
