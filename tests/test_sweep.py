"""Sweeps: spec validation, grouping, chunking, devices, the results store and resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rep_align import sweep

# A tiny two-group sweep (widths 8 and 16), fast on CPU.
SMALL = dict(
    axes={"width": [8, 16], "gain": [0.6, 1.3], "seed": [0, 1, 2]},
    fixed={"depth": 2, "steps": 60, "record_every": 5, "lr": 0.05},
)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """The SMALL sweep, unchunked, in a store shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("small") / "store"
    report = sweep.run_sweep(sweep.SweepSpec(**SMALL), out)
    assert report.num_groups == 2 and report.num_chunks == 2 and report.completed == 12
    return out


def _chunk_ids_of(path: Path) -> list[str]:
    with np.load(path, allow_pickle=False) as f:
        return [str(i) for i in f["run_id"]]


def _chunk_ids(out: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted((out / "chunks").glob("*.npz")):
        with np.load(path, allow_pickle=False) as f:
            ids.extend(str(i) for i in f["run_id"])
    return ids


def _assert_same_results(a: Path, b: Path) -> None:
    """Two stores hold the same runs with bit-identical columns and trajectories."""
    ra, rb = sweep.load_results(a), sweep.load_results(b)
    assert sorted(ra.table) == sorted(rb.table)
    for k in ra.table:
        np.testing.assert_array_equal(ra.table[k], rb.table[k], err_msg=k)
    for g in sorted(set(ra.table["group"])):
        ia, ta = ra.trajectories(g)
        ib, tb = rb.trajectories(g)
        oa, ob = np.argsort(ia), np.argsort(ib)
        np.testing.assert_array_equal(ia[oa], ib[ob])
        for k in ("loss", "h", "y", "w", "m"):
            np.testing.assert_array_equal(ta[k][oa], tb[k][ob], err_msg=k)


# ----------------------------------------------------------------------------- the spec


def test_runs_are_the_product_of_axes_with_stable_ids():
    spec = sweep.SweepSpec(**SMALL)
    runs = spec.runs()
    assert spec.num_runs == len(runs) == 12
    assert [(r.width, r.gain, r.seed) for r in runs[:4]] == [
        (8, 0.6, 0),
        (8, 0.6, 1),
        (8, 0.6, 2),
        (8, 1.3, 0),
    ]
    assert all(r.depth == 2 and r.steps == 60 for r in runs)
    assert len({r.run_id for r in runs}) == 12
    # The id is a hash of the configuration: equal configs, equal ids; 1 and 1.0 agree.
    assert sweep.RunConfig(width=8, gain=1).run_id == sweep.RunConfig(width=8, gain=1.0).run_id
    assert sweep.RunConfig(seed=1).run_id != sweep.RunConfig(seed=2).run_id
    # Stable across processes and versions of Python's hash seed: a fixed value.
    code = "from rep_align.sweep import RunConfig; print(RunConfig(width=8).run_id)"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == sweep.RunConfig(width=8).run_id


def test_toml_roundtrip_and_generators(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent(
            """
            name = "demo"
            max_chunk = 3
            [fixed]
            depth = 2
            pair = [1, 0]
            [axes]
            seed = {range = 3}
            gain = {geomspace = [0.5, 2.0, 3]}
            lr = {linspace = [0.01, 0.03, 3]}
            activation = ["tanh", "relu"]
            """
        )
    )
    spec = sweep.load_spec(path)
    assert spec.name == "demo" and spec.max_chunk == 3 and spec.num_runs == 54
    assert dict(spec.axes)["seed"] == (0, 1, 2)
    np.testing.assert_allclose(dict(spec.axes)["gain"], [0.5, 1.0, 2.0])
    assert spec.runs()[0].pair == (1, 0)
    again = tmp_path / "again.toml"
    again.write_text(spec.to_toml())
    assert sweep.load_spec(again) == spec
    # Execution options do not change the spec hash; the runs do.
    import dataclasses

    assert dataclasses.replace(spec, max_chunk=7).spec_hash == spec.spec_hash
    other = sweep.SweepSpec(axes={"seed": [0, 1]}, fixed={"depth": 2})
    assert other.spec_hash != spec.spec_hash


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": {"widht": [8]}}, "unknown axis 'widht'"),
        ({"axes": {"gain": []}}, "axis 'gain' is empty"),
        ({"axes": {"width": [8, -4]}}, "'width': must be a positive integer"),
        ({"axes": {"activation": ["relu", "sigmoid"]}}, "'activation': must be one of"),
        ({"axes": {"lr": [0.1, 0.0]}}, "'lr': must be positive"),
        ({"axes": {"gain": [1.0, 1.0]}}, "axis 'gain' has duplicate values"),
        ({"axes": {"seed": [-1]}}, "'seed'"),
        ({"axes": {"width": ["wide"]}}, "setting 'width': expected int"),
        ({"fixed": {"depht": 3}}, "unknown setting 'depht'"),
        ({"fixed": {"width": 8}, "axes": {"width": [8, 16]}}, "both fixed and an axis"),
        ({"fixed": {"steps": 100, "record_every": 7}}, "record_every=7 must divide steps=100"),
        ({"fixed": {"arch": "cnn", "width": 30, "depth": 3}}, "cnn: width=30"),
        ({"fixed": {"task": "xor", "dx2": 2.0}}, "'dx2' applies only to task 'two_points'"),
        ({"fixed": {"rtol": 1e-6}}, "'rtol' applies only to method 'flow'"),
        ({"fixed": {"method": "flow", "optimizer": "adam"}}, "optimizer must be 'sgd'"),
        ({"fixed": {"layer": 9, "depth": 4}}, "layer=9 out of range"),
        ({"axes": {"gain": {"logspace": [0, 1, 3]}}}, "generator table"),
        ({"axes": {"gain": 0.5}}, "axis 'gain': expected a list"),
        ({"max_chunk": 0}, "'max_chunk'"),
        ({"nmae": "x"}, "unknown top-level key 'nmae'"),
    ],
)
def test_bad_spec_fails_before_compute_naming_the_problem(data, message, monkeypatch):
    def no_compute(*args, **kwargs):
        raise AssertionError("compute started for an invalid spec")

    from rep_align import training

    monkeypatch.setattr(training, "train", no_compute)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        sweep.spec_from_dict(data)


