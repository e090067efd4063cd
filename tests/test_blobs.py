"""Context blobs: classical MDS (rep_align.embedding), the analysis numbers and the
experiment's pipeline (rep_align.experiments.blobs)."""

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import pearsonr

from rep_align import presets
from rep_align.embedding import classical_mds, mds_of_points, stress
from rep_align.experiments import blobs


def _points(n=40, dims=3, ambient=None, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, dims)) * np.array([3.0, 2.0, 1.0][:dims])
    if ambient is not None:
        q, _ = np.linalg.qr(rng.normal(size=(ambient, ambient)))
        p = np.pad(p, ((0, 0), (0, ambient - dims))) @ q.T + rng.normal(size=ambient)
    return p


def _d2(p):
    return ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)


def _procrustes_residual(a, b):
    """Smallest ‖a − b R‖ over orthogonal R (reflections allowed), both centred."""
    a, b = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    return np.linalg.norm(a - b @ (u @ vt)) / np.linalg.norm(a)


# ----------------------------------------------------------------------------- MDS


def test_classical_mds_recovers_a_3d_configuration_up_to_rotation(x64):
    p = _points(ambient=7)  # a 3-D configuration, rotated and shifted into 7-D
    emb = classical_mds(jnp.asarray(_d2(p)), dims=3)
    coords = np.asarray(emb.coords)
    np.testing.assert_allclose(_d2(coords), _d2(p), rtol=1e-9, atol=1e-9)
    truth = _points()  # the same points before the rotation
    assert _procrustes_residual(truth, coords) < 1e-10
    assert float(emb.explained) == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(np.asarray(emb.eigenvalues)) <= 0)
    np.testing.assert_allclose(coords.mean(0), 0.0, atol=1e-10)
    assert float(stress(jnp.sqrt(jnp.asarray(_d2(p))), emb.coords)) < 1e-10


def test_mds_of_points_is_classical_mds_of_their_distances(x64):
    p = _points(n=30, dims=3, ambient=12, seed=1)
    a = classical_mds(jnp.asarray(_d2(p)), dims=3)
    b = mds_of_points(jnp.asarray(p), dims=3)
    # distinct eigenvalues (variances 9, 4, 1): the axes agree one by one, signs included
    np.testing.assert_allclose(np.asarray(b.coords), np.asarray(a.coords), atol=1e-9)
    np.testing.assert_allclose(np.asarray(b.eigenvalues), np.asarray(a.eigenvalues), rtol=1e-9)
    assert float(b.explained) == pytest.approx(float(a.explained), abs=1e-12)


def test_mds_in_fewer_dimensions_keeps_the_largest_axes(x64):
    p = _points(n=50, seed=2)
    emb = classical_mds(jnp.asarray(_d2(p)), dims=2)
    lam = np.linalg.eigvalsh(np.cov((p - p.mean(0)).T, bias=True) * len(p))[::-1]
    np.testing.assert_allclose(np.asarray(emb.eigenvalues), lam[:2], rtol=1e-9)
    assert float(emb.explained) == pytest.approx(lam[:2].sum() / lam.sum(), rel=1e-9)
    assert 0 < float(stress(jnp.sqrt(jnp.asarray(_d2(p))), emb.coords)) < 1


def test_mds_reports_a_non_euclidean_matrix():
    # four points of a cycle with "distance" 1 to neighbours and 3 across: not Euclidean
    d = np.array([[0, 1, 3, 1], [1, 0, 1, 3], [3, 1, 0, 1], [1, 3, 1, 0]], float)
    emb = classical_mds(d**2, dims=4)
    assert float(np.min(emb.eigenvalues)) < 0


def test_mds_is_jit_and_vmap_friendly(x64):
    ps = np.stack([_points(n=12, seed=s) for s in range(3)])
    d2 = jnp.asarray([_d2(p) for p in ps])
    batched = jax.vmap(lambda d: classical_mds(d, dims=3).coords)(d2)
    for k in range(3):
        np.testing.assert_allclose(
            np.asarray(batched[k]), np.asarray(classical_mds(d2[k]).coords), atol=1e-10
        )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: classical_mds(np.zeros((3, 4))), "square"),
        (lambda: classical_mds(np.zeros((1, 1))), "at least 2"),
        (lambda: classical_mds(-np.ones((3, 3))), "non-negative"),
        (lambda: classical_mds(np.full((3, 3), np.nan)), "finite"),
        (lambda: classical_mds(np.zeros((3, 3)), dims=4), "dims"),
        (lambda: mds_of_points(np.zeros((1, 3))), "points"),
        (lambda: stress(np.zeros((3, 3)), np.zeros((2, 3))), "coords"),
    ],
)
def test_mds_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- numbers


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
    assert float(blobs.context_ratio(d, c)) == pytest.approx(3.0)


