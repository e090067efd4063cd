"""The XOR experiment (rep_align.experiments.xor): the runs follow the reference's settings
(docs/presets.md, "XOR"), the analysis on synthetic records with known answers, the
plumbing on tiny networks (cache, summary, figures), and the CLI's options."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from rep_align.cli import xor as xor_cli
from rep_align.experiments import xor
from rep_align.experiments.points import PointsRun, points_data
from rep_align.predict import pairwise_squared_distances, predict_distances, upper_pearson
from rep_align.presets import XOR_PRESETS

REPO = Path(__file__).resolve().parents[1]


def test_runs_follow_the_reference_settings():
    for name, preset in XOR_PRESETS.items():
        runs = xor.xor_runs(preset, [0, 3])
        assert [r.seed for r in runs] == [0, 3]
        r = runs[0]
        assert (r.task, r.arch, r.activation, r.optimizer) == ("xor", "mlp", "relu", "sgd")
        assert r.lr == pytest.approx(2 * preset.lr)  # plain mse at lr == 0.5*mse at 2 lr
        assert (r.gain, r.epochs, r.batch_size, r.probe) == (preset.gain, preset.epochs, 0, ())
        assert (r.width, r.depth, r.layer) == ((500, 1, 0) if name == "shallow" else (500, 20, 10))
        assert r.epochs % r.record_every == 0 and r.epochs // r.record_every >= xor.RECORDS
        assert r.dtype == "float32"
    assert xor.xor_runs(XOR_PRESETS["rich"], [0], float64=True)[0].dtype == "float64"
    small = xor.xor_runs(XOR_PRESETS["rich"], [0], override=dict(width=8, epochs=21))[0]
    assert (small.width, small.epochs, small.record_every) == (8, 21, 1)


def _records(ratio):
    """Three synthetic runs on XOR: scaled initial geometry, the task's geometry, diverged."""
    rng = np.random.default_rng(0)
    h0 = rng.normal(size=(4, 5))
    o0 = 0.1 * rng.normal(size=(4, 1))
    a, b = rng.normal(size=5), rng.normal(size=5)
    b = a + 2.0 * (b - a) / np.linalg.norm(b - a)  # |a - b| = 2
    task = np.stack([a, b, b, a])  # equal targets share a representation
    out = np.stack([o0, o0, o0])
    loss = np.array([0.25, 0.1, 1e-4])
    scaled = dict(
        epochs=np.arange(3),
        loss=loss,
        hidden=np.stack([h0, 2 * h0, 3 * h0 + 1.0]),
        outputs=out,
        diverged=np.array(False),
    )
    rich = dict(scaled, hidden=np.stack([h0, h0, task]), loss=np.array([0.25, 0.1, 0.02]))
    bad = dict(
        scaled,
        hidden=np.stack([h0, h0, np.full_like(h0, np.nan)]),
        loss=np.array([0.25, np.nan, np.nan]),
        diverged=np.array(True),
    )
    return [scaled, rich, bad], h0, o0


def test_analysis_on_synthetic_records(x64):
    x, y = points_data(PointsRun(task="xor"))
    ratio = 0.1
    records, h0, o0 = _records(ratio)
    rows, curves = xor.analyse_xor(records, [4, 5, 6], x, y, eta_ratio=ratio)
    scaled, rich, bad = rows
    initial = np.sqrt(np.asarray(pairwise_squared_distances(h0)))
    pred = np.sqrt(np.asarray(predict_distances(x, y, hidden0=h0, outputs0=o0, eta_ratio=ratio)))
    # learned = 3 x initial (a translation does not change distances)
    assert scaled["r_initial"] == pytest.approx(1.0, abs=1e-12)
    assert scaled["slope_initial"] == pytest.approx(3.0, rel=1e-12)
    assert scaled["r_predicted"] == pytest.approx(upper_pearson(3 * initial, pred), abs=1e-12)
    np.testing.assert_allclose(scaled["predicted"], pred, rtol=1e-12)
    np.testing.assert_allclose(scaled["learned"], 3 * initial, rtol=1e-12)
    assert scaled["converged"] and not scaled["diverged"] and scaled["loss_final"] == 1e-4
    # learned = the rich limit's geometry, distance 2 where targets differ
    assert rich["r_rich"] == pytest.approx(1.0, abs=1e-12)
    assert rich["slope_rich"] == pytest.approx(2.0 / ratio**0.25, rel=1e-12)
    np.testing.assert_allclose(rich["rich_limit"][0], [0, ratio**0.25, ratio**0.25, 0], rtol=1e-12)
    assert not rich["converged"]  # 0.02 >= the 1e-2 filter
    # a diverged run has no values and does not enter the means
    assert bad["diverged"] and np.isnan(bad["r_rich"]) and np.isnan(bad["slope_predicted"])
    mean, std = xor._summarise(rows)
    assert mean["slope_initial"] == pytest.approx(np.mean([3.0, rich["slope_initial"]]))
    assert std["r_initial"] == pytest.approx(np.std([1.0, rich["r_initial"]]))
    # over training: record 0 is the initial network
    assert list(curves["epochs"]) == [0, 1, 2]
    assert [c["seed"] for c in curves["seeds"]] == [4, 5, 6]
    assert curves["seeds"][0]["r_initial"][0] == pytest.approx(1.0)
    assert curves["seeds"][1]["r_rich"][-1] == pytest.approx(1.0)


