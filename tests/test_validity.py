"""The validity map (``rep-align validity``): width × depth × gain, every run fitted,
through the driver: heatmaps, the boundary rule, cells as means over the stored runs, its
check, resumption and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rep_align import sweep
from rep_align.cli import main as cli_main
from rep_align.experiments import _driver as driver
from rep_align.experiments import validity
from rep_align.experiments._protocol import Headline, apply_checks

pytest.importorskip("xarray")

TINY = dict(seeds=1, widths=(8, 16), depths=(2,))


def test_validity_map_writes_heatmaps_and_the_boundary(tmp_path):
    got = driver.run(validity.EXPERIMENT, tmp_path, changes=TINY, progress=lambda s: None)
    res = got.result
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "validity.png").stat().st_size > 10_000
    result = summary["result"]
    assert result["widths"] == [8, 16] and result["depths"] == [2]
    assert result["r2_w_bound"] == validity.R2_W_BOUND == 0.95
    assert [m["gain"] for m in result["maps"]] == list(validity.GAINS)
    for m in res.maps:
        r2_w = m.r2_w[:, 0]
        start = m.boundary[2]
        # the boundary is the smallest width from which every wider one meets the bound
        good = np.nan_to_num(r2_w, nan=-np.inf) >= validity.R2_W_BOUND
        want = 8 if good.all() else (16 if good[1] else None)
        assert start == want
        (stored,) = [g for g in result["maps"] if g["gain"] == m.gain]
        assert stored["boundary"]["2"] == want
        # the headline counts the depths with a boundary
        (head,) = [h for h in got.headlines if h.name.startswith(f"gain {m.gain:g}:")]
        assert head.value == float(want is not None) and head.n == 1
    # the map's cells are means over the stored, fitted runs (the xarray view)
    ds = sweep.load_results(next((tmp_path / "store").glob("validity_gain_1-*"))).to_xarray()
    cell = ds.sel(width=16, depth=2)
    ok = cell.converged.values & cell.fit_ok.values
    (m1,) = [m for m in res.maps if m.gain == 1.0]
    if ok.any():
        assert m1.r2_w[1, 0] == pytest.approx(float(cell.r2_w.values[ok].mean()))
    # resumed with the store: nothing is retrained
    (tmp_path / "summary.json").unlink()
    again = driver.run(validity.EXPERIMENT, tmp_path, changes=TINY, progress=lambda s: None)
    assert again.summary["runs_trained"] == 0 and again.summary["result"] == result


def test_validity_check_can_fail():
    s = validity.settings(True)
    (check,) = validity.CHECKS
    for found, agrees in ((0.0, False), (1.0, True), (3.0, True)):
        (h,) = apply_checks([Headline(check.key, found, n=3)], validity.EXPERIMENT.checks_for(s))
        assert h.agrees is agrees


def test_validity_settings():
    q, f = validity.settings(True), validity.settings(False)
    assert (q.widths, q.depths, q.seeds) == ((16, 64, 256), (2, 4, 8), 2)
    assert (f.widths, f.depths, f.seeds) == ((16, 32, 64, 128, 256, 512), (2, 4, 8, 12, 16, 20), 4)
    specs = validity.validity_specs(q)
    assert set(specs) == set(validity.GAINS)
    assert all(s.fit for s in specs.values())
    with pytest.raises(ValueError, match="widths"):
        driver.run(validity.EXPERIMENT, "unused", changes={"widths": ()})
    with pytest.raises(ValueError, match="gains"):
        driver.run(validity.EXPERIMENT, "unused", changes={"gains": (0.7,)})


def test_cli_validity(tmp_path, capsys):
    args = ["validity", "--seeds", "1", "--widths", "8", "--depths", "2", "--out", str(tmp_path)]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "where mean R² w >= 0.95 begins" in printed and "gain 1:" in printed
    rec = json.loads((tmp_path / "summary.json").read_text())
    assert rec["settings"]["widths"] == [8] and rec["experiment"] == "validity"
