"""Case 2: fitting effective learning rates, ``rep_align.fit`` against SciPy.

The task, the data and both fitters are those of ``benchmarks/fit_vs_scipy.py`` (its
docstring states the protocol: synthetic noisy theory records, the same loss, equations,
solver order, tolerances, float64 and coarse scale scan on both sides; SciPy fits one run at
a time with ``minimize(method="Nelder-Mead")`` over ``solve_ivp``, as the reference study
did). This case times ``rep_align.fit.fit_rates`` on 1, 100 and 1,000 runs in one call
each (compile reported separately) and SciPy on ``scipy_runs`` runs; since SciPy fits one
run after another, its seconds per run do not depend on how many runs there are, and its
per-run mean is the reference at every N (stated in the results). The fitted rates of the
two sides are compared on the runs both fitted, and each side with the true rates.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from benchmarks.fit_vs_scipy import _log_err, make_runs, time_rep_align, time_scipy

SIZES = {
    "full": dict(ns=(1, 100, 1000), scipy_runs=100, repeats=3),
    "quick": dict(ns=(1, 10), scipy_runs=5, repeats=2),
}
TASK = dict(seed=0, t_max=12_000.0, n_times=300, noise=1e-3)
RTOL, ATOL = 1e-8, 1e-10


def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    ns, m = size["ns"], size["scipy_runs"]
    out: dict = {"settings": dict(size, **TASK, rtol=RTOL, atol=ATOL), "rows": []}
    with jax.enable_x64(True):
        runs = make_runs(max(max(ns), m), **TASK)
        ours = {}
        for n in ns:
            r = time_rep_align(runs, n, size["repeats"])
            ours[n] = r.pop("result")
            out["rows"].append(dict(n=n, rep_align=r))
    ref = time_scipy(runs, m, RTOL, ATOL, "rich")
    fits = ref.pop("fits")
    out["scipy"] = dict(ref, converged=int(sum(f["success"] for f in fits)))
    for row in out["rows"]:
        r = row["rep_align"]
        row["scipy_seconds_per_run"] = ref["per_run_s"]
        row["scipy_measured_on"] = m
        row["ratio"] = ref["per_run_s"] / r["per_run_s"]
        print(
            f"  fit N={row['n']}: rep_align {r['per_run_s']:.3g} s/run "
            f"(call {r['median_s']:.3g} s, compile {r['compile_s']:.1f} s), "
            f"SciPy {ref['per_run_s']:.3g} s/run: x{row['ratio']:.0f}",
            flush=True,
        )
    # Agreement: the largest rep_align call against SciPy on the runs both fitted.
    big = ours[max(ns)]
    k = min(m, max(ns))
    sp_h = np.array([f["eta_h"] for f in fits])[:k]
    sp_y = np.array([f["eta_y"] for f in fits])[:k]
    our_h, our_y = np.asarray(big.eta_h), np.asarray(big.eta_y)
    out["agreement"] = dict(
        runs_compared=k,
        rep_align_converged=int(np.sum(np.asarray(big.success))),
        rep_align_vs_scipy_log_eta_h=_log_err(our_h[:k], sp_h),
        rep_align_vs_scipy_log_eta_y=_log_err(our_y[:k], sp_y),
        rep_align_vs_truth_log_eta_h=_log_err(our_h, runs["eta_h"][: max(ns)]),
        rep_align_vs_truth_log_eta_y=_log_err(our_y, runs["eta_y"][: max(ns)]),
        scipy_vs_truth_log_eta_h=_log_err(sp_h, runs["eta_h"][:k]),
        scipy_vs_truth_log_eta_y=_log_err(sp_y, runs["eta_y"][:k]),
    )
    a = out["agreement"]
    print(
        f"  fit agreement on {k} runs: median |log(rep_align/SciPy)| "
        f"{a['rep_align_vs_scipy_log_eta_h']['median']:.1e} (eta_h), "
        f"{a['rep_align_vs_scipy_log_eta_y']['median']:.1e} (eta_y)",
        flush=True,
    )
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    ax.loglog(ns, [r["rep_align"]["per_run_s"] for r in rows], "o-", label="rep_align.fit")
    ax.axhline(
        result["scipy"]["per_run_s"],
        ls=":",
        color="C3",
        label=f"SciPy Nelder-Mead over solve_ivp ({result['scipy']['method']})",
    )
    ax.set_xlabel("runs fitted in one call")
    ax.set_ylabel("seconds per fitted run")
    ax.set_title("fitting (eta_h, eta_y), float64, rtol 1e-8")
    ax.legend(frameon=False, fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1, default=float))
