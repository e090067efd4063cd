"""rep_align.observables against direct NumPy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align.observables import (
    PairObservables,
    cross_squared_distances,
    hidden_squared_distances,
    pair_observables,
    pairwise_squared_distances,
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


def _loop_sq(a, b):
    """Squared distances between the rows of a and b by a Python loop, float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.array([[float(np.sum((u - v) ** 2)) for v in b] for u in a])


def test_pairwise_squared_distances_exact_symmetric(x64):
    a = np.random.default_rng(1).normal(size=(5, 4))
    d = np.asarray(pairwise_squared_distances(a))
    np.testing.assert_allclose(d, _loop_sq(a, a), rtol=1e-14, atol=0)
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    dup = np.vstack([a, a[2:3]])
    assert np.asarray(pairwise_squared_distances(dup))[2, 5] == 0.0


def test_pairwise_squared_distances_keep_nearby_rows_and_blocks(x64):
    # rows 1e6 from the origin, 1e-6 apart: differences keep every digit the Gram loses
    rng = np.random.default_rng(2)
    a = 1e6 + 1e-6 * rng.normal(size=(6, 3))
    np.testing.assert_allclose(
        np.asarray(pairwise_squared_distances(a)), _loop_sq(a, a), rtol=1e-5, atol=0
    )
    # more entries than one block (n·n·d > 4 M): the row blocks give the same matrix
    b = rng.normal(size=(700, 10))
    d = np.asarray(pairwise_squared_distances(b))
    np.testing.assert_allclose(d[::97, ::89], _loop_sq(b[::97], b[::89]), rtol=1e-13)
    # integer input becomes JAX's default float
    assert pairwise_squared_distances(np.arange(6).reshape(3, 2)).dtype == jnp.float64


def test_cross_squared_distances_match_a_loop(x64):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 3, 2)), rng.normal(size=(7, 6))  # rows flattened
    d = np.asarray(cross_squared_distances(a, b))
    assert d.shape == (4, 7)
    np.testing.assert_allclose(d, _loop_sq(a.reshape(4, -1), b), rtol=1e-12, atol=1e-12)
    # raw pixels: integer-valued rows, every product and sum exact in float64
    pix = rng.integers(0, 256, (9, 784)).astype(np.float64)
    np.testing.assert_array_equal(
        np.asarray(cross_squared_distances(pix[:3], pix)), _loop_sq(pix[:3], pix)
    )
    # a block of rows against the whole set is that block of the full matrix
    full = np.asarray(squared_distances(jnp.asarray(b)))
    np.testing.assert_allclose(
        np.asarray(cross_squared_distances(b[2:5], b)), full[2:5], atol=1e-12
    )
    assert np.all(np.asarray(cross_squared_distances(b, b)) >= 0)


def test_cross_squared_distances_float32_and_vmap():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 5, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    batched = jax.jit(jax.vmap(cross_squared_distances, in_axes=(0, None)))(a, b)
    assert batched.dtype == jnp.float32 and batched.shape == (3, 5, 6)
    for k in range(3):
        np.testing.assert_allclose(batched[k], _loop_sq(a[k], b), rtol=1e-5, atol=1e-5)
