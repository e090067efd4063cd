"""The results store verifies what it reads; the plan is stated and checked before training;
fitting does not depend on chunking (issue 30)."""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

from rep_align import sweep
from rep_align.sweep import _csv, store
from rep_align.sweep.runner import GroupRunner

# One group of six tiny runs, trained in chunks of one run on one device.
TINY = dict(
    axes={"gain": [0.5, 1.0], "seed": [0, 1, 2]},
    fixed={"width": 8, "depth": 2, "steps": 40, "record_every": 10, "lr": 0.01},
    max_chunk=1,
)


def _run(spec: sweep.SweepSpec, out: Path, **kwargs) -> sweep.SweepReport:
    return sweep.run_sweep(spec, out, devices=jax.devices()[:1], **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """TINY trained once, uninterrupted: the store every damaged copy must end up equal to."""
    out = tmp_path_factory.mktemp("ref") / "store"
    assert _run(sweep.SweepSpec(**TINY), out).num_chunks == 6
    return out


@pytest.fixture
def copy(reference, tmp_path) -> Path:
    out = tmp_path / "store"
    shutil.copytree(reference, out)
    return out


def _assert_same_as_reference(out: Path, reference: Path) -> None:
    """Every run stored once, columns, trajectories and results.csv as the reference's."""
    got, ref = sweep.load_results(out), sweep.load_results(reference)
    ids = [str(i) for i in got.table["run_id"]]
    assert len(ids) == len(set(ids)) == got.spec.num_runs
    assert sorted(got.table) == sorted(ref.table)
    for k in ref.table:
        np.testing.assert_array_equal(got.table[k], ref.table[k], err_msg=k)
    (g,) = set(ref.table["group"])
    ia, ta = got.trajectories(g)
    ib, tb = ref.trajectories(g)
    oa, ob = np.argsort(ia), np.argsort(ib)
    for k in ("loss", "h", "y", "w", "m"):
        np.testing.assert_array_equal(ta[k][oa], tb[k][ob], err_msg=k)
    assert (out / "results.csv").read_text() == (reference / "results.csv").read_text()


def _chunks(out: Path) -> list[Path]:
    return sorted((out / "chunks").glob("*.npz"))


def _quarantined(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "quarantine").glob("*.npz"))


# ----------------------------------------------------------------------- verification


def test_foreign_chunk_is_moved_aside_and_not_merged(copy, reference, tmp_path):
    other = tmp_path / "other"
    _run(sweep.SweepSpec(**{**TINY, "axes": {"gain": [0.7], "seed": [0]}}), other)
    (foreign,) = _chunks(other)
    shutil.copy(foreign, copy / "chunks" / foreign.name)
    with pytest.warns(UserWarning, match=f"foreign chunk .*{foreign.name}.*spec hash"):
        report = _run(sweep.SweepSpec(**TINY), copy)
    assert report.completed == 0
    assert _quarantined(copy) == [foreign.name]
    _assert_same_as_reference(copy, reference)


def test_a_reader_skips_a_foreign_chunk_and_names_it(copy, tmp_path):
    other = tmp_path / "other"
    _run(sweep.SweepSpec(**{**TINY, "axes": {"gain": [0.7], "seed": [0]}}), other)
    (foreign,) = _chunks(other)
    shutil.copy(foreign, copy / "chunks" / foreign.name)
    with pytest.warns(UserWarning, match=f"foreign chunk .*{foreign.name}.*skipped"):
        res = sweep.load_results(copy)
    assert len(res) == 6 and res.num_missing == 0
    assert (copy / "chunks" / foreign.name).exists()  # a reader moves nothing


def _truncate(path: Path) -> None:
    os.truncate(path, 100)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_a_column(path: Path) -> None:
    with np.load(path) as f:
        cols = {k: f[k] for k in f.files if k != "loss_final"}
    with open(path, "wb") as fh:
        np.savez(fh, **cols)


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte, _drop_a_column])
def test_corrupt_chunk_is_named_moved_aside_and_retrained(copy, reference, damage):
    victim = _chunks(copy)[2]
    others = {p.name: p.read_bytes() for p in _chunks(copy) if p != victim}
    damage(victim)
    with pytest.warns(UserWarning, match=f"corrupt chunk .*{victim.name}"):
        report = _run(sweep.SweepSpec(**TINY), copy)
    assert report.completed == 1 and report.skipped == 5
    assert _quarantined(copy) == [victim.name]
    assert (copy / "quarantine" / f"{victim.name}.why.txt").read_text().startswith("corrupt")
    for name, data in others.items():  # nothing else touched
        assert (copy / "chunks" / name).read_bytes() == data
    _assert_same_as_reference(copy, reference)


