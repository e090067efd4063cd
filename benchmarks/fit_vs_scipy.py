"""rep_align.fit against the reference approach: scipy.optimize.minimize over solve_ivp.

Task: fit (η_h, η_y) to recorded h, y, w trajectories (docs/theory.md §5). The records are
synthetic theory trajectories with small noise, shaped like the two-point experiments:
rates log-uniform in 1e-4 … 1e-2 per step, T = 300 save times over 12,000 steps (``--t-max``),
network-like initial states (h0 = dx2·g with g log-uniform in 0.05 … 2, y0/h0 log-uniform in
0.01 … 2, random angle between Δŷ and Δy*), Gaussian noise of 1e-3 times each observable's
RMS (the first, initial state is kept exact: both fitters start from it).

Both sides minimise the same loss (mean over h, y, w of the squared error divided by the
observable's spread; ``rep_align.fit`` module docstring), integrate the same equations (the
regular coordinates of docs/theory.md §2) with the same class of solver, explicit adaptive
Runge-Kutta (diffrax ``Tsit5`` inside ``theory.solve`` and SciPy's ``RK45``, both of order
5(4); if ``theory.solve`` uses ``Dopri8``, SciPy uses ``DOP853``, read from the source), at
the same tolerances (rtol 1e-8, atol 1e-10), in float64, with the same step cap per solve
and the same coarse scale scan (``fit_rates``' defaults: 10⁻⁶ … 10², 33 points, the same
step-budget and "passed the minimum" stopping rules).

- rep_align: ``fit.fit_rates`` on all runs in one call (and a 1-run call). The first call
  compiles; its time is reported separately (``compile_s`` = first call minus a timed one).
  Then ``--repeats`` timed calls, each ending in ``block_until_ready``; the median counts.
- reference: one run at a time, as the reference study did: ratio from the rich-regime
  relation h∞² ≈ (η_h/η_y)·dx2·dy2 with the last recorded h (``--scipy-start conserved``:
  rep_align's estimate instead), the scale scan, then
  ``scipy.optimize.minimize(method="Nelder-Mead")`` on the log-rates (xatol 1e-6, i.e. rates
  to 1e-6 relative, looser than rep_align's 1e-8), every loss evaluation one ``solve_ivp``.
  The right-hand side is plain Python on floats, the fastest way to feed ``solve_ivp``.

Printed: a JSON summary with seconds per fitted run on both sides, their ratio, the
acceptance checks of issue 4 (all runs in one rep_align call take less time than the
median SciPy run) and of the benchmark issue (at least 50 times fewer seconds per run at
100 runs), and the agreement of the fitted rates with each other and with the true rates
(|log ratio|: median, 90th percentile, max).

Run: ``python benchmarks/fit_vs_scipy.py [--runs 100] [--scipy-runs 100] [--quick]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import time

import jax
import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import minimize


def _defaults() -> dict:
    import dataclasses

    from rep_align import fit

    return dataclasses.asdict(fit.FitOptions())


# The scan and step caps of rep_align.fit's defaults, so that both sides scan alike.
_D = _defaults()
SCAN = np.logspace(np.log10(_D["scan_range"][0]), np.log10(_D["scan_range"][1]), _D["scan_points"])
SCAN_BUDGET = _D["scan_max_steps"]
MAX_STEPS = _D["max_steps"]
SCAN_PASSED = 100.0  # rep_align.fit stops its scan once the loss is 100 times its best
FLOOR_REL = 1e-3  # rep_align.fit's normalisation floor


def make_runs(n: int, *, seed: int, t_max: float, n_times: int, noise: float) -> dict:
    """Synthetic records (module docstring); exact theory from ``theory.solve`` at rtol 1e-12."""
    from rep_align import theory

    rng = np.random.default_rng(seed)

    def log_uniform(lo, hi):
        return np.exp(rng.uniform(np.log(lo), np.log(hi), n))

    eta_h, eta_y = log_uniform(1e-4, 1e-2), log_uniform(1e-4, 1e-2)
    dx2, dy2 = rng.uniform(0.5, 1.5, n), rng.uniform(0.25, 1.0, n)
    h0 = dx2 * log_uniform(0.05, 2.0)
    y0 = h0 * log_uniform(0.01, 2.0)
    w0 = y0 - np.sqrt(y0 * dy2) * np.cos(rng.uniform(0.0, np.pi, n))
    ts = np.linspace(0.0, t_max, n_times)
    z0 = np.stack([h0, y0, w0], axis=-1)
    z = theory.solve(
        z0, ts, eta_h=eta_h, eta_y=eta_y, dx2=dx2, dy2=dy2, rtol=1e-12, atol=1e-14, batch="vmap"
    )
    z = np.asarray(z)
    rms = np.sqrt(np.mean(z**2, axis=1, keepdims=True))
    z_obs = z + noise * rms * rng.standard_normal(z.shape)
    z_obs[:, 0] = z[:, 0]
    return dict(ts=ts, z_obs=z_obs, dx2=dx2, dy2=dy2, eta_h=eta_h, eta_y=eta_y)


# ----------------------------------------------------------------------------------------
# Reference: SciPy, one run at a time
# ----------------------------------------------------------------------------------------


class _TooManySteps(Exception):
    pass


def _scipy_method() -> tuple[str, int]:
    """SciPy's counterpart of the solver ``theory.solve`` uses, and its evaluations per step."""
    from rep_align import theory

    source = inspect.getsource(theory)
    if "diffrax.Dopri8()" in source:
        return "DOP853", 12
    return "RK45", 6


