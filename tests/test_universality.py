"""rep_align.experiments.universality and its analysis (experiments.alignment): the zoo, the
analysis against oracles, the declaration (settings, headlines, checks), the driver run and
its resumption, the command."""

import argparse
import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from rep_align import data, ntk, theory
from rep_align.cli import universality as cli
from rep_align.config import RunConfig
from rep_align.experiments import Headline, Spread
from rep_align.experiments import _driver as driver
from rep_align.experiments import alignment as al
from rep_align.experiments import universality as uni
from rep_align.experiments._protocol import apply_checks
from rep_align.networks import make_network
from rep_align.training import split_run_key


def np_cka(x, y):
    """Linear CKA from centred Gram matrices: tr(KHLH) / √(tr(KHKH) tr(LHLH))."""
    n = x.shape[0]
    h = np.eye(n) - 1 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def np_pearson_upper(a, b):
    iu = np.triu_indices(a.shape[0], k=1)
    return np.corrcoef(a[iu], b[iu])[0, 1]


def dist(h):
    return np.sqrt(np.sum((h[:, None] - h[None]) ** 2, axis=-1))


def test_zoo_members_are_valid_runs():
    names = [m.name for m in uni.ZOO]
    assert len(set(names)) == len(names) == 11
    for m in uni.ZOO:
        for task in m.tasks:
            run = uni._base_run(
                m, task, width=256, depth=4, epochs=uni.EPOCHS[task], dtype="float32"
            )
            assert run.replace(gain=m.small_gain, lr=0.1).layer == run.layer
            assert m.small_gain < m.large_gain
    # A linear network cannot fit XOR.
    assert [m.tasks for m in uni.ZOO if m.name == "linear"] == [("hierarchy",)]
    with pytest.raises(ValueError, match="members"):
        uni._zoo(["leaky_relu", "transformer"])


def _records(hidden, outputs, loss=None):
    """Snapshots-like records of one run from hidden (T, P, F) and outputs (T, P, o)."""
    t = hidden.shape[0]
    return dict(
        hidden=hidden,
        outputs=outputs,
        loss=np.full(t, 1e-6) if loss is None else loss,
        epochs=np.arange(t) * 10,
        diverged=np.asarray(False),
    )


