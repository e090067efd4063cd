"""Several processes on one sweep (jax.distributed on 127.0.0.1), labelled results, memory
budget: the store stays whole, every run is done once, numbers match one process."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rep_align import sweep
from rep_align.sweep import processes

# Chunks of a fixed shape (runs_per_device), so that one process and several give the
# same batches and so the same numbers, run for run.
SPEC = """
name = "multi"
runs_per_device = 2
[fixed]
depth = 2
steps = 40
record_every = 5
lr = 0.05
[axes]
width = [8, 16]
gain = [0.6, 1.3]
seed = [0, 1, 2]
"""


def _assert_same_runs(a: Path, b: Path) -> None:
    ra, rb = sweep.load_results(a), sweep.load_results(b)
    assert list(ra.table["run_id"]) == list(rb.table["run_id"])
    for k in ra.table:
        if k != "group":
            np.testing.assert_array_equal(ra.table[k], rb.table[k], err_msg=k)
    ids = list(ra.table["run_id"])
    ta, tb = ra.records(ids), rb.records(ids)
    for k in ta:
        np.testing.assert_array_equal(ta[k], tb[k], err_msg=k)


def _csv_ids(out: Path) -> list[str]:
    with open(out / "results.csv") as fh:
        return [row["run_id"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[Path, Path]:
    """The spec run by one process with one device."""
    root = tmp_path_factory.mktemp("single")
    spec_path = root / "spec.toml"
    spec_path.write_text(SPEC)
    out = root / "one"
    sweep.run_sweep(sweep.load_spec(spec_path), out)
    return spec_path, out


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


@pytest.mark.parametrize(("n", "host_devices"), [(2, 1), (3, 2)])
def test_local_processes_match_one_process(single, tmp_path, n, host_devices):
    spec_path, one = single
    out = tmp_path / "multi"
    cmd = [sys.executable, "-m", "rep_align.cli", "sweep", str(spec_path), "--out", str(out)]
    cmd += ["--processes", str(n), "--host-devices", str(host_devices)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"12 of 12 runs finished by {n} processes" in proc.stdout
    _assert_same_runs(one, out)
    assert sorted(_csv_ids(out)) == sorted(r.run_id for r in sweep.load_spec(spec_path).runs())
    assert json.loads((out / "manifest.json").read_text())["num_runs"] == 12
    # each process wrote its own share of the plan
    names = {p.name for p in (out / "chunks").glob("*.npz")}
    assert len(names) >= n


def _start(spec_path: Path, out: Path, port: int, i: int, n: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rep_align.cli", "sweep", str(spec_path), "--out", str(out)]
    cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n)]
    cmd += ["--process-id", str(i), "--quiet"]
    return subprocess.Popen(
        cmd,
        env=_env(REP_ALIGN_HOST_DEVICES="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_killed_process_then_restart_completes_every_run_once(tmp_path):
    spec_text = SPEC.replace("runs_per_device = 2", "runs_per_device = 1")
    spec_text = spec_text.replace("steps = 40", "steps = 8000").replace(
        "record_every = 5", "record_every = 1000"
    )
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(spec_text)
    out = tmp_path / "killed"
    port = processes.free_port()
    procs = [_start(spec_path, out, port, i, 2) for i in (0, 1)]
    deadline = time.monotonic() + 300
    try:
        # kill process 1 as soon as it has stored a chunk (its runs sit at odd positions)
        odd = {r.run_id for k, r in enumerate(sweep.load_spec(spec_path).runs()) if k % 2}
        while True:
            assert time.monotonic() < deadline, "process 1 stored nothing in time"
            done = sweep.store.finished_ids(out) if (out / "chunks").exists() else set()
            if done & odd:
                break
            assert procs[1].poll() is None, "process 1 ended before it could be killed"
            time.sleep(0.01)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=30)
        try:  # the other process may notice its peer's death, or finish its share
            procs[0].wait(timeout=120)
        except subprocess.TimeoutExpired:
            procs[0].kill()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    before = sweep.store.finished_ids(out)
    assert 0 < len(before) < 12, "the kill should land mid-sweep"
    json.loads((out / "manifest.json").read_text())  # whole
    port = processes.free_port()
    again = [_start(spec_path, out, port, i, 2) for i in (0, 1)]
    assert [p.wait(timeout=600) for p in again] == [0, 0]
    ids = []
    for path in sorted((out / "chunks").glob("*.npz")):
        with np.load(path) as f:
            ids.extend(str(i) for i in f["run_id"])
    assert len(ids) == len(set(ids)) == 12  # every run exactly once
    assert sorted(_csv_ids(out)) == sorted(set(ids))
    whole = tmp_path / "whole"
    sweep.run_sweep(sweep.load_spec(spec_path), whole)
    _assert_same_runs(whole, out)


def test_to_xarray_selects_runs_and_round_trips(single, tmp_path):
    pytest.importorskip("xarray")
    spec_path, one = single
    res = sweep.load_results(one)
    ds = res.to_xarray()
    spec = sweep.load_spec(spec_path)
    for name, values in spec.axes:
        assert sorted(set(ds[name].values.tolist())) == sorted(values)
    # selecting two of the three axes leaves the runs indexed by the third (xarray's
    # multi-index selection): the three seeds of that width and gain
    picked = ds.sel(width=16, gain=1.3)
    rows = [
        i for i in range(len(res)) if res.table["width"][i] == 16 and res.table["gain"][i] == 1.3
    ]
    assert picked.run_id.size == len(rows) == 3
    assert sorted(picked.seed.values.tolist()) == [0, 1, 2]
    assert set(picked.run_id.values.tolist()) == {res.table["run_id"][i] for i in rows}
    with open(one / "results.csv") as fh:
        table = {row["run_id"]: row for row in csv.DictReader(fh)}
    for rid, h in zip(picked.run_id.values, picked.h_final.values, strict=True):
        assert float(table[str(rid)]["h_final"]) == pytest.approx(float(h), rel=1e-7)
        assert table[str(rid)]["width"] == "16"
    # trajectories over (run, time, layer), time in steps
    assert ds.h.dims == ("run", "time", "layer") and ds.h.shape == (12, 9, 2)
    np.testing.assert_array_equal(ds.time.values, np.arange(0, 41, 5))
    i = list(res.table["run_id"]).index(str(picked.run_id.values[0]))
    np.testing.assert_array_equal(picked.h.values[0], res.records([res.table["run_id"][i]])["h"][0])
    path = tmp_path / "ds.nc"
    sweep.save_dataset(ds, path)
    back = sweep.open_dataset(path)
    assert back.identical(ds)
    assert back.sel(width=8, gain=0.6).run_id.size == 3


def test_small_memory_budget_gives_more_chunks_and_the_same_numbers(single, tmp_path):
    spec_path, one = single
    spec = sweep.load_spec(spec_path)
    import dataclasses

    auto = dataclasses.replace(spec, runs_per_device=0)
    per_run = sweep.estimate_run_bytes(spec.runs()[-1]) / 2**20
    big = sweep.run_sweep(auto, tmp_path / "big")
    small = sweep.run_sweep(
        dataclasses.replace(auto, memory_budget_mb=2.5 * per_run), tmp_path / "small"
    )
    assert small.num_chunks > big.num_chunks
    _assert_same_runs(tmp_path / "big", tmp_path / "small")
