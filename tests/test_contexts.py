"""rep_align.contexts: the context-blobs numbers by hand, against a NumPy oracle, and on the
blob data (moved here from test_blobs with the functions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance

from rep_align import contexts, data


def _d2(p):
    return ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)


def _four_points():
    # contexts 0, 0, 1, 1; within: d01 = 1, d23 = 3; between: d02 = 4, d13 = 8, d03 = d12 = 6
    d = np.array(
        [
            [0, 1, 4, 6],
            [1, 0, 6, 8],
            [4, 6, 0, 3],
            [6, 8, 3, 0],
        ],
        float,
    )
    return d, np.array([0, 0, 1, 1])


def test_context_ratio_by_hand():
    d, c = _four_points()
    # between mean (4 + 6 + 6 + 8) / 4 = 6; within mean (1 + 3) / 2 = 2
    assert float(contexts.context_ratio(d, c)) == pytest.approx(3.0)


def test_paired_ratio_by_hand():
    d, c = _four_points()
    # pairs (0, 2) and (1, 3): (4 + 8) / 2 = 6, over the within mean 2
    assert float(contexts.paired_ratio(d, c, np.array([[0, 2], [1, 3]]))) == pytest.approx(3.0)
    assert float(contexts.paired_ratio(d, c, np.array([[0, 3]]))) == pytest.approx(3.0)
    assert float(contexts.paired_ratio(d, c, np.array([[0, 1]]))) == pytest.approx(0.5)


def test_context_ratio_is_one_for_mixed_contexts():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(400, 5))
    c = np.tile([0, 1], 200)
    d = np.sqrt(_d2(p))
    assert float(contexts.context_ratio(d, c)) == pytest.approx(1.0, abs=0.02)
    far = p + 50.0 * c[:, None]  # the contexts pulled apart
    assert float(contexts.context_ratio(np.sqrt(_d2(far)), c)) > 10


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: contexts.context_ratio(np.zeros((4, 4)), np.zeros(4, int)), "two contexts"),
        (lambda: contexts.context_ratio(np.zeros((4, 4)), np.array([0, 1, 2, 3])), "two points"),
        (lambda: contexts.context_ratio(np.zeros((4, 4)), np.zeros(3, int)), "shape"),
        (lambda: contexts.context_ratio(np.zeros((3, 4)), np.zeros(3, int)), "square"),
        (
            lambda: contexts.paired_ratio(np.zeros((4, 4)), np.array([0, 0, 1, 1]), [[0, 4]]),
            "index",
        ),
        (
            lambda: contexts.blob_metrics(
                np.zeros((2, 4)),
                np.zeros((4, 1)),
                np.zeros((4, 1)),
                np.array([0, 0, 1, 1]),
                [[0, 2]],
            ),
            "hidden",
        ),
        (
            lambda: contexts.blob_metrics(
                np.zeros((1, 4, 2)),
                np.zeros((3, 1)),
                np.zeros((4, 1)),
                np.array([0, 0, 1, 1]),
                [[0, 2]],
            ),
            "rows",
        ),
    ],
)
def test_numbers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _oracle(h, x, y, context, pairs):
    """METRICS of one record from SciPy distances and NumPy means, float64."""
    d_h, d_x, d_y = (scipy.spatial.distance.cdist(a, a) for a in (h, x, y))
    iu = np.triu_indices(len(h), 1)
    same = context[:, None] == context[None, :]
    within = same & ~np.eye(len(h), dtype=bool)
    w = d_h[within].mean()
    return [
        np.corrcoef(d_h[iu], d_x[iu])[0, 1],
        np.corrcoef(d_h[iu], d_y[iu])[0, 1],
        d_h[~same].mean() / w,
        d_h[pairs[:, 0], pairs[:, 1]].mean() / w,
    ]


def test_blob_metrics_match_a_numpy_oracle():
    rng = np.random.default_rng(5)
    n = 30
    context = np.repeat([0, 1, 2], 10)
    x = rng.normal(size=(n, 4)) + 3 * context[:, None]
    y = rng.normal(size=(n, 2))
    pairs = np.stack([np.arange(10), np.arange(10) + 10], axis=1)
    hidden = np.stack([x @ rng.normal(size=(4, 16)), rng.normal(size=(n, 16))])
    m = contexts.blob_metrics(hidden.astype(np.float32), x, y, context, pairs)
    assert m.dtype == np.float64 and m.shape == (2, len(contexts.METRICS))
    for t in range(2):
        want = _oracle(hidden[t].astype(np.float32).astype(np.float64), x, y, context, pairs)
        np.testing.assert_allclose(m[t], want, rtol=1e-9)


def test_blob_metrics_on_the_blob_data():
    # moved from test_blobs (blobs.blob_metrics, now contexts.blob_metrics)
    with jax.enable_x64(True):
        b = data.context_blobs(dtype=jnp.float64)
        x, y, context = np.asarray(b.x), np.asarray(b.y), np.asarray(b.context)
    half = x.shape[0] // 2
    pairs = np.stack([np.arange(half), np.arange(half) + half], axis=1)
    n = x.shape[0]
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(n, 100))
    # record 0: the inputs themselves (zero-padded); record 1: noise; record 2: a NaN
    h = np.stack([np.pad(x, ((0, 0), (0, 100 - x.shape[1]))), noise, noise])
    h[2, 0, 0] = np.nan
    m = contexts.blob_metrics(h.astype(np.float32), x, y, context, pairs)
    assert m.shape == (3, len(contexts.METRICS))
    r_input, r_target, ratio, paired = m[0]
    assert r_input == pytest.approx(1.0, abs=1e-6)  # float32 records
    d_x = np.sqrt(_d2(x))
    assert ratio == pytest.approx(float(contexts.context_ratio(d_x, context)), rel=1e-5)
    assert paired == pytest.approx(float(contexts.paired_ratio(d_x, context, pairs)), rel=1e-5)
    assert ratio > 5  # the context units dominate the input distances
    assert abs(m[1, 0]) < 0.05 and m[1, 2] == pytest.approx(1.0, abs=0.01)
    assert np.all(np.isnan(m[2]))