def test_analysis_against_numpy_oracles(x64):
    rng = np.random.default_rng(0)
    x, y = (np.asarray(a, np.float64) for a in data.hierarchy())
    n, t_len, seeds = 8, 3, 3
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    recs = {"a": [], "b": [], "c": [], "d": []}
    for _ in range(seeds):
        ha = rng.normal(size=(t_len, n, 5))
        # b: an orthogonal map of a, padded to 7 features, scaled and shifted: CKA(a, b) = 1.
        hb = 2.5 * np.pad(ha, ((0, 0), (0, 0), (0, 2))) @ q + 3.0
        hc = rng.normal(size=(t_len, n, 6))
        hc[-1] = hc[0] @ np.linalg.qr(rng.normal(size=(6, 6)))[0] - 1.0  # keeps its geometry
        out = rng.normal(size=(t_len, n, 15))
        recs["a"].append(_records(ha, out))
        recs["b"].append(_records(hb, out, loss=np.array([0.1, 0.01, 2e-3])))
        recs["c"].append(_records(hc, out))
        # d did not converge (final loss above 1e-2): it enters no statistic.
        hd = rng.normal(size=(t_len, n, 4))
        recs["d"].append(_records(hd, out, loss=np.array([0.1, 0.05, 2e-2])))
    res = al.analyse_regime(["a", "b", "c", "d"], recs, x, y, ratio=0.02)

    c = np.asarray(res.cka_final)
    assert c.shape == (4, 4)
    assert np.all(np.isnan(c[3])) and np.all(np.isnan(c[:, 3]))
    assert (res.converged, res.runs) == (9, 12)
    c = c[:3, :3]
    np.testing.assert_allclose(c[0, 1], 1.0, rtol=1e-12)
    np.testing.assert_allclose(c, c.T, rtol=1e-12)
    want_ac = np.mean(
        [np_cka(recs["a"][s]["hidden"][-1], recs["c"][s]["hidden"][-1]) for s in range(seeds)]
    )
    np.testing.assert_allclose(c[0, 2], want_ac, rtol=1e-10)
    # Diagonal: seed s against seed s + 1 (cyclically) of the same member.
    want_aa = np.mean(
        [
            np_cka(recs["a"][s]["hidden"][-1], recs["a"][(s + 1) % seeds]["hidden"][-1])
            for s in range(seeds)
        ]
    )
    np.testing.assert_allclose(c[0, 0], want_aa, rtol=1e-10)
    # Mean off-diagonal CKA per seed, at the end and over training; spreads are population
    # standard deviations (_protocol.spread, ddof 0).
    per_seed = [
        np.mean(
            [
                np_cka(recs[u][s]["hidden"][-1], recs[v][s]["hidden"][-1])
                for u, v in (("a", "b"), ("a", "c"), ("b", "c"))
            ]
        )
        for s in range(seeds)
    ]
    np.testing.assert_allclose(res.offdiag.values, per_seed, rtol=1e-10)
    np.testing.assert_allclose(res.offdiag.spread.std, np.std(per_seed), rtol=1e-10)
    assert res.offdiag.spread.n == seeds
    finals = [np_cka(recs["a"][s]["hidden"][-1], recs["c"][s]["hidden"][-1]) for s in range(seeds)]
    np.testing.assert_allclose(res.cka_final_std[0, 2], np.std(finals), rtol=1e-10)
    assert res.cka_mean.shape == res.cka_std.shape == (t_len,)
    np.testing.assert_allclose(res.cka_mean[-1], np.mean(per_seed), rtol=1e-10)
    np.testing.assert_allclose(res.cka_std[-1], np.std(per_seed), rtol=1e-10)
    np.testing.assert_array_equal(res.cka_epochs, [0, 10, 20])

    # Agreement with the predictions, against direct formulas.
    dx2, dy2 = dist(x) ** 2, dist(y) ** 2
    rich = (dx2 * dy2) ** 0.25
    a = res.agreement["a"]
    for s in range(seeds):
        h = recs["a"][s]["hidden"]
        want = np_pearson_upper(dist(h[-1]), rich)
        np.testing.assert_allclose(a.rsa_rich.values[s], want, rtol=1e-10)
        h0, y0 = dist(h[0]) ** 2, dist(recs["a"][s]["outputs"][0]) ** 2
        pred = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                if i != j:
                    pred[i, j] = np.sqrt(
                        float(
                            theory.final_distance(
                                h0[i, j],
                                y0[i, j],
                                eta_h=0.02,
                                eta_y=1.0,
                                dx2=dx2[i, j],
                                dy2=dy2[i, j],
                            )
                        )
                    )
        np.testing.assert_allclose(
            a.rsa_theory.values[s], np_pearson_upper(dist(h[-1]), pred), rtol=1e-9
        )
    np.testing.assert_allclose(a.rsa_rich.spread.std, np.std(a.rsa_rich.values), rtol=1e-10)
    # c keeps its initial geometry exactly: RSA with the initial distances 1, no change.
    np.testing.assert_allclose(res.agreement["c"].rsa_initial.values, 1.0, rtol=1e-12)
    np.testing.assert_allclose(res.agreement["c"].hidden_change.values, 0.0, atol=1e-12)
    assert res.agreement["a"].converged == 3 and res.agreement["d"].converged == 0
    assert res.agreement["b"].final_loss_max == 2e-3  # below 1e-2: converged
    assert res.agreement["d"].final_loss_max == 2e-2
    d = res.agreement["d"]
    for per_seed_d in (d.rsa_rich, d.rsa_theory, d.rsa_initial, d.hidden_change):
        assert np.all(np.isnan(per_seed_d.values))
        assert per_seed_d.spread.n == 0


