"""Shared benchmark machinery: fair timing, machine description, hardware limits.

Protocol: compile first and report it separately, ``block_until_ready`` on
every timed JAX call, several repeats, median with spread.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import jax
import numpy as np


def timed(fn: Callable[[], Any], *, repeats: int = 3, warmup: bool = True) -> dict:
    """Time ``fn()`` (which must block until its work is done) ``repeats`` times.

    Returns a dict with ``median``, ``min``, ``max`` and ``samples`` in seconds, and
    ``first`` (the warm-up call, i.e. compile + run for a fresh jitted function) when
    ``warmup``.
    """
    out: dict[str, Any] = {}
    if warmup:
        t0 = time.perf_counter()
        fn()
        out["first"] = time.perf_counter() - t0
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    out.update(
        median=statistics.median(samples), min=min(samples), max=max(samples), samples=samples
    )
    return out


def block(tree: Any) -> Any:
    """``jax.block_until_ready`` on any pytree (arrays inside containers included)."""
    return jax.block_until_ready(tree)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """What the numbers were measured on: CPU, cores, memory, devices, library versions."""
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": {
            name: _version(name)
            for name in (
                "rep_align",
                "jax",
                "jaxlib",
                "diffrax",
                "equinox",
                "optax",
                "flax",
                "numpy",
                "scipy",
                "torch",
            )
        },
    }


def memory_bandwidth(n_bytes: int = 512 * 2**20, repeats: int = 5) -> dict:
    """STREAM-style copy bandwidth: ``dst[:] = src`` of an ``n_bytes`` float64 array.

    Counts the read and the write (2 × n_bytes moved). Returns GB/s (10^9 bytes/s), best
    and median over ``repeats``.
    """
    n = n_bytes // 8
    src = np.ones(n)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        samples.append(time.perf_counter() - t0)
    moved = 2 * n * 8
    return {
        "copy_bytes": moved,
        "best_gbs": moved / min(samples) / 1e9,
        "median_gbs": moved / statistics.median(samples) / 1e9,
    }


def matmul_peak(n: int = 2048, repeats: int = 5, dtype=np.float32) -> dict:
    """Achieved FLOP/s of an ``n × n`` matmul through XLA (what rep_align runs on)."""
    a = jax.numpy.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    block(f(a))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(f(a))
        samples.append(time.perf_counter() - t0)
    flops = 2 * n**3
    return {
        "n": n,
        "dtype": np.dtype(dtype).name,
        "best_gflops": flops / min(samples) / 1e9,
        "median_gflops": flops / statistics.median(samples) / 1e9,
    }


def loglog_fit(x, y) -> dict:
    """Least-squares exponent of y ∝ x^k on log-log axes: ``{"exponent", "prefactor"}``."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    k, c = np.polyfit(lx, ly, 1)
    return {"exponent": float(k), "prefactor": float(np.exp(c))}


# ----------------------------------------------------------------------------------------
# The roofline: bandwidth by working set, compute peak, and the bound that applies
# ----------------------------------------------------------------------------------------

#: Working sets (bytes resident: both arrays of a kernel) of the bandwidth curve.
CURVE_SIZES = tuple(2**k for k in range(18, 31))  # 256 KiB … 1 GiB


def cache_sizes() -> dict:
    """The CPU's data caches from ``/sys`` (Linux): ``{"L1": bytes, "L2": …, "L3": …}``
    per instance, plus ``"{level}_shared_by"`` (how many CPUs share one instance).

    Empty where ``/sys`` does not say (other operating systems).
    """
    out: dict[str, int] = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return out
    for entry in entries:
        if not entry.startswith("index"):
            continue
        path = os.path.join(root, entry)
        try:
            kind = open(os.path.join(path, "type")).read().strip()
            level = open(os.path.join(path, "level")).read().strip()
            size = open(os.path.join(path, "size")).read().strip()
            shared = open(os.path.join(path, "shared_cpu_list")).read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        factor = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
        out[f"L{level}"] = int(size.rstrip("KMG")) * factor
        out[f"L{level}_shared_by"] = _count_cpus(shared)
    return out


