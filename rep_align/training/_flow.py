"""Gradient flow of one run, integrated by diffrax: ``gradient_flow``."""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from rep_align import checks
from rep_align.networks import Network
from rep_align.training._trajectory import (
    Trajectory,
    finish,
    initial_params,
    loss_fn,
    observe,
    prepare_data,
    split_run_key,
)


@functools.partial(
    jax.jit,
    static_argnames=("network", "pair", "solver", "max_steps", "progress", "return_params"),
)
def _flow_core(
    x: Array,
    y: Array,
    key: PRNGKeyArray,
    lr: Array,
    gain: Array,
    params: PyTree | None,
    ts: Array,
    rtol: Array,
    atol: Array,
    dt0: Array | None,
    *,
    network: Network,
    pair: tuple[int, int],
    solver: diffrax.AbstractSolver,
    max_steps: int,
    progress: bool,
    return_params: bool,
):
    params = initial_params(network, params, gain, split_run_key(key)[0])
    grad = jax.grad(lambda p: loss_fn(p, network, x, y)[0])

    def field(t, theta, args):
        return jax.tree_util.tree_map(lambda g: -lr * g, grad(theta))

    subs = [diffrax.SubSaveAt(ts=ts, fn=lambda t, theta, args: observe(theta, network, x, y, pair))]
    if return_params:
        subs.append(diffrax.SubSaveAt(t1=True))
    meter = diffrax.TqdmProgressMeter(refresh_steps=500) if progress else diffrax.NoProgressMeter()
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        t0=jnp.zeros((), ts.dtype),
        t1=ts[-1],
        dt0=dt0,
        y0=params,
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
        progress_meter=meter,
    )
    # Saves the solver never reached come back as inf: blank them.
    reached = jnp.isfinite(sol.ts[0])
    recs = jax.tree_util.tree_map(
        lambda v: jnp.where(reached.reshape(reached.shape + (1,) * (v.ndim - 1)), v, jnp.nan),
        sol.ys[0],
    )
    bad = reached & ~jnp.isfinite(recs.loss)
    first_bad = jnp.floor(ts[jnp.argmax(bad)]).astype(jnp.int32)
    div = jnp.where(jnp.any(bad), first_bad, -1)
    ok = sol.result == diffrax.RESULTS.successful
    traj = finish(ts, recs, x, y, pair, div, sol.stats["num_steps"], ok)
    if return_params:
        return traj, jax.tree_util.tree_map(lambda v: v[0], sol.ys[1])
    return traj


