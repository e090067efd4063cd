"""rep_align: the effective theory of representation learning dynamics, in JAX.

Implements van Rossem & Saxe, "When Representations Align: Universality in
Representation Learning Dynamics" (ICML 2024, arXiv:2402.09142).
"""

from importlib.metadata import PackageNotFoundError, version

from rep_align import theory
from rep_align.theory import (
    conserved_quantity,
    final_distance,
    lazy_limit,
    loss_curve,
    pairwise_final_distances,
    rich_limit,
    solve,
    structure_heuristic,
)

try:
    __version__ = version("rep_align")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "theory",
    "solve",
    "final_distance",
    "rich_limit",
    "lazy_limit",
    "conserved_quantity",
    "loss_curve",
    "pairwise_final_distances",
    "structure_heuristic",
]