def _weights(z_obs: np.ndarray) -> np.ndarray:
    n_times = z_obs.shape[0]
    ss_tot = np.sum((z_obs - z_obs.mean(axis=0)) ** 2, axis=0)
    floor = n_times * FLOOR_REL**2 * np.mean(z_obs**2, axis=0)
    return 1.0 / (3.0 * (ss_tot + floor + np.finfo(float).tiny))


class ScipyFit:
    """The reference fit of one run: rich-ratio start, scale scan, Nelder-Mead."""

    def __init__(self, ts, z_obs, dx2, dy2, *, rtol, atol, method, evals_per_step):
        self.ts, self.z_obs, self.dx2, self.dy2 = ts, z_obs, float(dx2), float(dy2)
        self.rtol, self.atol = rtol, atol
        self.method, self.evals_per_step = method, evals_per_step
        self.weights = _weights(z_obs)
        h0, y0, w0 = (float(v) for v in z_obs[0])
        s0 = math.sqrt(h0)
        self.u0 = [s0, (y0 - w0) / s0, y0 / h0]
        self.solves = 0

    def trajectory(self, eta_h: float, eta_y: float, max_steps: int):
        """(h, y, w) at ts and the number of steps, or (None, steps) past ``max_steps``."""
        dx2, dy2 = self.dx2, self.dy2
        cap = max_steps * self.evals_per_step
        count = [0]

        def rhs(t, u):
            count[0] += 1
            if count[0] > cap:
                raise _TooManySteps
            s, p, q = u
            r = s * q - p
            return [-0.5 * eta_h * dx2 * r, -0.5 * eta_y * s * (s * p - dy2), -eta_y * s * r]

        self.solves += 1
        try:
            sol = solve_ivp(
                rhs,
                (self.ts[0], self.ts[-1]),
                self.u0,
                method=self.method,
                t_eval=self.ts,
                rtol=self.rtol,
                atol=self.atol,
            )
        except _TooManySteps:
            return None, max_steps + 1
        steps = count[0] / self.evals_per_step
        if sol.status != 0:
            return None, steps
        s, p, q = sol.y
        h = s * s
        return np.stack([h, h * q, h * q - s * p], axis=-1), steps

    def loss(self, eta_h, eta_y, max_steps=MAX_STEPS):
        z, steps = self.trajectory(eta_h, eta_y, max_steps)
        if z is None:
            return math.inf, steps
        value = float(np.sum(self.weights * np.sum((z - self.z_obs) ** 2, axis=0)))
        return (value if math.isfinite(value) else math.inf), steps

    def fit(self, start: str = "rich") -> dict:
        if start == "rich":
            ratio = float(self.z_obs[-1, 0]) ** 2 / (self.dx2 * self.dy2)
        else:  # rep_align.fit's estimate from the conserved quantity
            from rep_align.fit import start_ratio

            ratio = float(start_ratio(self.z_obs[None], dx2=self.dx2, dy2=self.dy2)[0])
        root = math.sqrt(ratio)
        best, best_c = math.inf, None
        # Same rules as rep_align.fit's coarse scan: ascending scales; stop after a failed
        # solve, once the loss exceeds its best 100-fold, or before a scale whose step count
        # could exceed the budget (steps grow at most linearly with the scale).
        for k, c in enumerate(SCAN):
            value, steps = self.loss(c * root, c / root)
            if value < best:
                best, best_c = value, c
            if not math.isfinite(value) or value > SCAN_PASSED * best or k + 1 == SCAN.size:
                break
            if steps * SCAN[k + 1] / c > SCAN_BUDGET:
                break
        if best_c is None:
            return dict(eta_h=math.nan, eta_y=math.nan, loss=math.nan, success=False)
        x0 = np.log([best_c * root, best_c / root])
        res = minimize(
            lambda x: self.loss(math.exp(x[0]), math.exp(x[1]))[0],
            x0,
            method="Nelder-Mead",
            options=dict(xatol=1e-6, fatol=1e-14, maxfev=4000),
        )
        eta_h, eta_y = np.exp(res.x)
        return dict(
            eta_h=float(eta_h), eta_y=float(eta_y), loss=float(res.fun), success=bool(res.success)
        )


