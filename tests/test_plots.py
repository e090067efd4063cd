"""Figures (rep_align.plots): structure of every figure on small synthetic inputs, saving,
and that the numerical core never imports matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from rep_align import plots
from rep_align.training import Trajectory

T = 30
TIMES = np.linspace(0.0, 300.0, T)


def _trajectory(*, diverged: bool = False, layers: int = 3) -> Trajectory:
    loss = np.exp(-TIMES / 100.0)
    if diverged:
        loss = np.where(TIMES > 200.0, np.nan, loss)
    return Trajectory(
        times=TIMES,
        loss=loss,
        h=np.outer(1.0 + TIMES / 100.0, np.arange(1.0, layers + 1.0)),
        y=0.5 * (1.0 - np.exp(-TIMES / 80.0)),
        w=-0.2 * np.exp(-TIMES / 60.0),
        m=0.1 * np.exp(-TIMES / 50.0),
        dx2=np.asarray(1.0),
        dy2=np.asarray(0.5),
        diverged=np.asarray(diverged),
        diverged_step=np.asarray(201 if diverged else -1),
        n_steps=np.asarray(300),
        solver_ok=np.asarray(True),
    )


def _dashed(ax) -> list:
    return [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]


def _texts(fig: Figure) -> str:
    parts = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
    return " ".join(parts)


# ------------------------------------------------------------------ trajectories


def test_plot_trajectory_draws_h_of_the_layer_y_w_and_loss():
    traj = _trajectory()
    fig = plots.plot_trajectory(traj, layer=-1, title="demo run")
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    h_ax, y_ax, w_ax, loss_ax = fig.axes
    # One solid curve per panel; y and w add a reference line at the fit's end (dy2, 0).
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 2, 2, 1]
    np.testing.assert_array_equal(h_ax.get_lines()[0].get_ydata(), traj.h[:, 2])
    np.testing.assert_array_equal(y_ax.get_lines()[0].get_ydata(), traj.y)
    np.testing.assert_array_equal(w_ax.get_lines()[0].get_ydata(), traj.w)
    assert list(y_ax.get_lines()[1].get_ydata()) == [0.5, 0.5]
    assert list(w_ax.get_lines()[1].get_ydata()) == [0.0, 0.0]
    assert "layer 2" in h_ax.get_ylabel()
    assert loss_ax.get_yscale() == "log"
    assert fig.get_suptitle() == "demo run"
    assert not any("diverged" in t.get_text() for t in fig.texts)


def test_plot_trajectory_marks_divergence_and_leaves_gaps_in_the_loss():
    fig = plots.plot_trajectory(_trajectory(diverged=True), layer=0)
    assert any("diverged at step 201" in t.get_text() for t in fig.texts)
    loss = np.asarray(fig.axes[3].get_lines()[0].get_ydata(), float)
    assert np.isnan(loss[TIMES > 200.0]).all() and np.isfinite(loss[TIMES <= 200.0]).all()


def test_plot_trajectory_rejects_batches_and_bad_layers():
    traj = _trajectory()
    with pytest.raises(ValueError, match="layer=3 out of range for 3 hidden layers"):
        plots.plot_trajectory(traj, layer=3)
    with pytest.raises(ValueError, match="layer"):
        plots.plot_trajectory(traj, layer=1.5)
    batched = Trajectory(**{k: np.stack([v, v]) for k, v in vars(traj).items()})
    with pytest.raises(ValueError, match="one run"):
        plots.plot_trajectory(batched, layer=0)


def test_plot_theory_marks_the_analytic_end_state():
    z = np.stack([0.01 + 0.3 * (1 - np.exp(-TIMES / 90)), 0.5 * (1 - np.exp(-TIMES / 70)),
                  -0.1 * np.exp(-TIMES / 50)], -1)  # fmt: skip
    loss = np.exp(-TIMES / 60.0)
    fig = plots.plot_theory(TIMES, z, h_inf=0.31, dy2=0.5, loss=loss)
    assert len(fig.axes) == 4
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2, 2, 1]
    for k, ref in enumerate((0.31, 0.5, 0.0)):
        ax = fig.axes[k]
        np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), z[:, k])
        assert list(ax.get_lines()[1].get_ydata()) == [ref, ref]
    assert "h∞" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert "solid" in fig.get_suptitle() and "dotted" in fig.get_suptitle()
    assert "(h0, y0, w0) = (0.01, 0, -0.1)" in fig.get_suptitle()
    titled = plots.plot_theory(TIMES, z, h_inf=0.31, dy2=0.5, rates=dict(eta_h=5e-4, dx2=1.2))
    assert "eta_h = 0.0005, dx2 = 1.2" in titled.get_suptitle()
    # Without a loss the fourth panel is hidden.
    bare = plots.plot_theory(TIMES, z, h_inf=0.31, dy2=0.5)
    assert not bare.axes[3].axison and not bare.axes[3].get_lines()
    with pytest.raises(ValueError, match="shape"):
        plots.plot_theory(TIMES, z[:, :2], h_inf=0.31, dy2=0.5)
    with pytest.raises(ValueError, match="dy2"):
        plots.plot_theory(TIMES, z, h_inf=0.31, dy2="half")


def test_shared_panel_draws_runs_solid_and_theory_dashed_in_one_colour():
    fig = Figure()
    axes = plots.hywl_axes(fig)
    runs = np.arange(1.0, 4.0)[:, None] * np.ones((3, T))  # 3 runs
    loss = runs.copy()
    loss[0, :5] = [0.0, -1.0, np.nan, np.inf, 1.0]
    plots.draw_hywl(axes, TIMES, (runs, runs, runs, loss), theory=(runs, None, runs, runs))
    assert [len(ax.get_lines()) for ax in axes] == [6, 3, 6, 6]
    assert [len(_dashed(ax)) for ax in axes] == [3, 0, 3, 3]
    h_lines = axes[0].get_lines()
    assert [ln.get_color() for ln in h_lines] == ["C0", "C0", "C1", "C1", "C2", "C2"]
    shown = np.asarray(axes[3].get_lines()[0].get_ydata(), float)
    assert np.isnan(shown[:4]).all() and shown[4] == 1.0  # log axis: gaps for ≤ 0, NaN, inf
    xlabel = "epoch (gradient steps)"
    assert [ax.get_xlabel() for ax in axes] == ["", "", xlabel, xlabel]
    with pytest.raises(ValueError, match="number of runs"):
        plots.draw_hywl(plots.hywl_axes(Figure()), TIMES, (runs, runs[:2], runs, None))
    with pytest.raises(ValueError, match="one colour per run"):
        plots.draw_hywl(plots.hywl_axes(Figure()), TIMES, (runs,) * 4, colors=["C0"])


def test_save_writes_a_png_and_creates_the_directory(tmp_path):
    fig = plots.plot_trajectory(_trajectory(), layer=0)
    path = tmp_path / "new" / "dir" / "traj.png"
    assert plots.save(fig, path) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ sweeps


class _Results:
    """What the sweep figures read of a ``sweep.SweepResults``: ``spec.axes``,
    ``spec.save_trajectories``, ``table``, ``trajectories(group)`` and ``len``."""

    def __init__(self, *, fitted: bool = True):
        widths, gains, seeds = (8, 16), (0.5, 1.0, 2.0), (0, 1)
        grid = [(w, g, s) for w in widths for g in gains for s in seeds]
        n = len(grid)
        width = np.array([w for w, _, _ in grid])
        gain = np.array([g for _, g, _ in grid])
        self.spec = type(
            "Spec", (), {"axes": (("width", widths), ("gain", gains), ("seed", seeds))}
        )()
        self.spec.save_trajectories = True
        self.table = {
            "run_id": np.array([f"r{i}" for i in range(n)]),
            "group": np.array([f"width{w}" for w in width]),
            "width": width,
            "gain": gain,
            "seed": np.array([s for _, _, s in grid]),
            "layer_index": np.ones(n, int),
            "h_final": gain * width / 10.0,
            "loss_final": np.where(np.arange(n) == 3, np.nan, 1e-3 * gain),
        }
        if fitted:
            self.table |= {
                "eta_h": 1e-3 * gain,
                "eta_y": 2e-3 * gain,
                "r2_h": np.full(n, 0.9),
                "r2_y": np.full(n, 0.95),
                "r2_w": np.full(n, 0.8),
                "h_inf_theory": gain * width / 10.0 + 0.01,
            }

    def __len__(self) -> int:
        return len(self.table["run_id"])

    def trajectories(self, group: str):
        rows = np.flatnonzero(self.table["group"] == group)
        if not rows.size:
            raise ValueError(f"no finished runs in group {group!r}")
        k = len(rows)
        ones = np.ones((k, T))
        return self.table["run_id"][rows], {
            "times": TIMES,
            "h": np.ones((k, T, 2)),
            "y": ones,
            "w": ones,
            "m": ones,
            "loss": ones,
        }


def test_choose_axes_prefers_gain_and_width():
    assert plots.choose_axes(_Results()) == ("gain", "width")


def test_sweep_figures_have_their_panels_and_lines():
    res = _Results()
    fig = plots.plot_against(res, ["h_final", "loss_final"], x="gain", hue="width")
    assert len(fig.axes) == 2
    assert all(len(ax.containers) == 2 for ax in fig.axes)  # one error-bar line per width
    assert fig.axes[0].get_xscale() == "log"
    mean = fig.axes[0].containers[0].lines[0].get_ydata()  # width 8: mean over the two seeds
    np.testing.assert_allclose(mean, [0.4, 0.8, 1.6])
    assert len(plots.plot_against(res, "h_final", x="gain").axes) == 1
    heat = plots.plot_heatmap(res, "h_final", x="gain", y="width")
    assert len(heat.axes) == 2 and len(heat.axes[0].texts) == 6  # map + colour bar; 3 × 2
    fvt = plots.plot_final_vs_theory(res)
    assert len(fvt.axes) == 1 and len(fvt.axes[0].collections) == 1
    assert "12 runs" in fvt.axes[0].get_title()
    traj = plots.plot_trajectories(res, "width16")
    assert len(traj.axes) == 4 and all(len(ax.get_lines()) == 6 for ax in traj.axes)
    assert traj.axes[3].get_yscale() == "log"
    with pytest.raises(ValueError, match="no column 'nope'"):
        plots.plot_against(res, "nope", x="gain")


def test_standard_figures_writes_every_view_the_sweep_allows(tmp_path):
    paths = plots.standard_figures(_Results(), tmp_path / "figs")
    assert [p.name for p in paths] == [
        "final_vs_gain.png",
        "rates_vs_gain.png",
        "heatmap_h_final.png",
        "heatmap_r2_h.png",
        "heatmap_r2_y.png",
        "heatmap_r2_w.png",
        "h_final_vs_theory.png",
        "trajectories.png",
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    bare = plots.standard_figures(_Results(fitted=False), tmp_path / "bare", fmt="svg")
    assert [p.name for p in bare] == [
        "final_vs_gain.svg",
        "heatmap_h_final.svg",
        "trajectories.svg",
    ]


# ------------------------------------------------------------------ experiments

CONFIG = dict(name="default", arch="mlp", activation="relu", width=64, depth=4, layer=2,
              lr=0.01, epochs=300)  # fmt: skip


def _two_point(tmp_path: Path):
    """One preset's summary entry and records, through JSON and .npz as the experiment
    writes them."""
    r = 3
    rng = np.random.default_rng(0)
    z_obs = np.abs(rng.normal(size=(r, T, 3))).cumsum(1) * 0.01
    arrays = dict(
        ts=TIMES,
        z_obs=z_obs,
        z_fit=z_obs * 1.01,
        loss=np.exp(-TIMES / 90.0) * np.ones((r, 1)),
        theory_loss=np.exp(-TIMES / 95.0) * np.ones((r, 1)),
        converged=np.array([True, True, False]),
    )
    result = dict(
        config=CONFIG, mean=dict(r2_h=0.99, r2_y=0.97, r2_w=0.95), n_converged=2, n_seeds=3
    )
    (tmp_path / "summary.json").write_text(json.dumps({"presets": {"default": result}}))
    np.savez(tmp_path / "records.npz", **arrays)
    summary = json.loads((tmp_path / "summary.json").read_text())
    with np.load(tmp_path / "records.npz") as f:
        return summary["presets"]["default"], {k: f[k] for k in f.files}


def test_two_point_trajectories_redraws_from_summary_json(tmp_path):
    result, arrays = _two_point(tmp_path)
    fig = plots.two_point_trajectories(result, arrays)
    assert len(fig.axes) == 4
    assert [len(ax.get_lines()) for ax in fig.axes] == [6, 6, 6, 6]  # 3 seeds × (solid, dashed)
    assert all(len(_dashed(ax)) == 3 for ax in fig.axes)
    np.testing.assert_array_equal(fig.axes[2].get_lines()[2].get_ydata(), arrays["z_obs"][1, :, 2])
    np.testing.assert_array_equal(fig.axes[0].get_lines()[1].get_ydata(), arrays["z_fit"][0, :, 0])
    assert "layer 2" in fig.axes[0].get_ylabel()
    title = fig.get_suptitle()
    parts = ("two-point task", "default", "P=64", "L=4", "layer 2", "seeds 0, 1, 2",
             "solid: network", "dashed: fitted theory", "2/3 converged seeds")  # fmt: skip
    for part in parts:
        assert part in title, part
    # the legend below says what solid and dashed are, and which colour is which seed
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["solid: network", "dashed: fitted theory", "seed 0", "seed 1", "seed 2"]
    styles = [h.get_linestyle() for h in legend.legend_handles]
    assert styles[:2] == ["-", "--"]
    assert [h.get_color() for h in legend.legend_handles[2:]] == ["C0", "C1", "C2"]
    # seed numbers from the summary's per-seed rows, when it has them
    result = dict(result, seeds=[{"seed": s} for s in (4, 5, 6)])
    assert "seeds 4, 5, 6" in plots.two_point_trajectories(result, arrays).get_suptitle()


def test_experiment_summary_figures():
    summary = {
        "settings": {"seeds": 5},
        "presets": {
            n: {"mean": {"r2_h": 0.9, "r2_y": np.nan, "r2_w": 0.8},
                "std": {"r2_h": 0.01, "r2_y": 0.0, "r2_w": 0.02}}
            for n in ("a", "b")
        },
    }  # fmt: skip
    fig = plots.two_point_overview(summary)
    assert len(fig.axes) == 2  # the table and its colour bar
    assert [t.get_text() for t in fig.axes[0].texts] == [
        "0.900 ± 0.010",
        "n/a",
        "0.800 ± 0.020",
    ] * 2
    assert "of 5" in fig.axes[0].get_title()

    fig = plots.grid_scatter(np.array([0.1, 0.5, 1.0]), np.array([0.1, 0.6, 0.9]),
                             {"slope": 1.0, "pearson_r": 0.99}, "grid: default")  # fmt: skip
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1
    assert len(fig.axes[0].collections) == 1 and "Pearson r 0.9900" in fig.axes[0].get_title()
    assert "identity (dashed)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    stats = {"slope": 1.0, "pearson_r": 0.99, "n_kept": 3, "n_runs": 4}
    fig = plots.grid_scatter(np.ones(3), np.ones(3), stats, "grid", config=dict(CONFIG, seeds=1))
    title = fig.axes[0].get_title()
    assert "default (mlp, relu, P=64, L=4), 1 seed\n" in title and "3/4 runs kept" in title

    layers = [dict(layer=k, eta_h=1e-3, eta_y=2e-3, fit_loss=1e-5, r2_h=0.9, r2_y=0.9,
                   r2_w=0.9) for k in range(4)]  # fmt: skip
    fig = plots.depth_profile({"config": CONFIG, "seed": 7, "layers": layers})
    assert len(fig.axes) == 3  # rates, R², and the fit loss on a twin axis
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 3, 1]
    assert all(len(ln.get_xdata()) == 4 for ax in fig.axes for ln in ax.get_lines())

    variants = {v: {"mean_fit_loss": 1e-4, "std_fit_loss": 1e-5} for v in ("theory", "a", "b")}
    fig = plots.ablation_bars({"config": CONFIG, "seeds": 5, "variants": variants})
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 3
    for f in (plots.depth_profile({"config": CONFIG, "seed": 7, "layers": layers}), fig):
        text = _texts(f)
        assert "default" in text and "P=64" in text and "L=4" in text, text
    assert "5 seeds" in _texts(fig) and "error bars: std" in _texts(fig)
    depth = _texts(plots.depth_profile({"config": CONFIG, "seed": 7, "layers": layers}))
    assert "seed 7" in depth and "dotted, right axis" in depth


def test_r2_overview_stays_readable_when_presets_fail():
    # The paper-size run of every preset: two bars near R² −10 made every other bar
    # invisible. In the table every value is printed and the colours are clipped.
    means = {"good": (0.995, 0.998, 0.977), "poor": (0.96, 0.97, 0.70),
             "failed": (-6.915, -10.077, -0.808), "none": (np.nan, np.nan, np.nan)}  # fmt: skip
    summary = {
        "settings": {"seeds": 3, "quick": False, "precision": "float32",
                     "good_fit": {"r2_h": 0.99, "r2_y": 0.995, "r2_w": 0.96}},
        "presets": {
            n: {"config": dict(CONFIG, name=n), "n_converged": 0 if n == "none" else 3,
                "n_seeds": 3, "mean": dict(zip(("r2_h", "r2_y", "r2_w"), m, strict=True)),
                "std": {"r2_h": 0.001, "r2_y": 8.991, "r2_w": 0.05}}
            for n, m in means.items()
        },
    }  # fmt: skip
    fig = plots.two_point_overview(summary)
    table, bar = fig.axes
    texts = [t.get_text() for t in table.texts]
    assert texts[:3] == ["0.995 ± 0.001", "0.998 ± 8.991", "0.977 ± 0.050"]
    assert texts[6:9] == ["-6.915 ± 0.001", "-10.1 ± 8.991", "-0.808 ± 0.050"]
    assert texts[9:] == ["n/a"] * 3
    # bold exactly where the good-fit bound is met
    bold = [t.get_fontweight() == "bold" for t in table.texts]
    assert bold == [True, True, True] + [False] * 9
    # the colours: misfit 1 − R² on a log scale, clipped to [1e-3, 1]; no converged seed masked
    shown = table.get_images()[0].get_array()
    np.testing.assert_allclose(shown[0], [0.005, 0.002, 0.023], rtol=1e-9)
    np.testing.assert_array_equal(shown[2], [1.0, 1.0, 1.0])
    assert shown.mask[3].all() and not shown.mask[:3].any()
    rows = [t.get_text() for t in table.get_yticklabels()]
    assert rows[0] == "good   P=64, L=4   3/3" and rows[3] == "none   P=64, L=4   0/3"
    title = table.get_title()
    for part in ("of 3", "the presets' own sizes", "float32", "h ≥ 0.99, y ≥ 0.995, w ≥ 0.96"):
        assert part in title, part
    assert [t.get_text() for t in bar.get_yticklabels()] == ["≥ 0.999", "0.99", "0.9", "≤ 0"]


# ------------------------------------------------------------------ imports


def test_the_package_builds_figures_without_pyplot():
    root = Path(plots.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "matplotlib.pyplot" not in text and "import pyplot" not in text, path


def test_the_numerical_core_does_not_import_matplotlib():
    code = (
        "import sys, rep_align, rep_align.theory, rep_align.networks, rep_align.training, "
        "rep_align.fit, rep_align.sweep; "
        "bad = sorted(m for m in sys.modules if m == 'matplotlib' or m == 'rep_align.plots'); "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
