"""The XOR experiment (rep_align.experiments.xor): its settings are the reproduce stage's,
the runs follow the reference's settings (docs/presets.md, "XOR"), the rates come typed from
the two-point default preset's fits, the analysis on synthetic records with known answers,
the checks can fail, the driver runs and resumes it on tiny networks, and the CLI's
options become settings."""

import argparse
import dataclasses
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest

from rep_align import experiments
from rep_align.cli import xor as xor_cli
from rep_align.experiments import _driver as driver
from rep_align.experiments import spread, two_points, xor
from rep_align.experiments.points import PointsRun, points_data
from rep_align.files import jsonable
from rep_align.observables import pairwise_squared_distances
from rep_align.predict import TwoPointRates, predict_distances, upper_pearson
from rep_align.presets import XOR_PRESETS

REPO = Path(__file__).resolve().parents[1]
TWO_POINTS_DEFAULT = REPO / "reproduction" / "two_points_default.json"


def test_settings_are_the_reproduce_stage_s():
    quick, full = xor.settings(True), xor.settings(False)
    assert quick.presets == full.presets == ("rich", "intermediate", "lazy", "shallow")
    assert (quick.seeds, quick.rate_seeds) == (3, 4)  # the two_points quick stage's 4 seeds
    assert (full.seeds, full.rate_seeds) == (10, 3)  # and its full stage's 3
    for s in (quick, full):
        assert s.rates is None and s.eta_ratio is None and not s.float64 and s.override is None
    assert experiments.get("xor") is xor.EXPERIMENT
    assert xor.EXPERIMENT.title == "XOR in three regimes" and "6.1" in xor.EXPERIMENT.claim


def test_settings_are_validated():
    base = xor.settings(True)
    with pytest.raises(ValueError, match="not both"):
        dataclasses.replace(base, eta_ratio=0.1, rates=TwoPointRates.from_rows(_ROWS))
    with pytest.raises(ValueError, match="unknown XOR preset 'huge'"):
        dataclasses.replace(base, presets=("huge",))
    with pytest.raises(ValueError, match="distinct XOR presets"):
        dataclasses.replace(base, presets=("rich", "rich"))
    with pytest.raises(ValueError, match="seeds must be a positive integer, got 0"):
        dataclasses.replace(base, seeds=0)
    with pytest.raises(ValueError, match="rate_seeds must be a positive integer"):
        dataclasses.replace(base, rate_seeds=-1)
    with pytest.raises(ValueError, match="eta_ratio must be positive"):
        dataclasses.replace(base, eta_ratio=0.0)
    with pytest.raises(ValueError, match="other than seed"):
        dataclasses.replace(base, override={"seed": 3})
    with pytest.raises(ValueError, match="width"):
        dataclasses.replace(base, override={"width": 0})
    assert dataclasses.replace(base, presets="lazy").presets == ("lazy",)


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


# ------------------------------------------------------------------------------ rates

_ROWS = (
    dict(seed=0, eta_h=1e-3, eta_y=0.04, converged=True),
    dict(seed=1, eta_h=np.float32(3e-3), eta_y=np.float64(0.06), converged=True),
    dict(seed=2, eta_h=9.0, eta_y=1.0, converged=False),
    dict(seed=3, eta_h=math.nan, eta_y=None, converged=True),
)


def test_rates_from_fitted_rows():
    rates = TwoPointRates.from_rows(_ROWS, source="here")
    assert rates.seeds == (0, 1) and rates.n_seeds == 4 and rates.preset == "default"
    assert rates.eta_h == pytest.approx(2e-3) and rates.eta_y == pytest.approx(0.05)
    assert rates.ratio == rates.eta_h / rates.eta_y  # ratio of the means
    with pytest.raises(ValueError, match="here: preset 'default' has no converged seed"):
        TwoPointRates.from_rows(_ROWS[2:], source="here")


