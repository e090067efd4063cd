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
