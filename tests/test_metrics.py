"""rep_align.metrics against independent NumPy/SciPy oracles (and rsatoolbox for RSA)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats

from rep_align import metrics
from rep_align.metrics._cka import _uses_features

# -- oracles ------------------------------------------------------------------------------


def np_cka(x, y):
    """Linear CKA from the Gram matrices: tr(KHLH) / √(tr(KHKH) tr(LHLH))."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def np_hsic_u(k, l):
    """Unbiased HSIC of Song et al. (2012), written from its formula."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (
        np.trace(k @ l)
        + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ k @ l @ one)
    ) / (n * (n - 3))


def np_debiased_cka(x, y):
    k, l = x @ x.T, y @ y.T
    return np_hsic_u(k, l) / np.sqrt(np_hsic_u(k, k) * np_hsic_u(l, l))


def np_procrustes(x, y):
    """min_Q ‖x̂ − ŷQ‖²_F via SciPy, after centring, unit norm and zero-padding."""
    x, y = x - x.mean(0), y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    w = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, w - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, w - y.shape[1])))
    q, _ = scipy.linalg.orthogonal_procrustes(y, x)
    return np.sum((x - y @ q) ** 2)


def upper(a):
    return a[np.triu_indices(a.shape[0], k=1)]


def orthogonal(rng, p):
    return np.linalg.qr(rng.normal(size=(p, p)))[0]


# Shapes covering both CKA sides: (n, p, q) with p² + q² + pq ≤ 2n² (features) or not.
SHAPES = [(12, 3, 5), (12, 20, 9), (7, 7, 7), (6, 1, 2)]


@pytest.mark.parametrize("n,p,q", SHAPES)
def test_cka_matches_gram_oracle_on_both_sides(x64, n, p, q):
    rng = np.random.default_rng(n + p + q)
    # Shifted, unequally scaled columns: both implementations must centre.
    x = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, size=p) + 4
    y = x[:, :1] * rng.normal(size=q) + rng.normal(size=(n, q)) - 2
    for debiased, oracle in ((False, np_cka), (True, np_debiased_cka)):
        want = oracle(x, y)
        for side in ("auto", "features", "gram"):
            got = metrics.cka(x, y, debiased=debiased, side=side)
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13, err_msg=side)


def test_cka_auto_side_follows_shapes():
    assert _uses_features(50, 10, 20)
    assert _uses_features(10, 8, 8)  # 192 ≤ 200
    assert not _uses_features(10, 9, 9)  # 243 > 200
    assert not _uses_features(50, 200, 200)


def test_cka_from_grams_matches_oracles_and_cka(x64):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 6))
    x[:, 0] += y[:, 0]
    k, l = x @ x.T, y @ y.T
    np.testing.assert_allclose(metrics.cka_from_grams(k, l), np_cka(x, y), rtol=1e-12)
    np.testing.assert_allclose(
        metrics.cka_from_grams(k, l, debiased=True), np_debiased_cka(x, y), rtol=1e-11
    )
    # A non-linear kernel: RBF Grams against the oracle formula directly.
    d2x = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x, "sqeuclidean"))
    d2y = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(y, "sqeuclidean"))
    kr, lr = np.exp(-d2x / 4), np.exp(-d2y / 6)
    h = np.eye(9) - 1 / 9
    want = np.trace(kr @ h @ lr @ h) / np.sqrt(
        np.trace(kr @ h @ kr @ h) * np.trace(lr @ h @ lr @ h)
    )
    np.testing.assert_allclose(metrics.cka_from_grams(kr, lr), want, rtol=1e-12)
    want_u = np_hsic_u(kr, lr) / np.sqrt(np_hsic_u(kr, kr) * np_hsic_u(lr, lr))
    np.testing.assert_allclose(metrics.cka_from_grams(kr, lr, debiased=True), want_u, rtol=1e-11)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("side", ["features", "gram"])
def test_cka_invariances_and_identity(x64, debiased, side):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(15, 6)), rng.normal(size=(15, 4))
    y[:, :2] += x[:, :2]
    base = metrics.cka(x, y, debiased=debiased, side=side)
    moved = metrics.cka(
        3.7 * x @ orthogonal(rng, 6) - 1.0,
        0.02 * y @ orthogonal(rng, 4),
        debiased=debiased,
        side=side,
    )
    np.testing.assert_allclose(moved, base, rtol=1e-12)
    np.testing.assert_allclose(metrics.cka(x, x, debiased=debiased, side=side), 1, rtol=1e-13)
    # Not invariant to a general (anisotropic) linear map.
    stretched = metrics.cka(x * np.arange(1, 7), y, debiased=debiased, side=side)
    assert abs(stretched - base) > 1e-2


def test_debiased_cka_near_zero_for_independent_features(x64):
    # 8 draws of n = 50 points with p = q = 200 independent Gaussian features. Linear CKA is
    # biased up to 0.79-0.81 here (0.80 ± 0.01 over 40 other seeds); debiased CKA lies in
    # [−0.045, 0.004], mean −0.017 (one draw's sd over seeds is 0.026, so 0.009 for the mean).
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 50, 200)), rng.normal(size=(8, 50, 200))
    biased = jax.jit(jax.vmap(metrics.cka))(x, y)
    debiased = jax.jit(jax.vmap(lambda a, b: metrics.cka(a, b, debiased=True)))(x, y)
    assert np.all(biased > 0.75)
    assert np.all(np.abs(debiased) < 0.1)
    assert abs(np.mean(debiased)) < 0.05


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("side", ["features", "gram"])
def test_cka_gradient_matches_central_differences(x64, debiased, side):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 5))
    y[:, 0] += 2 * x[:, 0]
    f = jax.jit(lambda a, b: metrics.cka(a, b, debiased=debiased, side=side))
    gx, gy = jax.jit(jax.grad(f, argnums=(0, 1)))(x, y)
    eps = 1e-6
    for g, arg in ((gx, 0), (gy, 1)):
        for _ in range(3):
            v = rng.normal(size=(x, y)[arg].shape)
            plus = [x, y]
            minus = [x, y]
            plus[arg] = plus[arg] + eps * v
            minus[arg] = minus[arg] - eps * v
            fd = (f(*plus) - f(*minus)) / (2 * eps)
            np.testing.assert_allclose(np.sum(g * v), fd, rtol=1e-7, atol=1e-9)


def test_procrustes_matches_scipy(x64):
    rng = np.random.default_rng(5)
    # (n, p, q): square, p ≠ q (zero padding), and p, q > n (the QR reduction).
    for n, p, q in [(10, 4, 4), (10, 3, 6), (6, 9, 14), (6, 9, 2)]:
        x = rng.normal(size=(n, p)) + 1
        y = rng.normal(size=(n, q))
        y[:, : min(p, q)] += x[:, : min(p, q)]
        want = np_procrustes(x, y)
        np.testing.assert_allclose(metrics.procrustes(x, y), want, rtol=1e-11, err_msg=(n, p, q))
        np.testing.assert_allclose(metrics.procrustes(y, x), want, rtol=1e-11)
        np.testing.assert_allclose(
            metrics.procrustes(x, y, angular=True), np.arccos(1 - want / 2), rtol=1e-11
        )


def test_procrustes_invariances_and_zero(x64):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
    base = metrics.procrustes(x, y)
    assert 0.1 < base < 2
    moved = metrics.procrustes(2.5 * x @ orthogonal(rng, 5) + 3, 0.1 * y @ orthogonal(rng, 5))
    np.testing.assert_allclose(moved, base, rtol=1e-12)
    assert metrics.procrustes(x, 7 * x @ orthogonal(rng, 5) - 1) < 1e-13
    assert metrics.procrustes(x, x, angular=True) < 1e-6
    # Padding: x and x with extra zero columns are the same shape.
    assert metrics.procrustes(x, np.pad(x, ((0, 0), (0, 3)))) < 1e-13


def test_procrustes_gradient_matches_central_differences(x64):
    rng = np.random.default_rng(7)
    for shape_y in [(9, 4), (9, 12)]:
        x, y = rng.normal(size=(9, 3)), rng.normal(size=shape_y)
        f = jax.jit(metrics.procrustes)
        gx = jax.grad(f)(x, y)
        for _ in range(3):
            v = rng.normal(size=x.shape)
            fd = (f(x + 1e-6 * v, y) - f(x - 1e-6 * v, y)) / 2e-6
            np.testing.assert_allclose(np.sum(gx * v), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "correlation"])
def test_rdm_matches_scipy_pdist(x64, metric):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(11, 5)) + 10
    got = metrics.rdm(x, metric=metric)
    want = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x, metric))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.all(np.diag(got) == 0) and np.array_equal(got, got.T)


def test_rdm_euclidean_gradient_is_finite_at_the_diagonal(x64):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 3))
    g = jax.grad(lambda a: jnp.sum(metrics.rdm(a)))(x)
    # Σ_ij ‖x_i − x_j‖ has gradient 2 Σ_j (x_i − x_j)/‖x_i − x_j‖ with respect to x_i.
    diff = x[:, None] - x[None]
    dist = np.linalg.norm(diff, axis=-1) + np.eye(6)
    np.testing.assert_allclose(g, 2 * np.sum(diff / dist[..., None], axis=1), rtol=1e-9)


def test_rsa_matches_scipy(x64):
    rng = np.random.default_rng(10)
    a = scipy.spatial.distance.squareform(rng.uniform(size=28))  # n = 8
    b = a**2 + scipy.spatial.distance.squareform(rng.uniform(size=28)) * 0.3
    pear = scipy.stats.pearsonr(upper(a), upper(b)).statistic
    np.testing.assert_allclose(metrics.rsa(a, b), pear, rtol=1e-12)
    spear = scipy.stats.spearmanr(upper(a), upper(b)).statistic
    np.testing.assert_allclose(metrics.rsa(a, b, method="spearman"), spear, rtol=1e-12)
    # Ties, averaged as scipy does.
    at, bt = np.round(a * 4), np.round(b * 3)
    spear_t = scipy.stats.spearmanr(upper(at), upper(bt)).statistic
    np.testing.assert_allclose(metrics.rsa(at, bt, method="spearman"), spear_t, rtol=1e-12)
    # Only the upper triangle counts; Spearman is invariant to increasing maps.
    skew = b + np.tril(rng.normal(size=(8, 8)))
    np.testing.assert_allclose(metrics.rsa(a, skew), pear, rtol=1e-12)
    np.testing.assert_allclose(metrics.rsa(np.exp(a), b, method="spearman"), spear, rtol=1e-12)


def test_pearson_matches_scipy_with_and_without_a_mask(x64):
    rng = np.random.default_rng(20)
    a = rng.normal(size=(6, 5))
    b = a + rng.normal(size=(6, 5))
    want = scipy.stats.pearsonr(a.ravel(), b.ravel()).statistic
    np.testing.assert_allclose(metrics.pearson(a, b), want, rtol=1e-13)
    np.testing.assert_allclose(metrics.pearson(a.ravel(), b.ravel()), want, rtol=1e-13)
    mask = rng.uniform(size=(6, 5)) < 0.5
    want_masked = np.corrcoef(a[mask], b[mask])[0, 1]
    np.testing.assert_allclose(metrics.pearson(a, b, mask=mask), want_masked, rtol=1e-13)
    # entries outside the mask are ignored, whatever they hold
    junk_a, junk_b = np.where(mask, a, np.nan), np.where(mask, b, np.inf)
    np.testing.assert_allclose(metrics.pearson(junk_a, junk_b, mask=mask), want_masked, rtol=1e-13)
    np.testing.assert_allclose(metrics.pearson(a, 3 * a - 2), 1, rtol=1e-14)
    np.testing.assert_allclose(metrics.pearson(a, -a), -1, rtol=1e-14)


def test_pearson_is_nan_for_degenerate_input_and_never_raises_on_values(x64):
    a = np.arange(12.0).reshape(3, 4)
    assert np.isnan(metrics.pearson(a, np.ones((3, 4))))
    assert np.isnan(metrics.pearson(a, np.full((3, 4), np.nan)))
    b = a**2
    b[1, 2] = np.inf
    assert np.isnan(metrics.pearson(a, b))
    assert np.isnan(metrics.pearson(a, a, mask=np.eye(3, 4, dtype=bool) & False))  # no entry


def test_pearson_float32_jit_vmap_and_one_compilation():
    rng = np.random.default_rng(21)
    a = rng.normal(size=(3, 40)).astype(np.float32)
    b = (a + rng.normal(size=(3, 40))).astype(np.float32)
    mask = rng.uniform(size=(3, 40)) < 0.7
    f = jax.jit(jax.vmap(lambda u, v, m: metrics.pearson(u, v, mask=m)))
    got = f(a, b, mask)
    assert got.dtype == jnp.float32
    for k in range(3):
        want = np.corrcoef(a[k][mask[k]].astype(np.float64), b[k][mask[k]])[0, 1]
        np.testing.assert_allclose(got[k], want, rtol=1e-5)
    traced = jax.jit(
        eqx.debug.assert_max_traces(lambda u, v, m: metrics.pearson(u, v, mask=m), max_traces=1)
    )
    for _ in range(3):
        traced(rng.normal(size=40).astype(np.float32), a[0], rng.uniform(size=40) < 0.5)


def test_upper_pearson_is_pearson_over_the_upper_triangle(x64):
    # moved from test_blobs (blobs.distance_correlation, now metrics.upper_pearson)
    rng = np.random.default_rng(1)
    d2 = lambda p: ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)  # noqa: E731
    a, b = np.sqrt(d2(rng.normal(size=(20, 3)))), np.sqrt(d2(rng.normal(size=(20, 3))))
    iu = np.triu_indices(20, 1)
    b_lower = b.copy()
    b_lower[np.tril_indices(20, -1)] = 99.0  # the lower triangle must be ignored
    expected = scipy.stats.pearsonr(a[iu], b[iu])[0]
    assert float(metrics.upper_pearson(a, b_lower)) == pytest.approx(expected, abs=1e-12)
    assert float(metrics.upper_pearson(a, 3 * a + 2)) == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(float(metrics.upper_pearson(a, np.ones((20, 20)))))
    # as rsa, which raises where it gives NaN
    np.testing.assert_allclose(metrics.upper_pearson(a, b), metrics.rsa(a, b), rtol=1e-14)
    b_nan = b.copy()
    b_nan[np.tril_indices(20, -1)] = np.nan
    np.testing.assert_allclose(metrics.upper_pearson(a, b_nan), expected, rtol=1e-12)


def test_rsa_keeps_float32_range_for_large_distances():
    # Σδa²·Σδb² of these entries is about 1e49, beyond float32's range
    rng = np.random.default_rng(22)
    a = scipy.spatial.distance.squareform(rng.uniform(1e10, 3e10, size=190))
    b = a * rng.uniform(0.5, 1.5, size=a.shape)
    b = (b + b.T) / 2
    iu = np.triu_indices(20, 1)
    want = scipy.stats.pearsonr(a[iu], b[iu]).statistic
    got = metrics.rsa(a.astype(np.float32), b.astype(np.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4)
    spear = metrics.rsa(a.astype(np.float32), b.astype(np.float32), method="spearman")
    np.testing.assert_allclose(spear, scipy.stats.spearmanr(a[iu], b[iu]).statistic, rtol=1e-5)


def test_spearman_rsa_gradient_is_zero(x64):
    rng = np.random.default_rng(11)
    a, b = (scipy.spatial.distance.squareform(rng.uniform(size=10)) for _ in range(2))
    g = jax.grad(lambda m: metrics.rsa(m, b, method="spearman"))(a)
    assert np.array_equal(g, np.zeros_like(a))
    assert np.any(jax.grad(lambda m: metrics.rsa(m, b))(a) != 0)


def test_rdm_distance_definition_and_invariances(x64):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(7, 3))
    a, b = metrics.rdm(x), metrics.rdm(x + 0.3 * rng.normal(size=(7, 3)))
    want = np.linalg.norm(a - b) / np.sqrt(np.linalg.norm(a) * np.linalg.norm(b))
    got = metrics.rdm_distance(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    ua, ub = upper(np.asarray(a)), upper(np.asarray(b))
    want_upper = np.linalg.norm(ua - ub) / np.sqrt(np.linalg.norm(ua) * np.linalg.norm(ub))
    np.testing.assert_allclose(got, want_upper, rtol=1e-13)
    np.testing.assert_allclose(metrics.rdm_distance(b, a), got, rtol=1e-14)
    np.testing.assert_allclose(metrics.rdm_distance(5 * a, 5 * b), got, rtol=1e-13)
    perm = rng.permutation(7)
    np.testing.assert_allclose(
        metrics.rdm_distance(a[perm][:, perm], b[perm][:, perm]), got, rtol=1e-13
    )
    # Scale-dependent by design, unlike rsa.
    np.testing.assert_allclose(metrics.rdm_distance(a, 3 * a), 2 / np.sqrt(3), rtol=1e-13)
    np.testing.assert_allclose(metrics.rsa(a, 3 * a), 1, rtol=1e-13)
    assert metrics.rdm_distance(a, a) == 0


def test_jit_and_vmap_match_plain_calls(x64):
    rng = np.random.default_rng(13)
    xs, ys = rng.normal(size=(2, 10, 4)), rng.normal(size=(2, 10, 6))
    ys[..., :2] += xs[..., :2]
    calls = {
        "cka": lambda x, y: metrics.cka(x, y),
        "cka_gram_debiased": lambda x, y: metrics.cka(x, y, debiased=True, side="gram"),
        "procrustes": lambda x, y: metrics.procrustes(x, y, angular=True),
        "spearman": lambda x, y: metrics.rsa(
            metrics.rdm(x, metric="correlation"), metrics.rdm(y), method="spearman"
        ),
        "rdm_distance": lambda x, y: metrics.rdm_distance(metrics.rdm(x), metrics.rdm(y)),
    }
    for name, f in calls.items():
        plain = np.array([f(x, y) for x, y in zip(xs, ys, strict=True)])
        np.testing.assert_allclose(jax.jit(jax.vmap(f))(xs, ys), plain, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(jax.jit(f)(xs[0], ys[0]), plain[0], rtol=1e-12, err_msg=name)


def test_jit_compiles_once_for_new_values():
    f = eqx.debug.assert_max_traces(lambda x, y: metrics.cka(x, y, debiased=True), max_traces=1)
    f = jax.jit(f)
    rng = np.random.default_rng(14)
    for _ in range(3):
        f(rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32))


def test_dtype_follows_inputs():
    rng = np.random.default_rng(15)
    x, y = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    assert metrics.cka(x, y).dtype == jnp.float32
    assert metrics.procrustes(x, y).dtype == jnp.float32
    assert metrics.rsa(metrics.rdm(x), metrics.rdm(y)).dtype == jnp.float32
    assert metrics.cka(np.arange(12).reshape(6, 2), x).dtype == jnp.float32
    with jax.enable_x64(True):
        assert metrics.cka(x.astype(np.float64), y.astype(np.float64)).dtype == jnp.float64
        assert metrics.rdm(np.arange(12).reshape(6, 2)).dtype == jnp.float64


def test_rsatoolbox_agrees(x64):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(16)
    x = rng.normal(size=(9, 5))
    y = x[:, :3] @ rng.normal(size=(3, 7)) + 0.5 * rng.normal(size=(9, 7))

    def rsa_rdm(data, method):
        return rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(data), method=method)

    # rsatoolbox's "euclidean" RDM is the squared distance divided by the number of features.
    for a, metric, method in [(x, "sqeuclidean", "euclidean"), (y, "correlation", "correlation")]:
        want = rsa_rdm(a, method).get_matrices()[0]
        scale = a.shape[1] if metric == "sqeuclidean" else 1
        np.testing.assert_allclose(metrics.rdm(a, metric=metric) / scale, want, atol=1e-12)

    ra, rb = rsa_rdm(x, "euclidean"), rsa_rdm(y, "correlation")
    da, db = ra.get_matrices()[0], rb.get_matrices()[0]
    cmp = lambda m: rsatoolbox.rdm.compare(ra, rb, method=m)[0, 0]  # noqa: E731
    np.testing.assert_allclose(metrics.rsa(da, db), cmp("corr"), rtol=1e-12)
    spear = metrics.rsa(da, db, method="spearman")
    np.testing.assert_allclose(spear, cmp("spearman"), rtol=1e-12)
    # Without ties rho-a (12·Σ r̃_a r̃_b / (m³ − m)) is the same number.
    np.testing.assert_allclose(spear, cmp("rho-a"), rtol=1e-12)

    # With ties our Spearman (tie-averaged ranks, Pearson of them) matches rsatoolbox's
    # "spearman"; "rho-a" keeps the untied denominator (m³ − m)/12 and so is smaller.
    dat, dbt = np.round(da), np.round(db * 4)
    rat, rbt = (rsatoolbox.rdm.RDMs(upper(m)[None]) for m in (dat, dbt))
    spear_t = metrics.rsa(dat, dbt, method="spearman")
    np.testing.assert_allclose(
        spear_t, rsatoolbox.rdm.compare(rat, rbt, method="spearman")[0, 0], rtol=1e-12
    )
    rho_a = rsatoolbox.rdm.compare(rat, rbt, method="rho-a")[0, 0]
    assert abs(rho_a) < abs(spear_t) - 1e-3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.cka(np.ones(5), np.ones((5, 2))), "x must be a 2-D array"),
        (lambda: metrics.cka(np.eye(5), np.eye(4)), "x and y must describe the same n points"),
        (lambda: metrics.cka(np.ones((1, 2)), np.ones((1, 2))), "x must have at least 2 rows"),
        (lambda: metrics.cka(np.eye(3), np.eye(3), debiased=True), "x must have at least 4"),
        (lambda: metrics.cka(np.eye(3), np.full((3, 2), np.nan)), "y must be finite"),
        (lambda: metrics.cka(np.ones((4, 2)), np.eye(4)), "x must vary across its points"),
        (lambda: metrics.cka(np.eye(3), np.eye(3), side="both"), "side must be one of"),
        (lambda: metrics.cka(np.eye(3), np.eye(3), debiased=1), "debiased must be true or"),
        (lambda: metrics.cka_from_grams(np.eye(3), np.ones((3, 2))), "l must be a square"),
        (lambda: metrics.procrustes(np.eye(3), np.ones((3, 2))), "y must vary"),
        (lambda: metrics.procrustes(np.eye(3), np.eye(2)), "x and y must describe"),
        (lambda: metrics.rdm(np.eye(3), metric="cosine"), "metric must be one of"),
        (lambda: metrics.rdm(np.eye(3)[:, :1], metric="correlation"), "x needs ≥ 2 features"),
        (lambda: metrics.rdm(np.array([[1, 2], [2, 2], [0, 1]]), metric="correlation"), "row 1"),
        (lambda: metrics.rsa(np.eye(2), np.eye(2)), "rdm_a must have at least 3 rows"),
        (lambda: metrics.rsa(np.eye(3), np.eye(4)), "rdm_a and rdm_b must describe"),
        (lambda: metrics.rsa(np.ones((3, 3)), np.eye(3) + 1), "rdm_a's entries above"),
        (lambda: metrics.rsa(np.eye(3), np.eye(3), method="kendall"), "method must be one of"),
        (lambda: metrics.rdm_distance(np.zeros((3, 3)), np.eye(3)), "a must not be all zeros"),
        (lambda: metrics.rdm_distance(np.eye(3), np.full((3, 3), np.inf)), "b must be finite"),
        (lambda: metrics.pearson(np.eye(3), np.eye(4)), "same shape"),
        (lambda: metrics.pearson(np.eye(3), np.eye(3), mask=np.ones(3, bool)), "same shape"),
        (lambda: metrics.upper_pearson(np.zeros((2, 2)), np.zeros((2, 2))), "n >= 3"),
        (lambda: metrics.upper_pearson(np.eye(3), np.eye(4)), "same n"),
        (lambda: metrics.upper_pearson(np.ones((3, 4)), np.ones((3, 4))), r"\(n, n\)"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