def test_rates_are_fitted_on_the_two_points_store(monkeypatch):
    """``fitted_rates`` asks the driver for the runs the two_points experiment trains (same
    config, seeds and sweep name, hence the same store) and fits them with its analysis."""
    asked = []

    class Runs:
        def seeds(self, config, seeds, *, name):
            asked.append((config, list(seeds), name))
            return "the stored runs"

    def analyse_preset(preset, runs, *, float64=False):
        assert runs == "the stored runs" and preset.name == "default" and not float64
        return types.SimpleNamespace(seeds=_ROWS)  # the fields the rates use

    monkeypatch.setattr(two_points, "analyse_preset", analyse_preset)
    rates = xor.fitted_rates(xor.settings(True), Runs())
    preset = two_points.protocol_preset("default", quick=False)
    assert asked == [(two_points.preset_run_config(preset), [0, 1, 2, 3], "default")]
    assert rates == TwoPointRates.from_rows(_ROWS, source=rates.source)
    assert "paper size" in rates.source


# --------------------------------------------------------------------------- analysis


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
    assert scaled.r_initial == pytest.approx(1.0, abs=1e-12)
    assert scaled.slope_initial == pytest.approx(3.0, rel=1e-12)
    assert scaled.r_predicted == pytest.approx(upper_pearson(3 * initial, pred), abs=1e-12)
    np.testing.assert_allclose(scaled.predicted, pred, rtol=1e-12)
    np.testing.assert_allclose(scaled.learned, 3 * initial, rtol=1e-12)
    assert scaled.converged and not scaled.diverged and scaled.loss_final == 1e-4
    # learned = the rich limit's geometry, distance 2 where targets differ
    assert rich.r_rich == pytest.approx(1.0, abs=1e-12)
    assert rich.slope_rich == pytest.approx(2.0 / ratio**0.25, rel=1e-12)
    np.testing.assert_allclose(rich.rich_limit[0], [0, ratio**0.25, ratio**0.25, 0], rtol=1e-12)
    assert not rich.converged  # 0.02 >= the 1e-2 filter
    # a diverged run has no values and does not enter the means
    assert bad.diverged and np.isnan(bad.r_rich) and np.isnan(bad.slope_predicted)
    stats = xor.summarise(rows)
    assert stats["slope_initial"].mean == pytest.approx(np.mean([3.0, rich.slope_initial]))
    assert stats["r_initial"].std == pytest.approx(np.std([1.0, rich.r_initial]))
    assert stats["r_initial"].n == 2 and stats["loss_initial"].n == 3
    # over training: record 0 is the initial network
    assert list(curves.epochs) == [0, 1, 2]
    assert [c.seed for c in curves.seeds] == [4, 5, 6]
    assert curves.seeds[0].r_initial[0] == pytest.approx(1.0)
    assert curves.seeds[1].r_rich[-1] == pytest.approx(1.0)


def test_analysis_errors():
    x, y = points_data(PointsRun(task="xor"))
    records, _, _ = _records(0.1)
    with pytest.raises(ValueError, match="equal length"):
        xor.analyse_xor(records, [0], x, y, eta_ratio=0.1)
    with pytest.raises(ValueError, match="eta_ratio must be positive"):
        xor.analyse_xor(records, [0, 1, 2], x, y, eta_ratio=0.0)


# ----------------------------------------------------------------------------- checks


def _result(**regimes):
    """An ``XorResult`` whose regimes have the given mean r's (3 seeds, no spread)."""

    def regime(means):
        stats = {k: spread([means.get(k, 0.5)] * 3) for k in xor.STATS}
        return xor.XorRegime({}, (), xor.XorCurves(np.arange(1), ()), stats, 3, 3, 0)

    return xor.XorResult(0.02, None, {k: regime(v) for k, v in regimes.items()})