def test_bad_spec_file_via_cli_fails_before_compute(tmp_path, capsys):
    from rep_align.cli import main

    spec = tmp_path / "bad.toml"
    spec.write_text("[fixed]\nwidth = 8\n[axes]\nactivation = ['relu', 'softplus']\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "'activation'" in err and "softplus" in err
    assert not out.exists()


# ------------------------------------------------------------------------ running


@contextlib.contextmanager
def _count_compiles():
    """Count XLA compilations inside the block (JAX's public monitoring events)."""
    import jax

    count = [0]

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_groups_compile_once_and_chunked_equals_unchunked(tmp_path, small_store):
    spec = sweep.SweepSpec(**SMALL)
    chunked = sweep.SweepSpec(**SMALL, max_chunk=4)  # 6 runs per group: chunks of 4 and 2
    with _count_compiles() as two_chunks:
        report = sweep.run_sweep(chunked, tmp_path / "chunked")
    assert report.num_groups == 2 and report.num_chunks == 4
    # 4 runs per group: one chunk of the same shape per group. The second chunk of a group
    # (the last one, padded to full size) compiles nothing.
    one = sweep.SweepSpec(**{**SMALL, "axes": {**SMALL["axes"], "seed": [0, 1]}}, max_chunk=4)
    with _count_compiles() as one_chunk:
        assert sweep.run_sweep(one, tmp_path / "one").num_chunks == 2
    assert two_chunks[0] == one_chunk[0] >= 2
    _assert_same_results(small_store, tmp_path / "chunked")
    res = sweep.load_results(small_store)
    assert len(res) == 12 and res.num_missing == 0
    assert list(res.table["run_id"]) == [r.run_id for r in spec.runs()]
    _, traj = res.trajectories(res.table["group"][0])
    assert traj["h"].shape == (6, 13, 2) and traj["times"][-1] == 60
    # Summaries are the recorded trajectories at the read-out layer (depth // 2 = 1).
    i = list(res.table["run_id"]).index(spec.runs()[0].run_id)
    ids, traj = res.trajectories(res.table["group"][i])
    j = list(ids).index(spec.runs()[0].run_id)
    assert res.table["h_final"][i] == traj["h"][j, -1, 1]
    assert res.table["loss_final"][i] == traj["loss"][j, -1]


def test_sweep_matches_a_direct_training_run(tmp_path):
    import jax

    from rep_align import data, networks, training

    spec = sweep.SweepSpec(axes={"gain": [0.8, 1.2]}, fixed={"width": 8, "depth": 2, "steps": 40})
    sweep.run_sweep(spec, tmp_path)
    res = sweep.load_results(tmp_path)
    net = networks.make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2)
    x, y = data.two_points(dx2=1.0, dy2=0.5)
    traj = training.train(
        net, x, y, key=jax.random.key(0), lr=0.01, steps=40, record_every=10, gain=1.2
    )
    np.testing.assert_allclose(res.table["loss_final"][1], traj.loss[-1], rtol=1e-6)
    np.testing.assert_allclose(res.table["h_final"][1], traj.h[-1, 1], rtol=1e-6)


