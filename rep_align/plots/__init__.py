"""Figures of rep_align: trajectories, sweeps and the reproduction experiments.

Every function builds a self-contained ``matplotlib.figure.Figure`` (no pyplot state), so it
works under any backend, in scripts, notebooks and tests alike; write it with ``save``.
Trajectory figures share one 2×2 panel of h, y, w and the loss (``draw_hywl``): measured
curves solid, theory dashed. This package is the only part of rep_align that imports
matplotlib; ``import rep_align`` does not import it.
"""

from rep_align.plots._panels import draw_hywl, hywl_axes, hywl_labels, save
from rep_align.plots.experiments import (
    ablation_bars,
    depth_profile,
    grid_scatter,
    two_point_overview,
    two_point_trajectories,
)
from rep_align.plots.sweeps import (
    choose_axes,
    plot_against,
    plot_final_vs_theory,
    plot_heatmap,
    plot_trajectories,
    standard_figures,
)
from rep_align.plots.trajectories import plot_theory, plot_trajectory
from rep_align.plots.validity import validity_heatmaps

__all__ = [
    "save",
    "draw_hywl",
    "hywl_axes",
    "hywl_labels",
    "plot_trajectory",
    "plot_theory",
    "choose_axes",
    "plot_against",
    "plot_heatmap",
    "plot_final_vs_theory",
    "plot_trajectories",
    "standard_figures",
    "two_point_trajectories",
    "two_point_overview",
    "grid_scatter",
    "depth_profile",
    "ablation_bars",
    "validity_heatmaps",
]