# ----------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------


def time_rep_align(runs: dict, n: int, repeats: int) -> dict:
    from rep_align import fit

    args = (runs["ts"], runs["z_obs"][:n])
    kw = dict(dx2=runs["dx2"][:n], dy2=runs["dy2"][:n])

    def call():
        return jax.block_until_ready(fit.fit_rates(*args, **kw))

    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return dict(
        runs=n,
        first_call_s=first,
        compile_s=max(first - median, 0.0),
        times_s=times,
        median_s=median,
        per_run_s=median / n,
        result=result,
    )


def time_scipy(runs: dict, n: int, rtol: float, atol: float, start: str) -> dict:
    method, per_step = _scipy_method()
    fits, times, solves = [], [], []
    for i in range(n):
        job = ScipyFit(
            runs["ts"],
            runs["z_obs"][i],
            runs["dx2"][i],
            runs["dy2"][i],
            rtol=rtol,
            atol=atol,
            method=method,
            evals_per_step=per_step,
        )
        t0 = time.perf_counter()
        fits.append(job.fit(start))
        times.append(time.perf_counter() - t0)
        solves.append(job.solves)
    return dict(
        runs=n,
        method=method,
        times_s=times,
        per_run_s=statistics.mean(times),
        median_run_s=statistics.median(times),
        solves_per_run=statistics.mean(solves),
        fits=fits,
    )


