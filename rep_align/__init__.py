"""rep_align: the effective theory of representation learning dynamics, in JAX.

Implements van Rossem & Saxe, "When Representations Align: Universality in
Representation Learning Dynamics" (ICML 2024, arXiv:2402.09142).
"""

from importlib.metadata import PackageNotFoundError, version

from rep_align import (
    data,
    devices,
    dynamics,
    fit,
    networks,
    observables,
    presets,
    sweep,
    theory,
    training,
)
from rep_align.data import two_points, xor
from rep_align.fit import EtaMFit, RateFit, fit_eta_m, fit_rates, fit_run, r_squared
from rep_align.networks import make_network
from rep_align.presets import get_preset
from rep_align.sweep import SweepSpec, load_results, load_spec, run_sweep
from rep_align.theory import (
    VARIANTS,
    conserved_quantity,
    final_distance,
    lazy_limit,
    loss_curve,
    pairwise_final_distances,
    rich_limit,
    solve,
    structure_heuristic,
)
from rep_align.training import Trajectory, gradient_flow, train, train_ensemble

# One CPU device per core, unless JAX is already initialised or the user chose otherwise
# (rep_align.devices; opt out with REP_ALIGN_HOST_DEVICES=0). Importing the modules above
# creates no arrays, so JAX's backend is not initialised yet (tests/test_devices.py).
devices.configure_host_devices()

try:
    __version__ = version("rep_align")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "data",
    "dynamics",
    "fit",
    "networks",
    "observables",
    "presets",
    "sweep",
    "theory",
    "training",
    "devices",
    "VARIANTS",
    "two_points",
    "xor",
    "make_network",
    "get_preset",
    "train",
    "train_ensemble",
    "gradient_flow",
    "Trajectory",
    "fit_rates",
    "fit_run",
    "fit_eta_m",
    "r_squared",
    "RateFit",
    "EtaMFit",
    "SweepSpec",
    "load_spec",
    "run_sweep",
    "load_results",
    "solve",
    "final_distance",
    "rich_limit",
    "lazy_limit",
    "conserved_quantity",
    "loss_curve",
    "pairwise_final_distances",
    "structure_heuristic",
]
