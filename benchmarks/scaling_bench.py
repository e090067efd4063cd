"""Case 5: how the cost of a training step grows with width, depth, ensemble size and points.

One axis at a time around a base network (leaky-ReLU MLP, width 256, depth 8, the two-point
task, one run, float32, SGD, observables recorded every step). Each point is one compiled
``train`` (``train_ensemble`` on the ensemble axis, split over the host devices) timed
after a warm-up call; time per step = median time of a run ÷ its steps, the number of steps
chosen so that a run takes about ``target_s``. The compile time (first call minus median)
is reported for every point and plotted against depth: the network's layers are unrolled in
the compiled step, so the program grows with depth.

Points axis: n inputs evenly spaced in [−1, 1] with targets sin(3x), observables of the pair
(0, 1).

Fits: least-squares exponent k of time ∝ size^k on log–log axes over all points and over the
upper half of each axis (where fixed per-step overheads matter least), plus the local
exponent between neighbouring points.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import block, loglog_fit, timed
from benchmarks.train_bench import step_model
from rep_align.data import two_points
from rep_align.networks import make_network
from rep_align.training import train, train_ensemble

SIZES = {
    "full": dict(
        base=dict(width=256, depth=8, runs=1, points=2),
        axes=dict(
            width=[64, 128, 256, 512, 1024, 2048],
            depth=[2, 4, 8, 16, 32, 64],
            runs=[1, 4, 16, 64, 256],
            points=[2, 10, 100, 1000],
        ),
        target_s=1.0,
        repeats=3,
    ),
    "quick": dict(
        base=dict(width=256, depth=8, runs=1, points=2),
        axes=dict(width=[64, 256], depth=[2, 8], runs=[1, 4], points=[2, 100]),
        target_s=0.1,
        repeats=1,
    ),
}
LR = 0.005


def _data(points: int):
    if points == 2:
        return two_points()
    x = jnp.linspace(-1.0, 1.0, points)[:, None]
    return x, jnp.sin(3.0 * x)


def _steps(cfg: dict, target_s: float) -> int:
    # A rough cost model (memory traffic at ~10 GB/s, arithmetic at ~30 GFLOP/s, ~30 µs of
    # fixed work per step) only to size the runs; the timings do not depend on it.
    m = step_model(cfg["width"], cfg["depth"], n_points=cfg["points"])
    per_step = cfg["runs"] * max(m["as_executed_bytes"] / 10e9, m["flops"] / 30e9) + 30e-6
    return int(float(f"{np.clip(target_s / per_step, 10, 5000):.1g}"))  # 1 significant digit


def measure(cfg: dict, target_s: float, repeats: int) -> dict:
    net = make_network("mlp", in_dim=1, out_dim=1, width=cfg["width"], depth=cfg["depth"])
    x, y = _data(cfg["points"])
    steps = _steps(cfg, target_s)
    if cfg["runs"] == 1:
        key = jax.random.key(0)

        def call():
            return block(train(net, x, y, key=key, lr=LR, steps=steps))
    else:
        keys = jax.random.split(jax.random.key(0), cfg["runs"])

        def call():
            return block(train_ensemble(net, x, y, keys=keys, lr=LR, steps=steps))

    t = timed(call, repeats=repeats)
    return dict(
        cfg,
        steps=steps,
        seconds=t["median"],
        seconds_per_step=t["median"] / steps,
        compile_seconds=max(t["first"] - t["median"], 0.0),
    )


def _fits(xs, ys) -> dict:
    half = len(xs) // 2
    local = [math.log(ys[i + 1] / ys[i]) / math.log(xs[i + 1] / xs[i]) for i in range(len(xs) - 1)]
    out = dict(all=loglog_fit(xs, ys), local=local)
    if len(xs) - half >= 2:
        out["upper_half"] = loglog_fit(xs[half:], ys[half:])
    return out


def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    base = size["base"]
    out: dict = {"base": base, "settings": size, "axes": {}}
    done: dict = {}  # the base network lies on every axis: measure it once
    for axis, values in size["axes"].items():
        rows = []
        for v in values:
            cfg = dict(base, **{axis: v})
            key = tuple(sorted(cfg.items()))
            if key not in done:
                done[key] = measure(cfg, size["target_s"], size["repeats"])
            rows.append(done[key])
            r = rows[-1]
            print(
                f"  scaling {axis}={v}: {1e6 * r['seconds_per_step']:.4g} µs/step "
                f"({r['steps']} steps), compile {r['compile_seconds']:.2f} s",
                flush=True,
            )
        xs = [r[axis] for r in rows]
        entry: dict = dict(rows=rows, time=_fits(xs, [r["seconds_per_step"] for r in rows]))
        if axis == "depth":
            entry["compile"] = _fits(xs, [max(r["compile_seconds"], 1e-3) for r in rows])
        out["axes"][axis] = entry
        print(
            f"  scaling {axis}: time per step ∝ {axis}^{entry['time']['all']['exponent']:.2f}",
            flush=True,
        )
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_data = result["axes"]
    fig, axes = plt.subplots(1, len(axes_data) + 1, figsize=(4 * (len(axes_data) + 1), 3.6))
    for ax, (name, entry) in zip(axes, axes_data.items(), strict=False):
        xs = np.array([r[name] for r in entry["rows"]], float)
        ys = np.array([r["seconds_per_step"] for r in entry["rows"]])
        fit = entry["time"]["all"]
        ax.loglog(xs, ys * 1e6, "o", color="C0")
        ax.loglog(
            xs,
            fit["prefactor"] * xs ** fit["exponent"] * 1e6,
            "-",
            color="C0",
            label=f"∝ {name}^{fit['exponent']:.2f}",
        )
        if "upper_half" in entry["time"]:
            up = entry["time"]["upper_half"]
            sel = xs >= xs[len(xs) // 2]
            ax.loglog(
                xs[sel],
                up["prefactor"] * xs[sel] ** up["exponent"] * 1e6,
                "--",
                color="C1",
                label=f"upper half ∝ {name}^{up['exponent']:.2f}",
            )
        ax.set_xlabel(name)
        ax.set_ylabel("µs per step")
        ax.legend(frameon=False, fontsize="small")
    ax = axes[-1]
    d = axes_data["depth"]
    xs = np.array([r["depth"] for r in d["rows"]], float)
    ys = np.array([max(r["compile_seconds"], 1e-3) for r in d["rows"]])
    fit = d["compile"]["all"]
    ax.loglog(xs, ys, "o", color="C2")
    ax.loglog(
        xs,
        fit["prefactor"] * xs ** fit["exponent"],
        "-",
        color="C2",
        label=f"∝ depth^{fit['exponent']:.2f}",
    )
    ax.set_xlabel("depth")
    ax.set_ylabel("compile seconds")
    ax.legend(frameon=False, fontsize="small")
    b = result["base"]
    fig.suptitle(
        f"cost per training step; base: width {b['width']}, depth {b['depth']}, "
        f"{b['points']} points, 1 run"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1, default=float))
