"""Differentiable learning dynamics: gradients of trajectory scalars w.r.t. hyper-parameters.

Everything in rep_align is a pure JAX function, so any scalar of a learning trajectory —
the final representational distance h(T), the loss at time t, a fitted effective rate — can
be differentiated with ``jax.grad`` with respect to the init gain, the learning rate, the
data geometry (dx2, dy2 through ``data.two_points``) or the theory's rates. This module
provides the three routes, each with the memory trade-off made explicit:

1. **The theory** (docs/theory.md §2): ``theory.solve`` is differentiable in ``z0``,
   ``eta_h``, ``eta_y``, ``dx2`` and ``dy2`` (diffrax, reverse mode), and
   ``theory.final_distance`` is a closed form. For example::

       dh_deta = jax.grad(lambda e: theory.solve(z0, ts, eta_h=e, eta_y=ey,
                                                 dx2=1.0, dy2=0.5)[-1, 0])(eh)

   ``theory_trajectory`` below is a fixed-step RK4 version (a ``lax.scan``) that is
   differentiable to any order and in forward mode as well; ``fitted_rates`` needs that.

2. **Gradient descent** with ``descent``: the network trained by an optax optimiser in a
   ``lax.scan``, the same dynamics as ``training.train`` (full batch, deterministic). Reverse
   mode through a scan stores the residuals of every step, i.e. ``steps × parameters``
   numbers. With ``checkpoint=True`` (default) each block of ``record_every`` steps is a
   ``jax.checkpoint``: only the parameters at block starts are stored (``steps/record_every
   × parameters``) and each block is recomputed once in the backward pass (about 1.3-2×
   the forward cost). Choose ``record_every`` ≈ √steps to balance the stored block starts
   against the recomputed block.

3. **Gradient flow** with ``flow``: dθ/dt = −lr·∇L(θ) integrated by diffrax (time in
   gradient steps at ``lr``, as ``training.gradient_flow``), with a choice of adjoint:

   - ``adjoint="recursive"`` (``diffrax.RecursiveCheckpointAdjoint``, default):
     discretise-then-optimise. Differentiates the solver's own operations, so the gradient
     is the exact derivative of the computed trajectory (it matches finite differences of
     the solve to round-off, whatever the tolerance). Memory: the solver state at
     ``checkpoints`` steps (default chosen by diffrax from ``max_steps``, growing like its
     logarithm) and about one extra forward solve of recomputation per checkpoint level;
     keep ``max_steps`` tight. Reverse mode only (``jax.jvp`` is not supported).
   - ``adjoint="backsolve"`` (``diffrax.BacksolveAdjoint``): optimise-then-discretise.
     Solves the continuous adjoint ODE backwards in time together with the state, so
     memory is O(1) in the number of solver steps (only the saved outputs), at the price of
     a second solve (plus vector-Jacobian products) and a gradient that is only as accurate
     as the tolerances: it is the derivative of the exact flow, not of the computed one,
     and reconstructing θ(t) backwards is ill-conditioned for dissipative dynamics such as
     gradient flow near a minimum (backwards, contraction becomes expansion), so errors
     grow over long horizons. Use tight tolerances, check against "recursive" on a short
     horizon, and prefer it only when memory forbids the recursive adjoint. diffrax does
     not allow ``SaveAt(fn=...)`` with it, so the parameters are saved at every ``ts``
     (``T × parameters`` memory) and the observables computed afterwards; save few times.
     Measured (float64, tanh MLP 1→8→8→1, lr 0.05, rtol 1e-10): d h(T)/d gain agrees with
     the recursive adjoint to 1e-8 relative at T = 5 and 3e-8 at T = 50 steps, but at
     T = 300, when training has converged (loss 1e-13), backsolve returns −1.6e5 where
     the correct value (recursive adjoint and finite differences) is 2.30.

4. **Fitted rates** with ``fitted_rates``: the effective rates that best fit a recorded
   trajectory, differentiable through the fit by the implicit function theorem, so
   d(fitted eta_h)/d(gain) = ∂θ*/∂record · d(record)/d(gain) chains through ``descent`` or
   ``flow``.

All functions handle one run (one network, one set of hyper-parameters); batch with
``jax.vmap``, and wrap the objective in ``jax.jit`` (``network`` is hashable, so close over
it or make it static). Numbers (``lr``, ``gain``, data values, rates) are traced; shapes (network,
``steps``, ``record_every``, number of save times) are static. Check gradients in float64
(``jax.enable_x64``): gradients of long trajectories in float32 carry the round-off of
every step.

Non-smooth activations: gradients are derivatives of the computed, piecewise-smooth
dynamics. With leaky ReLU on the two-point task (dx2 = 1) the second input is 0 and the
biases start at 0, so the first layer starts exactly on the kink; derivatives with respect
to hyper-parameters are then one-sided and finite differences disagree with them. Use a
smooth activation (tanh, silu, elu) where derivatives are meant to be compared or used for
optimisation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from rep_align import checks, theory
from rep_align.networks import Network
from rep_align.observables import pair_observables
from rep_align.training import Trajectory, loss_fn, split_run_key

__all__ = ["descent", "fitted_rates", "flow", "theory_trajectory"]


# --------------------------------------------------------------------------- helpers


def _observe(params: PyTree, network: Network, x: Array, y: Array, pair: tuple[int, int]):
    loss, (out, hiddens) = loss_fn(params, network, x, y)
    obs = pair_observables(x, y, out, hiddens, pair=pair)
    return loss, obs.h, obs.y, obs.w, obs.m


def _setup(network, x, y, key, params, gain, pair):
    if not isinstance(network, Network):
        raise ValueError(f"network must come from make_network, got {type(network).__name__}")
    x = jnp.asarray(x, network.dtype)
    y = jnp.asarray(y, network.dtype)
    if x.ndim != 2 or x.shape[1] != network.in_dim or y.shape != (x.shape[0], network.out_dim):
        raise ValueError(
            f"x must be (n, {network.in_dim}) and y (n, {network.out_dim}); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    a, b = pair
    if not (0 <= a < x.shape[0] and 0 <= b < x.shape[0] and a != b):
        raise ValueError(f"pair must be two distinct indices in [0, {x.shape[0]}), got {pair}")
    if (key is None) == (params is None):
        raise ValueError("pass exactly one of key (to initialise) or params")
    if params is not None and gain is not None:
        raise ValueError("pass either params or gain, not both (gain only affects init)")
    if params is None:
        # The same init key as training.train and training.gradient_flow use.
        init_key = split_run_key(key)[0]
        params = network.init(init_key, gain=network.gain if gain is None else gain)
    return x, y, (int(a), int(b)), params


def _trajectory(times, recs, x, y, pair, n_steps, solver_ok) -> Trajectory:
    loss, h, yy, w, m = recs
    a, b = pair
    bad = ~jnp.isfinite(loss)
    first = jnp.argmax(bad)
    diverged = jnp.any(bad)
    return Trajectory(
        times=times,
        loss=loss,
        h=h,
        y=yy,
        w=w,
        m=m,
        dx2=jnp.sum((x[b] - x[a]) ** 2),
        dy2=jnp.sum((y[b] - y[a]) ** 2),
        diverged=diverged,
        diverged_step=jnp.where(diverged, jnp.floor(times[first]), -1).astype(jnp.int32),
        n_steps=jnp.asarray(n_steps, jnp.int32),
        solver_ok=jnp.asarray(solver_ok, bool),
    )


# -------------------------------------------------------------------------- descent


def descent(
    network: Network,
    x: Float[ArrayLike, "n in_dim"],
    y: Float[ArrayLike, "n out_dim"],
    *,
    lr: float | Float[Array, ""],
    steps: int,
    key: PRNGKeyArray | None = None,
    params: PyTree | None = None,
    gain: float | Float[Array, ""] | None = None,
    record_every: int = 1,
    pair: tuple[int, int] = (0, 1),
    optimizer: str | Callable[[Any], optax.GradientTransformation] = "sgd",
    checkpoint: bool = True,
) -> Trajectory:
    """Full-batch training in a ``lax.scan``, built to be differentiated (route 2 above).

    The dynamics are those of ``training.train`` with full batches and no dropout: the same
    key gives the same initial parameters and the same records. One run per call; vmap for
    batches. Differentiate any scalar of the result with respect to ``lr``, ``gain``,
    ``params`` or the data ``x``, ``y`` (e.g. through ``data.two_points(dx2=...)``).

    Arguments:
        network: from ``make_network``.
        x, y: inputs (n, in_dim) and targets (n, out_dim).
        lr: learning rate, traced.
        steps: number of updates (static), a multiple of ``record_every``.
        key: PRNG key for the initial parameters (its first split, as ``training.train``).
        params: initial parameters instead of ``key``.
        gain: init gain (traced); default ``network.gain``. Not with ``params``.
        record_every: steps between records, and the checkpointed block length (static).
        pair: indices of the recorded pair; default (0, 1).
        optimizer: "sgd" (default), "adam" or a function ``lr -> GradientTransformation``.
        checkpoint: recompute each block in the backward pass instead of storing every
            step (memory ``steps/record_every × parameters`` instead of ``steps × ...``).

    Returns:
        A ``training.Trajectory`` with records at 0, k, 2k, …, steps (k = record_every).

    Raises:
        ValueError: for bad concrete arguments (shapes, pair, key/params, steps).
    """
    x, y, pair, params = _setup(network, x, y, key, params, gain, pair)
    steps = checks.integer("steps", steps, minimum=0)
    record_every = checks.integer("record_every", record_every, minimum=1)
    if steps % record_every:
        raise ValueError(f"record_every={record_every} must divide steps={steps}")
    if optimizer == "sgd":
        opt = optax.sgd(lr)
    elif optimizer == "adam":
        opt = optax.adam(lr)
    elif callable(optimizer):
        opt = optimizer(lr)
    else:
        raise ValueError(f"optimizer must be 'sgd', 'adam' or a callable, got {optimizer!r}")
    grad = jax.grad(lambda p: loss_fn(p, network, x, y)[0])

    def one_step(state, _):
        p, s = state
        updates, s = opt.update(grad(p), s, p)
        return (optax.apply_updates(p, updates), s), None

    def block(state, _):
        rec = _observe(state[0], network, x, y, pair)
        state, _ = jax.lax.scan(one_step, state, None, length=record_every)
        return state, rec

    if checkpoint:
        block = jax.checkpoint(block)
    state = (params, opt.init(params))
    state, recs = jax.lax.scan(block, state, None, length=steps // record_every)
    final = _observe(state[0], network, x, y, pair)
    recs = jax.tree_util.tree_map(lambda r, f: jnp.concatenate([r, f[None]]), recs, final)
    times = jnp.arange(steps // record_every + 1, dtype=x.dtype) * record_every
    return _trajectory(times, recs, x, y, pair, steps, True)


# ----------------------------------------------------------------------------- flow


def flow(
    network: Network,
    x: Float[ArrayLike, "n in_dim"],
    y: Float[ArrayLike, "n out_dim"],
    *,
    lr: float | Float[Array, ""],
    ts: Float[ArrayLike, " T"],
    key: PRNGKeyArray | None = None,
    params: PyTree | None = None,
    gain: float | Float[Array, ""] | None = None,
    pair: tuple[int, int] = (0, 1),
    adjoint: str | diffrax.AbstractAdjoint = "recursive",
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 4096,
    checkpoints: int | None = None,
) -> Trajectory:
    """Gradient flow dθ/dt = −lr·∇L(θ) by diffrax, with a chosen adjoint (route 3 above).

    Time is in gradient steps at ``lr`` (the flow at t is the lr → 0 limit of ``t`` steps).
    One run per call; vmap for batches (an adaptive solve under vmap takes as many steps
    as its slowest member).

    Arguments:
        network, x, y, key, params, gain, pair: as ``descent``.
        lr: learning rate setting the time unit, traced.
        ts: save times (T,), increasing, ≥ 0; integration runs from 0 to ts[-1].
        adjoint: "recursive" (``RecursiveCheckpointAdjoint``, exact gradient of the
            computed solution, memory ~ checkpoints × parameters), "backsolve"
            (``BacksolveAdjoint``, O(1) memory in solver steps, gradient accurate only to
            the tolerances; saves parameters at every ts), or any diffrax adjoint.
        solver: diffrax solver; default ``Tsit5()``.
        rtol, atol: step-size controller tolerances (default 1e-6, 1e-9; the error is
            controlled on the parameters).
        max_steps: cap on solver steps (static; sizes the recursive adjoint's memory).
        checkpoints: checkpoints of the recursive adjoint; default chosen by diffrax.

    Returns:
        A ``training.Trajectory`` at ``ts``; ``n_steps`` counts solver steps and
        ``solver_ok`` is False if the solve failed (e.g. reached ``max_steps``).

    Raises:
        ValueError: for bad concrete arguments or an unknown adjoint name.
    """
    x, y, pair, params = _setup(network, x, y, key, params, gain, pair)
    ts = jnp.asarray(ts, network.dtype)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a non-empty 1-D array, got shape {tuple(ts.shape)}")
    if adjoint == "recursive":
        adj = diffrax.RecursiveCheckpointAdjoint(checkpoints)
    elif adjoint == "backsolve":
        adj = diffrax.BacksolveAdjoint()
    elif isinstance(adjoint, diffrax.AbstractAdjoint):
        adj = adjoint
    else:
        raise ValueError(
            f"adjoint must be 'recursive', 'backsolve' or a diffrax adjoint, got {adjoint!r}"
        )
    backsolve = isinstance(adj, diffrax.BacksolveAdjoint)

    def field(t, theta, args):
        lr_, x_, y_ = args
        g = jax.grad(lambda p: loss_fn(p, network, x_, y_)[0])(theta)
        return jax.tree_util.tree_map(lambda v: -lr_ * v, g)

    args = (jnp.asarray(lr, network.dtype), x, y)
    if backsolve:
        saveat = diffrax.SaveAt(ts=ts)
    else:
        saveat = diffrax.SaveAt(ts=ts, fn=lambda t, th, a: _observe(th, network, a[1], a[2], pair))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5() if solver is None else solver,
        t0=jnp.zeros((), ts.dtype),
        t1=ts[-1],
        dt0=None,
        y0=params,
        args=args,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        adjoint=adj,
        max_steps=max_steps,
        throw=False,
    )
    if backsolve:
        recs = jax.vmap(lambda th: _observe(th, network, x, y, pair))(sol.ys)
    else:
        recs = sol.ys
    ok = sol.result == diffrax.RESULTS.successful
    return _trajectory(ts, recs, x, y, pair, sol.stats["num_steps"], ok)


# --------------------------------------------------------------------- theory and fits


def theory_trajectory(
    z0: Float[ArrayLike, "3"],
    ts: Float[ArrayLike, " T"],
    *,
    eta_h: Float[ArrayLike, ""],
    eta_y: Float[ArrayLike, ""],
    dx2: Float[ArrayLike, ""],
    dy2: Float[ArrayLike, ""],
    substeps: int = 16,
) -> Float[Array, "T 3"]:
    """The theory's (h, y, w) at ``ts`` by fixed-step RK4 in regular coordinates.

    A ``lax.scan`` over save intervals, each split into ``substeps`` classical RK4 steps of
    the regular system (2.4)-(2.6) of docs/theory.md §2 (polynomial, not stiff). Unlike
    ``theory.solve`` (adaptive diffrax, reverse mode only) it differentiates to any order
    and in forward mode, which the implicit function theorem in ``fitted_rates`` needs; its
    accuracy is set by ``substeps`` instead of a tolerance (error ∝ (rate·Δt/substeps)⁴;
    check against ``theory.solve``). One trajectory per call; vmap for batches.

    Arguments:
        z0: initial (h0, y0, w0) at ``ts[0]``, h0 > 0.
        ts: save times in steps, (T,), increasing.
        eta_h, eta_y, dx2, dy2: rates and distances as ``theory.solve``.
        substeps: RK4 steps per save interval (static, default 16).

    Returns:
        (T, 3) array of (h, y, w).
    """
    ts = jnp.asarray(ts)
    u0 = theory.to_regular(jnp.asarray(z0, ts.dtype))
    rates = dict(eta_h=eta_h, eta_y=eta_y, dx2=dx2, dy2=dy2)

    def f(u):
        return theory.regular_vector_field(u, **rates)

    def interval(u, dt):
        h = dt / substeps

        def rk4(u, _):
            k1 = f(u)
            k2 = f(u + 0.5 * h * k1)
            k3 = f(u + 0.5 * h * k2)
            k4 = f(u + h * k3)
            return u + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

        u, _ = jax.lax.scan(rk4, u, None, length=substeps)
        return u, u

    _, us = jax.lax.scan(interval, u0, jnp.diff(ts))
    return theory.from_regular(jnp.concatenate([u0[None], us]))


def _fit_loss(log_rates, z_obs, dx2, dy2, ts, substeps):
    z = theory_trajectory(
        z_obs[0],
        ts,
        eta_h=jnp.exp(log_rates[0]),
        eta_y=jnp.exp(log_rates[1]),
        dx2=dx2,
        dy2=dy2,
        substeps=substeps,
    )
    # Each observable relative to its RMS over the record, so none dominates by its units.
    scale = jnp.sqrt(jnp.mean(z_obs**2, axis=0)) + 1e-12
    return jnp.mean(jnp.sum(((z - z_obs) / scale) ** 2, axis=-1))


@functools.partial(jax.jit, static_argnames=("newton_steps", "substeps"))
def fitted_rates(
    ts: Float[ArrayLike, " T"],
    z_obs: Float[ArrayLike, "T 3"],
    *,
    dx2: Float[ArrayLike, ""],
    dy2: Float[ArrayLike, ""],
    eta_h: Float[ArrayLike, ""],
    eta_y: Float[ArrayLike, ""],
    newton_steps: int = 12,
    substeps: int = 16,
) -> Float[Array, "2"]:
    """Effective rates (eta_h, eta_y) fitted to a record, differentiable w.r.t. the record.

    Minimises the least-squares loss of ``theory_trajectory`` (started from the recorded
    first state) against ``z_obs``, each observable scaled by its RMS over time, over
    log-rates by damped Newton steps from the start ``(eta_h, eta_y)`` — a local
    refinement: start from a good fit, e.g. ``rep_align.fit.fit_rates``. The derivative
    follows the implicit function theorem at the optimum θ*: dθ* = −H⁻¹ ∂(∇_θ L)/∂(record)
    d(record), with H the exact Hessian of the loss in θ (two parameters, so H is 2×2). It
    is computed by returning θ* − stop_gradient(H⁻¹) ∇_θ L(stop_gradient(θ*), record),
    whose value is θ* (∇_θ L = 0 there) and whose derivative is the IFT one; the Newton
    iterations themselves are not differentiated. Gradients flow to ``z_obs``, ``ts``,
    ``dx2`` and ``dy2``, hence through a ``descent`` or ``flow`` trajectory to gain or lr.

    Arguments:
        ts: record times (T,) in steps.
        z_obs: recorded (h, y, w) at ``ts``, (T, 3), h0 > 0.
        dx2, dy2: the pair's squared input and target distances.
        eta_h, eta_y: starting rates (> 0).
        newton_steps: Newton iterations (static, default 12).
        substeps: RK4 steps per record interval (static, default 16).

    Returns:
        ``jnp.array([eta_h, eta_y])`` at the optimum.
    """
    ts = jnp.asarray(ts)
    z_obs = jnp.asarray(z_obs, ts.dtype)
    gradient = jax.grad(_fit_loss)
    hessian = jax.hessian(_fit_loss)
    const = jax.lax.stop_gradient((z_obs, dx2, dy2, ts))

    def newton(carry, _):
        theta, lam = carry
        g = gradient(theta, *const, substeps)
        hm = hessian(theta, *const, substeps)
        # Levenberg-Marquardt damping: a rejected step raises it towards gradient descent.
        step = jnp.linalg.solve(hm + lam * jnp.diag(jnp.abs(jnp.diag(hm)) + 1e-12), g)
        cand = theta - jnp.clip(step, -1.0, 1.0)
        better = _fit_loss(cand, *const, substeps) < _fit_loss(theta, *const, substeps)
        theta = jnp.where(better, cand, theta)
        lam = jnp.where(better, lam * 0.1, lam * 10.0)
        return (theta, lam), None

    theta0 = jnp.log(jnp.stack([jnp.asarray(eta_h, ts.dtype), jnp.asarray(eta_y, ts.dtype)]))
    init = (jax.lax.stop_gradient(theta0), jnp.asarray(1e-3, ts.dtype))
    (theta, _), _ = jax.lax.scan(newton, init, None, length=newton_steps)
    theta = jax.lax.stop_gradient(theta)
    h_inv = jax.lax.stop_gradient(jnp.linalg.inv(hessian(theta, *const, substeps)))
    # Value θ* (the gradient vanishes there); derivative −H⁻¹ ∂(∇_θ L)/∂(record): the IFT.
    theta = theta - h_inv @ gradient(theta, z_obs, dx2, dy2, ts, substeps)
    return jnp.exp(theta)
