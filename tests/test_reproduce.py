"""The experiment protocol, its driver and the main job (experiments.reproduce) on stand-in
experiments: reports, resumption, failures, checks as data, and the labelling of quick
numbers that are not comparable. A toy experiment declared in this file is registered, run
through the sweep engine, resumed and reported, as docs/architecture.md says to add one."""

import dataclasses
import json
import math

import numpy as np
import pytest

from rep_align import experiments
from rep_align.experiments import Check, Experiment, Headline, spread
from rep_align.experiments import _driver as driver
from rep_align.experiments import reproduce as rp


def _png_figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    return fig


@dataclasses.dataclass(frozen=True)
class Toggle:
    quick: bool


@pytest.fixture
def only_these(monkeypatch):
    """An empty registry, for stand-in experiments."""
    monkeypatch.setattr(experiments, "_BUILT_IN", {})
    monkeypatch.setattr(experiments, "_REGISTERED", {})


@pytest.fixture
def stand_ins(only_these):
    calls = []

    def good(settings, runs):
        calls.append(("good", settings.quick))
        return {"r": 0.97 if settings.quick else 0.99}

    def bad(settings, runs):
        calls.append(("bad", settings.quick))
        raise RuntimeError("boom")

    def heads(result, settings):
        return [Headline("r", result["r"])]

    check = (Check("r", ">=", 0.98, source="a stated bound"),)
    experiments.register(
        Experiment(
            "good",
            "Good",
            "claim A",
            settings=Toggle,
            analyse=good,
            headlines=heads,
            checks=check,
            figures=lambda r, s: {"fig": _png_figure()},
            tolerance={"r": 0.01},
        )
    )
    experiments.register(Experiment("bad", "Bad", "claim B", Toggle, bad, heads, checks=check))
    return calls


def test_failure_is_reported_and_the_rest_runs(stand_ins, tmp_path):
    res = rp.run_reproduce(tmp_path, quick=True, progress=lambda s: None)
    assert not res.ok
    assert res.stages["good"]["status"] == "ok" and res.stages["bad"]["status"] == "failed"
    assert "boom" in res.stages["bad"]["error"]
    md = (tmp_path / "report.md").read_text()
    assert "claim A" in md and "RuntimeError: boom" in md
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and 'src="good/fig.png"' not in page
    assert "<table>" in page
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] is False
    good = json.loads((tmp_path / "good" / "summary.json").read_text())
    assert good["experiment"] == "good" and good["result"] == {"r": 0.97}
    assert good["headlines"][0]["source"] == "a stated bound"


def test_second_call_reuses_finished_experiments(stand_ins, tmp_path):
    rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    first = (tmp_path / "good" / "summary.json").read_text()
    res = rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    assert stand_ins == [("good", True)]  # run once
    assert res.stages["good"]["reused"]
    assert (tmp_path / "good" / "summary.json").read_text() == first


def test_quick_numbers_far_from_full_are_labelled(stand_ins, tmp_path):
    # No full value anywhere: not comparable, and said so.
    res = rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    h = res.stages["good"]["headlines"][0]
    assert h["comparable"] is False and "no full-size value" in h["note"]
    # A full run in the same directory: quick 0.97 vs full 0.99 exceeds tolerance 0.01.
    rp.run_reproduce(tmp_path, quick=False, only=["good"], progress=lambda s: None)
    res = rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    h = res.stages["good"]["headlines"][0]
    assert h["comparable"] is False and "0.99" in h["note"]
    assert "not comparable" in (tmp_path / "report.md").read_text()


