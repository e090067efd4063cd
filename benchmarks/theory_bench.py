"""Case 1: the theory ODE, rep_align batches vs a Python loop over SciPy ``solve_ivp``.

Both sides in float64 at rtol 1e-8 (atol 1e-10). rep_align: ``theory.solve`` on the whole
batch (its default: stiffness-grouped stacked solves in regular coordinates); also timed
with ``batch="stacked"`` (one stacked system) and ``batch="vmap"`` (independent solves)
to show why the default is what it is. SciPy: RK45 and Radau on the defining (h, y, w)
equations, one trajectory at a time, as a researcher would write it; its time per
trajectory is measured on a sample and scaled to N (stated in the output).

Correctness is counted on both sides against a reference (SciPy DOP853 on the regular
form at rtol 1e-12): a trajectory fails when its solver reports failure or any save time
is off by more than 1e-5 relative to the trajectory's largest value of that observable.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from benchmarks.common import block, timed
from rep_align import theory

T_MAX = 10_000.0
N_SAVE = 51
RTOL, ATOL = 1e-8, 1e-10
FAIL_TOL = 1e-5


def random_pairs(n: int, seed: int = 0) -> dict:
    """Random initial states and rates; the cosine between the output difference and the
    target difference is uniform in [-1, 1], so about a tenth of draws have the output
    strongly opposing the target (cosine < -0.8)."""
    rng = np.random.default_rng(seed)
    h0 = 10 ** rng.uniform(-3, 0, n)
    y0 = h0 * 10 ** rng.uniform(-2, 1, n)
    cos = rng.uniform(-1, 1, n)
    dy2 = rng.uniform(0.2, 1.0, n)
    return dict(
        z0=np.stack([h0, y0, y0 - cos * np.sqrt(y0 * dy2)], -1),
        eta_h=10 ** rng.uniform(-4, -3, n),
        eta_y=10 ** rng.uniform(-3, -2, n),
        dx2=rng.uniform(0.5, 1.5, n),
        dy2=dy2,
        opposing=cos < -0.8,
    )


def _hyw(t, z, eh, ey, dx2, dy2):
    h, y, w = z
    return [
        -eh * dx2 * w,
        -w * (ey * h + eh * dx2 * y / h),
        -0.5 * ey * h * (3 * w - y + dy2) - 0.5 * eh * dx2 * w * (y + w) / h,
    ]


def _regular(t, u, eh, ey, dx2, dy2):
    s, p, q = u
    r = s * q - p
    return [-0.5 * eh * dx2 * r, -0.5 * ey * s * (s * p - dy2), -ey * s * r]


def _args(b, i):
    return (b["eta_h"][i], b["eta_y"][i], b["dx2"][i], b["dy2"][i])


def scipy_solve(b, i, ts, method):
    sol = solve_ivp(
        _hyw,
        (ts[0], ts[-1]),
        b["z0"][i],
        method=method,
        rtol=RTOL,
        atol=ATOL,
        t_eval=ts,
        args=_args(b, i),
    )
    ok = sol.status == 0 and sol.y.shape[1] == len(ts)
    return (sol.y.T if ok else np.full((len(ts), 3), np.nan)), ok


def reference(b, i, ts):
    u0 = np.asarray(theory.to_regular(jnp.asarray(b["z0"][i])))
    sol = solve_ivp(
        _regular,
        (ts[0], ts[-1]),
        u0,
        method="DOP853",
        rtol=1e-12,
        atol=1e-14,
        t_eval=ts,
        args=_args(b, i),
    )
    s, p, q = sol.y
    return np.stack([s * s, s * s * q, s * s * q - s * p], -1)


def wrong(z, ref) -> bool:
    scale = np.max(np.abs(ref), axis=0)
    return not np.all(np.isfinite(z)) or bool(np.any(np.abs(z - ref) / scale > FAIL_TOL))


SIZES = {
    "full": dict(ns=(1, 100, 10_000, 100_000), sample=300),
    "quick": dict(ns=(1, 100, 1000), sample=40),
}


def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    ns, sample = list(size["ns"]), size["sample"]
    ts = np.linspace(0.0, T_MAX, N_SAVE)
    out: dict = {
        "settings": dict(
            t_max=T_MAX,
            n_save=N_SAVE,
            rtol=RTOL,
            atol=ATOL,
            dtype="float64",
            fail_tol=FAIL_TOL,
            scipy_sample=sample,
        )
    }
    with jax.enable_x64(True):
        big = random_pairs(max(ns), seed=0)
        # --- SciPy, per trajectory, on a sample ----------------------------------------
        idx = np.arange(sample)
        refs = [reference(big, i, ts) for i in idx]
        scipy_res = {}
        for method in ("RK45", "Radau"):
            t0 = time.perf_counter()
            sols = [scipy_solve(big, i, ts, method) for i in idx]
            per = (time.perf_counter() - t0) / sample
            fails = [not ok or wrong(z, r) for (z, ok), r in zip(sols, refs, strict=True)]
            reported = sum(not ok for _, ok in sols)
            scipy_res[method] = dict(
                seconds_per_traj=per,
                traj_per_s=1.0 / per,
                failures=int(sum(fails)),
                reported_failures=int(reported),
                silent_wrong=int(sum(fails) - reported),
                failures_opposing=int(
                    sum(f for f, o in zip(fails, big["opposing"][idx], strict=True) if o)
                ),
                sample=sample,
            )
        out["scipy"] = scipy_res
        # --- rep_align, correctness on the same sample --------------------------------
        sub = {k: v[idx] for k, v in big.items()}
        z, info = theory.solve(
            sub["z0"],
            ts,
            eta_h=sub["eta_h"],
            eta_y=sub["eta_y"],
            dx2=sub["dx2"],
            dy2=sub["dy2"],
            rtol=RTOL,
            atol=ATOL,
            full_output=True,
        )
        z = np.asarray(z)
        ra_fail = [wrong(z[k], refs[k]) for k in range(sample)]
        out["rep_align_sample"] = dict(
            failures=int(sum(ra_fail)),
            reported_failures=int(np.sum(~np.asarray(info.success))),
            sample=sample,
        )
        # --- rep_align, timing per N ---------------------------------------------------
        rows = []
        for n in ns:
            b = {k: v[:n] for k, v in big.items()}
            kw = dict(
                eta_h=b["eta_h"], eta_y=b["eta_y"], dx2=b["dx2"], dy2=b["dy2"], rtol=RTOL, atol=ATOL
            )
            modes = {"auto": "auto"}
            if n in (ns[-2], ns[-1]) or quick:
                modes.update(stacked="stacked", vmap="vmap")
            row = {"n": n}
            for name, mode in modes.items():
                if mode == "vmap" and n > 10_000:
                    continue  # minutes per repeat; the trend is clear at 10^4

                def call(mode=mode, b=b, kw=kw):
                    return block(theory.solve(b["z0"], ts, batch=mode, **kw))

                t = timed(call, repeats=3)
                row[name] = dict(
                    seconds=t["median"],
                    min=t["min"],
                    max=t["max"],
                    first_call=t["first"],
                    traj_per_s=n / t["median"],
                )
            for method, r in scipy_res.items():
                row[f"scipy_{method}_seconds"] = r["seconds_per_traj"] * n
                row[f"ratio_vs_{method}"] = row["auto"]["traj_per_s"] / r["traj_per_s"]
            rows.append(row)
            print(
                f"  theory N={n}: rep_align {row['auto']['seconds']:.4g} s "
                f"({row['auto']['traj_per_s']:.3g} traj/s), x{row['ratio_vs_RK45']:.0f} vs "
                f"RK45 loop, x{row['ratio_vs_Radau']:.0f} vs Radau loop",
                flush=True,
            )
        out["rows"] = rows
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.loglog(ns, [r["auto"]["traj_per_s"] for r in rows], "o-", label="rep_align solve")
    for mode in ("stacked", "vmap"):
        pts = [(r["n"], r[mode]["traj_per_s"]) for r in rows if mode in r]
        if pts:
            ax.loglog(*zip(*pts, strict=True), "x--", label=f"rep_align batch={mode}")
    for method, r in result["scipy"].items():
        ax.axhline(
            r["traj_per_s"],
            ls=":",
            color="C3" if method == "RK45" else "C4",
            label=f"SciPy {method} loop",
        )
    ax.set_xlabel("trajectories N")
    ax.set_ylabel("trajectories / s")
    ax.set_title("theory ODE, float64, rtol 1e-8")
    ax.legend(frameon=False, fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)
