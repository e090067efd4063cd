"""Pieces shared by the reproduction experiments: presets at quick size, batched training
over seeds (and data geometry), read-out of one layer, fitting in float64, JSON output."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rep_align.data import two_points
from rep_align.networks import make_network
from rep_align.presets import TwoPointPreset
from rep_align.training import Trajectory, train

#: Quick mode: same protocol, small networks (the theory's fit is expected to be worse:
#: it describes flexible networks; the point of quick mode is a fast, complete pipeline).
QUICK_WIDTH = 64
QUICK_DEPTH = 4
QUICK_CNN_DEPTH = 3

#: The paper's filter for converged runs: final loss below this.
CONVERGED_LOSS = 1e-2

#: Seeds trained per vmapped call by ``train_batch`` (module note there: a seed's record
#: must not depend on how many seeds are trained with it).
SEED_BLOCK = 4


def quick_preset(preset: TwoPointPreset) -> TwoPointPreset:
    """A small stand-in for ``preset``: width ≤ 64, depth ≤ 4 (CNN ≤ 3), the read-out
    layer at the same relative depth; learning rate, epochs and data unchanged."""
    cnn = preset.arch == "cnn"
    depth = min(preset.depth, QUICK_CNN_DEPTH if cnn else QUICK_DEPTH)
    width = min(preset.width, QUICK_WIDTH)
    n_hidden = num_hidden(preset.arch, depth)
    layer = min(n_hidden - 1, round(preset.layer * depth / preset.depth))
    return dataclasses.replace(preset, width=width, depth=depth, layer=layer)


def preset_config(preset: TwoPointPreset, **extra) -> dict:
    """Every setting of ``preset`` as a plain dict (for JSON), plus ``extra`` entries."""
    return dataclasses.asdict(preset) | extra


def num_hidden(arch: str, depth: int) -> int:
    """Number of recorded hidden activations of ``make_network(arch, depth=depth)``."""
    return depth + 2 if arch == "cnn" else depth


def network_for(preset: TwoPointPreset, dtype=jnp.float32):
    return make_network(
        preset.arch,
        in_dim=preset.in_dim,
        out_dim=preset.out_dim,
        width=preset.width,
        depth=preset.depth,
        activation=preset.activation,
        gain=preset.gain,
        dtype=dtype,
    )


def record_every_for(epochs: int, target_records: int = 600) -> int:
    """Largest divisor of ``epochs`` giving at least ``target_records`` records."""
    k = max(1, epochs // target_records)
    while epochs % k:
        k -= 1
    return k


def train_batch(
    preset: TwoPointPreset,
    seeds,
    *,
    dx2=None,
    dy2=None,
    lr: float | None = None,
    steps: int | None = None,
    record_every: int | None = None,
    float64: bool = False,
) -> Trajectory:
    """Train ``preset`` for every seed (and optional per-run dx2, dy2), vmapped in blocks
    of ``SEED_BLOCK`` seeds, so that a seed's record is the same whatever the batch.

    Arguments:
        preset: the preset as it should run (apply ``trajectory_protocol`` first if wanted).
        seeds: int array (R,) of PRNG seeds.
        dx2, dy2: optional (R,) data geometry per run; default the preset's.
        lr, steps: override the preset's learning rate and epochs.
        record_every: steps between records (default: about 600 records).
        float64: train in float64 (about twice the time) from the same initial parameters
            as the float32 run of each seed (drawn in float32, then cast), so the two
            precisions differ only by rounding along the way. On the two-point task that
            rounding matters: the second input starts on every leaky-ReLU unit's kink and
            float32 rounding is amplified to per-cent differences in the records within a
            few hundred steps (``benchmarks/README.md``, case 3).

    Returns:
        A batched ``Trajectory`` with leading axis R.
    """
    with jax.enable_x64(True) if float64 else contextlib.nullcontext():
        return _train_batch(preset, seeds, dx2, dy2, lr, steps, record_every, float64)


def _train_batch(preset, seeds, dx2, dy2, lr, steps, record_every, float64) -> Trajectory:
    seeds = np.asarray(seeds)
    n = seeds.shape[0]
    steps = preset.epochs if steps is None else steps
    lr = preset.lr if lr is None else lr
    record_every = record_every_for(steps) if record_every is None else record_every
    dx2 = np.full(n, preset.dx2) if dx2 is None else np.asarray(dx2, float)
    dy2 = np.full(n, preset.dy2) if dy2 is None else np.asarray(dy2, float)
    network = network_for(preset)
    dtype = jnp.float64 if float64 else jnp.float32
    trained = network_for(preset, dtype) if float64 else network

    def one(seed, a, b):
        x, y = two_points(dx2=a, dy2=b, in_dim=preset.in_dim, out_dim=preset.out_dim)
        key = jax.random.key(seed)
        params = None
        if float64:  # the float32 run's initial parameters (same key, same split)
            _, init = train(network, x, y, key=key, lr=lr, steps=0, return_params=True)
            params = jax.tree_util.tree_map(lambda v: v.astype(dtype), init)
        return train(
            trained,
            x,
            y,
            key=key,
            params=params,
            lr=lr,
            steps=steps,
            optimizer=preset.optimizer,
            record_every=record_every,
        )

    # Blocks of at most SEED_BLOCK runs, each one vmapped call (compiled once per block
    # size, so at most twice): XLA's CPU code for a batched step changes with the batch size
    # (on the 20 × 500 network between 8 and 12 runs; width 500 at 16), and on this task
    # the changed rounding grows to per-cent differences in the records. In blocks of a fixed
    # size, a seed's record does not depend on how many seeds run with it.
    run = jax.jit(jax.vmap(one))
    parts = []
    for i in range(0, n, SEED_BLOCK):
        block = slice(i, i + SEED_BLOCK)
        parts.append(
            run(
                jnp.asarray(seeds[block]),
                jnp.asarray(dx2[block], dtype),
                jnp.asarray(dy2[block], dtype),
            )
        )
    joined = parts[0] if len(parts) == 1 else jax.tree.map(lambda *v: jnp.concatenate(v), *parts)
    return jax.block_until_ready(joined)


def observed(traj: Trajectory, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(ts (T,), z_obs (..., T, 3)) of h at ``layer``, y, w, as float64 NumPy arrays."""
    ts = np.asarray(traj.times, np.float64)
    ts = ts.reshape(-1, ts.shape[-1])[0]
    z = np.stack([np.asarray(traj.h)[..., layer], np.asarray(traj.y), np.asarray(traj.w)], axis=-1)
    return ts, z.astype(np.float64)


