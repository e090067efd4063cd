"""Training dynamics of real networks: gradient descent and gradient flow.

Both routines record, inside the compiled loop, the loss and the pair observables of
docs/theory.md §1 (h at every hidden layer, y, w, m) and return a ``Trajectory``.
Parameters are never stored per step.

Conventions shared by ``train`` and ``gradient_flow``:

- Loss L = 0.5 · mean over points and output units of (ŷ − y*)² (docs/theory.md §1).
- Time is in gradient-descent steps: ``train`` takes θ ← θ − lr·∇L once per step, and
  ``gradient_flow`` integrates dθ/dt = −lr·∇L(θ), so both trajectories line up at the same
  times (the flow is the lr → 0 limit of descent at fixed lr·steps).
- Each call handles one run. Configuration that decides shapes (the network, number of
  steps, recording interval, batch size, pair, optimizer kind, solver) is static; the
  numbers (learning rate, gain, data values, PRNG key, initial parameters) are traced, so
  ``jax.vmap`` over seeds, gains, learning rates or data geometry works and a second call
  with new values of the same shapes compiles nothing.
- Inside the compiled loop nothing raises: a run whose loss becomes non-finite is flagged
  (``Trajectory.diverged``, ``Trajectory.diverged_step``) and its records from that step on
  are NaN, so a sweep survives one diverging member.

The code lives in private modules by idea: the record of a run and the steps every run
shares (``_trajectory``), descent (``_descent``), many runs at once (``_ensemble``) and
gradient flow (``_flow``), and epoch-based training that records many points'
representations (``_epochs``, ``train_epochs``).
"""

from rep_align.training._descent import OptimizerSpec as OptimizerSpec
from rep_align.training._descent import train as train
from rep_align.training._ensemble import train_ensemble as train_ensemble
from rep_align.training._epochs import Snapshots as Snapshots
from rep_align.training._epochs import train_epochs as train_epochs
from rep_align.training._flow import gradient_flow as gradient_flow
from rep_align.training._trajectory import Trajectory as Trajectory
from rep_align.training._trajectory import loss_fn as loss_fn
from rep_align.training._trajectory import split_run_key as split_run_key

__all__ = [
    "Snapshots",
    "Trajectory",
    "gradient_flow",
    "loss_fn",
    "split_run_key",
    "train",
    "train_ensemble",
    "train_epochs",
]
