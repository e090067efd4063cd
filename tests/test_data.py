"""rep_align.data: the two-point task and XOR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align.data import two_points, xor


def test_two_points_default_values():
    x, y = two_points()
    np.testing.assert_allclose(x, [[-1.0], [0.0]])
    np.testing.assert_allclose(y, [[0.6], [0.6 + np.sqrt(0.5)]], rtol=1e-6)
    assert x.dtype == y.dtype == jnp.float32


@pytest.mark.parametrize(
    ("dx2", "dy2", "in_dim", "out_dim"), [(1.0, 0.5, 1, 1), (0.25, 2.0, 3, 2), (2.0, 0.0, 5, 4)]
)
def test_two_points_distances(dx2, dy2, in_dim, out_dim):
    x, y = two_points(dx2=dx2, dy2=dy2, in_dim=in_dim, out_dim=out_dim)
    assert x.shape == (2, in_dim) and y.shape == (2, out_dim)
    np.testing.assert_allclose(np.sum((x[1] - x[0]) ** 2), dx2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.sum((y[1] - y[0]) ** 2), dy2, rtol=1e-6, atol=1e-7)
    # PRESETS.md: the first input is (−1, …, −1)/√d_in, the first target (0.6, …)/√d_out.
    np.testing.assert_allclose(x[0], -np.ones(in_dim) / np.sqrt(in_dim), rtol=1e-6)
    np.testing.assert_allclose(y[0], 0.6 * np.ones(out_dim) / np.sqrt(out_dim), rtol=1e-6)


def test_two_points_vmaps_over_geometry():
    dx2 = jnp.array([0.25, 1.0, 2.25])
    dy2 = jnp.array([0.0, 0.5, 1.0])
    xs, ys = jax.vmap(lambda a, b: two_points(dx2=a, dy2=b, in_dim=2))(dx2, dy2)
    assert xs.shape == (3, 2, 2) and ys.shape == (3, 2, 1)
    np.testing.assert_allclose(jnp.sum((xs[:, 1] - xs[:, 0]) ** 2, axis=-1), dx2, rtol=1e-6)
    np.testing.assert_allclose(jnp.sum((ys[:, 1] - ys[:, 0]) ** 2, axis=-1), dy2, atol=1e-6)


def test_two_points_float64(x64):
    x, y = two_points(dx2=0.3)
    assert x.dtype == jnp.float64
    assert float(jnp.sum((x[1] - x[0]) ** 2)) == pytest.approx(0.3, rel=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(dx2=-1.0), "dx2"),
        (dict(dy2=float("inf")), "dy2"),
        (dict(dx2=[1.0, 2.0]), "dx2"),
        (dict(in_dim=0), "in_dim"),
        (dict(out_dim=1.5), "out_dim"),
    ],
)
def test_two_points_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_points(**kwargs)


def test_xor():
    x, y = xor()
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [[0], [1], [1], [0]])
    assert x.shape == (4, 2) and y.shape == (4, 1)
    # The XOR rule itself.
    np.testing.assert_array_equal(y[:, 0], np.logical_xor(x[:, 0], x[:, 1]))