def test_checks_pass_and_can_fail():
    s = xor.settings(True)
    good = _result(
        rich=dict(r_predicted=0.995, r_rich=0.992),
        intermediate={},
        lazy=dict(r_initial=1.0, r_rich=0.1),
        shallow={},
    )
    heads = {h.name: h for h in xor.EXPERIMENT.verdicts(good, s)}
    assert list(heads) == [
        "rich: Pearson r, learned vs predicted",
        "rich: Pearson r, learned vs rich",
        "rich: slope, learned on predicted",
        "intermediate: Pearson r, learned vs predicted",
        "intermediate: slope, learned on predicted",
        "lazy: Pearson r, learned vs initial",
        "lazy: Pearson r, learned vs rich",
        "lazy: slope, learned on predicted",
        "shallow: Pearson r, learned vs predicted",
        "shallow: slope, learned on predicted",
    ]
    checked = {k: h for k, h in heads.items() if h.agrees is not None}
    assert set(checked) == {c.key for c in xor.CHECKS} and all(h.agrees for h in checked.values())
    assert heads["rich: Pearson r, learned vs rich"].criterion == "≥ 0.99"
    assert heads["lazy: Pearson r, learned vs rich"].criterion == "< 0.5"
    assert all("this project's bound" in h.source for h in checked.values())
    assert heads["intermediate: Pearson r, learned vs predicted"].agrees is None
    h = heads["rich: slope, learned on predicted"]
    assert (h.n, h.agrees, h.note, h.spread) == (3, None, "", 0.0)
    bad = _result(rich=dict(r_predicted=math.nan, r_rich=1.0), lazy=dict(r_initial=1.0, r_rich=0.5))
    heads = {h.name: h for h in xor.EXPERIMENT.verdicts(bad, s)}
    assert heads["rich: Pearson r, learned vs predicted"].agrees is False  # NaN never passes
    assert heads["rich: Pearson r, learned vs rich"].agrees is True
    assert heads["lazy: Pearson r, learned vs rich"].agrees is False  # 0.5 is not < 0.5
    low = _result(rich=dict(r_predicted=0.98, r_rich=0.999), lazy=dict(r_initial=0.9))
    heads = {h.name: h for h in xor.EXPERIMENT.verdicts(low, s)}
    assert heads["rich: Pearson r, learned vs predicted"].agrees is False
    assert heads["lazy: Pearson r, learned vs initial"].agrees is False


# --------------------------------------------------------------- driver, end to end

_TINY = dict(width=8, depth=3, layer=1, epochs=20)


def test_tiny_run_through_the_driver_and_resumed(tmp_path):
    # tiny networks, a given ratio (no two-point training); two compilations of the training
    # scan and three figures
    changes = dict(eta_ratio=0.05, seeds=2, presets=("rich", "lazy"), override=_TINY)
    store, out = tmp_path / "store", tmp_path / "out"
    got = driver.run(
        xor.EXPERIMENT, out, quick=True, changes=changes, store=store, progress=lambda s: None
    )
    summary = json.loads((out / driver.SUMMARY).read_text())
    res = summary["result"]
    assert res == json.loads(json.dumps(jsonable(got.result)))
    assert summary["settings"]["override"] == _TINY and res["eta_ratio"] == 0.05
    assert res["rates"] is None and set(res["regimes"]) == {"rich", "lazy"}
    rich = res["regimes"]["rich"]
    assert rich["config"]["width"] == 8 and rich["config"]["lr"] == pytest.approx(0.03)
    assert rich["config"]["reference_lr"] == 0.015 and rich["config"]["reference_loss"] == "mse"
    assert [r["seed"] for r in rich["seeds"]] == [0, 1] and rich["n_seeds"] == 2
    assert len(rich["curves"]["epochs"]) == 21 and np.shape(rich["seeds"][0]["learned"]) == (4, 4)
    for key in ("r_predicted", "r_initial", "r_rich", "slope_predicted"):
        vals = [r[key] for r in rich["seeds"]]
        assert rich["stats"][key]["mean"] == pytest.approx(np.mean(vals))
        assert rich["stats"][key]["std"] == pytest.approx(np.std(vals))
    # lr 6e-9 for 20 epochs: the lazy runs keep their initial geometry
    lazy = res["regimes"]["lazy"]["stats"]["r_initial"]
    assert lazy["mean"] == pytest.approx(1.0, abs=1e-6)
    heads = {h["name"]: h for h in summary["headlines"]}
    assert heads["lazy: Pearson r, learned vs initial"]["agrees"] is True
    assert all("not the paper's runs" in h["note"] for h in heads.values())
    assert summary["figures"] == ["xor_rich.png", "xor_lazy.png", "xor_over_training.png"]
    for name in summary["figures"]:
        assert (out / name).stat().st_size > 0
    # resumed: the summary gone, the store kept -> nothing trained, the same numbers
    (out / driver.SUMMARY).unlink()
    again = driver.run(
        xor.EXPERIMENT, out, quick=True, changes=changes, store=store, progress=lambda s: None
    )
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert again.summary["result"] == summary["result"]
    # one preset of the same runs, into another directory: read from the same store
    one = driver.run(
        xor.EXPERIMENT,
        tmp_path / "one",
        quick=True,
        changes=changes | dict(presets=("rich",)),
        store=store,
        progress=lambda s: None,
    )
    assert one.summary["runs_trained"] == 0
    assert one.summary["result"]["regimes"]["rich"] == rich