def test_theory_distances_are_nan_where_6_1_does_not_apply():
    z = np.ones((3, 3)) - np.eye(3)
    h0 = z.copy()
    h0[0, 1] = h0[1, 0] = 0.0  # two points share their initial representation
    assert np.all(np.isnan(al._theory_distances(z, z, h0, z, 0.02)))
    assert np.isnan(al._rsa(z, np.full((3, 3), np.nan)))
    assert np.isnan(al._rsa(z, z))  # constant above the diagonal


_TINY = dict(members=("leaky_relu", "gain_low"), tasks=("xor",), width=16, depth=2)


def test_experiment_end_to_end_resumed_and_the_command(tmp_path, capsys):
    """Tiny sizes (width 16, depth 2, 600 epochs) through the driver: the files, the
    learning-rate rule, the headlines carrying the result, a run killed after training that
    trains nothing when started again, and the command on the same directory."""
    lines = []
    changes = dict(_TINY, seeds=2, epochs={"xor": 600})
    got = driver.run(uni.EXPERIMENT, tmp_path, quick=True, changes=changes, progress=lines.append)
    assert any("trained 8/8 runs" in line for line in lines)
    assert got.summary["runs_trained"] == 8
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["seeds"] == 2 and summary["settings"]["first_seed"] == 0
    xor = summary["result"]["tasks"]["xor"]
    for regime in ("small", "large"):
        assert xor[regime]["members"] == ["leaky_relu", "gain_low"]
        assert np.asarray(xor[regime]["cka_final"]).shape == (2, 2)
        assert len(xor[regime]["offdiag"]["values"]) == 2
        assert len(xor[regime]["cka_mean"]) == 101  # every 6 epochs
        assert xor[regime]["converged"] == xor[regime]["runs"] == 4
    assert summary["result"]["comparison"]["xor"]["aligns_more"] in ("small", "large")
    for name in ("cka_heatmaps.png", "cka_over_training.png", "agreement.png"):
        assert (tmp_path / name).stat().st_size > 0
    # Large-gain lr = 0.5·N/λ_max(K0) of each seed's initial network, to two digits.
    lrs = summary["result"]["learning_rates"]
    assert lrs["xor/leaky_relu/small"] == lrs["xor/gain_low/small"] == [uni.SMALL_LR["xor"]] * 2
    x, y = data.xor()
    net = make_network("mlp", in_dim=2, out_dim=1, width=16, depth=2)
    for name, gain in (("leaky_relu", 2.0), ("gain_low", 1.7)):
        for seed in (0, 1):
            p = net.init(split_run_key(jax.random.key(seed))[0], gain=gain)
            k0 = ntk.flatten_kernel(ntk.empirical_ntk(net, p, x))
            lam = np.linalg.eigvalsh(np.asarray(k0))[-1]
            lr = lrs[f"xor/{name}/large"][seed]
            np.testing.assert_allclose(lr * lam / 4, 0.5, rtol=0.05)

    # The headlines are the result's numbers, the checks the claims (small init aligns more).
    res = got.result
    heads = {h.name: h for h in got.headlines}
    small_r, large_r = (res.tasks["xor"][r].offdiag.spread for r in ("small", "large"))
    cmp = res.comparison["xor"]
    small = heads["xor: mean CKA between architectures, small init"]
    assert small.value == small_r.mean and small.n == 2
    assert small.spread == small_r.std
    np.testing.assert_allclose(small.spread, np.std(res.tasks["xor"]["small"].offdiag.values))
    assert small.agrees == (small_r.mean > large_r.mean) and small.criterion == "> large init"
    assert small.source
    assert heads["xor: mean CKA between architectures, large init"].value == large_r.mean
    rich = heads["xor: mean RSA with the rich limit (3.3), small init"]
    assert rich.value == cmp.mean_rsa_rich_small
    assert rich.agrees == (cmp.mean_rsa_rich_small > cmp.mean_rsa_rich_large)
    assert heads["xor: mean RSA with the rich limit (3.3), large init"].value == (
        cmp.mean_rsa_rich_large
    )

    # Killed after training: the summary is gone, the store is not; nothing is retrained.
    (tmp_path / "summary.json").unlink()
    again_lines = []
    again = driver.run(
        uni.EXPERIMENT, tmp_path, quick=True, changes=changes, progress=again_lines.append
    )
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert not any("trained" in line for line in again_lines)
    assert [h.value for h in again.headlines] == [h.value for h in got.headlines]

    # The command on the same directory: the stored summary, a table on stdout.
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        "--quick --seeds 2 --members leaky_relu gain_low --tasks xor --width 16 --depth 2"
        " --epochs 600 --out".split()
        + [str(tmp_path)]
    )
    assert cli.changes(args) == changes
    assert cli.run(args) == 0
    printed = capsys.readouterr()
    assert "xor" in printed.out and "aligns more" in printed.out
    assert "> large init" in printed.out
    assert "trained" not in printed.err.replace("0 runs trained", "")


