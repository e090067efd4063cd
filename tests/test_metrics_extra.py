"""Acceptance items of issue 14 for metrics and ntk that the main test files check only
indirectly: chunked and unchunked tangent kernels compared directly (every chunk size,
hidden outputs, every architecture), and the Gram-side CKA the universality experiment
uses on wide, uncentred features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align import metrics, ntk
from rep_align.networks import make_network


def _net(arch):
    kw = dict(in_dim=3, out_dim=2, depth=2, dtype=jnp.float64)
    if arch == "cnn":
        return make_network("cnn", width=10, kernel_size=3, channels=2, **kw)
    return make_network(arch, width=5, **kw)


# (arch, output, method, x2 given, chunk sizes). Chunk sizes divide n = 6, leave a padded
# last chunk, equal n, and exceed n (one chunk, padding after the data). The MLP covers every
# combination of method, output and x2; the other architectures one hidden-layer case each.
_CASES = [
    ("mlp", output, method, given, (1, 4, 6, 9))
    for output in ("out", "last")
    for method in ("jacobian", "jvp")
    for given in (False, True)
] + [
    (arch, "last", m, g, (4,))
    for arch, m, g in (
        ("resnet", "jvp", True),
        ("cnn", "jacobian", False),
        ("dropout", "jvp", False),
    )
]


@pytest.mark.parametrize("arch, output, method, given, chunks", _CASES)
def test_chunked_kernel_equals_unchunked(x64, arch, output, method, given, chunks):
    """Chunked against the unchunked kernel of the same method, directly."""
    net = _net(arch)
    output = net.num_hidden - 1 if output == "last" else output
    params = net.init(jax.random.key(3), gain=1.3)
    x1 = jax.random.normal(jax.random.key(4), (6, 3))
    x2 = jax.random.normal(jax.random.key(5), (4, 3)) if given else None
    ref = np.asarray(ntk.empirical_ntk(net, params, x1, x2, method=method, output=output))
    scale = np.max(np.abs(ref))
    assert scale > 0
    for chunk in chunks:
        k = ntk.empirical_ntk(net, params, x1, x2, method=method, output=output, chunk_size=chunk)
        np.testing.assert_allclose(k, ref, rtol=0, atol=1e-13 * scale, err_msg=f"chunk {chunk}")


def test_chunked_kernels_over_training_equal_unchunked(x64):
    net = _net("mlp")
    snaps = [net.init(jax.random.key(s), gain=0.5 + s) for s in range(3)]
    x = jax.random.normal(jax.random.key(6), (5, 3))
    ref = np.asarray(ntk.kernel_over_training(net, snaps, x))
    for method in ("jacobian", "jvp"):
        k = ntk.kernel_over_training(net, snaps, x, chunk_size=2, method=method)
        np.testing.assert_allclose(k, ref, rtol=0, atol=1e-13 * np.max(np.abs(ref)))


def test_gram_side_cka_of_wide_uncentred_features(x64):
    """cka_from_grams(XXᵀ, YYᵀ) of uncentred features with p ≫ n (as the CNN's flattened
    convolution outputs against an MLP layer) equals cka(x, y) on either side and the
    centred-Gram formula, and keeps the invariances on this path."""
    rng = np.random.default_rng(7)
    n = 8
    x = rng.normal(size=(n, 1900)) + 2.0
    y = x[:, :40] @ rng.normal(size=(40, 256)) + 5 * rng.normal(size=(n, 256)) - 1.0
    h = np.eye(n) - 1 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    want = np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))
    got = metrics.cka_from_grams(x @ x.T, y @ y.T)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for side in ("features", "gram"):
        np.testing.assert_allclose(metrics.cka(x, y, side=side), want, rtol=1e-11)
    q = np.linalg.qr(rng.normal(size=(256, 256)))[0]
    yq = 0.3 * y @ q + 7.0
    np.testing.assert_allclose(metrics.cka_from_grams(x @ x.T, yq @ yq.T), want, rtol=1e-11)
    # Identical representations (one shifted) have CKA 1.
    np.testing.assert_allclose(
        metrics.cka_from_grams(x @ x.T, (x + 3) @ (x + 3).T), 1.0, rtol=1e-12
    )
