"""The accelerator check: what rep_align does on a GPU or TPU, in one short run.

``python -m benchmarks.device_check --out DIR [--budget-s 420]`` (or
``benchmarks/device_check.sh``) measures, on whatever ``jax.devices()`` lists:

1. training throughput of the default preset (20 × 500 leaky-ReLU MLP, trajectory
   protocol) for 1, 32 and 256 seeds, vmapped on one device: network-steps per second;
2. a 1,000-run slice of ``examples/sweep_paper_gpu.toml`` (its axes with seeds 0-10, 1,056
   runs) at 600 steps instead of 6,000, fitted, through ``rep-align sweep``'s engine;
3. 10⁶ theory trajectories (``theory.solve``, float32 and float64);
4. if time is left, the full validity map (``rep-align validity``).

Each stage writes its figures into ``DIR/device_check.json`` as soon as it ends, so a stage
cut off by the time limit loses only itself.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _write(path, results):
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)


def _training(seeds: int, steps: int = 600) -> dict:
    import jax

    from rep_align.presets import get_preset
    from rep_align.sweep.runner import GroupRunner, traced_inputs

    cfg = get_preset("default").trajectory_protocol().config.replace(steps=steps, record_every=10)
    runs = [cfg.replace(seed=s) for s in range(seeds)]
    runner = GroupRunner(cfg, jax.local_devices()[:1], per_block=seeds)
    inputs = traced_inputs(runs, cfg.dtype)
    t0 = time.perf_counter()
    runner.run(inputs, seeds)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner.run(inputs, seeds)
    wall = time.perf_counter() - t0
    return dict(
        seeds=seeds,
        steps=steps,
        first_call_s=first,
        wall_s=wall,
        network_steps_per_s=seeds * steps / wall,
    )


def _paper_slice(out: str) -> dict:
    import dataclasses
    import tomllib

    from rep_align import sweep

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "examples", "sweep_paper_gpu.toml"), "rb") as fh:
        data = tomllib.load(fh)
    data["fixed"]["steps"] = 600
    data["axes"]["seed"] = {"range": 11}
    spec = sweep.spec_from_dict(data)
    spec = dataclasses.replace(spec, name="paper-slice")
    t0 = time.perf_counter()
    report = sweep.run_sweep(spec, os.path.join(out, "paper_slice"))
    wall = time.perf_counter() - t0
    res = sweep.load_results(os.path.join(out, "paper_slice"))
    return dict(
        runs=spec.num_runs,
        wall_s=wall,
        runs_per_s=report.completed / wall,
        chunks=report.num_chunks,
        groups=report.num_groups,
        fitted_ok=int(np.sum(res.table["fit_ok"])),
    )


def _theory(n: int, x64: bool) -> dict:
    import jax
    import jax.numpy as jnp

    from rep_align import theory

    with jax.enable_x64(x64):
        rng = np.random.default_rng(0)
        dtype = np.float64 if x64 else np.float32
        z0 = np.stack(
            [rng.uniform(0.05, 1.0, n), rng.uniform(0.05, 1.0, n), rng.uniform(-0.2, 0.2, n)], -1
        ).astype(dtype)
        eta_h = rng.uniform(1e-4, 1e-3, n).astype(dtype)
        eta_y = rng.uniform(1e-3, 1e-2, n).astype(dtype)
        ts = jnp.linspace(0.0, 6000.0, 61, dtype=dtype)
        t0 = time.perf_counter()
        z = jax.block_until_ready(theory.solve(z0, ts, eta_h=eta_h, eta_y=eta_y, dx2=1.0, dy2=0.5))
        wall = time.perf_counter() - t0
        return dict(
            trajectories=n,
            float64=x64,
            wall_s=wall,
            traj_per_s=n / wall,
            finite=float(np.mean(np.isfinite(np.asarray(z)).all(axis=(1, 2)))),
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/device")
    parser.add_argument("--budget-s", type=float, default=420.0)
    args = parser.parse_args(argv)
    from rep_align.devices import use_host_devices

    use_host_devices()
    import jax

    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "device_check.json")
    results: dict = dict(
        devices=[str(d) for d in jax.devices()],
        backend=jax.default_backend(),
        jax=jax.__version__,
        stages={},
    )
    stages = [
        ("train_1", lambda: _training(1)),
        ("train_32", lambda: _training(32)),
        ("train_256", lambda: _training(256)),
        ("theory_1e6_f32", lambda: _theory(10**6, False)),
        ("theory_1e6_f64", lambda: _theory(10**6, True)),
        ("paper_slice", lambda: _paper_slice(args.out)),
    ]
    for name, stage in stages:
        if time.perf_counter() - start > args.budget_s:
            results["stages"][name] = "skipped: out of time"
            continue
        try:
            results["stages"][name] = stage()
        except Exception as err:  # report and go on: the next stage may still work
            results["stages"][name] = f"failed: {type(err).__name__}: {err}"
        print(name, results["stages"][name], flush=True)
        _write(path, results)
    if time.perf_counter() - start < args.budget_s / 2:
        from rep_align.experiments import _driver
        from rep_align.experiments.validity import EXPERIMENT

        t0 = time.perf_counter()
        got = _driver.run(EXPERIMENT, os.path.join(args.out, "validity"))
        boundary = {f"{m['gain']:g}": m["boundary"] for m in got.summary["result"]["maps"]}
        results["stages"]["validity_full"] = dict(
            wall_s=time.perf_counter() - t0, boundary=boundary
        )
    results["total_s"] = time.perf_counter() - start
    _write(path, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