def fit_observed(ts, z_obs, *, dx2, dy2, variant: str = "theory", trajectory: bool = False):
    """``fit.fit_rates`` in float64 on recorded (h, y, w) of shape (R, T, 3).

    Runs whose record is not finite (diverged) are not fitted: their rates come back NaN
    and ``success`` False. Returns a ``fit.RateFit`` of NumPy arrays with leading axis R,
    or None when no run can be fitted.
    """
    from rep_align import fit

    z_obs = np.asarray(z_obs, np.float64)
    n = z_obs.shape[0]
    dx2 = np.broadcast_to(np.asarray(dx2, np.float64), (n,))
    dy2 = np.broadcast_to(np.asarray(dy2, np.float64), (n,))
    ok = np.all(np.isfinite(z_obs), axis=(-2, -1)) & (z_obs[:, 0, 0] > 0)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    with jax.enable_x64(True):
        res = fit.fit_rates(
            jnp.asarray(ts),
            jnp.asarray(z_obs[idx]),
            dx2=dx2[idx],
            dy2=dy2[idx],
            variant=variant,
            return_trajectory=trajectory,
        )
        res = jax.tree_util.tree_map(np.asarray, res)
    return jax.tree_util.tree_map(lambda a: _scatter(a, idx, n), res)


def _scatter(a: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    fill = False if a.dtype == bool else (-1 if a.dtype.kind in "iu" else np.nan)
    out = np.full((n,) + a.shape[1:], fill, dtype=a.dtype)
    out[idx] = a
    return out


def fit_eta_m(ts, loss, z_fit, *, m0, dy2, out_dim: int):
    """``fit.fit_eta_m`` in float64 over runs (R, T); runs with non-finite inputs give NaN
    (None when no run has finite inputs)."""
    from rep_align import fit

    loss = np.asarray(loss, np.float64)
    z_fit = np.asarray(z_fit, np.float64)
    n = loss.shape[0]
    m0 = np.broadcast_to(np.asarray(m0, np.float64), (n,))
    dy2 = np.broadcast_to(np.asarray(dy2, np.float64), (n,))
    ok = np.all(np.isfinite(z_fit), axis=(-2, -1)) & np.all(np.isfinite(loss), axis=-1)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    with jax.enable_x64(True):
        res = fit.fit_eta_m(
            jnp.asarray(ts),
            jnp.asarray(loss[idx]),
            jnp.asarray(z_fit[idx]),
            m0=m0[idx],
            dy2=dy2[idx],
            out_dim=out_dim,
        )
        res = jax.tree_util.tree_map(np.asarray, res)
    return jax.tree_util.tree_map(lambda a: _scatter(a, idx, n), res)


def nanstats(values) -> tuple[float, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    return float(np.mean(v)), float(np.std(v))


def jsonable(obj):
    """Recursively convert NumPy scalars/arrays and non-finite floats for strict JSON
    (NaN and inf become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(jsonable(obj), f, indent=1, allow_nan=False)
    os.replace(tmp, path)


class Status:
    """Periodic status lines on stderr for multi-stage experiments (no compiled-loop hooks
    are needed: each stage is one compiled call)."""

    def __init__(self, total: int, what: str):
        self.total, self.what, self.done, self.t0 = total, what, 0, time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        el = time.perf_counter() - self.t0
        eta = el / self.done * (self.total - self.done)
        print(
            f"[{self.done}/{self.total} {self.what}] {label}  elapsed {el:.0f} s, ETA {eta:.0f} s",
            file=sys.stderr,
            flush=True,
        )
