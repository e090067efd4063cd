"""Smoke tests of the benchmarks (``python -m benchmarks``): every case runs end to end.

No timing is asserted: these only check that the cases run, agree with their references
where they check agreement, and write their results and plots. The test runs the
full ``--quick`` mode in a fresh process, as the benchmarks' README says to.
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


def test_quick_run(tmp_path, monkeypatch):
    # ``python -m benchmarks --quick`` as a user runs it (about 1.5 min on 2 cores)
    monkeypatch.syspath_prepend(str(ROOT))  # the benchmarks are not an installed package
    from benchmarks.__main__ import CASES

    drop = ("XLA_FLAGS", "REP_ALIGN_HOST_DEVICES")  # the benchmarks run with the defaults
    env = {k: v for k, v in os.environ.items() if k not in drop}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a guard against a hang, not a timing: the suite shares the cores
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True
    assert results["limits"]["memory_bandwidth"]["best_gbs"] > 0
    for case in CASES:
        assert "error" not in results[case], results[case]
        assert (tmp_path / f"{case}.png").stat().st_size > 0
    # The cases that compare outputs before timing them must have found agreement.
    if "check_float64" in results["train"]:
        assert results["train"]["check_float64"]["agrees"], results["train"]["check_float64"]
    # the step's parts, forward and backward dots apart, as the breakdown reports them
    parts = results["train"]["breakdown"]
    for part in ("forward_dots", "backward_dots", "update", "step"):
        assert parts[part]["us_per_step"] > 0 and parts[part]["bytes_per_step"] > 0, parts
    fit = results["fit"]
    assert fit["agreement"]["rep_align_converged"] == fit["rows"][-1]["n"]
