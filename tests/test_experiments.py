"""The two-point experiments (two_points, grid, depth, ablations), end to end at tiny sizes
through the driver (the full-size runs are in reproduction/; marked slow here): their
settings, analyses, checks as data, figures, commands, shared store and resumption."""

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from rep_align import experiments, presets, theory
from rep_align.cli import main as cli_main
from rep_align.data import two_points as two_point_data
from rep_align.experiments import Headline, ablations, depth, grid, two_points
from rep_align.experiments import _driver as driver
from rep_align.experiments._protocol import apply_checks
from rep_align.experiments.common import train_seeds
from rep_align.experiments.two_points import SEED_KEYS, analyse_preset, preset_run_config
from rep_align.presets import get_preset
from rep_align.sweep import load_results
from rep_align.training import train


@pytest.fixture
def tiny(monkeypatch):
    """Small networks (``small`` settings) at a tiny size, so every experiment runs in
    seconds."""
    monkeypatch.setattr(presets, "QUICK_WIDTH", 16)
    monkeypatch.setattr(presets, "QUICK_DEPTH", 2)
    monkeypatch.setattr(presets, "QUICK_CNN_DEPTH", 1)


def _small_preset(**kw):
    p = get_preset("default").trajectory_protocol()
    return p.replace(width=16, depth=2, layer=1, epochs=1500, record_every=10, **kw)


def _records(preset, seeds, *, float64=False, **changes):
    """Train ``preset`` (with ``changes`` to its configuration) over seeds, as the
    experiments do; return the stored records in seed order."""
    config = preset_run_config(preset, float64=float64).replace(**changes)
    with tempfile.TemporaryDirectory() as tmp:
        return train_seeds(config, seeds, root=tmp, name="s").records


def _analysed(preset, seeds, *, float64=False):
    """Train ``preset`` over seeds into a temporary store and analyse it."""
    config = preset_run_config(preset, float64=float64)
    with tempfile.TemporaryDirectory() as tmp:
        runs = train_seeds(config, seeds, root=tmp, name=preset.name)
        return analyse_preset(preset, runs, float64=float64)


def _run(experiment, out, *, quick=True, store=None, **changes):
    return driver.run(
        experiment, out, quick=quick, changes=changes, store=store, progress=lambda s: None
    )


# ------------------------------------------------------------------- settings, both modes


def test_settings_are_the_former_reproduce_stages():
    # two_points: quick = default, 4 seeds; full = every preset, 3 seeds; paper size
    q, f = two_points.settings(True), two_points.settings(False)
    assert q.presets == ("default",) and q.seeds == 4 and not q.small
    assert f.presets == tuple(presets.TWO_POINT_PRESETS) and f.seeds == 3 and not f.small
    # grid: 1 seed; quick shrinks the network, full is the paper's
    assert grid.settings(True).small and not grid.settings(False).small
    assert grid.settings(True).seeds == grid.settings(False).seeds == 1
    assert grid.settings(False).max_epochs == presets.GRID_MAX_EPOCHS
    # depth and ablations read the two_points runs of the default preset
    for quick in (True, False):
        d = depth.settings(quick)
        assert d.preset == "default" and d.seed == 0 and not d.small
        assert d.store_seeds == two_points.settings(quick).seed_list
    assert ablations.settings(True).seeds == two_points.settings(True).seeds == 4
    assert ablations.settings(False).seeds == 5
    assert experiments.get("validity").name == "validity"
    assert "validity" not in experiments.names()


