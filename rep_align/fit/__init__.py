"""Fitting effective learning rates to recorded trajectories (docs/theory.md §5).

Given the recorded h, y, w of one pair of training points at save times ``ts`` (gradient
steps), ``fit_rates`` finds the encoder and decoder rates (η_h, η_y) whose theory trajectory,
started from the recorded first state (h0, y0, w0), best matches the record in the least
squares sense; ``fit_eta_m`` then fits the mean-output rate η_m to the recorded loss curve,
with y and w from the fitted trajectory (docs/theory.md (3.5)). Any ablation of
docs/theory.md §4, (4.1)-(4.4), can be fitted in place of the theory (``variant=``). The
settings of the fit are one ``FitOptions``; ``fit_records`` and ``fit_eta_m_records`` fit
recorded runs in bulk (runs that cannot be fitted are left out), and
``predicted_final_distance`` gives the theory's h∞, docs/theory.md (3.2), from fitted
rates.

Procedure, per run:

1. **Ratio.** Along every theory trajectory C = h/(η_h dx2) − y/(η_y h) is conserved
   (docs/theory.md (3.1)). Multiplied out, h·h0·(h − h0) = ρ·dx2·(y·h0 − y0·h) with
   ρ = η_h/η_y holds at *every* recorded time, so ρ is estimated by least squares over the
   whole record. At the last time of a converged record this is exactly the relation of
   ``theory.final_distance`` solved for the ratio, and for small initial weights it becomes
   the reference study's rich-regime relation h∞² ≈ ρ·dx2·dy2; using every time makes it
   hold in the lazy regime and for records that have not converged, and averages noise.
   Each ablation conserves its own such quantity (``_pieces._ratio_relation``), so fitting a
   variant starts from its own exact relation. Where the estimate is not positive (noise
   on records that barely move) the rich-regime relation with the last recorded h is used.
2. **Scale scan.** At this ratio the overall scale c = √(η_h η_y) is scanned over
   ``scan_range`` (10⁻⁶ … 10², 33 log-spaced points by default), from small to large
   scales, a few scales per solve; then a fine scan of 9 points over ±1 coarse spacing
   around the best one (a trajectory whose representation difference flips sign, h passing
   near 0, fits only in a valley narrower than the coarse spacing), and a parabola through
   the best fine point. Failed solves count as +inf. The coarse scan stops early once
   every run's loss has risen 100-fold above its best, or before a chunk of scales that
   could need more than ``scan_max_steps`` steps of the (explicit) solver: the step count
   grows at most linearly with the scale, linearly once the trajectory has converged and
   stability limits the step, and such large scales converge within a small fraction of
   the record, hopeless fits that only cost time.
3. **Refinement.** Levenberg-Marquardt on the log-rates θ = (log η_h, log η_y) with
   Nielsen's damping update and a trust bound of 1.5 per log-rate and step. Each iteration
   is one solve of the candidate together with its finite-difference neighbours. The theory
   is solved as one stacked system (one step size for all members), so the differences of
   its members are derivatives of the discretised solution itself, exact up to round-off:
   forward differences with δ = 10·√eps, 3 members. The ablations are solved member by
   member (their own steps) and use central differences with δ = 10⁻³, 5 members.

Why Gauss-Newton and finite differences: two parameters, 3T residuals that are nearly zero
at the optimum: Gauss-Newton converges in 3 to 10 solves (quadratically near the optimum),
where first-order methods (Adam via optax, L-BFGS on the summed loss) need hundreds of
solves and reverse-mode sweeps. An exact Jacobian would need forward-mode autodiff, which
``theory.solve`` does not support (its diffrax adjoint is reverse-mode only), or 3T
reverse-mode sweeps. ``optimistix.LevenbergMarquardt`` computes its Jacobian by autodiff of
the residual function and so cannot be used through ``theory.solve``; the 2×2 damped
normal equations are solved in closed form here instead.

Loss (docs/theory.md (5.1)). The residuals are theory minus record for h, y and w at every
save time. With ``normalize=True`` (default) each observable's sum of squared errors is
divided by its sum of squares about its mean, so the loss is the mean over h, y, w of
(1 − R²) and none of the three dominates by its units (h and y can differ by orders of
magnitude); a floor of (10⁻³ · RMS)² per time point keeps an observable that barely moves
from being weighted without bound. With ``normalize=False`` the loss is the plain mean
squared error over time and observables, as in the reference study. R² per observable is
reported either way.

Success. ``RateFit.success`` is True where the refinement met its convergence test (relative
decrease of the loss, predicted or achieved, below 1e-8, or a log-step below 1e-8, or no
further decrease possible at the solver's precision) with a finite loss, at a scale
√(η_h η_y) inside ``scan_range``. A fit that runs off the range (towards zero rates, when
the model cannot follow the record at all and a frozen trajectory is its best answer) is
reported as failed with its rates, so it can be inspected.

Fits that fit. ``success`` says the optimiser converged, not that the theory follows the
record: a converged fit can miss it (loss 94, R² of w −34 was seen). ``fits_well`` is the
rule the sweep's ``fit_ok`` column applies: ``success`` and an R² of at least ``R2_MIN``
(0.9) for each of h, y and w (an R² that is NaN, a record constant in time, does not count
against it) and, where η_m was fitted, the η_m fit's ``success`` and an R² of the loss curve
of at least ``R2_MIN``.

Precision: fit in float64 (``jax.enable_x64``). In float32 ``theory.solve`` floors the
tolerances at about 7.6e-6 and the finite differences are coarser; the fit still runs,
with rates good to about 1e-3 relative instead of about 1e-8 (noise-free records).

Batches and speed: ``fit_rates`` fits all runs of a batch in one jitted call (compiled once
per shape and ``FitOptions``). With a shared 1-D ``ts`` every iteration integrates all runs
and members as ONE stacked system; a run that has converged rides along with tiny rates, so
it costs no solver steps. The stacked system has one step size, so a run's numbers depend,
within the solver's tolerance, on the batch it is fitted with: the same batch gives the
same numbers bit for bit, another batch does not (``fit_records``' ``pad_to``). ``fit_run``
fits one run and can be ``jax.vmap``-ed (slower than ``fit_rates``: under vmap each solve
becomes a masked while loop). Per-run time grids are fitted under vmap.

Ablations are integrated by ``theory.solve`` with the implicit Kvaerno5, member by member,
which is slower; some initial conditions make them fail (h reaching 0 in the (h, y, w) form).
Failed solves are +inf in the scan and rejected candidates in the refinement; nothing is
raised, and a run that cannot be fitted comes back with ``success=False``. A failing solve
costs up to ``max_steps`` solver steps: lower it for large ablation sweeps.
"""

from rep_align.fit._eta_m import fit_eta_m
from rep_align.fit._options import FitOptions
from rep_align.fit._pieces import start_ratio
from rep_align.fit._rates import fit_rates, fit_run
from rep_align.fit._records import (
    R2_MIN,
    fit_eta_m_records,
    fit_records,
    fits_well,
    predicted_final_distance,
)
from rep_align.fit._results import EtaMFit, RateFit, r_squared

__all__ = [
    "start_ratio",
    "FitOptions",
    "RateFit",
    "EtaMFit",
    "fit_rates",
    "fit_run",
    "fit_eta_m",
    "fit_records",
    "fit_eta_m_records",
    "fits_well",
    "R2_MIN",
    "predicted_final_distance",
    "r_squared",
]
