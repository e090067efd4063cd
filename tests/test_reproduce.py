"""The main job's orchestration (experiments.reproduce) on stand-in stages: reports,
resumption, failures, and the labelling of quick numbers that are not comparable."""

import json

import pytest

from rep_align.experiments import reproduce as rp


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture
def stages(monkeypatch):
    calls = []

    def good_run(out, quick):
        calls.append(("good", quick))
        _png(out / "fig.png")
        return {"r": 0.97 if quick else 0.99}

    def bad_run(out, quick):
        calls.append(("bad", quick))
        raise RuntimeError("boom")

    def heads(result, quick):
        return [rp.Headline("r", result["r"], criterion="≥ 0.98", agrees=result["r"] >= 0.98)]

    fake = {
        "good": rp.Stage(
            "good", "Good", "claim A", good_run, heads, lambda q: {"q": q}, tolerance={"r": 0.01}
        ),
        "bad": rp.Stage("bad", "Bad", "claim B", bad_run, heads, lambda q: {"q": q}),
    }
    monkeypatch.setattr(rp, "STAGES", fake)
    monkeypatch.setattr(rp, "FULL_REFERENCE", {})
    return calls


def test_failure_is_reported_and_the_rest_runs(stages, tmp_path):
    res = rp.run_reproduce(tmp_path, quick=True, progress=lambda s: None)
    assert not res.ok
    assert res.stages["good"]["status"] == "ok" and res.stages["bad"]["status"] == "failed"
    assert "boom" in res.stages["bad"]["error"]
    md = (tmp_path / "report.md").read_text()
    assert "claim A" in md and "RuntimeError: boom" in md
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "fig.png" not in page.split("alt=")[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] is False


def test_second_call_reuses_finished_stages(stages, tmp_path):
    rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    first = (tmp_path / "good" / "stage.json").read_text()
    res = rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    assert stages == [("good", True)]  # run once
    assert res.stages["good"]["reused"]
    assert (tmp_path / "good" / "stage.json").read_text() == first


def test_quick_numbers_far_from_full_are_labelled(stages, tmp_path):
    # No full value anywhere: not comparable, and said so.
    res = rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    h = res.stages["good"]["headlines"][0]
    assert h["comparable"] is False and "no full-size value" in h["note"]
    # A full run in the same directory: quick 0.97 vs full 0.99 exceeds tolerance 0.01.
    rp.run_reproduce(tmp_path, quick=False, only=["good"], progress=lambda s: None)
    (tmp_path / "good" / "stage.json").unlink()
    res = rp.run_reproduce(tmp_path, quick=True, only=["good"], progress=lambda s: None)
    h = res.stages["good"]["headlines"][0]
    assert h["comparable"] is False and "0.99" in h["note"]
    assert "not comparable" in (tmp_path / "report.md").read_text()


def test_unknown_stage_is_refused(stages, tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        rp.run_reproduce(tmp_path, only=["nope"])