def test_paired_ratio_by_hand():
    d, c = _four_points()
    # pairs (0, 2) and (1, 3): (4 + 8) / 2 = 6, over the within mean 2
    assert float(blobs.paired_ratio(d, c, np.array([[0, 2], [1, 3]]))) == pytest.approx(3.0)
    assert float(blobs.paired_ratio(d, c, np.array([[0, 3]]))) == pytest.approx(3.0)
    assert float(blobs.paired_ratio(d, c, np.array([[0, 1]]))) == pytest.approx(0.5)


def test_context_ratio_is_one_for_mixed_contexts():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(400, 5))
    c = np.tile([0, 1], 200)
    d = np.sqrt(_d2(p))
    assert float(blobs.context_ratio(d, c)) == pytest.approx(1.0, abs=0.02)
    far = p + 50.0 * c[:, None]  # the contexts pulled apart
    assert float(blobs.context_ratio(np.sqrt(_d2(far)), c)) > 10


def test_distance_correlation_is_pearson_over_the_upper_triangle(x64):
    rng = np.random.default_rng(1)
    a, b = np.sqrt(_d2(rng.normal(size=(20, 3)))), np.sqrt(_d2(rng.normal(size=(20, 3))))
    iu = np.triu_indices(20, 1)
    b_lower = b.copy()
    b_lower[np.tril_indices(20, -1)] = 99.0  # the lower triangle must be ignored
    expected = pearsonr(a[iu], b[iu])[0]
    assert float(blobs.distance_correlation(a, b_lower)) == pytest.approx(expected, abs=1e-12)
    assert float(blobs.distance_correlation(a, 3 * a + 2)) == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(float(blobs.distance_correlation(a, np.ones((20, 20)))))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: blobs.context_ratio(np.zeros((4, 4)), np.zeros(4, int)), "two contexts"),
        (lambda: blobs.context_ratio(np.zeros((4, 4)), np.array([0, 1, 2, 3])), "two points"),
        (lambda: blobs.context_ratio(np.zeros((4, 4)), np.zeros(3, int)), "shape"),
        (lambda: blobs.context_ratio(np.zeros((3, 4)), np.zeros(3, int)), "square"),
        (
            lambda: blobs.paired_ratio(np.zeros((4, 4)), np.array([0, 0, 1, 1]), [[0, 4]]),
            "index",
        ),
        (lambda: blobs.distance_correlation(np.zeros((2, 2)), np.zeros((2, 2))), "n >= 3"),
    ],
)
def test_numbers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_blob_metrics_on_the_blob_data():
    x, y, context, _, pairs = blobs._blob_data()
    n = x.shape[0]
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(n, 100))
    # record 0: the inputs themselves (zero-padded); record 1: noise; record 2: a NaN
    h = np.stack([np.pad(x, ((0, 0), (0, 100 - x.shape[1]))), noise, noise])
    h[2, 0, 0] = np.nan
    m = blobs.blob_metrics(h.astype(np.float32), x, y, context, pairs)
    assert m.shape == (3, len(blobs.METRICS))
    r_input, r_target, ratio, paired = m[0]
    assert r_input == pytest.approx(1.0, abs=1e-6)  # float32 records
    d_x = np.sqrt(_d2(x))
    assert ratio == pytest.approx(float(blobs.context_ratio(d_x, context)), rel=1e-5)
    assert paired == pytest.approx(float(blobs.paired_ratio(d_x, context, pairs)), rel=1e-5)
    assert ratio > 5  # the context units dominate the input distances
    assert abs(m[1, 0]) < 0.05 and m[1, 2] == pytest.approx(1.0, abs=0.01)
    assert np.all(np.isnan(m[2]))


# ----------------------------------------------------------------------------- presets, runs


