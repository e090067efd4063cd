"""rep_align: the effective theory of representation learning dynamics, in JAX.

Implements van Rossem & Saxe, "When Representations Align: Universality in
Representation Learning Dynamics" (ICML 2024, arXiv:2402.09142). Importing the package
changes nothing global (no JAX configuration); ``rep_align.devices.use_host_devices()``
asks for one JAX CPU device per core. docs/architecture.md maps the modules.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from rep_align import checks as checks
from rep_align import config as config
from rep_align import contexts as contexts
from rep_align import data as data
from rep_align import devices as devices
from rep_align import dynamics as dynamics
from rep_align import embedding as embedding
from rep_align import fit as fit
from rep_align import kernel_rates as kernel_rates
from rep_align import metrics as metrics
from rep_align import networks as networks
from rep_align import ntk as ntk
from rep_align import observables as observables
from rep_align import predict as predict
from rep_align import presets as presets
from rep_align import sweep as sweep
from rep_align import theory as theory
from rep_align import training as training
from rep_align.config import RunConfig as RunConfig
from rep_align.data import context_blobs as context_blobs
from rep_align.data import mnist as mnist
from rep_align.data import two_points as two_points
from rep_align.data import xor as xor
from rep_align.fit import EtaMFit as EtaMFit
from rep_align.fit import FitOptions as FitOptions
from rep_align.fit import RateFit as RateFit
from rep_align.fit import fit_eta_m as fit_eta_m
from rep_align.fit import fit_rates as fit_rates
from rep_align.fit import fit_records as fit_records
from rep_align.fit import fit_run as fit_run
from rep_align.fit import r_squared as r_squared
from rep_align.metrics import cka as cka
from rep_align.metrics import procrustes as procrustes
from rep_align.metrics import rdm as rdm
from rep_align.metrics import rsa as rsa
from rep_align.networks import make_network as make_network
from rep_align.ntk import empirical_ntk as empirical_ntk
from rep_align.ntk import linearized_outputs as linearized_outputs
from rep_align.presets import get_preset as get_preset
from rep_align.sweep import SweepSpec as SweepSpec
from rep_align.sweep import load_results as load_results
from rep_align.sweep import load_spec as load_spec
from rep_align.sweep import run_sweep as run_sweep
from rep_align.theory import VARIANTS as VARIANTS
from rep_align.theory import conserved_quantity as conserved_quantity
from rep_align.theory import final_distance as final_distance
from rep_align.theory import lazy_limit as lazy_limit
from rep_align.theory import loss_curve as loss_curve
from rep_align.theory import pairwise_final_distances as pairwise_final_distances
from rep_align.theory import rich_limit as rich_limit
from rep_align.theory import solve as solve
from rep_align.theory import structure_heuristic as structure_heuristic
from rep_align.training import Trajectory as Trajectory
from rep_align.training import gradient_flow as gradient_flow
from rep_align.training import train as train
from rep_align.training import train_ensemble as train_ensemble

try:
    __version__ = _version("rep_align")
except _PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
