"""Differentiable dynamics: gradients against central finite differences (float64)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align import data, dynamics, networks, theory, training


def _central(f, x, eps):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


@pytest.fixture
def net(x64):
    # tanh: smooth, so finite differences are meaningful (see the dynamics docstring on
    # the leaky-ReLU kink of the two-point task).
    return networks.make_network(
        "mlp", in_dim=1, out_dim=1, width=8, depth=2, activation="tanh", dtype=jnp.float64
    )


def test_descent_is_training_train(net):
    x, y = data.two_points(dtype=jnp.float64)
    key = jax.random.key(3)
    a = dynamics.descent(net, x, y, lr=0.05, steps=100, record_every=10, key=key, gain=0.8)
    b = training.train(net, x, y, lr=0.05, steps=100, record_every=10, key=key, gain=0.8)
    for k in ("times", "loss", "h", "y", "w", "m"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-12, atol=1e-15)
    assert not a.diverged


def test_final_loss_gradient_wrt_lr_through_scan(net):
    key = jax.random.key(0)

    @jax.jit
    def final_loss(lr):
        x, y = data.two_points(dtype=jnp.float64)
        traj = dynamics.descent(net, x, y, lr=lr, steps=200, record_every=20, key=key)
        return traj.loss[-1]

    grad = jax.grad(final_loss)(0.05)
    fd = _central(final_loss, 0.05, 1e-6)
    assert grad != 0
    np.testing.assert_allclose(grad, fd, rtol=1e-6)

    # Without checkpointing the same gradient (checkpointing only trades memory for time).
    def unchecked(lr):
        x, y = data.two_points(dtype=jnp.float64)
        return dynamics.descent(
            net, x, y, lr=lr, steps=200, record_every=20, key=key, checkpoint=False
        ).loss[-1]

    np.testing.assert_allclose(jax.grad(jax.jit(unchecked))(0.05), grad, rtol=1e-12)


def test_final_distance_gradient_wrt_gain_and_dx2_through_gradient_flow(net):
    key = jax.random.key(0)

    # One compiled function per adjoint; gain, dx2 and the horizon are all traced.
    @functools.partial(jax.jit, static_argnames="adjoint")
    def h_final(gain, dx2, t_end, adjoint="recursive"):
        def h(gain, dx2):
            x, y = data.two_points(dx2=dx2, dy2=0.5, dtype=jnp.float64)
            traj = dynamics.flow(
                net,
                x,
                y,
                lr=0.05,
                ts=jnp.stack([jnp.zeros_like(t_end), t_end]),
                key=key,
                gain=gain,
                rtol=1e-9,
                atol=1e-12,
                adjoint=adjoint,
                max_steps=256,
            )
            return traj.h[-1, 1], (traj.loss[-1], traj.solver_ok)

        return jax.value_and_grad(h, argnums=(0, 1), has_aux=True)(gain, dx2)

    # Long enough that training has converged: h(T) is h∞.
    (_, (loss, ok)), (d_gain, d_dx2) = h_final(1.0, 1.2, 200.0)
    assert ok and loss < 1e-8
    fd_gain = _central(lambda g: h_final(g, 1.2, 200.0)[0][0], 1.0, 1e-5)
    fd_dx2 = _central(lambda d: h_final(1.0, d, 200.0)[0][0], 1.2, 1e-5)
    np.testing.assert_allclose(d_gain, fd_gain, rtol=1e-6)
    np.testing.assert_allclose(d_dx2, fd_dx2, rtol=1e-6)
    # Backsolve agrees on a short horizon (it degrades once training has converged).
    short = h_final(1.0, 1.2, 10.0)[1]
    back = h_final(1.0, 1.2, 10.0, adjoint="backsolve")[1]
    np.testing.assert_allclose(back, short, rtol=1e-6)


def test_theory_gradient_wrt_eta_h(x64):
    z0 = jnp.array([0.05, 0.01, 0.02])
    ts = jnp.linspace(0.0, 3000.0, 31)

    def h_end(eta_h):
        return theory.solve(z0, ts, eta_h=eta_h, eta_y=0.02, dx2=1.0, dy2=0.5)[-1, 0]

    grad = jax.grad(h_end)(0.005)
    assert abs(grad) > 1
    np.testing.assert_allclose(grad, _central(h_end, 0.005, 1e-7), rtol=1e-6)
    # The fixed-step version agrees with the adaptive solve.
    rk4 = dynamics.theory_trajectory(z0, ts, eta_h=0.005, eta_y=0.02, dx2=1.0, dy2=0.5)
    ref = theory.solve(z0, ts, eta_h=0.005, eta_y=0.02, dx2=1.0, dy2=0.5)
    np.testing.assert_allclose(rk4, ref, rtol=1e-6, atol=1e-9)


def test_fitted_rates_recover_the_theory_and_differentiate(x64):
    z0 = jnp.array([0.05, 0.01, 0.02])
    ts = jnp.linspace(0.0, 1500.0, 16)
    record = theory.solve(z0, ts, eta_h=0.005, eta_y=0.02, dx2=1.0, dy2=0.5)
    noise = 1e-3 * jnp.sin(jnp.arange(48.0)).reshape(16, 3) * record

    # One compiled function: fitted rates of a (perturbed) record and d(eta_h)/d(dy2).
    @jax.jit
    def fit(dy2, noise_scale, start):
        def eta_h(dy2):
            rates = dynamics.fitted_rates(
                ts,
                record + noise_scale * noise,
                dx2=1.0,
                dy2=dy2,
                eta_h=start[0],
                eta_y=start[1],
                substeps=8,
            )
            return rates[0], rates

        return jax.value_and_grad(eta_h, has_aux=True)(dy2)

    (_, rates), _ = fit(0.5, 0.0, jnp.array([0.003, 0.03]))
    np.testing.assert_allclose(rates, [0.005, 0.02], rtol=1e-5)
    # Implicit-function-theorem derivative against finite differences of the refit.
    start = jnp.array([0.005, 0.02])
    (_, _), grad = fit(0.5, 1.0, start)
    fd = _central(lambda d: fit(d, 1.0, start)[0][0], 0.5, 1e-5)
    assert grad != 0
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_bad_arguments_raise(net):
    x, y = data.two_points(dtype=jnp.float64)
    with pytest.raises(ValueError, match="exactly one of key"):
        dynamics.descent(net, x, y, lr=0.1, steps=10)
    with pytest.raises(ValueError, match="must divide"):
        dynamics.descent(net, x, y, lr=0.1, steps=10, record_every=3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="adjoint"):
        dynamics.flow(net, x, y, lr=0.1, ts=[0.0, 1.0], key=jax.random.key(0), adjoint="magic")