def test_blob_presets_are_the_reference_rows():
    rows = {n: (p.gain, p.lr, p.epochs) for n, p in presets.BLOB_PRESETS.items()}
    assert rows == {
        "high_init": (2.0, 0.0015, 750),
        "low_init": (0.5, 0.015, 1500),
        "vlow_init": (0.275, 0.05, 2000),
    }
    for p in presets.BLOB_PRESETS.values():
        assert (p.width, p.depth, p.layer, p.batch_size) == (100, 4, 2, 64)
        assert (p.activation, p.settings_activation, p.optimizer) == ("leaky_relu", "tanh", "sgd")
        assert p.loss == "half_mse" and p.source
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.gain = 1.0


def test_blob_runs_follow_the_preset():
    p = presets.BLOB_PRESETS["low_init"]
    runs = blobs.blob_runs(p, [0, 1])
    assert [r.seed for r in runs] == [0, 1]
    r = runs[0]
    assert (r.task, r.activation, r.gain, r.lr, r.epochs) == (
        "blobs",
        "leaky_relu",
        0.5,
        0.015,
        1500,
    )
    assert (r.width, r.depth, r.layer, r.batch_size, r.optimizer) == (100, 4, 2, 64, "sgd")
    assert r.record_every == 150 and r.probe == () and r.dtype == "float32"
    t = blobs.blob_runs(p, [0], activation="tanh", epochs=20, float64=True)[0]
    assert (t.activation, t.epochs, t.record_every, t.dtype) == ("tanh", 20, 2, "float64")
    with pytest.raises(ValueError, match="activation"):
        blobs.blob_runs(p, [0], activation="relu")
    with pytest.raises(ValueError, match="multiple"):
        blobs.blob_runs(p, [0], epochs=15)


def _tiny_presets(monkeypatch, epochs=10):
    tiny = {n: dataclasses.replace(p, epochs=epochs) for n, p in presets.BLOB_PRESETS.items()}
    monkeypatch.setattr(blobs, "BLOB_PRESETS", tiny)


def test_run_blobs_end_to_end_and_resume(tmp_path, monkeypatch):
    _tiny_presets(monkeypatch)
    kw = dict(seeds=1, regimes=["high_init"], activations=["leaky_relu"], out=tmp_path)
    res = blobs.run_blobs(**kw)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(res.to_json()))
    entry = summary["regimes"]["leaky_relu"]["high_init"]
    assert entry["epochs"] == list(range(0, 11))
    assert len(entry["over_training"]["r_input"][0]) == 11
    seed = entry["seeds"][0]
    for name in blobs.METRICS:
        assert np.isfinite(seed[name]) and np.isfinite(seed[f"{name}_init"])
    assert seed["loss_final"] < seed["loss_init"]
    assert summary["input"]["ratio"] > 5
    assert "high_init" in summary["acceptance"]["leaky_relu"]
    for name in ("blobs_mds_leaky_relu.png", "blobs_metrics.png", "blobs_mds.npz"):
        assert (tmp_path / name).stat().st_size > 0
    with np.load(tmp_path / "blobs_mds.npz") as f:
        assert f["leaky_relu__high_init__coords"].shape == (1800, 3)
    # a second call trains nothing and gives the same numbers
    cached = sorted((tmp_path / "sweeps" / "blobs").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in cached]
    again = blobs.run_blobs(**kw)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    assert (
        again.regimes["leaky_relu"]["high_init"].seeds
        == res.regimes["leaky_relu"]["high_init"].seeds
    )


def test_run_blobs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="seeds"):
        blobs.run_blobs(seeds=0)
    with pytest.raises(ValueError, match="regimes"):
        blobs.run_blobs(regimes=["medium"])
    with pytest.raises(ValueError, match="activations"):
        blobs.run_blobs(activations=["relu"])


@pytest.mark.slow
def test_cli_blobs_quick(tmp_path, monkeypatch):
    from rep_align.cli import blobs as cli

    _tiny_presets(monkeypatch, epochs=20)
    monkeypatch.setattr(blobs, "QUICK_EPOCHS", {n: 20 for n in blobs.REGIMES})
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.run(p.parse_args(["--quick", "--seeds", "2", "--out", str(tmp_path)])) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["regimes"]) == ["leaky_relu"]
    assert list(summary["regimes"]["leaky_relu"]) == list(blobs.REGIMES)
    assert summary["settings"]["seeds"] == [0, 1]
    assert summary["settings"]["epochs"] == {n: 20 for n in blobs.REGIMES}
    for entry in summary["regimes"]["leaky_relu"].values():
        assert entry["comparable_with_full"] == entry["settled"]