def test_analysis_errors():
    x, y = points_data(PointsRun(task="xor"))
    records, _, _ = _records(0.1)
    with pytest.raises(ValueError, match="equal length"):
        xor.analyse_xor(records, [0], x, y, eta_ratio=0.1)
    with pytest.raises(ValueError, match="eta_ratio must be positive"):
        xor.analyse_xor(records, [0, 1, 2], x, y, eta_ratio=0.0)


def test_acceptance_checks():
    def regime(**mean):
        return xor.XorRegime({}, (), {}, mean, {}, 1, 1, 0, {})

    good = dict(rich=regime(r_predicted=0.995, r_rich=0.99), lazy=regime(r_initial=1.0, r_rich=0.1))
    out = xor.acceptance(good, paper_size=True)
    assert out["rich"]["pass"] and out["lazy"]["pass"] and out["paper_size"]
    assert "this project's" in out["thresholds"]
    bad = dict(
        rich=regime(r_predicted=float("nan"), r_rich=1.0), lazy=regime(r_initial=1.0, r_rich=0.5)
    )
    out = xor.acceptance(bad, paper_size=False)
    assert not out["rich"]["r_predicted >= 0.99"] and out["rich"]["r_rich >= 0.99"]
    assert not out["lazy"]["r_rich < 0.5"] and not out["lazy"]["pass"]
    assert "intermediate" not in xor.acceptance(dict(intermediate=good["rich"]), paper_size=True)


def test_rates_options(tmp_path):
    given = xor.xor_rates(root=tmp_path, seeds=1, eta_ratio=0.02)
    assert given["ratio"] == 0.02 and given["source"] == "given"
    read = xor.xor_rates(
        root=tmp_path, seeds=1, rates_from=REPO / "reproduction" / "two_points_default.json"
    )
    doc = json.loads((REPO / "reproduction" / "two_points_default.json").read_text())
    mean = doc["presets"]["default"]["mean"]
    assert read["ratio"] == pytest.approx(mean["eta_h"] / mean["eta_y"], rel=1e-12)
    with pytest.raises(ValueError, match="not both"):
        xor.xor_rates(root=tmp_path, seeds=1, eta_ratio=0.1, rates_from=tmp_path)
    with pytest.raises(ValueError, match="not both"):
        xor.run_xor(eta_ratio=0.1, rates_from=tmp_path)
    with pytest.raises(ValueError, match="unknown XOR preset"):
        xor.run_xor(eta_ratio=0.1, presets=["huge"])
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        xor.run_xor(eta_ratio=0.1, seeds=0)


def test_run_xor_tiny_end_to_end(tmp_path):
    # two compilations of the training scan and three figures: ~50 s on the shared 2-core CPU
    tiny = dict(width=8, depth=3, layer=1, epochs=20)
    kw = dict(
        out=tmp_path,
        eta_ratio=0.05,
        seeds=2,
        presets=("rich", "lazy"),
        override=tiny,
        progress=lambda line: None,
    )
    res = xor.run_xor(**kw)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(res.to_json()))
    assert set(summary["regimes"]) == {"rich", "lazy"}
    rich = summary["regimes"]["rich"]
    assert rich["config"]["width"] == 8 and rich["config"]["lr"] == pytest.approx(0.03)
    assert rich["config"]["reference_lr"] == 0.015 and rich["config"]["reference_loss"] == "mse"
    assert [r["seed"] for r in rich["seeds"]] == [0, 1] and rich["trained"] == 2
    assert len(rich["curves"]["epochs"]) == 21 and np.shape(rich["seeds"][0]["learned"]) == (4, 4)
    for key in ("r_predicted", "r_initial", "r_rich", "slope_predicted"):
        vals = [r[key] for r in rich["seeds"]]
        assert rich["mean"][key] == pytest.approx(np.mean(vals))
    # lr 6e-9 for 20 epochs: the lazy runs keep their initial geometry
    assert summary["regimes"]["lazy"]["mean"]["r_initial"] == pytest.approx(1.0, abs=1e-6)
    assert summary["checks"]["paper_size"] is False and "rich" in summary["checks"]
    assert summary["settings"]["override"] == tiny and summary["rates"]["ratio"] == 0.05
    for name in ("xor_rich.png", "xor_lazy.png", "xor_over_training.png"):
        assert (tmp_path / name).stat().st_size > 0
    again = xor.run_xor(**(kw | dict(presets=("rich",))))
    assert again.regimes["rich"].trained == 0 and again.regimes["rich"].reused == 2
    assert again.regimes["rich"].mean == res.regimes["rich"].mean


def test_cli_options():
    p = argparse.ArgumentParser()
    xor_cli.add_arguments(p)
    args = p.parse_args(
        ["--quick", "--seeds", "2", "--preset", "rich", "lazy", "--eta-ratio", "0.1", "--float64"]
    )
    assert args.quick and args.seeds == 2 and args.preset == ["rich", "lazy"] and args.float64
    assert p.parse_args([]).preset == list(XOR_PRESETS) and p.parse_args([]).out == "runs/xor"
    with pytest.raises(SystemExit):
        p.parse_args(["--eta-ratio", "0.1", "--rates-from", "DIR"])


@pytest.mark.slow
def test_acceptance_at_paper_size(tmp_path):
    # the paper's networks, 3 seeds, rates of the stored 5-seed default-preset run
    # (reproduction/); about 5 minutes of a free 2-core CPU
    res = xor.run_xor(
        seeds=3,
        presets=("rich", "lazy"),
        rates_from=REPO / "reproduction" / "two_points_default.json",
        out=tmp_path,
    )
    assert res.checks["paper_size"]
    assert res.checks["rich"]["pass"], res.regimes["rich"].mean
    assert res.checks["lazy"]["pass"], res.regimes["lazy"].mean
