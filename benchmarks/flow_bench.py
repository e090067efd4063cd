"""Case 4: gradient flow against gradient descent on the same network and data.

``gradient_flow`` integrates dθ/dt = −lr·∇L(θ) with adaptive Tsit5; ``train`` takes
``steps`` plain gradient-descent steps at lr, recording every step. Time is in steps on
both sides, so the flow at t = steps should reproduce the descent's h, y, w (for small lr
the two differ by O(lr)). For a ladder of tolerances (traced: one compilation serves them
all) we time the flow, count its solver steps (each costs 6 gradient evaluations, one
descent step costs 1) and measure its distance from descent: the largest deviation over the
save times of h (every layer), y and w, relative to each series' largest absolute value.
Reported: the loosest tolerance whose flow is within ``AGREE`` (1 %) of descent, and its time
against the descent's. For scale, descent's own distance from its lr → 0 limit is measured
too: descent at lr against descent at lr/2 with twice the steps, at the same times.

Data: the two-point task, as in ``train_bench`` (dx2 = 1), and a variant with dx2 = 0.81.
On the exact task the second input is 0 and the biases start at 0, so every pre-activation
of that point starts on the leaky-ReLU kink, where the flow is not unique (``gradient_flow``
docstring): descent and flow may then follow different branches at any tolerance.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from benchmarks.common import block, timed
from rep_align.data import two_points
from rep_align.networks import make_network
from rep_align.training import gradient_flow, train

SIZES = {
    "full": dict(width=500, depth=20, lr=0.005, steps=6000, saves=100, rtols=(1e-2, 1e-3, 1e-4)),
    "quick": dict(width=64, depth=4, lr=0.005, steps=1000, saves=20, rtols=(1e-3, 1e-5)),
}
AGREE = 0.01
MAX_STEPS = 20_000


def _deviation(flow, desc, every: int) -> dict:
    """Largest |flow − descent| over the save times, relative to the series' scale."""
    out = {}
    for k in ("h", "y", "w"):
        d = np.asarray(getattr(desc, k))[::every]
        f = np.asarray(getattr(flow, k))
        d, f = (v.reshape(v.shape[0], -1) for v in (d, f))
        scale = np.max(np.abs(d), axis=0) + 1e-30
        out[k] = float(np.max(np.abs(f - d) / scale))
    return out


def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    steps, lr = size["steps"], size["lr"]
    every = steps // size["saves"]
    net = make_network("mlp", in_dim=1, out_dim=1, width=size["width"], depth=size["depth"])
    key = jax.random.key(0)
    out: dict = {"settings": dict(size, agree=AGREE, max_steps=MAX_STEPS), "rows": []}
    for dx2 in (1.0, 0.81):
        x, y = two_points(dx2=dx2)
        t_gd = timed(
            lambda x=x, y=y: block(train(net, x, y, key=key, lr=lr, steps=steps)), repeats=2
        )
        desc = train(net, x, y, key=key, lr=lr, steps=steps)
        # Descent's own distance from its lr -> 0 limit: half the learning rate, twice the
        # steps, compared at the same times.
        half = train(net, x, y, key=key, lr=lr / 2, steps=2 * steps, record_every=2)
        row: dict = dict(
            dx2=dx2,
            descent=dict(
                seconds=t_gd["median"],
                compile_seconds=t_gd["first"] - t_gd["median"],
                deviation_lr_vs_half_lr=_deviation(half, desc, 1),
            ),
            flow=[],
        )

        def flow(rtol, x=x, y=y):
            return gradient_flow(
                net,
                x,
                y,
                lr=lr,
                t_max=float(steps),
                save_every=float(every),
                key=key,
                rtol=rtol,
                atol=rtol * 1e-3,
                max_steps=MAX_STEPS,
            )

        for rtol in size["rtols"]:
            t = timed(lambda r=rtol: block(flow(r)), repeats=1 if rtol < 1e-4 else 2)
            traj = flow(rtol)
            dev = _deviation(traj, desc, every)
            row["flow"].append(
                dict(
                    rtol=rtol,
                    seconds=t["median"],
                    first_call=t["first"],
                    solver_steps=int(traj.n_steps),
                    gradient_evaluations=6 * int(traj.n_steps),
                    solver_ok=bool(traj.solver_ok),
                    deviation=dev,
                    agrees=bool(traj.solver_ok) and max(dev.values()) < AGREE,
                    time_over_descent=t["median"] / t_gd["median"],
                )
            )
            f = row["flow"][-1]
            print(
                f"  flow dx2={dx2} rtol={rtol:g}: {f['seconds']:.3g} s "
                f"({f['time_over_descent']:.2f}x descent), {f['solver_steps']} solver steps, "
                f"max deviation {max(dev.values()):.2g}",
                flush=True,
            )
        ok = [f for f in row["flow"] if f["agrees"]]
        row["loosest_agreeing"] = max(ok, key=lambda f: f["rtol"]) if ok else None
        out["rows"].append(row)
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), layout="constrained")
    for i, row in enumerate(result["rows"]):
        rt = [f["rtol"] for f in row["flow"]]
        axes[0].loglog(
            rt,
            [f["seconds"] for f in row["flow"]],
            "o-",
            color=f"C{i}",
            label=f"flow, dx2={row['dx2']}",
        )
        axes[0].axhline(
            row["descent"]["seconds"], ls=":", color=f"C{i}", label=f"descent, dx2={row['dx2']}"
        )
        axes[1].loglog(
            rt,
            [max(f["deviation"].values()) for f in row["flow"]],
            "o-",
            color=f"C{i}",
            label=f"dx2={row['dx2']}",
        )
    axes[1].axhline(result["settings"]["agree"], ls=":", color="k", label="1 %")
    for ax in axes:
        ax.set_xlabel("rtol")
        ax.invert_xaxis()
        ax.legend(frameon=False, fontsize="small")
    axes[0].set_ylabel("seconds")
    axes[1].set_ylabel("max deviation from descent")
    s = result["settings"]
    fig.suptitle(f"gradient flow vs {s['steps']} descent steps, MLP {s['depth']}×{s['width']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1, default=float))
