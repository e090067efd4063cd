"""Context blobs: classical MDS (rep_align.embedding), the analysis numbers (the core's,
tested in test_contexts.py) and the experiment's declaration (rep_align.experiments.blobs):
settings, checks, the analysis, run and resumed through the driver, and the command."""

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align import contexts, metrics, presets
from rep_align.embedding import classical_mds, mds_of_points, stress
from rep_align.experiments import _driver as driver
from rep_align.experiments import blobs
from rep_align.experiments._protocol import spread
from rep_align.files import split_arrays


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


def test_the_numbers_are_the_core_s():
    # context_ratio, paired_ratio, blob_metrics (tests/test_contexts.py) and
    # distance_correlation = metrics.upper_pearson (tests/test_metrics.py), re-exported
    assert blobs.blob_metrics is contexts.blob_metrics and blobs.METRICS == contexts.METRICS
    assert blobs.context_ratio is contexts.context_ratio
    assert blobs.paired_ratio is contexts.paired_ratio
    assert blobs.distance_correlation is metrics.upper_pearson


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


# ----------------------------------------------------------------------------- settings


def test_settings_are_the_former_reproduce_stage_s():
    quick, full = blobs.settings(True), blobs.settings(False)
    assert (quick.seeds, quick.activations, quick.regimes) == (2, ("leaky_relu",), blobs.REGIMES)
    assert quick.epochs == {"high_init": 150, "low_init": 600, "vlow_init": 2000}
    assert (full.seeds, full.activations, full.regimes) == (
        3,
        ("leaky_relu", "tanh"),
        blobs.REGIMES,
    )
    assert full.epochs == {n: p.epochs for n, p in presets.BLOB_PRESETS.items()}
    for s in (quick, full):
        assert (s.first_seed, s.float64, s.settled_tol) == (0, False, 0.02)
    assert blobs.EXPERIMENT.settings is blobs.settings


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(seeds=0), "seeds"),
        (dict(first_seed=-1), "first_seed"),
        (dict(regimes=("medium",)), "regimes"),
        (dict(regimes=()), "regimes must not be empty"),
        (dict(activations=("relu",)), "activations"),
        (dict(epochs={"high_init": 150}), "every regime"),
        (dict(epochs={"high_init": 15, "low_init": 600, "vlow_init": 2000}), "multiple of 10"),
        (dict(float64=1), "float64"),
        (dict(settled_tol=0.0), "settled_tol"),
    ],
)
def test_settings_reject_bad_values(change, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        driver.run(blobs.EXPERIMENT, tmp_path, quick=True, changes=change)


# ----------------------------------------------------------------------------- verdicts


def _regime(r_input, comparable=True):
    s = spread([r_input, r_input])
    return blobs.BlobRegime(
        config={},
        seeds=(),
        final={"r_input": s, "ratio": spread([2.0])},
        init={"ratio": spread([8.0])},
        epochs=(),
        curves={},
        mds={},
        settled=comparable,
        comparable_with_full=comparable,
        coords={},
    )


def _result(high, low, vlow, tanh=0.99):
    regimes = {"high_init": _regime(high), "low_init": _regime(low), "vlow_init": _regime(vlow)}
    return blobs.BlobsResult(
        input={},
        regimes={"leaky_relu": regimes, "tanh": {"low_init": _regime(tanh, comparable=False)}},
        labels={},
    )


def _verdicts(result):
    heads = blobs.EXPERIMENT.verdicts(result, blobs.settings(False))
    return {h.name: h for h in heads}


def test_checks_hold_and_can_fail():
    r = "r(hidden, input distances)"
    good = _verdicts(_result(0.96, 0.4, 0.1))
    for regime, bound in (("high_init", "≥ 0.95"), ("low_init", "< 0.5"), ("vlow_init", "< 0.5")):
        h = good[f"leaky_relu {regime}: {r}"]
        assert h.agrees is True and h.criterion == bound and "issue 13" in h.source
        assert h.n == 2 and h.spread == 0.0
    ratio = good["leaky_relu high_init: between/within-context distance ratio"]
    assert ratio.agrees is None and ratio.note == "at initialisation 8" and ratio.value == 2.0
    # tanh is reported, not checked; its regime was not comparable with the full size
    t = good[f"tanh low_init: {r}"]
    assert t.agrees is None and t.criterion == "" and t.comparable is False
    bad = _verdicts(_result(0.94, 0.5, 0.6))
    assert [bad[f"leaky_relu {g}: {r}"].agrees for g in blobs.REGIMES] == [False] * 3
    nan = _verdicts(_result(float("nan"), 0.1, 0.1))
    assert nan[f"leaky_relu high_init: {r}"].agrees is False
    # the thresholds live in CHECKS only
    assert [(c.op, c.bound) for c in blobs.CHECKS] == [(">=", 0.95), ("<", 0.5), ("<", 0.5)]


# ----------------------------------------------------------------------------- end to end

_TINY = dict(seeds=1, regimes=("high_init",), epochs={n: 10 for n in blobs.REGIMES})


def test_blobs_end_to_end_and_resume(tmp_path, monkeypatch):
    _tiny_presets(monkeypatch)
    store = tmp_path / "store"
    got = driver.run(blobs.EXPERIMENT, tmp_path / "a", quick=True, changes=_TINY, store=store)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["settings"]["epochs"]["high_init"] == 10
    res, arrays = split_arrays(got.result)
    assert summary["result"] == json.loads(json.dumps(res))
    assert list(summary["result"]["regimes"]) == ["leaky_relu"]
    entry = summary["result"]["regimes"]["leaky_relu"]["high_init"]
    assert entry["epochs"] == list(range(0, 11))
    assert len(entry["curves"]["r_input"][0]) == 11
    # trained for the (tiny) preset's epochs: comparable whether or not r settled
    assert entry["comparable_with_full"] is True and entry["config"]["preset_epochs"] == 10
    seed = entry["seeds"][0]
    for name in blobs.METRICS:
        assert np.isfinite(seed["final"][name]) and np.isfinite(seed["init"][name])
    assert seed["final"]["loss"] < seed["init"]["loss"]
    assert summary["result"]["input"]["ratio"] > 5
    (h,) = [h for h in got.headlines if h.name.startswith("leaky_relu high_init: r(")]
    assert h.criterion and h.agrees is not None and h.n == 1
    for name in ("blobs_mds_leaky_relu.png", "blobs_metrics.png", "arrays.npz"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    with np.load(tmp_path / "a" / "arrays.npz") as f:
        assert f["regimes.leaky_relu.high_init.coords.final"].shape == (1800, 3)
        assert f["labels.context"].shape == (1800,)
    # killed after training: the summary is gone, the store is not; nothing is retrained
    stored = sorted(store.rglob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in stored]
    (tmp_path / "a" / "summary.json").unlink()
    again = driver.run(blobs.EXPERIMENT, tmp_path / "a", quick=True, changes=_TINY, store=store)
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert [p.stat().st_mtime_ns for p in stored] == mtimes
    assert again.result.regimes["leaky_relu"]["high_init"].seeds == (
        got.result.regimes["leaky_relu"]["high_init"].seeds
    )
    assert again.summary["result"] == summary["result"]


def test_a_shortened_regime_is_comparable_only_if_settled():
    preset = presets.BLOB_PRESETS["high_init"]
    runs = blobs.blob_runs(preset, [0, 1], epochs=20)
    x, _, _, _, _ = blobs._blob_data()
    rng = np.random.default_rng(0)
    steady = np.repeat(np.pad(x, ((0, 0), (0, 73)))[None], 11, axis=0)
    # the input geometry, then more and more of a fixed random one: r_input keeps falling
    moving = steady + 0.1 * rng.normal(size=steady.shape[1:]) * np.linspace(0, 1, 11)[:, None, None]

    def rec(hidden):
        return dict(
            hidden=hidden.astype(np.float32),
            loss=np.linspace(1, 0.1, 11),
            diverged=np.asarray(False),
            epochs=np.arange(0, 21, 2),
        )

    still = blobs.analyse_regime(preset, runs, [rec(steady), rec(steady)])
    assert still.settled and still.comparable_with_full
    moved = blobs.analyse_regime(preset, runs, [rec(steady), rec(moving)])
    assert not moved.settled and not moved.comparable_with_full
    assert [s.settled for s in moved.seeds] == [True, False]
    assert moved.final["r_input"].n == 2 and moved.mds["seed"] == 0
    full = blobs.blob_runs(preset, [0, 1])  # the preset's epochs: comparable anyway
    assert blobs.analyse_regime(preset, full, [rec(steady), rec(moving)]).comparable_with_full


@pytest.mark.slow
def test_cli_blobs_quick(tmp_path, monkeypatch):
    from rep_align.cli import blobs as cli

    tiny = lambda quick: dataclasses.replace(  # noqa: E731
        blobs.settings(quick), epochs={n: 20 for n in blobs.REGIMES}
    )
    monkeypatch.setattr(blobs, "EXPERIMENT", dataclasses.replace(blobs.EXPERIMENT, settings=tiny))
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.run(p.parse_args(["--quick", "--seeds", "2", "--out", str(tmp_path)])) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "quick"
    assert summary["settings"]["activations"] == ["leaky_relu"]
    assert summary["settings"]["seeds"] == 2 and summary["settings"]["first_seed"] == 0
    assert summary["settings"]["epochs"] == {n: 20 for n in blobs.REGIMES}
    result = summary["result"]
    assert list(result["regimes"]) == ["leaky_relu"]
    assert list(result["regimes"]["leaky_relu"]) == list(blobs.REGIMES)
    for entry in result["regimes"]["leaky_relu"].values():
        assert [s["seed"] for s in entry["seeds"]] == [0, 1]
        assert entry["comparable_with_full"] == entry["settled"]


def test_cli_options_are_changes():
    from rep_align.cli import blobs as cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.changes(p.parse_args([])) == {}
    args = p.parse_args(
        "--regime low_init --activation both --seeds 4 --first-seed 2 --float64".split()
    )
    assert cli.changes(args) == dict(
        regimes=("low_init",),
        activations=("leaky_relu", "tanh"),
        seeds=4,
        first_seed=2,
        float64=True,
    )
