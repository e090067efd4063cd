"""Smoke tests of the benchmarks (``python -m benchmarks``): every case runs end to end.

No timing is asserted: these only check that the cases run, agree with their references
where they check agreement, and write their results and plots. The default test shrinks
every case to toy sizes (well under a minute); the full ``--quick`` run is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]

# Toy sizes per case, replacing each module's SIZES["quick"] for the default test.
TINY = {
    "theory_bench": dict(ns=(1, 50), sample=4),
    "fit_bench": dict(ns=(1, 3), scipy_runs=1, repeats=1),
    "train_bench": dict(
        width=16,
        depth=2,
        lr=0.005,
        steps=20,
        repeats=1,
        torch_steps=10,
        torch_repeats=1,
        check_steps=5,
        seeds=(2,),
        ensemble_steps=10,
        ensemble_repeats=1,
        torch_ensemble_steps=5,
    ),
    "flow_bench": dict(
        lr=0.005,
        steps=50,
        saves=5,
        networks=(dict(width=8, depth=2, dx2s=(0.81,), rtols=(1e-3,), max_steps=1000),),
    ),
    "scaling_bench": dict(
        base=dict(width=16, depth=2, runs=1, points=2),
        axes=dict(width=[16, 32], depth=[2, 3], runs=[1, 2], points=[2, 4]),
        target_s=0.005,
        repeats=1,
    ),
    "cores_bench": dict(
        width=16,
        depth=2,
        lr=0.005,
        train_steps=10,
        seeds=2,
        ensemble_steps=10,
        theory_n=64,
        repeats=1,
        rounds=1,
        workloads=("theory",),
        settings=("1 device", "n devices"),
    ),
}


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root (as ``python -m benchmarks`` is), with it importable."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))


def test_every_case_runs_at_toy_sizes(tmp_path, monkeypatch, in_root):
    import importlib

    from benchmarks import __main__ as runner

    for module, size in TINY.items():
        mod = importlib.import_module(f"benchmarks.{module}")
        monkeypatch.setitem(mod.SIZES, "quick", size)
    assert sorted(TINY) == sorted(runner.CASES.values())
    out = tmp_path / "results"
    assert runner.main(["--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True
    assert results["limits"]["memory_bandwidth"]["best_gbs"] > 0
    for case in runner.CASES:
        assert "error" not in results[case], results[case]
        assert (out / f"{case}.png").stat().st_size > 0
    # The cases that compare outputs before timing them must have found agreement.
    if "check_float64" in results["train"]:
        assert results["train"]["check_float64"]["agrees"], results["train"]["check_float64"]
    assert results["fit"]["agreement"]["rep_align_converged"] == 3


@pytest.mark.slow
def test_quick_run(tmp_path):
    drop = ("XLA_FLAGS", "REP_ALIGN_HOST_DEVICES")  # the benchmarks run with the defaults
    env = {k: v for k, v in os.environ.items() if k not in drop}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert all("error" not in results[c] for c in results if isinstance(results[c], dict))