def _log_err(a, b) -> dict:
    """|log(a/b)| over runs: median, 90th percentile, max, and how many exceed 1e-3."""
    e = np.abs(np.log(np.asarray(a) / np.asarray(b)))
    e = np.where(np.isfinite(e), e, np.inf)
    if e.size == 0:
        return dict(n=0)
    return dict(
        n=int(e.size),
        median=float(np.median(e)),
        p90=float(np.quantile(e, 0.9)),
        max=float(e.max()),
        above_1e_3=int(np.sum(e > 1e-3)),
    )


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100, help="runs fitted in one rep_align call")
    p.add_argument("--scipy-runs", type=int, default=None, help="runs fitted with SciPy")
    p.add_argument("--repeats", type=int, default=5, help="timed rep_align calls")
    p.add_argument("--t-max", type=float, default=12_000.0, help="record length in steps")
    p.add_argument("--n-times", type=int, default=300, help="save times per record")
    p.add_argument("--noise", type=float, default=1e-3, help="noise relative to each RMS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--scipy-start",
        choices=("rich", "conserved"),
        default="rich",
        help="SciPy's ratio start: the reference study's rich-regime relation (default) or"
        " rep_align's conserved-quantity estimate",
    )
    p.add_argument("--quick", action="store_true", help="SciPy on 5 runs, 3 repeats")
    args = p.parse_args(argv)
    if args.scipy_runs is None:
        args.scipy_runs = 5 if args.quick else args.runs
    if args.quick:
        args.repeats = min(args.repeats, 3)
    rtol, atol = 1e-8, 1e-10

    with jax.enable_x64(True):
        runs = make_runs(
            max(args.runs, args.scipy_runs),
            seed=args.seed,
            t_max=args.t_max,
            n_times=args.n_times,
            noise=args.noise,
        )
        one = time_rep_align(runs, 1, args.repeats)
        many = time_rep_align(runs, args.runs, args.repeats)
    ref = time_scipy(runs, args.scipy_runs, rtol, atol, args.scipy_start)

    ours = many.pop("result")
    one.pop("result")
    m = args.scipy_runs
    sp_h = np.array([f["eta_h"] for f in ref["fits"]])
    sp_y = np.array([f["eta_y"] for f in ref["fits"]])
    sp_loss = np.array([f["loss"] for f in ref["fits"]])
    our_h, our_y = np.asarray(ours.eta_h), np.asarray(ours.eta_y)
    our_loss = np.asarray(ours.loss)
    ratio = ref["per_run_s"] / many["per_run_s"]
    summary = dict(
        task=dict(
            runs=args.runs,
            scipy_runs=m,
            n_times=args.n_times,
            t_max=args.t_max,
            noise=args.noise,
            rtol=rtol,
            atol=atol,
            scipy_method=ref["method"],
            scipy_start=args.scipy_start,
            jax_devices=[str(d) for d in jax.devices()],
        ),
        rep_align=dict(
            one_run=dict((k, v) for k, v in one.items()),
            many_runs=dict((k, v) for k, v in many.items()),
            converged=int(np.sum(np.asarray(ours.success))),
            iterations_max=int(np.max(np.asarray(ours.num_iters))),
        ),
        scipy=dict(
            per_run_s=ref["per_run_s"],
            median_run_s=ref["median_run_s"],
            total_s=float(sum(ref["times_s"])),
            solves_per_run=ref["solves_per_run"],
            converged=int(sum(f["success"] for f in ref["fits"])),
        ),
        speedup_per_run_at_many=ratio,
        checks={
            f"{args.runs}_runs_one_call_faster_than_one_scipy_run": many["median_s"]
            < ref["median_run_s"],
            "at_least_50x_fewer_seconds_per_run": ratio >= 50.0,
        },
        agreement=dict(
            rep_align_vs_scipy_log_eta_h=_log_err(our_h[:m], sp_h),
            rep_align_vs_scipy_log_eta_y=_log_err(our_y[:m], sp_y),
            rep_align_vs_truth_log_eta_h=_log_err(our_h, runs["eta_h"][: args.runs]),
            rep_align_vs_truth_log_eta_y=_log_err(our_y, runs["eta_y"][: args.runs]),
            scipy_vs_truth_log_eta_h=_log_err(sp_h, runs["eta_h"][:m]),
            scipy_vs_truth_log_eta_y=_log_err(sp_y, runs["eta_y"][:m]),
            scipy_loss_over_rep_align_loss_median=float(np.median(sp_loss / our_loss[:m])),
            runs_where_scipy_loss_is_lower_by_1pct=int(np.sum(sp_loss < 0.99 * our_loss[:m])),
        ),
    )
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