def _count_cpus(cpu_list: str) -> int:
    n = 0
    for part in cpu_list.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def _repeats_for(n_bytes: int, target_bytes: float = 4e9) -> int:
    return int(min(max(target_bytes // n_bytes, 1), 4096))


def bandwidth_curve(sizes=CURVE_SIZES, samples: int = 3, target_bytes: float = 4e9) -> dict:
    """Bandwidth against working set, from 256 KiB (L2) to 1 GiB (main memory).

    Two kernels per working set S (both arrays together, S/2 each; float32):

    - ``xla_triad``: ``x ← 0.999·x + y`` repeated in one compiled ``fori_loop`` (no Python
      dispatch between repeats), the runtime and thread pool that rep_align trains with:
      per repeat it reads x and y and writes x, 1.5·S bytes.
    - ``numpy_copy``: ``dst[:] = src`` from one thread, S bytes per copy (read and write,
      STREAM's convention; write-allocate traffic is not counted).

    Each sample runs enough repeats to move ~``target_bytes``; best and median of
    ``samples``.

    Returns:
        ``{"sizes": [...], "xla_triad_gbs": [...], "numpy_copy_gbs": [...],
        "xla_triad_median_gbs": [...], "caches": cache_sizes()}``, GB/s = 10^9 bytes/s.
    """
    out: dict[str, Any] = {
        "sizes": list(sizes),
        "xla_triad_gbs": [],
        "xla_triad_median_gbs": [],
        "numpy_copy_gbs": [],
        "caches": cache_sizes(),
    }
    for s in sizes:
        n = s // 8  # two float32 arrays of n elements
        reps = _repeats_for(s, target_bytes)

        # x is donated, so each call updates it in place: no fresh output pages (whose
        # first-touch faults would dominate at large sizes).
        triad = jax.jit(
            lambda x, y, reps=reps: jax.lax.fori_loop(0, reps, lambda i, x: 0.999 * x + y, x),
            donate_argnums=0,
        )
        x = jax.numpy.ones((n,), jax.numpy.float32)
        y = jax.numpy.full((n,), 0.5, jax.numpy.float32)
        x = block(triad(x, y))
        ts = []
        for _ in range(samples):
            t0 = time.perf_counter()
            x = block(triad(x, y))
            ts.append(time.perf_counter() - t0)
        moved = 1.5 * s * reps
        out["xla_triad_gbs"].append(moved / min(ts) / 1e9)
        out["xla_triad_median_gbs"].append(moved / statistics.median(ts) / 1e9)

        src = np.ones(s // 2 // 8)
        dst = np.empty_like(src)
        np.copyto(dst, src)
        ts = []
        for _ in range(samples):
            t0 = time.perf_counter()
            for _ in range(reps):
                np.copyto(dst, src)
            ts.append(time.perf_counter() - t0)
        out["numpy_copy_gbs"].append(s * reps / min(ts) / 1e9)
    return out


def level_of(working_set: int, caches: dict) -> str:
    """The memory level a working set of ``working_set`` bytes lives in: the smallest
    cache that holds it (private caches summed over the cores that use them), else main
    memory."""
    cores = os.cpu_count() or 1
    for level in ("L1", "L2", "L3"):
        if level not in caches:
            continue
        per = caches[level]
        shared = max(caches.get(f"{level}_shared_by", 1), 1)
        capacity = per * max(cores // shared, 1)
        if working_set <= capacity:
            return level
    return "main memory"


def bandwidth_at(working_set: int, curve: dict, kernel: str = "xla_triad_gbs") -> float:
    """Measured bandwidth (GB/s) at ``working_set`` bytes: log-log interpolation of the
    curve, clamped to its ends."""
    xs = np.log(np.asarray(curve["sizes"], float))
    ys = np.log(np.asarray(curve[kernel], float))
    return float(np.exp(np.interp(np.log(max(working_set, 1)), xs, ys)))


def roofline_bound(
    working_set: int, moved_bytes: float, flops: float, curve: dict, peak_gflops: float
) -> dict:
    """The bound on steps/s of a step that keeps ``working_set`` bytes resident, moves
    ``moved_bytes`` and does ``flops``: min(bandwidth at that working set / bytes,
    compute peak / flops), with the level and which ceiling binds."""
    bw = bandwidth_at(working_set, curve) * 1e9
    memory = bw / moved_bytes
    compute = peak_gflops * 1e9 / flops if flops else float("inf")
    return dict(
        level=level_of(working_set, curve.get("caches", {})),
        bandwidth_gbs=bw / 1e9,
        memory_steps_per_s=memory,
        compute_steps_per_s=compute,
        steps_per_s=min(memory, compute),
        binding="memory" if memory <= compute else "compute",
        intensity_flop_per_byte=flops / moved_bytes,
    )
