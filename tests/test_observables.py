"""rep_align.observables against direct NumPy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align.observables import (
    PairObservables,
    hidden_squared_distances,
    pair_observables,
    squared_distances,
)


def _random(n=5):
    keys = jax.random.split(jax.random.key(3), 6)
    x = jax.random.normal(keys[0], (n, 3))
    y = jax.random.normal(keys[1], (n, 2))
    out = jax.random.normal(keys[2], (n, 2))
    hiddens = (
        jax.random.normal(keys[3], (n, 7)),
        jax.random.normal(keys[4], (n, 4, 3)),  # e.g. a convolution layer
        jax.random.normal(keys[5], (n, 7)),
    )
    return x, y, out, hiddens


@pytest.mark.parametrize("pair", [(0, 1), (3, 1), (4, 2)])
def test_pair_observables_match_numpy(pair):
    x, y, out, hiddens = (jax.tree.map(np.asarray, v) for v in _random())
    a, b = pair
    obs = pair_observables(x, y, out, hiddens, pair=pair)
    assert isinstance(obs, PairObservables)
    dyh, dys = out[b] - out[a], y[b] - y[a]
    np.testing.assert_allclose(obs.dx2, np.sum((x[b] - x[a]) ** 2), rtol=1e-6)
    np.testing.assert_allclose(obs.dy2, np.sum(dys**2), rtol=1e-6)
    ref_h = [np.sum((h[b] - h[a]) ** 2) for h in hiddens]
    assert obs.h.shape == (3,)
    np.testing.assert_allclose(obs.h, ref_h, rtol=1e-6)
    y_ref = float(dyh @ dyh)
    np.testing.assert_allclose(obs.y, y_ref, rtol=1e-6)
    np.testing.assert_allclose(obs.w, float(dyh @ (dyh - dys)), rtol=1e-5, atol=1e-6)
    mean_err = (out[a] + out[b]) / 2 - (y[a] + y[b]) / 2
    np.testing.assert_allclose(obs.m, float(mean_err @ mean_err), rtol=1e-6)


def test_pair_observables_symmetric_in_the_pair():
    x, y, out, hiddens = _random()
    ab = pair_observables(x, y, out, hiddens, pair=(1, 3))
    ba = pair_observables(x, y, out, hiddens, pair=(3, 1))
    for u, v in zip(jax.tree.leaves(ab), jax.tree.leaves(ba), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6)


def test_perfect_fit_gives_y_equal_dy2_and_w_zero():
    x, y, _, hiddens = _random()
    obs = pair_observables(x, y, y, hiddens)
    np.testing.assert_allclose(obs.y, obs.dy2, rtol=1e-6)
    np.testing.assert_allclose(obs.w, 0.0, atol=1e-6)
    np.testing.assert_allclose(obs.m, 0.0, atol=1e-12)


def test_pair_observables_jit_and_vmap():
    x, y, out, hiddens = _random()
    f = jax.jit(lambda *args: pair_observables(*args, pair=(0, 2)))
    direct = pair_observables(x, y, out, hiddens, pair=(0, 2))
    for u, v in zip(jax.tree.leaves(f(x, y, out, hiddens)), jax.tree.leaves(direct), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6)
    batched = jax.vmap(lambda o: pair_observables(x, y, o, hiddens))(jnp.stack([out, 2 * out]))
    assert batched.h.shape == (2, 3) and batched.y.shape == (2,)


def test_squared_distances_match_numpy():
    a = np.asarray(jax.random.normal(jax.random.key(0), (6, 4, 2)))
    d = np.asarray(squared_distances(a))
    flat = a.reshape(6, -1)
    ref = np.sum((flat[:, None] - flat[None]) ** 2, axis=-1)
    np.testing.assert_allclose(d, ref, rtol=1e-5, atol=1e-5)
    assert d.shape == (6, 6)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    np.testing.assert_array_equal(d, d.T)


def test_squared_distances_safe_for_nearly_equal_rows():
    # Large common offset, tiny differences: the naive Gram formula cancels catastrophically.
    base = 1e3 * np.ones((1, 50), np.float32)
    rows = base + 1e-3 * np.asarray(jax.random.normal(jax.random.key(1), (4, 50)))
    rows[2] = rows[1]  # an exact duplicate
    d = np.asarray(squared_distances(jnp.asarray(rows)))
    assert np.all(d >= 0)
    assert d[1, 2] == 0.0 and np.all(np.diag(d) == 0)
    flat = rows.astype(np.float64)
    ref = np.sum((flat[:, None] - flat[None]) ** 2, axis=-1)
    np.testing.assert_allclose(d, ref, rtol=0.05, atol=1e-6)


def test_hidden_squared_distances_stack():
    _, _, _, hiddens = _random()
    d = hidden_squared_distances(hiddens[::2])
    assert d.shape == (2, 5, 5)
    np.testing.assert_allclose(d[1], squared_distances(hiddens[2]), rtol=1e-6)
