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


def test_stage_order_and_every_experiment_of_the_issue():
    assert list(rp.STAGES) == [
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


def test_universality_and_lazy_headlines_carry_their_results(tmp_path):
    """The two stages' headlines on tiny real runs: the numbers are the experiments' own,
    and the checks are the claims (small init aligns more; large gain within tolerance)."""
    from rep_align.experiments.lazy import RICH_FACTOR, run_lazy
    from rep_align.experiments.universality import run_universality

    uni = run_universality(
        seeds=2,
        members=["leaky_relu", "tanh"],
        tasks=("xor",),
        width=16,
        depth=2,
        epochs={"xor": 300},
        out=tmp_path / "u",
        progress=lambda _: None,
    ).to_json()
    heads = {h.name: h for h in rp.STAGES["universality"].headlines(uni, True)}
    cmp = uni["comparison"]["xor"]
    small = heads["xor: mean CKA between architectures, small init"]
    assert small.value == cmp["small_mean"] and small.n == 2
    assert small.agrees == (cmp["small_mean"] > cmp["large_mean"])
    assert heads["xor: mean CKA between architectures, large init"].value == cmp["large_mean"]
    rich = heads["xor: mean RSA with the rich limit (3.3), small init"]
    assert rich.value == cmp["mean_rsa_rich_small"]
    assert rich.agrees == (cmp["mean_rsa_rich_small"] > cmp["mean_rsa_rich_large"])

    lazy = run_lazy(
        width=64, steps=60, kernel_every=30, seeds=1, out=tmp_path / "l", progress=lambda _: None
    ).to_json()
    heads = {h.name: h for h in rp.STAGES["lazy"].headlines(lazy, True)}
    v, tol = lazy["verdict"], lazy["tolerance"]
    large = heads["large gain: output error vs kernel prediction (max over training)"]
    assert large.value == v["large"]["max_output_error"]["mean"]
    assert large.agrees == v["large_within_tolerance"] and large.criterion == f"≤ {tol}"
    small = heads["small gain: output error vs kernel prediction (max over training)"]
    assert small.agrees == v["small_fails_kernel"]
    assert small.criterion == f"≥ {RICH_FACTOR * tol:g}"
    kd = heads["small gain: kernel distance ‖K_T − K_0‖/‖K_0‖"]
    assert kd.value == v["small"]["final_kernel_distance"]["mean"]