def gradient_flow(
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    lr: float | Float[Array, ""],
    t_max: float | None = None,
    save_every: float | None = None,
    ts: Float[Array, " T"] | None = None,
    key: PRNGKeyArray | None = None,
    params: PyTree | None = None,
    gain: float | Float[Array, ""] | None = None,
    pair: tuple[int, int] = (0, 1),
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    dt0: float | None = None,
    max_steps: int = 100_000,
    progress: bool = False,
    return_params: bool = False,
) -> Trajectory | tuple[Trajectory, PyTree]:
    """Integrate gradient flow dθ/dt = −lr·∇L(θ) with diffrax, recording the observables.

    Time is in units of gradient-descent steps at learning rate ``lr``: the flow at time t
    is what ``train`` with that lr approaches after t steps as lr → 0 (at fixed lr·t), so
    the two trajectories line up; integer step times are exact in float32. The network is
    evaluated without dropout (the flow of the deterministic network). The observables are
    computed at the save times through ``SaveAt(fn=...)``, so memory does not grow with
    parameters × saves. One run per call; vmap for sweeps, but note that an adaptive solve
    under vmap takes as many steps as its slowest member.

    Accuracy and cost: the error control acts on the parameters (RMS norm), so ``rtol``
    must be small enough for the observables, which are differences of nearly equal hidden
    activations. Measured on the 20×500 default MLP (float32): adaptive Tsit5 needs
    rtol ≤ 1e-4 to agree with small-lr descent, and it then costs more gradient
    evaluations (6 per Tsit5 step) than 6,000 plain descent steps. Gradient flow is the
    reference for the lr → 0 limit and for checks (conservation laws); for long runs of
    large networks small-lr ``train`` is cheaper.

    Kinks: with ReLU-family activations the vector field is discontinuous where a
    pre-activation crosses 0, which costs the adaptive solver many small steps (thousands
    where a smooth activation needs tens). On the paper's exact two-point data (dx2 = 1)
    the second input is 0 and the biases start at 0, so every pre-activation of that point
    starts exactly on the kink and the flow from there is not unique. Measured on 32-wide
    leaky-ReLU MLPs of depth 4–8 over 5,000 steps at lr 1e-3: descent at lr and lr/5 agree
    within ~1 %, but the flow follows another branch, 0.03–50 % away in h depending on the
    seed (fixed-step Tsit5 converges to the same other branch, so it is the higher-order
    method's choice, not a tolerance problem). Away from the kink (e.g. dx2 = 0.81) flow
    and descent agree within 0.1 %. Compare flow and descent on such data with care.

    Arguments:
        network: from ``make_network``.
        x: inputs (n, in_dim); y: targets (n, out_dim). Cast to ``network.dtype``.
        lr: learning rate setting the time unit (> 0), traced.
        t_max, save_every: save at 0, save_every, …, t_max (t_max a multiple of
            save_every, default save_every = 1). Alternatively give ``ts``.
        ts: increasing save times (T,) ≥ 0, traced; integration runs from 0 to ts[-1].
        key: PRNG key for the initial parameters; required unless ``params`` is given.
        params: initial parameters. gain: init gain override (traced; not with params).
        pair: indices (a, b) of the recorded pair; default (0, 1).
        solver: a diffrax solver; default ``diffrax.Tsit5()``.
        rtol, atol: tolerances of the PID step-size controller; defaults 1e-5, 1e-8.
        dt0: initial step of the adaptive solver; default None lets diffrax choose.
        max_steps: cap on solver steps (static); reaching it sets ``solver_ok`` False.
        progress: show diffrax's tqdm progress meter.
        return_params: also return the parameters at ts[-1].

    Returns:
        A ``Trajectory`` with ``n_steps`` the solver's steps and ``solver_ok`` its status,
        or ``(trajectory, final_params)`` if ``return_params``.

    Raises:
        ValueError: for invalid concrete arguments, or neither/both of ``key``/``params``,
            or neither/both of ``ts``/``t_max``.
    """
    x, y, pair = prepare_data(network, x, y, pair)
    checks.values("lr", lr, positive=True, scalar=True)
    checks.values("rtol", rtol, positive=True, scalar=True)
    checks.values("atol", atol, positive=True, scalar=True)
    max_steps = checks.integer("max_steps", max_steps, minimum=1)
    if (key is None) == (params is None):
        raise ValueError("pass exactly one of key (to initialise) or params")
    if params is not None and gain is not None:
        raise ValueError("pass either params or gain, not both (gain only affects init)")
    if (ts is None) == (t_max is None):
        raise ValueError("pass exactly one of ts or t_max")
    if ts is None:
        checks.values("t_max", t_max, positive=True, scalar=True)
        save_every = 1.0 if save_every is None else save_every
        checks.values("save_every", save_every, positive=True, scalar=True)
        n_saves = round(float(t_max) / float(save_every))
        if not np.isclose(n_saves * float(save_every), float(t_max)):
            raise ValueError(f"t_max={t_max} must be a multiple of save_every={save_every}")
        ts = jnp.arange(n_saves + 1, dtype=network.dtype) * jnp.asarray(save_every, network.dtype)
    else:
        if save_every is not None:
            raise ValueError("save_every applies to t_max, not to ts")
        ts = jnp.asarray(ts, network.dtype)
        if ts.ndim != 1 or ts.shape[0] < 1:
            raise ValueError(f"ts must be a non-empty 1-D array, got shape {tuple(ts.shape)}")
        checks.values("ts", ts, nonnegative=True)
        t = checks.concrete(ts)
        if t is not None and not (np.all(np.diff(t) >= 0) and t[-1] > 0):
            raise ValueError(f"ts must be finite, non-negative, increasing, ending > 0: {t}")
    gain = network.gain if gain is None else gain
    checks.values("gain", gain, positive=True, scalar=True)
    if dt0 is not None:
        checks.values("dt0", dt0, positive=True, scalar=True)
        dt0 = jnp.asarray(dt0, network.dtype)
    if key is None:
        key = jax.random.key(0)  # unused: params are given
    return _flow_core(
        x,
        y,
        key,
        jnp.asarray(lr, network.dtype),
        jnp.asarray(gain, network.dtype),
        params,
        ts,
        jnp.asarray(rtol, network.dtype),
        jnp.asarray(atol, network.dtype),
        dt0,
        network=network,
        pair=pair,
        solver=diffrax.Tsit5() if solver is None else solver,
        max_steps=max_steps,
        progress=progress,
        return_params=return_params,
    )
