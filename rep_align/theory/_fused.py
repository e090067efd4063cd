"""A plain Tsit5 loop for large stacked batches of the theory, and their grouping.

``solve`` hands large concrete (untraced) stacked batches on the CPU to ``solve_grouped``:
the members are sorted by a stiffness proxy into groups, spread over the local devices, and
each group is integrated by ``solve_fused``, the same method as diffrax's Tsit5 path in a
loop without diffrax's general machinery (docs/theory.md §2, regular coordinates).
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from rep_align.theory._closed_forms import final_distance_unchecked
from rep_align.theory._fields import from_regular, regular_rhs, to_regular


def worst(x):
    """Max |x| over the finite entries: the error norm of a stacked batch."""
    # Step-size control for a stacked batch: every member must meet the tolerance, so
    # take the worst member. A member that has gone non-finite (only possible for invalid
    # parameters under jit) is ignored here so that it cannot stall the others; it is
    # reported as failed afterwards.
    return jnp.max(jnp.where(jnp.isfinite(x), jnp.abs(x), 0.0))


# Tsit5's coefficients, read from diffrax (one source of truth for both integrators).
_TSIT5 = diffrax.Tsit5.tableau
_TSIT5_A = tuple(tuple(float(v) for v in row) for row in _TSIT5.a_lower)
_TSIT5_ERR = tuple(float(v) for v in _TSIT5.b_error)
# first same as last: the last stage is evaluated at the step's solution
assert np.allclose(_TSIT5.a_lower[-1], _TSIT5.b_sol[:-1]) and _TSIT5.b_sol[-1] == 0


def _regular_rhs_stacked(u, args):
    """``regular_rhs`` on a component-major state ``u`` of shape (3, N)."""
    return jnp.stack(regular_rhs(u[0], u[1], u[2], *args))


@functools.partial(jax.jit, static_argnames=("rtol", "atol", "max_steps"))
def solve_fused(z0, ts, params, *, rtol, atol, max_steps):
    """The theory for a stacked batch with a plain Tsit5 loop (concrete CPU batches).

    Same method as ``solve(batch="stacked")`` through diffrax: Tsit5 in regular
    coordinates, one step size for the batch controlled by the worst member (max norm of
    the error scaled by ``atol + rtol * max(|u0|, |u1|)``, non-finite members ignored), an
    integral controller (safety 0.9, factor in [0.2, 10], no growth after a rejection),
    the initial step of Hairer, Nørsett & Wanner (Solving ODEs I, II.4), and Tsit5's own
    dense output at the save times. The state is one (3, N) array, so every stage is a few
    large fused loops, and none of diffrax's general per-step bookkeeping (events,
    adjoints, stage buffers, per-leaf selects) runs. Measured here (2-core x86, float64,
    rtol 1e-8, random pairs as one stack): 81 µs per step for 2,500 members and 214 µs
    for 10,000, against 90 and 379 µs through diffrax. Not reverse-differentiable (a
    ``lax.while_loop``), so ``solve`` uses it only outside of tracing.

    Arguments: z0 (N, 3), ts (T,), params (4, N) = (eta_h, eta_y, dx2, dy2) rows;
    rtol, atol, max_steps static. Returns z (N, T, 3), success (N,), accepted steps (N,).
    """
    dtype = z0.dtype
    n, n_times = z0.shape[0], ts.shape[0]
    args = tuple(params)
    u0 = to_regular(z0).T
    t0, t_end = ts[0], ts[-1]

    f0 = _regular_rhs_stacked(u0, args)
    sc0 = atol + rtol * jnp.abs(u0)
    d0, d1 = worst(u0 / sc0), worst(f0 / sc0)
    h0 = jnp.minimum(jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1), t_end - t0)
    d2 = worst((_regular_rhs_stacked(u0 + h0 * f0, args) - f0) / sc0) / h0
    d12 = jnp.maximum(d1, d2)
    h1 = jnp.where(d12 <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / d12) ** (1.0 / 5.0))
    dt0 = jnp.minimum(100.0 * h0, h1)
    dense_cls = diffrax.Tsit5.interpolation_cls

    def cond(state):
        t, *_, iters = state
        return (t < t_end) & (iters < max_steps)

    def body(state):
        t, dt, u, f, i_save, ys, accepted, iters = state
        last = dt >= t_end - t
        h = jnp.where(last, t_end - t, dt)
        ks = [f * h]
        for row in _TSIT5_A:
            ui = u + functools.reduce(jnp.add, [a * k for a, k in zip(row, ks, strict=True)])
            fi = _regular_rhs_stacked(ui, args)
            ks.append(fi * h)
        u1, f1 = ui, fi  # first same as last: the last stage is the solution
        err = functools.reduce(jnp.add, [e * k for e, k in zip(_TSIT5_ERR, ks, strict=True)])
        scaled = worst(err / (atol + rtol * jnp.maximum(jnp.abs(u), jnp.abs(u1))))
        accept = scaled <= 1.0
        t1 = jnp.where(last, t_end, t + h)

        def save_cond(carry):
            i, _ = carry
            return accept & (i < n_times) & (ts[jnp.minimum(i, n_times - 1)] <= t1)

        def save_body(carry):
            i, ys = carry
            dense = dense_cls(t0=t, t1=t1, y0=u, y1=u1, k=jnp.stack(ks))
            val = jnp.where(ts[i] >= t1, u1, dense.evaluate(ts[i]))
            return i + 1, ys.at[i].set(val)

        i_save, ys = jax.lax.while_loop(save_cond, save_body, (i_save, ys))
        grow = jnp.where(scaled > 0, 0.9 * jnp.maximum(scaled, 1e-30) ** (-1.0 / 5.0), 10.0)
        factor = jnp.clip(grow, 0.2, jnp.where(accept, 10.0, 0.9))
        return (
            jnp.where(accept, t1, t),
            h * factor,
            jnp.where(accept, u1, u),
            jnp.where(accept, f1, f),
            i_save,
            ys,
            accepted + accept.astype(jnp.int32),
            iters + 1,
        )

    ys0 = jnp.zeros((n_times, 3, n), dtype).at[0].set(u0)
    init = (t0, dt0, u0, f0, jnp.asarray(1), ys0, jnp.asarray(0, jnp.int32), jnp.asarray(0))
    t, _, _, _, i_save, ys, accepted, _ = jax.lax.while_loop(cond, body, init)
    z = from_regular(jnp.transpose(ys, (2, 0, 1)))
    ok = (t >= t_end) & (i_save == n_times) & jnp.all(jnp.isfinite(z), axis=(-2, -1))
    z = jnp.where(ok[:, None, None], z, jnp.nan)
    return z, ok, jnp.broadcast_to(accepted, (n,))


# Large concrete stacked batches on the CPU are split into groups of similar stiffness: a
# stacked solve pays the step count of its stiffest member for every member, and
# different members are stiff at different times. Groups also let independent host
# devices (one per core, see rep_align.devices) work in parallel. Each group runs the
# plain Tsit5 loop ``solve_fused``. Too many groups cost more in per-step overhead than
# they save: measured here (2-core x86, 2 host devices, float64, rtol 1e-8, 10^4 random
# pairs) one stack took 46-53 ms, 2 groups 36-40 ms, 4 groups 32-33 ms, 8 groups 30 ms,
# 16 groups 28-29 ms (through diffrax: 84, 48, 41, 38 and 40 ms).
_GROUP_MEMBERS = 1250
_MAX_GROUPS = 64


def solve_group_count(n: int) -> int:
    """Number of stiffness groups ``solve(batch="auto")`` splits a concrete stacked batch
    of ``n`` members into, on this backend and its local devices (1: no grouping)."""
    if jax.default_backend() != "cpu":
        return 1
    n_dev = jax.local_device_count()
    groups = min(_MAX_GROUPS, max(1, round(n / _GROUP_MEMBERS)))
    if n_dev > 1 and n >= 512 * n_dev:
        groups = n_dev * max(1, round(groups / n_dev))
    return groups


def _stiffness_proxy(z0: np.ndarray, params: np.ndarray, t_span: float) -> np.ndarray:
    # Fastest rates of the regular system, at the start and at the converged state: the
    # decoder term η_y·h and the encoder term η_h·dx2·y/h (squared decoder gain).
    h0, y0 = z0[:, 0], z0[:, 1]
    eh, ey, dx2, dy2 = params
    with np.errstate(divide="ignore", invalid="ignore"):
        h_inf = np.asarray(final_distance_unchecked(h0, y0, eh, ey, dx2, dy2))
        gain_inf = np.where(h_inf > 0, dy2 / h_inf, 0.0)
    rate = ey * np.maximum(h0, h_inf) + eh * dx2 * np.maximum(y0 / h0, gain_inf)
    return np.nan_to_num(rate * t_span, nan=np.inf)


def solve_grouped(z0f, ts, pf, n_groups, *, rtol, atol, max_steps):
    """Stacked solves of groups sorted by a stiffness proxy, spread over local devices.

    Arguments: z0f (N, 3), ts (T,), pf (4, N) as ``solve_fused``, concrete; n_groups from
    ``solve_group_count``. Returns z (N, T, 3), success (N,), accepted steps (N,) in the
    caller's order.
    """
    n = z0f.shape[0]
    z0n, pn = np.asarray(z0f), np.asarray(pf)
    order = np.argsort(_stiffness_proxy(z0n, pn, float(ts[-1] - ts[0])), kind="stable")
    size = -(-n // n_groups)
    # equal group sizes (one compilation): pad the last group by repeating its last member
    padded = np.concatenate([order, np.full(size * n_groups - n, order[-1])])
    devices = jax.local_devices()[:n_groups]
    n_dev = len(devices)
    # Groups go to devices in snake order (0, 1, …, n−1, n−1, …, 0, …): they are sorted by
    # stiffness, so this evens out the devices' work.
    owner = [min(g % (2 * n_dev), 2 * n_dev - 1 - g % (2 * n_dev)) for g in range(n_groups)]
    # The groups' solves are dispatched asynchronously, so the devices work side by side
    # (``solve_fused`` has no host callbacks, which would make dispatch synchronous).
    ts_host = np.asarray(ts)
    parts = []
    for g in range(n_groups):
        idx = padded[g * size : (g + 1) * size]
        args = jax.device_put((z0n[idx], ts_host, pn[:, idx]), devices[owner[g]])
        parts.append(solve_fused(*args, rtol=rtol, atol=atol, max_steps=max_steps))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return _reassemble(jax.device_put(parts, devices[0]), inverse)


@jax.jit
def _reassemble(parts, inverse):
    # Concatenate the groups' (z, ok, steps) and undo the stiffness sort (drops padding).
    return tuple(jnp.concatenate([p[k] for p in parts])[inverse] for k in range(3))
