"""Case 4: gradient flow against gradient descent on the same network and data.

``gradient_flow`` integrates dθ/dt = −lr·∇L(θ) with adaptive Tsit5; ``train`` takes
``steps`` plain gradient-descent steps at lr, recording every step. Time is in steps on
both sides, so the flow at t = steps should reproduce the descent's h, y, w (for small lr
the two differ by O(lr)). For a ladder of tolerances (traced: one compilation serves them
all) we time the flow, count its solver steps (each costs 6 gradient evaluations, one
descent step costs 1), note how far it got within its step budget (``max_steps``), and
measure its distance from descent: the largest deviation over the save times it reached
of h (every layer), y and w, relative to each series' largest absolute value. Reported:
the loosest tolerance whose flow reaches t = steps within ``AGREE`` (1 %) of descent, and
its time against the descent's. For scale, descent's own distance from its lr → 0 limit is
measured too: descent at lr against descent at lr/2 with twice the steps, at the same
times.

Networks: the default preset's 20×500 MLP, where one solver step costs as much as dozens
of descent steps, so its flow gets a small step budget; and a 100×8 MLP, where the whole
tolerance ladder is affordable. Data: the two-point task (dx2 = 1), and for the small
network also dx2 = 0.81. On the exact task the second input is 0 and the biases start at
0, so every pre-activation of that point starts on the leaky-ReLU kink, where the flow is
not unique (``gradient_flow`` docstring): descent and flow may then follow different
branches at any tolerance. The same 100×8 MLP with tanh (smooth) shows the flow where it
is well defined: there descent at lr is within ~2 % of descent at lr/2 and the flow
reaches descent's h, y, w within 1 %.
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
    "full": dict(
        lr=0.005,
        steps=6000,
        saves=100,
        networks=(
            dict(width=500, depth=20, dx2s=(1.0,), rtols=(1e-3, 1e-4), max_steps=600),
            dict(
                width=100,
                depth=8,
                dx2s=(1.0, 0.81),
                rtols=(1e-2, 1e-3, 1e-4, 1e-5),
                max_steps=20_000,
            ),
            dict(
                width=100,
                depth=8,
                activation="tanh",
                dx2s=(1.0,),
                rtols=(1e-3, 1e-4, 1e-5),
                max_steps=20_000,
            ),
        ),
    ),
    "quick": dict(
        lr=0.005,
        steps=1000,
        saves=20,
        networks=(
            dict(width=64, depth=4, dx2s=(1.0, 0.81), rtols=(1e-3, 1e-5), max_steps=20_000),
            dict(width=32, depth=4, activation="tanh", dx2s=(1.0,), rtols=(1e-4,), max_steps=5000),
        ),
    ),
}
AGREE = 0.01


def _deviation(flow, desc, every: int) -> dict:
    """Largest |flow − descent| over the save times the flow reached, relative to scale."""
    out = {}
    reached = np.isfinite(np.asarray(flow.loss))
    for k in ("h", "y", "w"):
        d = np.asarray(getattr(desc, k))[::every]
        f = np.asarray(getattr(flow, k))
        d, f = (v.reshape(v.shape[0], -1) for v in (d, f))
        scale = np.max(np.abs(d), axis=0) + 1e-30
        out[k] = float(np.max(np.abs(f - d)[reached] / scale)) if reached.any() else np.inf
    return out


def _compare(net, dx2: float, rtols, max_steps: int, size: dict) -> dict:
    steps, lr = size["steps"], size["lr"]
    every = steps // size["saves"]
    key = jax.random.key(0)
    x, y = two_points(dx2=dx2)
    t_gd = timed(lambda: block(train(net, x, y, key=key, lr=lr, steps=steps)), repeats=2)
    desc = train(net, x, y, key=key, lr=lr, steps=steps)
    half = train(net, x, y, key=key, lr=lr / 2, steps=2 * steps, record_every=2)
    row: dict = dict(
        width=net.width,
        depth=net.depth,
        activation=net.activation,
        dx2=dx2,
        max_steps=max_steps,
        descent=dict(
            seconds=t_gd["median"],
            seconds_per_step=t_gd["median"] / steps,
            compile_seconds=t_gd["first"] - t_gd["median"],
            deviation_lr_vs_half_lr=_deviation(half, desc, 1),
        ),
        flow=[],
    )

    def flow(rtol):
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
            max_steps=max_steps,
        )

    for rtol in rtols:
        t = timed(lambda r=rtol: block(flow(r)), repeats=1)
        traj = flow(rtol)
        dev = _deviation(traj, desc, every)
        times = np.asarray(traj.times)[np.isfinite(np.asarray(traj.loss))]
        n = int(traj.n_steps)
        f = dict(
            rtol=rtol,
            seconds=t["median"],
            first_call=t["first"],
            solver_steps=n,
            seconds_per_solver_step=t["median"] / max(n, 1),
            gradient_evaluations=6 * n,
            solver_ok=bool(traj.solver_ok),
            reached=float(times.max()) if times.size else 0.0,
            deviation=dev,
            agrees=bool(traj.solver_ok) and max(dev.values()) < AGREE,
            time_over_descent=t["median"] / t_gd["median"],
        )
        row["flow"].append(f)
        print(
            f"  flow {net.depth}×{net.width} {net.activation} dx2={dx2} rtol={rtol:g}: "
            f"{f['seconds']:.3g} s "
            f"({f['time_over_descent']:.2f}x descent), {n} solver steps, reached "
            f"t={f['reached']:g} of {steps}, max deviation {max(dev.values()):.2g}",
            flush=True,
        )
    ok = [f for f in row["flow"] if f["agrees"]]
    row["loosest_agreeing"] = max(ok, key=lambda f: f["rtol"]) if ok else None
    return row


def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    out: dict = {"settings": dict(size, agree=AGREE), "rows": []}
    for spec in size["networks"]:
        act = spec.get("activation", "leaky_relu")
        net = make_network(
            "mlp", in_dim=1, out_dim=1, width=spec["width"], depth=spec["depth"], activation=act
        )
        for dx2 in spec["dx2s"]:
            out["rows"].append(_compare(net, dx2, spec["rtols"], spec["max_steps"], size))
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for i, row in enumerate(result["rows"]):
        label = f"{row['depth']}×{row['width']} {row.get('activation', '')}, dx2={row['dx2']}"
        rt = [f["rtol"] for f in row["flow"]]
        axes[0].loglog(rt, [f["seconds"] for f in row["flow"]], "o-", color=f"C{i}", label=label)
        axes[0].axhline(row["descent"]["seconds"], ls=":", color=f"C{i}")
        dev = [max(f["deviation"].values()) for f in row["flow"]]
        axes[1].loglog(rt, dev, "o-", color=f"C{i}", label=label)
        for r, d, f in zip(rt, dev, row["flow"], strict=True):
            if not f["solver_ok"]:
                axes[1].annotate(f"t={f['reached']:g}", (r, d), fontsize="x-small")
    axes[1].axhline(result["settings"]["agree"], ls=":", color="k", label="1 %")
    for ax in axes:
        ax.set_xlabel("rtol")
        ax.invert_xaxis()
        ax.legend(frameon=False, fontsize="x-small")
    axes[0].set_ylabel("seconds (dotted: descent)")
    axes[1].set_ylabel("max deviation from descent")
    fig.suptitle(f"gradient flow vs {result['settings']['steps']} descent steps")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1, default=float))
