"""The fused gradients (rep_align.training._fused) give the autodiff step's numbers exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align.data import two_points
from rep_align.networks import make_network
from rep_align.training import _fused, train, train_ensemble

FIELDS = ("loss", "h", "y", "w", "m", "diverged_step")


def _both(fn):
    """fn() with the fused step, then with the autodiff step."""
    assert _fused.ENABLED
    fused = fn()
    _fused.ENABLED = False
    try:
        plain = fn()
    finally:
        _fused.ENABLED = True
    return fused, plain


def _assert_identical(fused, plain):
    """Trajectories (and, for ``(trajectory, params)`` pairs, final parameters) equal bit
    for bit."""
    if isinstance(fused, tuple):
        (fused, pf), (plain, pp) = fused, plain
        for a, b in zip(jax.tree_util.tree_leaves(pf), jax.tree_util.tree_leaves(pp), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for f in FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(fused, f)), np.asarray(getattr(plain, f)))


def _data(n, dtype):
    if n == 2:
        return two_points(dtype=dtype)
    rng = np.random.default_rng(n)
    return (
        jnp.asarray(rng.normal(size=(n, 3)), dtype),
        jnp.asarray(rng.normal(size=(n, 2)), dtype),
    )


@pytest.mark.parametrize("arch", ["mlp", "resnet"])
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_fused_train_is_bitwise_the_autodiff_train(arch, activation, n):
    x, y = _data(n, jnp.float32)
    net = make_network(
        arch, in_dim=x.shape[1], out_dim=y.shape[1], width=48, depth=5, activation=activation
    )
    assert _fused.supported(net, n, "sgd")

    def run():
        traj, params = train(
            net, x, y, key=jax.random.key(3), lr=0.05, steps=300, return_params=True
        )
        return traj, params

    fused, plain = _both(run)
    _assert_identical(fused, plain)
    tf = fused[0]
    # The run moved: equality is not of two frozen networks.
    assert float(tf.loss[-1]) < 0.5 * float(tf.loss[0])


def test_fused_ensemble_is_bitwise_and_float64_too():
    x, y = two_points()
    net = make_network("mlp", in_dim=1, out_dim=1, width=64, depth=6)
    keys = jax.random.split(jax.random.key(0), 3)
    _assert_identical(*_both(lambda: train_ensemble(net, x, y, keys=keys, lr=0.01, steps=200)))
    with jax.enable_x64(True):
        x64, y64 = two_points(dtype=jnp.float64)
        net64 = make_network("mlp", in_dim=1, out_dim=1, width=64, depth=6, dtype=jnp.float64)
        _assert_identical(*_both(lambda: train(net64, x64, y64, key=keys[0], lr=0.01, steps=200)))


def test_fused_minibatch_sgd_is_bitwise():
    x, y = _data(4, jnp.float32)
    net = make_network("mlp", in_dim=3, out_dim=2, width=40, depth=4)

    def run():
        return train(
            net,
            x,
            y,
            key=jax.random.key(5),
            lr=0.05,
            steps=200,
            batch_size=2,
            return_params=True,
        )

    fused, plain = _both(run)
    _assert_identical(fused, plain)
    tf = fused[0]
    assert float(tf.loss[-1]) < 0.5 * float(tf.loss[0])


def test_fused_step_only_where_it_applies():
    mlp = make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2)
    assert _fused.supported(mlp, 2, "sgd")
    assert _fused.supported(mlp, _fused.MAX_POINTS, "sgd")
    assert not _fused.supported(mlp, _fused.MAX_POINTS + 1, "sgd")
    assert not _fused.supported(mlp, 2, "adam")
    drop = make_network("dropout", in_dim=1, out_dim=1, width=8, depth=2)
    assert not _fused.supported(drop, 2, "sgd")
    cnn = make_network("cnn", in_dim=1, out_dim=1, width=64, depth=2)
    assert not _fused.supported(cnn, 2, "sgd")