def test_unknown_experiment_is_refused(stand_ins, tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        rp.run_reproduce(tmp_path, only=["nope"])


def test_order_and_every_experiment_of_the_paper():
    assert experiments.names()[:10] == [
        "two_points",
        "grid",
        "depth",
        "ablations",
        "xor",
        "blobs",
        "mnist",
        "kernel_rates",
        "universality",
        "lazy",
    ]
    for name in experiments.names():
        exp = experiments.get(name)
        assert exp.name == name and exp.title and exp.claim
        for quick in (True, False):
            exp.settings(quick)  # declared for both modes


# ---------------------------------------------------------------------------- checks


def test_checks_can_fail_and_say_where_their_bound_comes_from():
    c = Check("r", ">=", 0.9, source="paper, Fig. 3")
    assert c.holds(0.95) and not c.holds(0.85)
    assert not c.holds(math.nan) and not c.holds(math.inf * 0)
    assert c.criterion == "≥ 0.9"
    rel = Check("ablation", ">", "theory", source="the theory must fit best")
    assert rel.holds(2.0, {"theory": 1.0}) and not rel.holds(0.5, {"theory": 1.0})
    # a non-finite bound is no pass either (a failed theory fit cannot be beaten)
    assert not rel.holds(2.0, {"theory": math.nan})
    with pytest.raises(ValueError, match="where its bound"):
        Check("r", ">=", 0.9, source="")
    with pytest.raises(ValueError, match="op"):
        Check("r", "=>", 0.9, source="x")


def test_spread_convention():
    s = spread([1.0, 3.0, math.nan, None])
    assert s.mean == 2.0 and s.n == 2 and s.std == pytest.approx(np.std([1.0, 3.0]))
    one = spread([5.0])
    assert one.mean == 5.0 and math.isnan(one.std) and one.n == 1
    assert spread([]).n == 0 and math.isnan(spread([]).mean)


def test_changes_are_validated(stand_ins, tmp_path):
    with pytest.raises(ValueError, match="no setting"):
        driver.run(experiments.get("good"), tmp_path, changes={"nope": 1})


# ------------------------------------------------------------ a toy experiment, end to end


@dataclasses.dataclass(frozen=True)
class ToySettings:
    gains: tuple[float, ...]
    steps: int


def _toy_spec(settings):
    from rep_align.sweep import SweepSpec

    return SweepSpec(
        axes={"gain": list(settings.gains)},
        fixed=dict(width=8, depth=2, steps=settings.steps, record_every=10, lr=0.05),
        name="toy",
        fit=False,
    )


@dataclasses.dataclass(frozen=True)
class ToyResult:
    final_h: tuple[float, ...]
    records: np.ndarray = dataclasses.field(metadata={"rep_align.npz": True})


def _toy_analyse(settings, runs):
    res = runs.sweep(_toy_spec(settings))
    return ToyResult(tuple(float(v) for v in res.table["h_final"]), np.asarray(res.table["h0"]))


TOY = Experiment(
    name="toy",
    title="A toy experiment",
    claim="Training moves the hidden distance.",
    settings=lambda quick: ToySettings(gains=(0.5, 1.0) if quick else (0.5, 1.0, 1.5), steps=40),
    plan=lambda s: [_toy_spec(s)],
    analyse=_toy_analyse,
    headlines=lambda r, s: [Headline("mean final h", float(np.mean(r.final_h)), n=len(r.final_h))],
    checks=[Check("mean final h", ">", 0.0, source="a distance is positive")],
    ours=True,
)


def test_a_toy_experiment_is_registered_run_resumed_and_reported(only_these, tmp_path):
    experiments.register(TOY)
    assert experiments.names() == ["toy"]
    res = rp.run_reproduce(tmp_path, quick=True, progress=lambda s: None)
    assert res.ok
    rec = json.loads((tmp_path / "toy" / "summary.json").read_text())
    assert rec["runs_trained"] == 2 and rec["result"]["records"] == "npz:records"
    with np.load(tmp_path / "toy" / "arrays.npz") as f:
        assert f["records"].shape == (2,)
    (h,) = res.stages["toy"]["headlines"]
    assert h["agrees"] is True and h["n"] == 2
    # killed after training: the summary is gone, the store is not; nothing is retrained
    (tmp_path / "toy" / "summary.json").unlink()
    again = driver.run(TOY, tmp_path / "toy", quick=True, store=tmp_path / "store")
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert again.headlines[0].value == h["value"]
    # another experiment directory on the same store finds the runs stored
    other = driver.run(TOY, tmp_path / "other", quick=True, store=tmp_path / "store")
    assert other.summary["runs_trained"] == 0
    assert other.summary["result"] == rec["result"]
    assert "A toy experiment" in (tmp_path / "report.md").read_text()
    assert "This project's claim" in (tmp_path / "report.md").read_text()


def test_every_summary_says_where_it_comes_from(stand_ins, tmp_path):
    rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    for path in (tmp_path / "summary.json", tmp_path / "good" / "summary.json"):
        p = json.loads(path.read_text())["provenance"]
        assert p["versions"]["jax"] and p["devices"]["count"] >= 1 and p["started"]
        assert isinstance(p["command"], list) and p["machine"]["cores"] >= 1
    assert json.loads((tmp_path / "summary.json").read_text())["seconds"] >= 0
    assert "Code at commit" in (tmp_path / "report.md").read_text()
