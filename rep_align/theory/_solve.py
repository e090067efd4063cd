"""Integration of the two-point theory: ``solve`` and its diffrax path (docs/theory.md §2).

The theory is integrated in the regular coordinates (2.4)-(2.7), smooth through h = 0; the
ablations (docs/theory.md §4) only exist in (h, y, w) form (2.1)-(2.3). Large concrete
stacked batches go to ``rep_align.theory._fused``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from rep_align import checks
from rep_align.theory._fields import VARIANTS, from_regular, hyw_rhs, regular_rhs, to_regular
from rep_align.theory._fused import solve_group_count, solve_grouped, worst


def _check_state(name: str, z) -> None:
    if jnp.shape(z)[-1:] != (3,):
        raise ValueError(
            f"{name} must have a last axis of size 3 (h, y, w), got shape {jnp.shape(z)}"
        )
    checks.values(name, z)
    v = checks.concrete(z)
    if v is not None:
        checks.values(f"{name}[..., 0] (h0)", v[..., 0], positive=True)
        checks.values(f"{name}[..., 1] (y0)", v[..., 1], nonnegative=True)


def _check_times(ts) -> None:
    if jnp.ndim(ts) < 1 or jnp.shape(ts)[-1] < 2:
        raise ValueError(
            f"ts must have at least 2 times along its last axis, got shape {jnp.shape(ts)}"
        )
    checks.values("ts", ts)
    v = checks.concrete(ts)
    if v is not None and not np.all(np.diff(v, axis=-1) > 0):
        raise ValueError("ts must be strictly increasing along its last axis")


def _float_dtype(*xs):
    dtype = jnp.result_type(*xs, float)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


#: What ``SolveInfo.result`` codes mean: why a solve failed, in words (0: it did not). Codes
#: 1-4 translate diffrax's ``RESULTS`` (other results of diffrax are code 6).
RESULT_MESSAGES: tuple[str, ...] = (
    "successful",
    "max_steps reached before the end time (the step size collapsed or the horizon is too "
    "long for max_steps)",
    "step size too small (the controller's minimum step was reached)",
    "the implicit solver's nonlinear solve diverged",
    "the implicit solver's nonlinear solve reached its maximum number of iterations",
    "non-finite values (NaN or infinity) in the solution",
    "the solver failed (another diffrax result)",
    "max_steps reached or non-finite values (the grouped solver of large batches does not "
    "tell them apart)",
)
_NONFINITE, _OTHER, _GROUPED = 5, 6, 7


@dataclass(frozen=True)
class SolveInfo:
    """Per-trajectory solver report returned by ``solve(..., full_output=True)``.

    Attributes:
        success: bool array of the batch shape; False where the solver failed (the
            trajectory is then ``nan``) or produced non-finite values.
        num_steps: accepted solver steps (for a stacked batch, the shared count).
        result: int array of the batch shape, why each solve failed: an index into
            ``RESULT_MESSAGES`` (0 where it succeeded).
    """

    success: Bool[Array, "..."]
    num_steps: Int[Array, "..."]
    result: Int[Array, "..."]


jax.tree_util.register_dataclass(
    SolveInfo, data_fields=["success", "num_steps", "result"], meta_fields=[]
)


def _result_code(result) -> Int[Array, ""]:
    # diffrax's RESULTS item -> index into RESULT_MESSAGES
    r = diffrax.RESULTS
    known = (
        r.successful,
        r.max_steps_reached,
        r.dt_min_reached,
        r.nonlinear_divergence,
        r.nonlinear_max_steps_reached,
    )
    return jnp.select([result == k for k in known], list(range(len(known))), _OTHER)


def _batch_max_norm(err):
    # ``worst`` over a state given as a tuple of arrays (the diffrax path)
    return functools.reduce(jnp.maximum, [worst(e) for e in err])


def _tolerances(dtype, rtol: float, atol: float) -> tuple[float, float]:
    # An error target below the working precision cannot be met: the step size collapses
    # and the solver runs into max_steps. Floor the tolerances at a few ulps.
    eps = float(jnp.finfo(dtype).eps)
    return max(rtol, 64 * eps), max(atol, 64 * eps)


def _diffeqsolve(rhs, solver, y0, ts, args, norm, rtol, atol, max_steps):
    """One diffrax solve saving at ``ts``; returns (ys, result code, accepted steps)."""
    controller = diffrax.PIDController(rtol=rtol, atol=atol, norm=norm)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys, _result_code(sol.result), sol.stats["num_accepted_steps"]


@functools.partial(jax.jit, static_argnames=("variant", "rtol", "atol", "max_steps", "stacked"))
def _solve_flat(z0, ts, params, *, variant, rtol, atol, max_steps, stacked):
    """Integrate N trajectories: z0 (N, 3); ts (T,) if stacked else (N, T); params (4, N).

    Returns z (N, T, 3), result codes (N,), accepted steps (N,). The state is a tuple of three
    arrays rather than one (..., 3) array: the right-hand side is then purely elementwise
    (no stacking or slicing per stage), about twice as fast for large stacked batches.
    """
    if variant == "theory":
        solver = diffrax.Tsit5()
        u0 = to_regular(z0)

        def rhs(t, u, args):
            return regular_rhs(*u, *args)
    else:
        # The ablations exist only in the (h, y, w) form, stiff near h = 0: use an
        # L-stable implicit solver.
        solver = diffrax.Kvaerno5()
        u0 = z0

        def rhs(t, u, args):
            return hyw_rhs(*u, *args, variant)

    u0 = (u0[:, 0], u0[:, 1], u0[:, 2])
    args = tuple(params)
    if stacked:
        # One system holding the whole batch, one step size for all members.
        ys, code, nsteps = _diffeqsolve(
            rhs, solver, u0, ts, args, _batch_max_norm, rtol, atol, max_steps
        )
        ys = tuple(c.T for c in ys)  # (T, N) -> (N, T)
        code = jnp.broadcast_to(code, (z0.shape[0],))
        nsteps = jnp.broadcast_to(nsteps, (z0.shape[0],))
    else:
        ys, code, nsteps = jax.vmap(
            lambda y0_, ts_, args_: _diffeqsolve(
                rhs, solver, y0_, ts_, args_, optx.rms_norm, rtol, atol, max_steps
            )
        )(u0, ts, args)
    z = jnp.stack(ys, axis=-1)
    z = from_regular(z) if variant == "theory" else z
    code = jnp.where((code == 0) & ~jnp.all(jnp.isfinite(z), axis=(-2, -1)), _NONFINITE, code)
    z = jnp.where((code == 0)[:, None, None], z, jnp.nan)
    return z, code, nsteps


def solve(
    z0: Float[ArrayLike, "... 3"],
    ts: Float[ArrayLike, "... times"],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    variant: str = "theory",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 16_384,
    batch: Literal["auto", "stacked", "vmap"] = "auto",
    full_output: bool = False,
):
    """Integrate the two-point effective theory from ``z0`` and return (h, y, w) at ``ts``.

    The theory is integrated in the regular coordinates (s, p, q) of docs/theory.md §2,
    equations (2.4)-(2.7), with diffrax's Tsit5 (explicit, adaptive): smooth through h = 0,
    where the (h, y, w) form (2.1)-(2.3) is singular and stiff. The ablation variants exist
    only in (h, y, w) form and use the L-stable implicit Kvaerno5.

    Batches: the leading dimensions of all arguments broadcast together. With one shared
    time grid (``ts`` 1-D) the batch of the theory is integrated as one stacked system with
    one step size for all members, the step controlled by the worst member (every member
    meets the tolerance); this avoids the masked while-loop iterations of ``vmap`` over
    independent solves. Per-member time grids, and the ablations (whose members can fail
    independently), are integrated with ``vmap``. Under an outer ``jax.vmap`` this function
    sees one member and the outer vmap batches it. Large concrete (untraced) batches on the
    CPU (``batch="auto"``, from about 1,000 members with one host device per core, 1,875
    with one device) are sorted by a stiffness proxy into groups stacked separately, spread
    over the host devices, each integrated by the same method in a plain JAX loop without
    diffrax's general machinery (about twice as fast per step, not differentiable, which
    does not matter outside tracing); their results agree with a traced call to within the
    tolerance, not bit for bit.

    Arguments:
        z0: initial state ``(..., 3)`` = (h0, y0, w0); requires h0 > 0, y0 >= 0.
        ts: save times in gradient steps, strictly increasing, ``(T,)`` or ``(..., T)``;
            ``ts[..., 0]`` is the time of ``z0``.
        eta_h, eta_y: effective learning rates (> 0) per step.
        dx2, dy2: squared input (> 0 for learning to happen, >= 0 allowed) and target
            (>= 0) distances.
        variant: ``"theory"`` (default) or an ablation (4.1)-(4.4) of docs/theory.md §4
            (see ``VARIANTS``).
        rtol, atol: tolerances of the adaptive step-size controller, relative to the
            integrated coordinates. They are floored at 64 ulps of the dtype (float32:
            about 7.6e-6), below which no step could be accepted.
        max_steps: cap on solver steps per solve (>= 1); a solve that hits it is reported
            failed. Defaults: rtol 1e-8, atol 1e-10, max_steps 16,384.
        batch: ``"auto"`` (stacked where possible), ``"stacked"`` (requires 1-D ``ts`` and
            the theory variant) or ``"vmap"``.
        full_output: also return a ``SolveInfo`` with per-trajectory success, steps and
            the reason of a failure (``RESULT_MESSAGES``).

    Returns:
        ``z`` of shape ``batch_shape + (T, 3)``: h, y, w at the times ``ts`` (for unbatched
        inputs ``ts.shape + (3,)``). Failed trajectories are all ``nan``. With
        ``full_output=True``, the pair ``(z, info)``.

    Raises:
        ValueError: on concrete bad input: ``z0`` not of last size 3, h0 <= 0, y0 < 0,
            non-finite values, non-positive rates, negative dx2 or dy2, ``ts`` not strictly
            increasing, non-positive rtol or atol, max_steps not a positive integer,
            unknown ``variant`` or ``batch``.
    """
    checks.choice("variant", variant, VARIANTS)
    checks.choice("batch", batch, ("auto", "stacked", "vmap"))
    max_steps = checks.integer("max_steps", max_steps, minimum=1)
    checks.real("rtol", rtol, positive=True, finite=False)
    checks.real("atol", atol, positive=True, finite=False)
    _check_state("z0", z0)
    _check_times(ts)
    checks.values("eta_h", eta_h, positive=True)
    checks.values("eta_y", eta_y, positive=True)
    checks.values("dx2", dx2, nonnegative=True)
    checks.values("dy2", dy2, nonnegative=True)

    dtype = _float_dtype(z0, ts, eta_h, eta_y, dx2, dy2)
    z0 = jnp.asarray(z0, dtype)
    ts = jnp.asarray(ts, dtype)
    params = [jnp.asarray(a, dtype) for a in (eta_h, eta_y, dx2, dy2)]
    batch_shape = jnp.broadcast_shapes(z0.shape[:-1], ts.shape[:-1], *(p.shape for p in params))
    n = math.prod(batch_shape)
    n_times = ts.shape[-1]
    shared_ts = ts.ndim == 1
    if batch == "stacked" and not (shared_ts and variant == "theory"):
        raise ValueError("batch='stacked' needs a 1-D ts and variant='theory'")
    stacked = batch == "stacked" or (batch == "auto" and shared_ts and variant == "theory")

    z0f = jnp.broadcast_to(z0, batch_shape + (3,)).reshape(n, 3)
    pf = jnp.stack([jnp.broadcast_to(p, batch_shape).reshape(n) for p in params])
    tsf = ts if stacked else jnp.broadcast_to(ts, batch_shape + (n_times,)).reshape(n, n_times)
    r, a = _tolerances(dtype, rtol, atol)
    traced = not checks.is_concrete((z0f, tsf, pf))
    n_groups = solve_group_count(n) if stacked and batch == "auto" and not traced else 1
    if n_groups > 1:
        z, ok, nsteps = solve_grouped(z0f, tsf, pf, n_groups, rtol=r, atol=a, max_steps=max_steps)
        code = jnp.where(ok, 0, _GROUPED)
    else:
        z, code, nsteps = _solve_flat(
            z0f, tsf, pf, variant=variant, rtol=r, atol=a, max_steps=max_steps, stacked=stacked
        )
    z = z.reshape(batch_shape + (n_times, 3))
    if not full_output:
        return z
    code = code.reshape(batch_shape)
    return z, SolveInfo(success=code == 0, num_steps=nsteps.reshape(batch_shape), result=code)