def test_check_reports_health_without_training_or_moving(copy, tmp_path, capsys, monkeypatch):
    from rep_align.cli import main

    _truncate(_chunks(copy)[0])
    _flip_a_byte(_chunks(copy)[1])
    other = tmp_path / "other"
    _run(sweep.SweepSpec(**{**TINY, "axes": {"gain": [0.7], "seed": [0]}}), other)
    shutil.copy(_chunks(other)[0], copy / "chunks")
    shutil.copy(_chunks(copy)[3], copy / "chunks" / "zz-duplicate.npz")
    before = sorted(p.name for p in (copy / "chunks").iterdir())
    monkeypatch.setattr(GroupRunner, "run", _no_training)
    assert main(["sweep", "--check", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "chunks 5 ok, 1 foreign, 2 corrupt" in out
    assert "runs 4 stored, 2 missing of 6; 1 duplicates" in out
    assert sorted(p.name for p in (copy / "chunks").iterdir()) == before


def test_check_of_a_healthy_store(reference, capsys):
    from rep_align.cli import main

    assert main(["sweep", "--check", str(reference)]) == 0
    assert "chunks 6 ok, 0 foreign, 0 corrupt; runs 6 stored, 0 missing" in capsys.readouterr().out


def _no_training(*args, **kwargs):
    raise AssertionError("trained")


def _read_only(out: Path, monkeypatch) -> None:
    """Make ``out`` read-only: chmod, and (root ignores modes) os.access answering so."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        inside = Path(path).resolve().is_relative_to(out.resolve())
        return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_read_only_store_reads_and_refuses_before_training(copy, reference, monkeypatch):
    (copy / ".results.lock").unlink()  # the reference's writer left it
    _read_only(copy, monkeypatch)
    monkeypatch.setattr(GroupRunner, "run", _no_training)
    report = _run(sweep.SweepSpec(**TINY), copy)  # nothing left to do: no error, no lock
    assert report.completed == 0 and report.skipped == 6
    assert not (copy / ".results.lock").exists()
    _chunks(copy)[4].unlink()
    with pytest.raises(sweep.ReadOnlyStoreError, match=f"{copy} is not writable and 1 of"):
        _run(sweep.SweepSpec(**TINY), copy)
    monkeypatch.undo()
    assert _run(sweep.SweepSpec(**TINY), copy).completed == 1
    _assert_same_as_reference(copy, reference)


def test_kill_during_the_rebuild_of_results_csv(copy, reference, monkeypatch):
    _chunks(copy)[5].unlink()
    real = _csv.atomic_write

    def killed(path, data):
        def half(fh):
            fh.write(data[: len(data) // 2])
            raise KeyboardInterrupt

        real(path, half)

    monkeypatch.setattr(_csv, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(sweep.SweepSpec(**TINY), copy)
    # the old file (5 runs' worth is never half-written): the reference's, untouched
    assert (copy / "results.csv").read_text() == (reference / "results.csv").read_text()
    assert not list(copy.glob(".results.csv.*"))
    monkeypatch.undo()
    assert _run(sweep.SweepSpec(**TINY), copy).completed == 0
    _assert_same_as_reference(copy, reference)


def test_results_csv_is_rebuilt_from_verified_chunks(copy, reference):
    (copy / "results.csv").write_text("stale\n")
    _run(sweep.SweepSpec(**TINY), copy)
    _assert_same_as_reference(copy, reference)


# ------------------------------------------------------------------------------- the plan


def _toml(path: Path, axes: str, extra: str = "") -> Path:
    path.write_text(
        f"name = 'plan'\n{extra}[fixed]\nwidth = 8\ndepth = 2\nsteps = 40\nrecord_every = 10\n"
        f"[axes]\n{axes}\n"
    )
    return path


def test_huge_spec_is_refused_at_once(tmp_path, capsys):
    from rep_align.cli import main

    spec = _toml(tmp_path / "huge.toml", "gain = [0.5, 1.0]\nseed = {range = 1000000}")
    out = tmp_path / "out"
    start = time.perf_counter()
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    assert time.perf_counter() - start < 60  # a hang guard; it takes milliseconds
    err = capsys.readouterr().err
    assert "2000000 runs" in err and "--force" in err
    assert not out.exists()


def test_budget_below_one_run_is_refused_unless_forced(tmp_path, capsys, monkeypatch):
    from rep_align.cli import main

    spec = _toml(tmp_path / "s.toml", "seed = [0, 1]")
    out = tmp_path / "out"
    monkeypatch.setattr(GroupRunner, "run", _no_training)
    args = ["sweep", str(spec), "--out", str(out), "--memory-budget-mb", "0.001", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "plan: 2 runs to train (0 stored), 1 groups, 2 chunks" in err
    assert "time unknown" in err and "disk ~" in err
    assert "refused: one run needs" in err and "--memory-budget-mb" in err
    assert not list((out / "chunks").glob("*.npz"))
    monkeypatch.undo()
    assert main([*args, "--force"]) == 0
    assert len(sweep.load_results(out)) == 2


def test_plan_is_stated_before_training(tmp_path):
    seen = []
    _run(sweep.SweepSpec(**TINY), tmp_path / "s", plan=seen.append)
    (plan,) = seen
    assert (plan.runs, plan.stored, plan.groups, plan.chunks) == (6, 0, 1, 6)
    assert plan.run_bytes == sweep.estimate_run_bytes(sweep.SweepSpec(**TINY).runs()[0])
    assert plan.chunk_bytes == plan.run_bytes and plan.disk_bytes > 0 and not plan.problems()


# ---------------------------------------------------------------------------- fitting


def test_fit_does_not_depend_on_max_chunk(tmp_path):
    spec = sweep.SweepSpec(**{**TINY, "fit": True, "axes": {"gain": [0.5, 1.0], "seed": [0, 1]}})
    import dataclasses

    stores = []
    for mc in (1, 4):
        out = tmp_path / f"mc{mc}"
        _run(dataclasses.replace(spec, max_chunk=mc), out)
        stores.append(out)
    a, b = ((s / "results.csv").read_text() for s in stores)
    assert a == b


def test_fit_ok_is_false_for_a_converged_fit_that_misses_the_record():
    from rep_align import fit

    rates = fit.RateFit(
        eta_h=np.ones(3),
        eta_y=np.ones(3),
        loss=np.asarray([1e-6, 94.0, 1e-6]),
        r2=np.asarray([[0.99, 0.98, np.nan], [0.9, 0.95, -34.0], [0.99, 0.99, 0.99]]),
        success=np.asarray([True, True, False]),
        num_iters=np.ones(3, np.int32),
        z_fit=None,
    )
    np.testing.assert_array_equal(fit.fits_well(rates), [True, False, False])
    m = fit.EtaMFit(
        eta_m=np.ones(3), loss=np.zeros(3), r2=np.asarray([0.5, 1.0, 1.0]), success=np.ones(3, bool)
    )
    np.testing.assert_array_equal(fit.fits_well(rates, m), [False, False, False])


def test_zip_damage_is_what_the_checks_see(reference, tmp_path):
    # guard on the helpers: a truncated chunk is not a zip, a flipped byte fails a CRC
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    shutil.copy(_chunks(reference)[0], a)
    shutil.copy(_chunks(reference)[0], b)
    _truncate(a)
    _flip_a_byte(b)
    assert not zipfile.is_zipfile(a)
    with zipfile.ZipFile(b) as z:
        assert z.testzip() is not None
    ids = {r.run_id for r in sweep.SweepSpec(**TINY).runs()}
    h = sweep.SweepSpec(**TINY).spec_hash
    assert store._health.check_chunk(a, h, ids).state == "corrupt"
    assert store._health.check_chunk(b, h, ids).state == "corrupt"
