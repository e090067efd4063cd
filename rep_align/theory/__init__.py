"""The two-point effective theory of representation learning (docs/theory.md §2-§4, §6).

State ``z = (h, y, w)`` of a pair of training points (docs/theory.md §1):

- ``h`` = ‖Δh‖², squared distance of the two hidden representations,
- ``y`` = ‖Δŷ‖², squared distance of the two outputs,
- ``w`` = Δŷ·(Δŷ − Δy*), alignment of the output difference with its error.

Time ``t`` is measured in the training's own steps (full-batch gradient-descent epochs);
the effective learning rates ``eta_h`` (encoder), ``eta_y`` (decoder) and ``eta_m`` (mean
output) are per step and absorb the network's learning rate.

Every function here is pure JAX: it jits, vmaps and differentiates. Array arguments may
carry leading batch dimensions, which broadcast against each other. Argument checks
(``ValueError`` naming the argument, through ``rep_align.checks``) run on concrete inputs
before anything is traced or compiled; under ``jax.jit``/``jax.vmap`` the values are
abstract and cannot be checked, so invalid values there give ``nan`` rather than an error
(for example ``h0 <= 0`` makes ``sqrt(h0)`` or ``1/h0`` non-finite).

The code lives in private modules by idea: the vector fields and coordinates
(``_fields``), the closed forms and many-point formulas (``_closed_forms``), ``solve``
(``_solve``) and the plain Tsit5 loop for large batches (``_fused``).
"""

from rep_align.theory._closed_forms import conserved_quantity as conserved_quantity
from rep_align.theory._closed_forms import final_distance as final_distance
from rep_align.theory._closed_forms import lazy_limit as lazy_limit
from rep_align.theory._closed_forms import loss_curve as loss_curve
from rep_align.theory._closed_forms import pairwise_final_distances as pairwise_final_distances
from rep_align.theory._closed_forms import rich_limit as rich_limit
from rep_align.theory._closed_forms import structure_heuristic as structure_heuristic
from rep_align.theory._fields import VARIANTS as VARIANTS
from rep_align.theory._fields import Variant as Variant
from rep_align.theory._fields import from_regular as from_regular
from rep_align.theory._fields import regular_vector_field as regular_vector_field
from rep_align.theory._fields import to_regular as to_regular
from rep_align.theory._fields import vector_field as vector_field
from rep_align.theory._fused import solve_fused as solve_fused
from rep_align.theory._fused import solve_group_count as solve_group_count
from rep_align.theory._solve import RESULT_MESSAGES as RESULT_MESSAGES
from rep_align.theory._solve import SolveInfo as SolveInfo
from rep_align.theory._solve import solve as solve

__all__ = [
    "VARIANTS",
    "RESULT_MESSAGES",
    "SolveInfo",
    "vector_field",
    "regular_vector_field",
    "to_regular",
    "from_regular",
    "solve",
    "solve_fused",
    "solve_group_count",
    "final_distance",
    "rich_limit",
    "lazy_limit",
    "conserved_quantity",
    "loss_curve",
    "pairwise_final_distances",
    "structure_heuristic",
]