def test_a_run_killed_midway_trains_only_what_is_missing(tmp_path, monkeypatch):
    """Two members of different activations are two groups of the engine, stored chunk by
    chunk: killed after the first chunk, the experiment started again trains the other
    group only, and gives the same numbers as an uninterrupted run."""
    import rep_align.sweep.store as sweep_store

    changes = dict(_TINY, members=("leaky_relu", "tanh"), seeds=2, epochs={"xor": 300})
    write = sweep_store.write_chunk
    calls = []

    def killed_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        return write(*args, **kwargs)

    monkeypatch.setattr(sweep_store, "write_chunk", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        driver.run(uni.EXPERIMENT, tmp_path / "a", quick=True, changes=changes)
    monkeypatch.setattr(sweep_store, "write_chunk", write)
    lines = []
    resumed = driver.run(
        uni.EXPERIMENT, tmp_path / "a", quick=True, changes=changes, progress=lines.append
    )
    assert [line.strip() for line in lines if "trained" in line] == ["trained 4/4 runs (points)"]
    whole = driver.run(uni.EXPERIMENT, tmp_path / "b", quick=True, changes=changes)
    assert [h.value for h in resumed.headlines] == [h.value for h in whole.headlines]


def _heads(small_cka, large_cka, small_rich, large_rich):
    return [
        Headline("xor: mean CKA between architectures, small init", small_cka),
        Headline("xor: mean CKA between architectures, large init", large_cka),
        Headline("xor: mean RSA with the rich limit (3.3), small init", small_rich),
        Headline("xor: mean RSA with the rich limit (3.3), large init", large_rich),
    ]


def test_checks_are_declared_once_and_can_fail():
    s = uni.settings(True)
    checks = uni.checks_for(s)
    assert [c.key for c in checks] == [
        f"{t}: mean {q}, small init"
        for t in s.tasks
        for q in ("CKA between architectures", "RSA with the rich limit (3.3)")
    ]
    assert all(c.source and c.label == "> large init" for c in checks)
    xor_checks = uni.checks_for(dataclasses.replace(s, tasks=("xor",)))
    verdict = apply_checks(_heads(0.9, 0.8, 0.5, 0.1), xor_checks)
    assert [h.agrees for h in verdict] == [True, None, True, None]
    # A value on the wrong side of its bound, or not finite, fails.
    verdict = apply_checks(_heads(0.7, 0.8, 0.1, 0.5), xor_checks)
    assert [h.agrees for h in verdict] == [False, None, False, None]
    verdict = apply_checks(_heads(math.nan, 0.8, 0.5, math.nan), xor_checks)
    assert [h.agrees for h in verdict] == [False, None, False, None]


def test_quick_means_fewer_seeds_of_the_same_runs():
    quick, full = uni.settings(True), uni.settings(False)
    assert (quick.seeds, full.seeds) == (2, 5)
    assert dataclasses.replace(quick, seeds=5) == full
    assert quick.members == uni.MEMBERS and quick.tasks == ("xor", "hierarchy")
    assert (quick.width, quick.depth, quick.epochs) == (256, 4, {"xor": 3000, "hierarchy": 2000})
    kw = dict(members=["leaky_relu", "relu"], tasks=("hierarchy",), width=8, depth=2)
    short = uni.universality_runs(seeds=[0, 1], **kw)
    long = uni.universality_runs(seeds=range(5), **kw)
    assert short.keys() == long.keys()
    for key, runs in short.items():
        assert [r.run_id for r in runs] == [r.run_id for r in long[key][:2]]


def test_bad_settings():
    with pytest.raises(ValueError, match="seeds"):
        uni.UniversalitySettings(seeds=0)
    with pytest.raises(ValueError, match="tasks"):
        uni.UniversalitySettings(seeds=1, tasks=("mnist",))
    with pytest.raises(ValueError, match="at least two"):
        uni.UniversalitySettings(seeds=1, members=("relu",))
    with pytest.raises(ValueError, match="rate_ratio"):
        uni.UniversalitySettings(seeds=1, rate_ratio=0.0)
    with pytest.raises(ValueError, match="epochs"):
        uni.UniversalitySettings(seeds=1, epochs={"xor": 0})
    partial = uni.UniversalitySettings(seeds=1, epochs={"xor": 600})
    assert partial.epochs == {"xor": 600, "hierarchy": 2000}


@pytest.mark.slow
def test_every_member_converges_in_both_regimes_at_the_default_settings(tmp_path):
    """The experiment's settings (one seed): every run converges (final loss below the
    paper's filter 1e-2), small-gain runs move their hidden distances (rich: change > 1)
    and large-gain runs keep them (lazy: change < 0.2). The dropout MLP at large gain is
    the documented exception (module docstring): it is neither lazy nor converged on XOR.
    About 4 minutes on the shared 2-core CPU (load ~3)."""
    res = driver.run(uni.EXPERIMENT, tmp_path, changes={"seeds": 1}).result
    for task, regimes in res.tasks.items():
        for regime, r in regimes.items():
            for name, agr in r.agreement.items():
                if name == "dropout" and regime == "large":
                    continue
                where = (task, regime, name, agr.final_loss_max, agr.hidden_change)
                assert agr.converged == 1, where
                change = agr.hidden_change.spread.mean
                assert change > 1.0 if regime == "small" else change < 0.2, where


def test_points_run_of_the_zoo_uses_the_cnn_settings():
    cnn = next(m for m in uni.ZOO if m.name == "cnn")
    run = uni._base_run(cnn, "xor", width=256, depth=4, epochs=3000, dtype="float32")
    assert isinstance(run, RunConfig) and run.record == "points"
    assert (run.kernel_size, run.channels, run.layer) == (uni.CNN_KERNEL, uni.CNN_CHANNELS, 3)
    assert run.record_every == 30


def _regime(mean, rich=math.nan):
    per_seed = al.PerSeed((mean, mean), Spread(mean, 0.0, 2))
    agreement = al.MemberAgreement(
        rsa_rich=al.PerSeed((rich,), Spread(rich, math.nan, 1)),
        rsa_theory=per_seed,
        rsa_initial=per_seed,
        hidden_change=per_seed,
        final_loss=(0.0,),
        final_loss_max=0.0,
        converged=1,
        diverged=0,
    )
    initial = al.PerSeed((0.9, 0.9), Spread(0.9, 0.0, 2))
    empty = np.zeros(0)
    return al.RegimeResult(
        ("relu",), 2, 2, 2, empty, empty, per_seed, initial, empty, empty, empty,
        {"relu": agreement},
    )  # fmt: skip


def test_comparison_without_a_converged_regime_is_undetermined():
    """A regime with no converged pair has NaN CKA: the comparison says so instead of
    naming a winner (a comparison with NaN is False, which would read as "large")."""
    out = al.compare("xor", {"small": _regime(math.nan), "large": _regime(0.5)})
    assert out.aligns_more == "undetermined" and "undetermined" in out.text
    out = al.compare("xor", {"small": _regime(0.7, 0.9), "large": _regime(0.5, 0.1)})
    assert out.aligns_more == "small" and np.isclose(out.difference, 0.2)
    assert out.seed_ranges_separate and (out.mean_rsa_rich_small, out.mean_rsa_rich_large) == (
        0.9,
        0.1,
    )
