"""Case 6: using every core. The same workloads in fresh processes under different settings.

XLA fixes the number of host devices and its threading when the backend starts, so each
setting runs in its own subprocess (``python -m benchmarks.cores_bench --worker ...``) with
its own environment:

- ``1 device``: ``REP_ALIGN_HOST_DEVICES=0``, JAX's single CPU device (JAX's default);
- ``1 core``: the same, with the process pinned to one core (CPU affinity set before XLA
  starts), so that XLA's own intra-op threads have no second core either: the baseline
  that shows what the other core adds in each setting;
- ``n devices``: rep_align's default, one host device per core (``rep_align.devices``).

Workloads, each timed after a warm-up call (compile excluded), with the process's CPU
seconds per wall second (how many cores it kept busy). The settings run in ``rounds``
rounds, one fresh process each; the best call of each setting counts (on a shared machine
other jobs only slow calls down) and the median is reported too:

- ``train``: one ``train`` run of the default preset's network;
- ``ensemble``: ``train_ensemble`` over seeds (split over the devices, and on each device
  as many runs vmapped together as its default ``vmap_size="auto"`` chooses: one at a time
  for the default network);
- ``ensemble_vmap``: the same with all of a device's runs vmapped (``vmap_size=None``);
- ``theory``: ``theory.solve`` of a batch of random pairs (theory_bench.random_pairs),
  float64, rtol 1e-8 (its groups spread over the devices).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

SIZES = {
    "full": dict(
        width=500,
        depth=20,
        lr=0.005,
        train_steps=1000,
        seeds=8,
        ensemble_steps=300,
        theory_n=10_000,
        repeats=3,
        rounds=2,
        workloads=("train", "ensemble", "ensemble_vmap", "theory"),
        settings=("1 device", "1 core", "n devices"),
    ),
    "quick": dict(
        width=128,
        depth=6,
        lr=0.005,
        train_steps=200,
        seeds=4,
        ensemble_steps=100,
        theory_n=2_000,
        repeats=2,
        rounds=1,
        workloads=("train", "ensemble", "ensemble_vmap", "theory"),
        settings=("1 device", "1 core", "n devices"),
    ),
}

SETTINGS = {
    "1 device": {"REP_ALIGN_HOST_DEVICES": "0"},
    "1 core": {"REP_ALIGN_HOST_DEVICES": "0", "BENCH_ONE_CORE": "1"},
    "n devices": {},
}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measure(fn, repeats: int) -> dict:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    walls, busy = [], []
    for _ in range(repeats):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        busy.append((_cpu_seconds() - c0) / walls[-1])
    return dict(walls=walls, busy=busy, first_call=first)


def worker(workload: str, size: dict) -> dict:
    """Run one workload in this process (its environment decides the setting)."""
    if os.environ.get("BENCH_ONE_CORE") == "1":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before XLA sizes its pools
    from rep_align import devices

    devices.use_host_devices()  # what the rep-align commands and the benchmarks do
    import jax

    out: dict = {"devices": jax.local_device_count(), "xla_flags": os.environ.get("XLA_FLAGS")}
    if workload in ("train", "ensemble", "ensemble_vmap"):
        from rep_align.data import two_points
        from rep_align.networks import make_network
        from rep_align.training import train, train_ensemble

        x, y = two_points()
        net = make_network("mlp", in_dim=1, out_dim=1, width=size["width"], depth=size["depth"])
        if workload == "train":
            steps, runs = size["train_steps"], 1

            def call():
                key = jax.random.key(0)
                return jax.block_until_ready(train(net, x, y, key=key, lr=size["lr"], steps=steps))
        else:
            steps, runs = size["ensemble_steps"], size["seeds"]
            keys = jax.random.split(jax.random.key(0), runs)

            vmap_size = None if workload == "ensemble_vmap" else "auto"

            def call():
                return jax.block_until_ready(
                    train_ensemble(
                        net, x, y, keys=keys, lr=size["lr"], steps=steps, vmap_size=vmap_size
                    )
                )

        out.update(_measure(call, size["repeats"]))
        out["work"] = runs * steps  # network-steps
    elif workload == "theory":
        from benchmarks.theory_bench import ATOL, N_SAVE, RTOL, T_MAX, random_pairs
        from rep_align import theory

        with jax.enable_x64(True):
            b = random_pairs(size["theory_n"], seed=1)
            ts = np.linspace(0.0, T_MAX, N_SAVE)
            kw = dict(eta_h=b["eta_h"], eta_y=b["eta_y"], dx2=b["dx2"], dy2=b["dy2"])

            def call():
                return jax.block_until_ready(theory.solve(b["z0"], ts, rtol=RTOL, atol=ATOL, **kw))

            out.update(_measure(call, size["repeats"]))
        out["work"] = size["theory_n"]  # trajectories
    else:
        raise ValueError(f"unknown workload {workload!r}")
    return out


def _spawn(workload: str, size: dict, env_extra: dict) -> dict:
    drop = ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "REP_ALIGN_HOST_DEVICES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    cmd = [sys.executable, "-m", "benchmarks.cores_bench", "--worker", workload, json.dumps(size)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    settings = {name: SETTINGS[name] for name in size["settings"]}
    out: dict = {"settings": size, "environments": settings, "rows": []}
    # Rounds over all settings, so that other jobs on a shared machine hit every setting
    # alike; the best call of each setting counts (other jobs only ever slow a call down).
    samples: dict = {(w, n): [] for w in size["workloads"] for n in settings}
    for _ in range(size["rounds"]):
        for workload in size["workloads"]:
            for name, env in settings.items():
                samples[workload, name].append(_spawn(workload, size, env))
    for workload in size["workloads"]:
        row: dict = {"workload": workload}
        for name in settings:
            runs = samples[workload, name]
            walls = [w for r in runs for w in r["walls"]]
            busy = [b for r in runs for b in r["busy"]]
            best = int(np.argmin(walls))
            row[name] = dict(
                devices=runs[0]["devices"],
                seconds=walls[best],
                median=statistics.median(walls),
                busy_cores=busy[best],
                first_call=min(r["first_call"] for r in runs),
                per_s=runs[0]["work"] / walls[best],
                samples=walls,
            )
        base = row["1 device"]["seconds"]
        for name in settings:
            row[name]["speedup"] = base / row[name]["seconds"]
        out["rows"].append(row)
        n = row["n devices"]
        print(
            f"  cores {workload}: 1 device {base:.3g} s "
            f"({row['1 device']['busy_cores']:.2f} cores busy), {n['devices']} devices "
            f"{n['seconds']:.3g} s ({n['busy_cores']:.2f} busy): x{n['speedup']:.2f}",
            flush=True,
        )
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    names = list(result["environments"])
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    width = 0.8 / len(names)
    xs = np.arange(len(rows))
    for i, name in enumerate(names):
        ax.bar(xs + i * width, [r[name]["speedup"] for r in rows], width, label=name)
    ax.set_xticks(xs + width * (len(names) - 1) / 2, [r["workload"] for r in rows])
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_ylabel("speed-up over 1 device")
    ax.set_title("using both cores")
    ax.legend(frameon=False, fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--worker", choices=("train", "ensemble", "ensemble_vmap", "theory"), required=True
    )
    parser.add_argument("size", help="the size settings, as JSON (see SIZES)")
    args = parser.parse_args()
    print(json.dumps(worker(args.worker, json.loads(args.size))))