# ---------------------------------------------------------------------------------- CLI


def _parser():
    p = argparse.ArgumentParser()
    xor_cli.add_arguments(p)
    return p


def test_cli_options_become_settings():
    p = _parser()
    args = p.parse_args(
        ["--quick", "--seeds", "2", "--preset", "rich", "lazy", "--eta-ratio", "0.1", "--float64"]
    )
    assert args.quick
    changes = xor_cli.changes(args)
    assert changes == dict(seeds=2, presets=("rich", "lazy"), eta_ratio=0.1, float64=True)
    s = driver.settings_for(xor.EXPERIMENT, args.quick, changes)
    assert (s.seeds, s.rate_seeds, s.presets) == (2, 4, ("rich", "lazy"))
    none = p.parse_args([])
    assert xor_cli.changes(none) == {} and none.out == "runs/xor" and not none.quick
    assert xor_cli.changes(p.parse_args(["--rate-seeds", "5"])) == dict(rate_seeds=5)
    with pytest.raises(SystemExit):
        p.parse_args(["--eta-ratio", "0.1", "--rates-from", "DIR"])


def test_cli_reads_rates_from_a_two_points_output():
    changes = xor_cli.changes(_parser().parse_args(["--rates-from", str(TWO_POINTS_DEFAULT)]))
    doc = json.loads(TWO_POINTS_DEFAULT.read_text())["presets"]["default"]
    rates = changes["rates"]
    assert isinstance(rates, TwoPointRates)
    assert rates.ratio == pytest.approx(doc["mean"]["eta_h"] / doc["mean"]["eta_y"], rel=1e-12)
    assert dataclasses.replace(xor.settings(False), **changes).rates == rates


@pytest.mark.slow
def test_acceptance_at_paper_size(tmp_path):
    # the paper's networks, 3 seeds, rates of the stored 5-seed default-preset run
    # (reproduction/); about 5 minutes of a free 2-core CPU
    changes = xor_cli.changes(
        _parser().parse_args(["--rates-from", str(TWO_POINTS_DEFAULT), "--preset", "rich", "lazy"])
    )
    got = driver.run(xor.EXPERIMENT, tmp_path, quick=True, changes=changes)
    checked = [h for h in got.headlines if h.agrees is not None]
    assert len(checked) == len(xor.CHECKS)
    assert all(h.agrees for h in checked), checked
    assert all(h.note == "" for h in got.headlines)  # the paper's runs