@pytest.mark.parametrize(
    ("experiment", "changes", "message"),
    [
        (two_points.EXPERIMENT, {"presets": ("nonesuch",)}, "nonesuch"),
        (two_points.EXPERIMENT, {"seeds": 0}, "seeds"),
        (grid.EXPERIMENT, {"max_epochs": 150}, "max_epochs"),
        (grid.EXPERIMENT, {"preset": "adam"}, "adam"),
        (depth.EXPERIMENT, {"seed": 9}, "seed 9"),
        (ablations.EXPERIMENT, {"variants": ("double_h",)}, "theory"),
        (ablations.EXPERIMENT, {"variants": ("theory", "nope")}, "nope"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(experiment, changes, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        driver.run(experiment, tmp_path, quick=True, changes=changes)
    assert not (tmp_path / "summary.json").exists()


# ------------------------------------------------------------------ checks, as data


def _verdicts(experiment, settings, values):
    heads = [Headline(name, value) for name, value in values.items()]
    return {h.name: h.agrees for h in apply_checks(heads, experiment.checks_for(settings))}


def test_two_point_checks_can_fail():
    s = two_points.settings(True)
    good = {f"default: mean R² {k}": 0.999 for k in "hyw"}
    assert all(_verdicts(two_points.EXPERIMENT, s, good).values())
    for k, low in (("h", 0.985), ("y", 0.985), ("w", 0.94)):
        got = _verdicts(two_points.EXPERIMENT, s, good | {f"default: mean R² {k}": low})
        assert got[f"default: mean R² {k}"] is False
    # the headline uses the same bounds as the checks, and GOOD_FIT is only in two_points
    assert {c.bound for c in two_points.CHECKS} == set(two_points.MEAN_R2_BOUNDS.values())


def test_grid_check_can_fail():
    s = grid.settings(True)
    assert _verdicts(grid.EXPERIMENT, s, {grid.PEARSON: 0.95})[grid.PEARSON] is True
    assert _verdicts(grid.EXPERIMENT, s, {grid.PEARSON: 0.85})[grid.PEARSON] is False
    assert grid.EXPERIMENT.tolerance == {grid.PEARSON: 0.05}


def test_depth_check_can_fail():
    s = depth.settings(True)
    assert _verdicts(depth.EXPERIMENT, s, {depth.EARLY: 0.3, depth.LATE: 0.01})[depth.LATE]
    assert not _verdicts(depth.EXPERIMENT, s, {depth.EARLY: 0.01, depth.LATE: 0.3})[depth.LATE]


def test_ablation_checks_have_one_rule_for_failed_fits():
    s = ablations.settings(True)
    assert len(ablations.checks_for(s)) == len(theory.VARIANTS) - 1
    values = {f"{v}: mean fit loss": 0.1 for v in theory.VARIANTS} | {"theory: mean fit loss": 0.01}
    got = _verdicts(ablations.EXPERIMENT, s, values)
    assert got.pop("theory: mean fit loss") is None and all(got.values())
    # an ablation fitting as well as the theory, or better: disagrees
    got = _verdicts(ablations.EXPERIMENT, s, values | {"flip_w: mean fit loss": 0.01})
    assert got["flip_w: mean fit loss"] is False
    # an ablation that no run could be fitted with is no measurement: it does not pass
    got = _verdicts(ablations.EXPERIMENT, s, values | {"double_h: mean fit loss": math.nan})
    assert got["double_h: mean fit loss"] is False
    # nor does any ablation when the theory itself could not be fitted
    got = _verdicts(ablations.EXPERIMENT, s, values | {"theory: mean fit loss": math.nan})
    assert not any(got.values())


# ------------------------------------------------------------------------- two points


def test_analyse_preset_summary_is_consistent():
    res = _analysed(_small_preset(), np.arange(3))
    assert len(res.seeds) == 3
    for row in res.seeds:
        assert set(row) == set(SEED_KEYS)
        assert row["converged"] == (row["loss_final"] < 1e-2)
        # the analytic h_inf is section 3's formula at the fitted rates
        want = theory.final_distance(
            row["h0"], row["y0"], eta_h=row["eta_h"], eta_y=row["eta_y"], dx2=1.0, dy2=0.5
        )
        np.testing.assert_allclose(row["h_inf_theory"], want, rtol=1e-6)
        assert 0 < row["eta_h"] and 0 < row["eta_y"] and row["r2_y"] <= 1
    conv = [r for r in res.seeds if r["converged"]]
    assert res.n_converged == len(conv)
    if conv:
        np.testing.assert_allclose(res.mean["r2_h"], np.mean([r["r2_h"] for r in conv]))
        if len(conv) > 1:  # population sd over converged seeds (_protocol.spread)
            np.testing.assert_allclose(res.std["eta_y"], np.std([r["eta_y"] for r in conv]))
    assert res.arrays["z_obs"].shape == res.arrays["z_fit"].shape == (3, 151, 3)


def test_float64_training_starts_from_the_float32_parameters():
    # --float64 changes only the rounding along the way: same initial network per seed
    p = _small_preset()
    r32 = _records(p, np.arange(2), steps=10, record_every=10)
    r64 = _records(p, np.arange(2), float64=True, steps=10, record_every=10)
    assert r64["h"].dtype == np.float64 and r32["h"].dtype == np.float32
    for k in ("h", "y", "w", "loss"):
        np.testing.assert_allclose(r64[k][:, 0], r32[k][:, 0], rtol=1e-5)
    # and then the two precisions train the same network to nearly the same records
    a = _records(p, np.arange(2), steps=200, record_every=10)
    b = _records(p, np.arange(2), float64=True, steps=200, record_every=10)
    scale = np.max(np.abs(b["y"]), axis=-1, keepdims=True)
    assert np.max(np.abs(a["y"] - b["y"]) / scale) < 1e-2
    res = _analysed(p, np.arange(1), float64=True)
    assert res.config["precision"] == "float64"


def test_a_seeds_record_does_not_depend_on_the_batch():
    # At width 500 XLA's CPU code for the batched step changes between 1 and 16 runs, and
    # the changed rounding shows in the records within 300 steps unless the seeds are
    # trained in blocks of a fixed size (measured: 0.59438545 vs 0.5943855 in h).
    p = _small_preset().replace(width=500, depth=2, layer=1)
    seeds = np.arange(5, 21)  # 16 seeds: four blocks
    many = _records(p, seeds, steps=300, record_every=50)
    for i in (0, 13):  # first in its block, and second in the last block
        alone = _records(p, seeds[i : i + 1], steps=300, record_every=50)
        for k in ("h", "y", "w", "loss"):
            np.testing.assert_array_equal(many[k][i], alone[k][0])


def test_analyse_preset_reports_diverged_runs():
    # an absurd learning rate: runs diverge, are flagged and not fitted, nothing crashes
    res = _analysed(_small_preset(lr=50.0), np.arange(2))
    assert res.diverged == 2
    assert res.n_converged == 0
    assert res.fit_quality == "no converged seeds"
    assert all(np.isnan(r["eta_h"]) for r in res.seeds)


def test_cli_two_points_writes_summary(tiny, tmp_path, capsys):
    out = tmp_path / "tp"
    args = ["two-points", "--preset", "default", "relu", "--seeds", "2", "--small"]
    assert cli_main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["presets"] == ["default", "relu"] and summary["mode"] == "full"
    result = summary["result"]
    assert set(result["presets"]) == {"default", "relu"}
    p = result["presets"]["default"]
    assert [r["seed"] for r in p["seeds"]] == [0, 1]
    numeric = [k for k in SEED_KEYS if k not in ("seed", "converged")]
    assert set(p["mean"]) == set(numeric) == set(p["std"])
    assert p["fit_quality"] in ("good", "poor", "no converged seeds")
    assert result["good_fit"] == two_points.GOOD_FIT
    for name in ("default_trajectories.png", "relu_trajectories.png", "r2_overview.png"):
        assert (out / name).stat().st_size > 0
    with np.load(out / "arrays.npz") as f:
        assert f["presets.default.arrays.z_obs"].shape[:1] == (2,)
        assert list(f["presets.relu.arrays.seeds"]) == [0, 1]
    heads = {h["name"]: h for h in summary["headlines"]}
    assert set(heads) == {f"default: mean R² {k}" for k in "hyw"} | {"presets with a good fit"}
    good = heads["presets with a good fit"]
    assert good["n"] == 2 and good["agrees"] is None
    assert good["value"] == sum(v["fit_quality"] == "good" for v in result["presets"].values())
    assert heads["default: mean R² w"]["criterion"] == "≥ 0.95"
    assert "default" in capsys.readouterr().out


def test_cli_rejects_unknown_preset(capsys):
    assert cli_main(["two-points", "--preset", "nonesuch", "--quick"]) == 2
    assert "nonesuch" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_reproduction_all_presets(tmp_path):
    """Every preset at small size, as `rep-align two-points --preset all --small`."""
    args = ["two-points", "--preset", "all", "--seeds", "3", "--small", "--out", str(tmp_path)]
    assert cli_main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["result"]["presets"]) == 19


# ------------------------------------------ depth and ablations on the two_points store


def test_depth_and_ablations_read_the_two_point_runs(tiny, tmp_path):
    """In one store (as `rep-align reproduce` runs them), depth and ablations find the
    two_points quick runs and train nothing; their results and figures are written."""
    store = tmp_path / "store"
    small = {"small": True}
    tp = _run(two_points.EXPERIMENT, tmp_path / "two_points", store=store, **small)
    assert tp.summary["runs_trained"] == 4
    d = _run(depth.EXPERIMENT, tmp_path / "depth", store=store, **small)
    a = _run(
        ablations.EXPERIMENT,
        tmp_path / "ablations",
        store=store,
        variants=("theory", "double_h"),
        **small,
    )
    assert d.summary["runs_trained"] == 0 and a.summary["runs_trained"] == 0
    assert [p.name.split("-")[0] for p in store.iterdir()] == ["default"]
    # depth: one row per hidden layer of seed 0, the same run as two_points' seed 0
    prof = d.result
    assert [r["layer"] for r in prof.layers] == [0, 1]
    assert all(r["eta_h"] > 0 and r["eta_y"] > 0 for r in prof.layers)
    seed0 = tp.result.presets["default"].seeds[0]
    assert prof.final_loss == pytest.approx(seed0["loss_final"], rel=1e-6)
    assert [h.n for h in d.headlines] == [1, 1]
    late = d.headlines[1]
    assert late.agrees == (
        prof.trend.mean_fit_loss_late_layers <= prof.trend.mean_fit_loss_early_layers
    )
    assert (tmp_path / "depth" / "depth.png").stat().st_size > 0
    # ablations: both variants fitted to the 4 runs; the verdict is the check's
    res = a.result
    assert set(res.variants) == {"theory", "double_h"} and res.seeds == 4
    t = res.variants["theory"]
    assert len(t.fit_loss) == 4 and t.failed == 0
    best = res.variants["theory"].mean_fit_loss < res.variants["double_h"].mean_fit_loss
    (check,) = [h for h in a.headlines if h.agrees is not None]
    assert check.name == "double_h: mean fit loss" and check.agrees == best
    assert a.headlines[0].name == "theory: mean fit loss" and a.headlines[0].n == 4
    assert (tmp_path / "ablations" / "ablations.png").stat().st_size > 0
    # a killed depth run (summary gone, store kept) trains nothing either
    (tmp_path / "depth" / "summary.json").unlink()
    again = _run(depth.EXPERIMENT, tmp_path / "depth", store=store, **small)
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert again.summary["result"] == d.summary["result"]


def test_depth_profile_needs_its_seed_among_the_runs(tiny):
    preset = two_points.protocol_preset("default", quick=True).replace(epochs=20)
    with tempfile.TemporaryDirectory() as tmp:
        runs = train_seeds(preset.config, [0, 1], root=tmp, name="default")
        prof = depth.depth_profile(preset, runs, 1)
        assert prof.seed == 1 and len(prof.layers) == preset.config.num_hidden
        with pytest.raises(ValueError, match="seed 5"):
            depth.depth_profile(preset, runs, 5)


def test_cli_depth_and_ablations(tiny, tmp_path, capsys):
    out = tmp_path / "d"
    assert cli_main(["depth", "--seed", "7", "--small", "--out", str(out)]) == 0
    rec = json.loads((out / "summary.json").read_text())
    assert rec["settings"]["store_seeds"] == [7] and rec["result"]["seed"] == 7
    assert "layer" in capsys.readouterr().out
    out = tmp_path / "a"
    args = ["ablations", "--seeds", "2", "--variants", "theory", "flip_w", "--small"]
    assert cli_main([*args, "--out", str(out)]) == 0
    rec = json.loads((out / "summary.json").read_text())
    assert list(rec["result"]["variants"]) == ["theory", "flip_w"]
    printed = capsys.readouterr().out
    best = all(h["agrees"] for h in rec["headlines"] if h["agrees"] is not None)
    assert ("theory fits best" in printed) == best


# ------------------------------------------------------------------------------- grid


def test_grid(tiny, tmp_path, monkeypatch):
    from rep_align.sweep import runner

    monkeypatch.setattr(runner, "STOP_SEGMENT_RECORDS", 10)  # segments of 1,000 epochs
    got = _run(grid.EXPERIMENT, tmp_path, max_epochs=2000, rate_seeds=2)
    res = got.summary["result"]
    assert res["stats"]["n_runs"] == 25
    assert len(res["runs"]) == 25
    dx2 = sorted({r["dx2"] for r in res["runs"]})
    np.testing.assert_allclose(dx2, np.linspace(0.5, 1.5, 5) ** 2)
    for r in res["runs"]:
        if r["h0"] > 0:
            want = theory.final_distance(
                r["h0"],
                r["y0"],
                eta_h=res["rates"]["eta_h"],
                eta_y=res["rates"]["eta_y"],
                dx2=r["dx2"],
                dy2=r["dy2"],
            )
            np.testing.assert_allclose(r["h_theory"], want, rtol=1e-5)
        assert r["kept"] == (r["loss_final"] <= 1e-3)
        assert r["epochs"] % presets.GRID_STOP_EVERY == 0 and 0 < r["epochs"] <= 2000
        stopped = r["loss_final"] < presets.GRID_STOP_LOSS
        assert stopped == (r["epochs"] < 2000) or (stopped and r["epochs"] == 2000)
    assert (tmp_path / "grid.png").exists()
    heads = {h.name: h for h in got.headlines}
    assert heads[grid.PEARSON].value == got.result.stats.pearson_r
    assert heads[grid.PEARSON].n == res["stats"]["n_kept"] and heads[grid.SLOPE].agrees is None
    # a run that stopped early is measured where it stopped: the first record below 1e-4
    early = [r for r in res["runs"] if r["epochs"] < 2000]
    assert early, "some tiny-network run should converge within 2,000 epochs"
    r = min(early, key=lambda r: r["epochs"])  # trains on longest after its stop
    p = get_preset("default").quick()
    x, y = two_point_data(dx2=r["dx2"], dy2=r["dy2"], in_dim=1, out_dim=1)
    alone = train(
        p.config.network(gain=p.gain),
        x,
        y,
        key=jax.random.key(r["seed"]),
        lr=p.lr / 5,
        steps=2000,
        record_every=presets.GRID_STOP_EVERY,
    )
    i = r["epochs"] // presets.GRID_STOP_EVERY
    # (h still moves by about 0.2 % after the stop, so h at the batch's end would fail)
    np.testing.assert_allclose(r["h_measured"], alone.h[i, p.layer], rtol=1e-4)
    assert alone.loss[i] < presets.GRID_STOP_LOSS < alone.loss[i - 1]
    # the stored records end at each run's stop (NaN after it)
    (store,) = (tmp_path / "store").glob("grid_default-*")
    table = load_results(store).table
    assert np.all(table["stop_step"] <= 2000) and np.all(table["n_steps"] == table["stop_step"])
    # resumed: nothing is retrained, the same result
    (tmp_path / "summary.json").unlink()
    again = _run(grid.EXPERIMENT, tmp_path, max_epochs=2000, rate_seeds=2)
    assert again.summary["runs_trained"] == 0 and again.summary["result"] == res


# ----------------------------------------------------------------------- resumption


def _chunks(store):
    return sorted(store.glob("chunks/*.npz")) if store.exists() else []


def test_killed_two_points_resumes_to_the_uninterrupted_summary(tmp_path):
    """SIGKILL after the first stored chunk; the rerun retrains nothing that was stored and
    writes the same result as an uninterrupted run."""
    args = ["two-points", "--preset", "default", "relu", "--seeds", "5", "--small"]
    env = dict(os.environ, REP_ALIGN_HOST_DEVICES="0")
    code = (
        "import sys; from rep_align import presets; presets.QUICK_WIDTH = 16; "
        "presets.QUICK_DEPTH = 2; from rep_align.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sweeps = killed / "store"
    deadline = time.monotonic() + 240
    try:
        while not any(_chunks(p) for p in sweeps.glob("default-*")):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (store,) = sweeps.glob("default-*")
    stored = {p.name: p.stat().st_mtime_ns for p in _chunks(store)}
    assert stored and not list(sweeps.glob("relu-*")), "the kill should land mid-run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(presets, "QUICK_WIDTH", 16)
        mp.setattr(presets, "QUICK_DEPTH", 2)
        assert cli_main([*args, "--out", str(killed)]) == 0
        for name, mtime in stored.items():  # stored chunks are read, not rewritten
            assert (store / "chunks" / name).stat().st_mtime_ns == mtime
        whole = tmp_path / "whole"
        assert cli_main([*args, "--out", str(whole)]) == 0
        a = json.loads((killed / "summary.json").read_text())
        b = json.loads((whole / "summary.json").read_text())
        for key in ("settings", "headlines", "result", "figures"):
            assert a[key] == b[key]
        assert a["runs_trained"] < b["runs_trained"] == 10
        # and a second run of the finished job trains nothing
        (killed / "summary.json").unlink()
        again = _run(
            two_points.EXPERIMENT,
            killed,
            quick=False,
            presets=("default", "relu"),
            seeds=5,
            small=True,
        )
        assert again.summary["runs_trained"] == 0 and again.summary["result"] == a["result"]
