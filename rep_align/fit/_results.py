"""Result containers of the fits and the R² they report."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int


@dataclasses.dataclass(frozen=True)
class RateFit:
    """Fitted (η_h, η_y) of one run or a batch of runs (a pytree; batch dims lead).

    Attributes:
        eta_h, eta_y: fitted rates per gradient step, shape ``batch``; ``nan`` where no
            finite fit was found.
        loss: final value of the fit objective, docs/theory.md (5.1) (see ``rep_align.fit``
            for the weighting), ``batch``.
        r2: coefficient of determination of h, y and w (in that order), ``batch + (3,)``:
            1 − Σ_t (record − theory)² / Σ_t (record − mean of record)².
        success: ``batch`` bool; True where the refinement converged with a finite loss at a
            scale √(η_h η_y) inside the scanned range (``rep_align.fit``).
        num_iters: refinement iterations used (one stacked solve each), ``batch``; −1 for
            runs ``fit_records`` left out.
        z_fit: the fitted theory trajectory at ``ts``, ``batch + (T, 3)``, if requested
            (``return_trajectory=True``), else ``None``.
    """

    eta_h: Float[Array, "..."]
    eta_y: Float[Array, "..."]
    loss: Float[Array, "..."]
    r2: Float[Array, "... 3"]
    success: Bool[Array, "..."]
    num_iters: Int[Array, "..."]
    z_fit: Float[Array, "... times 3"] | None = None


jax.tree_util.register_dataclass(
    RateFit,
    data_fields=["eta_h", "eta_y", "loss", "r2", "success", "num_iters", "z_fit"],
    meta_fields=[],
)


@dataclasses.dataclass(frozen=True)
class EtaMFit:
    """Fitted mean-output rate η_m of one run or a batch of runs (a pytree).

    Attributes:
        eta_m: fitted rate per gradient step, shape ``batch``; ``nan`` where it is not
            determined (m0 = 0, or a non-finite input trajectory).
        loss: mean squared error between the recorded and the theory loss curve.
        r2: R² of the loss curve.
        success: True where the fit converged with a finite loss and m0 > 0.
    """

    eta_m: Float[Array, "..."]
    loss: Float[Array, "..."]
    r2: Float[Array, "..."]
    success: Bool[Array, "..."]


jax.tree_util.register_dataclass(
    EtaMFit, data_fields=["eta_m", "loss", "r2", "success"], meta_fields=[]
)


def r_squared(
    observed: Float[ArrayLike, "... times k"],
    predicted: Float[ArrayLike, "... times k"],
) -> Float[Array, "... k"]:
    """R² per observable: 1 − Σ_t (obs − pred)² / Σ_t (obs − mean_t obs)².

    Arguments:
        observed, predicted: ``(..., T, K)`` arrays (for trajectories K = 3: h, y, w);
            they broadcast.

    Returns:
        ``(..., K)``; ``nan`` where the record is constant in time (R² undefined) or the
        prediction is not finite.
    """
    observed = jnp.asarray(observed)
    predicted = jnp.asarray(predicted)
    ss_res = jnp.sum((observed - predicted) ** 2, axis=-2)
    ss_tot = jnp.sum((observed - jnp.mean(observed, axis=-2, keepdims=True)) ** 2, axis=-2)
    return jnp.where(ss_tot > 0, 1.0 - ss_res / jnp.where(ss_tot > 0, ss_tot, 1.0), jnp.nan)