def test_same_results_on_one_and_four_devices(tmp_path, small_store):
    spec = sweep.SweepSpec(**SMALL)
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    script = textwrap.dedent(
        f"""
        import jax
        from rep_align import sweep
        assert len(jax.local_devices()) == 4, jax.local_devices()
        spec = sweep.load_spec({str(tmp_path / "spec.toml")!r})
        report = sweep.run_sweep(spec, {str(tmp_path / "four")!r})
        print(report.num_chunks)
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    # 6 runs per group over 4 devices: 2 per device, one chunk of 8 (2 padded) per group.
    assert proc.stdout.split()[-1] == "2"
    _assert_same_results(small_store, tmp_path / "four")


def test_processes_split_the_plan_without_overlap(tmp_path):
    spec = sweep.SweepSpec(axes={"gain": [0.6, 1.3], "seed": [0, 1, 2]}, fixed=SMALL["fixed"])
    a = sweep.run_sweep(spec, tmp_path, process_index=0, process_count=2)
    b = sweep.run_sweep(spec, tmp_path, process_index=1, process_count=2)
    assert a.completed == b.completed == 3
    ids = _chunk_ids(tmp_path)
    assert sorted(ids) == sorted(r.run_id for r in spec.runs())


def test_diverging_run_is_flagged_not_fatal(tmp_path):
    spec = sweep.SweepSpec(
        axes={"lr": [0.01, 1e4]}, fixed={"width": 8, "depth": 2, "steps": 50, "gain": 1.5}
    )
    report = sweep.run_sweep(spec, tmp_path)
    res = sweep.load_results(tmp_path)
    assert report.diverged == 1
    assert list(res.table["diverged"]) == [False, True]
    assert res.table["diverged_step"][1] >= 0 and res.table["diverged_step"][0] == -1
    assert np.isfinite(res.table["loss_final"][0]) and np.isnan(res.table["loss_final"][1])
    assert list(res.table["converged"]) == [False, False]
    csv_text = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv_text) == 3 and "diverged" in csv_text[0]


def test_gradient_flow_runs_in_a_sweep(tmp_path):
    spec = sweep.SweepSpec(
        axes={"gain": [0.7, 1.0]},
        fixed={"method": "flow", "width": 8, "depth": 2, "steps": 20, "lr": 0.05, "rtol": 1e-4},
        save_trajectories=False,
    )
    sweep.run_sweep(spec, tmp_path)
    res = sweep.load_results(tmp_path)
    assert res.table["solver_ok"].all() and (res.table["n_steps"] > 0).all()
    assert np.all(np.isfinite(res.table["h_final"]))
    with pytest.raises(ValueError, match="save_trajectories"):
        res.trajectories(res.table["group"][0])


# -------------------------------------------------------------------------- the store


def test_changed_spec_is_refused_and_same_spec_resumes(tmp_path, small_store, monkeypatch):
    spec = sweep.SweepSpec(**SMALL)
    first = sorted(p.name for p in (small_store / "chunks").iterdir())
    again = sweep.run_sweep(spec, small_store)
    assert again.skipped == 12 and again.completed == 0
    assert sorted(p.name for p in (small_store / "chunks").iterdir()) == first

    def no_compute(*args, **kwargs):
        raise AssertionError("compute started for a mismatched spec")

    from rep_align import training

    monkeypatch.setattr(training, "train", no_compute)
    changed = sweep.SweepSpec(axes={**SMALL["axes"], "seed": [0, 1, 2, 3]}, fixed=SMALL["fixed"])
    with pytest.raises(sweep.SpecMismatchError, match="different spec"):
        sweep.run_sweep(changed, small_store)
    assert sorted(p.name for p in (small_store / "chunks").iterdir()) == first
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(sweep.SpecMismatchError, match="not a sweep results store"):
        sweep.run_sweep(spec, stranger)


def test_store_is_readable_with_numpy_alone(small_store):
    spec = sweep.SweepSpec(**SMALL)
    tmp_path = small_store
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == sweep.FORMAT and manifest["num_runs"] == 12
    assert manifest["spec_hash"] == spec.spec_hash
    path = next((tmp_path / "chunks").glob("*.npz"))
    with np.load(path, allow_pickle=False) as f:
        n = len(f["run_id"])
        assert f["h"].shape == (n, 13, 2) and f["gain"].shape == (n,)
        assert f["times"].shape == (13,)
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert {"run_id", "gain", "width", "h_final", "diverged"} <= set(header)


def test_killed_sweep_resumes_to_exactly_the_uninterrupted_runs(tmp_path):
    # Long runs in chunks of one, so the kill lands between chunks; the sweep is killed
    # with SIGKILL as soon as the first chunk file appears.
    spec_path = tmp_path / "kill.toml"
    spec_path.write_text(
        textwrap.dedent(
            """
            name = "kill-test"
            max_chunk = 1
            [fixed]
            width = 8
            depth = 2
            steps = 60000
            record_every = 1000
            [axes]
            gain = [0.7, 1.3]
            seed = [0, 1, 2]
            """
        )
    )
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from rep_align.cli import main; main()"]
    proc = subprocess.Popen(
        [*cmd, "sweep", str(spec_path), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while not _chunk_ids(out) if (out / "chunks").exists() else True:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_ids = _chunk_ids(out)
    assert 0 < len(killed_ids) < 6, "the kill should land mid-sweep"
    spec = sweep.load_spec(spec_path)
    report = sweep.run_sweep(spec, out)
    assert report.skipped == len(killed_ids) and report.completed == 6 - len(killed_ids)
    ids = _chunk_ids(out)
    assert len(ids) == len(set(ids)) == 6  # every run exactly once
    assert not list((out / "chunks").glob(".*"))  # no temporary files left
    import dataclasses

    whole = tmp_path / "whole"
    sweep.run_sweep(dataclasses.replace(spec, max_chunk=8), whole)
    _assert_same_results(out, whole)


def _train_kind(kind: str, root: Path):
    """Six tiny runs of one kind through the experiments' entry points (blocks of 4):
    ``(what the engine did, the runs' records)``."""
    from rep_align.config import RunConfig
    from rep_align.experiments.common import train_seeds
    from rep_align.experiments.points import PointsRun, run_points

    if kind == "pair":
        config = RunConfig(width=8, depth=2, steps=20, record_every=5)
        runs = train_seeds(config, range(6), root=root, name="resume")
        return runs.report, [runs.records[k] for k in ("loss", "h", "y", "w", "m")]
    base = PointsRun(task="xor", width=8, depth=2, epochs=10, record_every=5)
    done = run_points([base.replace(seed=s) for s in range(6)], root, progress=lambda line: None)
    return done.report, [v for rec in done.records for v in rec.values()]


@pytest.mark.parametrize("kind", ["pair", "points"])
def test_resume_trains_only_the_runs_missing_from_the_store(tmp_path, monkeypatch, kind):
    """Per kind of run: a store that lost its last chunk (as a sweep killed before writing it
    leaves it) trains exactly the missing runs, counted where runs are trained, and ends with
    the bits of the uninterrupted runs."""
    from rep_align.sweep import runner

    trained: list[int] = []
    run = runner.GroupRunner.run

    def counting(self, inputs, n_real):
        trained.append(n_real)
        return run(self, inputs, n_real)

    monkeypatch.setattr(runner.GroupRunner, "run", counting)
    report, whole = _train_kind(kind, tmp_path)
    assert (report.completed, trained) == (6, [4, 2])
    sizes = {p: len(_chunk_ids_of(p)) for p in (report.out / "chunks").glob("*.npz")}
    (chunk,) = [p for p, n in sizes.items() if n == 2]
    chunk.unlink()
    report, again = _train_kind(kind, tmp_path)
    assert (report.completed, report.skipped, trained) == (2, 4, [4, 2, 2])
    assert report.out == chunk.parents[1] and len(_chunk_ids(report.out)) == 6
    for a, b in zip(whole, again, strict=True):
        np.testing.assert_array_equal(a, b)
    report, _ = _train_kind(kind, tmp_path)
    assert (report.completed, report.skipped, trained) == (0, 6, [4, 2, 2])


def test_pair_run_ids_and_store_names_are_those_of_the_first_release():
    """Ids, group keys, spec hash and TOML of two-point runs, computed at a394e93 (before
    points runs became RunConfigs): stores written then are found and resumed now."""
    from rep_align.config import RunConfig
    from rep_align.presets import TWO_POINT_PRESETS
    from rep_align.sweep.engine import groups_of

    cfgs = [
        RunConfig(),
        RunConfig(task="xor", width=8, depth=2, seed=3),
        RunConfig(method="flow", gain=0.7, rtol=1e-6),
        RunConfig(stop_loss=1e-3, width=16),
        RunConfig(dtype="float64", init_dtype="float32", layer=-1),
        TWO_POINT_PRESETS["default"].config,
        TWO_POINT_PRESETS["cnn"].config.replace(seed=7),
    ]
    ids = ["5ba0e735061c29b8", "c39148973fc6ea0e", "59d35d72ddbc68d8", "16d4d5b7e379c2b4"]
    ids += ["c18a594210ed4472", "6f101ac478307a92", "b0d808941fab24ac"]
    assert [c.run_id for c in cfgs] == ids
    keys = ["f8a5391c", "f8ace449", "740ece13", "afe0f8e3", "42d0ab3a", "6cb88e59", "7431a76c"]
    assert [g.key for g in groups_of(cfgs)] == keys
    spec = sweep.SweepSpec(
        axes={"seed": [0, 1, 2], "gain": [0.5, 1.0]},
        fixed={"width": 8, "depth": 2, "steps": 40},
        runs_per_device=4,
        name="t",
    )
    assert spec.spec_hash == "2934bb5c32818fb0"
    assert spec.to_toml() == (
        'name = "t"\nfit = false\nsave_trajectories = true\nmemory_budget_mb = 2048.0\n'
        "max_chunk = 1024\nruns_per_device = 4\n\n[fixed]\ndepth = 2\nsteps = 40\n"
        "width = 8\n\n[axes]\nseed = [0, 1, 2]\ngain = [0.5, 1.0]\n"
    )


def test_fit_hook_adds_rates(tmp_path):
    pytest.importorskip("rep_align.fit")
    spec = sweep.SweepSpec(
        axes={"gain": [0.5, 1e-3]},
        fixed={"width": 16, "depth": 2, "steps": 400, "lr": 0.05},
        fit=True,
    )
    sweep.run_sweep(spec, tmp_path)
    res = sweep.load_results(tmp_path)
    for k in ("eta_h", "eta_y", "eta_m", "r2_h", "r2_y", "r2_w", "h_inf_theory", "fit_ok"):
        assert k in res.table, k
    assert res.table["fit_ok"][0] and res.table["eta_h"][0] > 0 and res.table["eta_y"][0] > 0
    assert res.table["r2_y"][0] > 0.8


def test_sweep_plot_writes_standard_figures(small_store, tmp_path, capsys):
    from rep_align.cli import main

    assert main(["sweep-plot", str(small_store), "--out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["final_vs_gain.png", "heatmap_h_final.png", "trajectories.png"]
    assert all((tmp_path / "figs" / n).stat().st_size > 1000 for n in names)
