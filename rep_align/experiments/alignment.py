"""Alignment between architectures and with the many-point theory: the analysis of the
universality experiment (``experiments.universality``), from stored records to typed
results.

For one task and regime (``analyse_regime``): linear CKA between the final representations
of every pair of members (same seed; seed s against s+1 of the same member on the
diagonal), its mean off-diagonal per seed at every record, and per member the RSA of the
learned distance matrix with the rich limit (3.3), with (6.1) and with the initial
distances, and the hidden change. Runs that did not converge (final loss not below
``CONVERGED_LOSS``, the paper's filter, docs/presets.md "Protocols") enter no statistic:
their entries are NaN. Every spread over seeds is ``_protocol.spread`` (population standard
deviation, NaN for fewer than two values). ``compare`` says which regime aligns more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import metrics, theory
from rep_align.experiments._protocol import Spread, spread
from rep_align.observables import pairwise_squared_distances
from rep_align.sweep.store import CONVERGED_LOSS as SWEEP_CONVERGED_LOSS

__all__ = [
    "CONVERGED_LOSS",
    "Comparison",
    "MemberAgreement",
    "PerSeed",
    "RegimeResult",
    "analyse_regime",
    "compare",
]

#: A run has converged when its final loss (0.5·mse, without dropout) is below this: the
#: paper's filter (``sweep.store.CONVERGED_LOSS``). The dropout MLP cannot go much lower
#: (its inputs are dropped too: 2.8e-3 on XOR at small init).
CONVERGED_LOSS = SWEEP_CONVERGED_LOSS

#: Pairs of Gram matrices per compiled CKA call (padded), so every analysis of the same
#: number of points reuses one compiled function.
_CKA_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class PerSeed:
    """One quantity per seed (NaN where the run did not converge) and its spread over the
    finite ones."""

    values: tuple[float, ...]
    spread: Spread

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> PerSeed:
        v = tuple(float(x) for x in np.ravel(values))
        return cls(v, spread(v))

    @property
    def range(self) -> tuple[float, float]:
        """(min, max) of the finite values; NaN if none."""
        v = np.asarray(self.values, float)
        v = v[np.isfinite(v)]
        return (float(v.min()), float(v.max())) if v.size else (np.nan, np.nan)


@dataclasses.dataclass(frozen=True)
class MemberAgreement:
    """One member's learned distances against the theory, per seed.

    Attributes:
        rsa_rich, rsa_theory, rsa_initial: RSA with the rich limit (3.3), with (6.1) at
            the run's own initial distances, and with the initial distances.
        hidden_change: ‖D_T − D_0‖/‖D_0‖ of the hidden distances.
        final_loss: per seed; final_loss_max: their maximum.
        converged: seeds whose final loss is below ``CONVERGED_LOSS``.
        diverged: seeds whose loss became non-finite.
    """

    rsa_rich: PerSeed
    rsa_theory: PerSeed
    rsa_initial: PerSeed
    hidden_change: PerSeed
    final_loss: tuple[float, ...]
    final_loss_max: float
    converged: int
    diverged: int


@dataclasses.dataclass(frozen=True)
class RegimeResult:
    """One task and regime.

    Attributes:
        members: the members, in the order of the matrices.
        seeds: seeds per member.
        converged, runs: converged runs, all runs.
        cka_final, cka_final_std: (A, A) CKA of the final representations, mean and spread
            over seeds.
        offdiag, offdiag_initial: the mean off-diagonal CKA per seed, at the end and at
            initialisation.
        cka_epochs, cka_mean, cka_std: the mean off-diagonal CKA at every record, mean and
            spread over seeds.
        agreement: per member, its ``MemberAgreement``.
    """

    members: tuple[str, ...]
    seeds: int
    converged: int
    runs: int
    cka_final: np.ndarray
    cka_final_std: np.ndarray
    offdiag: PerSeed
    offdiag_initial: PerSeed
    cka_epochs: np.ndarray
    cka_mean: np.ndarray
    cka_std: np.ndarray
    agreement: Mapping[str, MemberAgreement]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Which regime aligns more on one task (``compare``).

    Attributes:
        aligns_more: "small", "large" or "undetermined" (a regime without a converged pair).
        difference: small minus large mean off-diagonal CKA.
        seed_ranges_separate: whether the per-seed values of the two regimes do not overlap.
        mean_rsa_rich_small, mean_rsa_rich_large: mean over members of their mean RSA with
            the rich limit.
        text: the comparison in a sentence.
    """

    aligns_more: str
    difference: float
    seed_ranges_separate: bool
    mean_rsa_rich_small: float
    mean_rsa_rich_large: float
    text: str


# ------------------------------------------------------------------------ numerics


def _grams(h: np.ndarray) -> np.ndarray:
    """(..., P, F) representations -> (..., P, P) linear Gram matrices, float64."""
    h = np.asarray(h, np.float64)
    return np.einsum("...pf,...qf->...pq", h, h)


@jax.jit
def _cka_pairs(ga, gb):
    return jax.vmap(metrics.cka_from_grams)(ga, gb)


def _cka(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Linear CKA of matching Gram matrices (..., P, P) (``metrics.cka_from_grams``,
    float64); NaN where a representation is constant or not finite."""
    shape, p = ga.shape[:-2], ga.shape[-1]
    a, b = ga.reshape(-1, p, p), gb.reshape(-1, p, p)
    m = a.shape[0]
    pad = -m % _CKA_CHUNK
    eye = np.broadcast_to(np.eye(p), (pad, p, p))
    a, b = np.concatenate([a, eye]), np.concatenate([b, eye])
    out = []
    with jax.enable_x64(True):
        for i in range(0, a.shape[0], _CKA_CHUNK):
            chunk = slice(i, i + _CKA_CHUNK)
            out.append(np.asarray(_cka_pairs(jnp.asarray(a[chunk]), jnp.asarray(b[chunk]))))
    return np.concatenate(out)[:m].astype(np.float64).reshape(shape)


def _sq_distances(h: np.ndarray) -> np.ndarray:
    """(P, P) squared distances of the rows of h (P, F), float64."""
    with jax.enable_x64(True):
        return np.asarray(pairwise_squared_distances(np.asarray(h, np.float64)))


def _rsa(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson RSA (``metrics.upper_pearson``, float64): NaN where either matrix is not
    finite or constant above the diagonal."""
    with jax.enable_x64(True):
        return float(metrics.upper_pearson(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def _theory_distances(dx2, dy2, h0, y0, ratio: float) -> np.ndarray:
    """√ of (6.1) with the run's initial squared distances; NaN if (6.1) does not apply
    (a pair with zero initial hidden distance, or non-finite records)."""
    n = h0.shape[0]
    off = ~np.eye(n, dtype=bool)
    if not (np.all(np.isfinite(h0)) and np.all(np.isfinite(y0)) and np.all(h0[off] > 0)):
        return np.full((n, n), np.nan)
    with jax.enable_x64(True):
        h_inf = theory.pairwise_final_distances(dx2, dy2, h0, y0, eta_h=ratio, eta_y=1.0)
    return np.sqrt(np.maximum(np.asarray(h_inf, np.float64), 0.0))


@contextlib.contextmanager
def _nan_quietly():
    """Statistics of all-NaN slices (no converged run or pair) are NaN, without NumPy's
    RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _offdiag_mean(c: np.ndarray) -> np.ndarray:
    """Mean over a ≠ b of c[a, b, ...] (NaN entries skipped)."""
    a = c.shape[0]
    vals = c[~np.eye(a, dtype=bool)]  # (A(A-1), ...)
    with _nan_quietly():
        return np.nanmean(np.where(np.isfinite(vals), vals, np.nan), axis=0)


def _over_seeds(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (``spread``) of ``a`` along ``axis``, the seeds."""
    a = np.moveaxis(np.asarray(a, np.float64), axis, -1)
    stats = [spread(v) for v in a.reshape(-1, a.shape[-1])]
    shape = a.shape[:-1]
    mean = np.asarray([s.mean for s in stats], np.float64).reshape(shape)
    return mean, np.asarray([s.std for s in stats], np.float64).reshape(shape)


# ------------------------------------------------------------------------ analysis


def _agreement(records, ok_row, final_loss_row, x, y, ratio: float) -> MemberAgreement:
    dx2, dy2 = _sq_distances(x), _sq_distances(y)
    rich = (dx2 * dy2) ** 0.25  # √ of (3.3) up to the constant ρ^{1/4}
    rows: dict[str, list[float]] = dict(rsa_rich=[], rsa_theory=[], rsa_initial=[], change=[])
    for r in records:
        h = np.asarray(r["hidden"], np.float64)
        h2_0, h2_t = _sq_distances(h[0]), _sq_distances(h[-1])
        d0, dt = np.sqrt(h2_0), np.sqrt(h2_t)
        y2_0 = _sq_distances(np.asarray(r["outputs"], np.float64)[0])
        rows["rsa_rich"].append(_rsa(dt, rich))
        rows["rsa_theory"].append(_rsa(dt, _theory_distances(dx2, dy2, h2_0, y2_0, ratio)))
        rows["rsa_initial"].append(_rsa(dt, d0))
        ref = np.linalg.norm(d0)
        rows["change"].append(np.linalg.norm(dt - d0) / ref if ref > 0 else np.nan)
    kept = {k: PerSeed.of(np.where(ok_row, v, np.nan)) for k, v in rows.items()}
    return MemberAgreement(
        rsa_rich=kept["rsa_rich"],
        rsa_theory=kept["rsa_theory"],
        rsa_initial=kept["rsa_initial"],
        hidden_change=kept["change"],
        final_loss=tuple(float(v) for v in final_loss_row),
        final_loss_max=float(np.max(final_loss_row)),
        converged=int(np.sum(ok_row)),
        diverged=int(sum(bool(r["diverged"]) for r in records)),
    )


def analyse_regime(
    names: Sequence[str],
    records: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    x: np.ndarray,
    y: np.ndarray,
    ratio: float,
) -> RegimeResult:
    """CKA matrix and its evolution, and agreement with the theory, for one task and
    regime (module docstring). ``records[name]`` holds each seed's snapshots (``hidden``,
    ``outputs``, ``loss``, ``epochs``, ``diverged``); ``ratio`` is ρ of (6.1)."""
    n_seeds = len(records[names[0]])
    final_loss = np.asarray(
        [[float(r["loss"][-1]) for r in records[n]] for n in names], np.float64
    )  # (A, S)
    ok = np.isfinite(final_loss) & (final_loss < CONVERGED_LOSS)
    grams = np.stack(
        [np.stack([_grams(r["hidden"]) for r in records[n]]) for n in names]
    )  # (A, S, T, P, P)
    grams[~ok] = np.nan
    a = len(names)
    ia, ib = np.meshgrid(np.arange(a), np.arange(a), indexing="ij")
    c = _cka(grams[ia], grams[ib])  # (A, A, S, T): same seed
    if n_seeds > 1:
        cross = _cka(grams, np.roll(grams, -1, axis=1))  # (A, S, T): seed s against s+1
        for k in range(a):
            c[k, k] = cross[k]
    else:
        for k in range(a):
            c[k, k] = np.nan
    per_seed_t = _offdiag_mean(c)  # (S, T)
    matrix, matrix_std = _over_seeds(c[..., -1], axis=-1)
    t_mean, t_std = _over_seeds(per_seed_t, axis=0)
    return RegimeResult(
        members=tuple(names),
        seeds=n_seeds,
        converged=int(np.sum(ok)),
        runs=int(ok.size),
        cka_final=matrix,
        cka_final_std=matrix_std,
        offdiag=PerSeed.of(per_seed_t[:, -1]),
        offdiag_initial=PerSeed.of(per_seed_t[:, 0]),
        cka_epochs=np.asarray(records[names[0]][0]["epochs"]),
        cka_mean=t_mean,
        cka_std=t_std,
        agreement={
            name: _agreement(records[name], ok[k], final_loss[k], x, y, ratio)
            for k, name in enumerate(names)
        },
    )


def compare(task: str, regimes: Mapping[str, RegimeResult]) -> Comparison:
    """Which regime aligns more on ``task``, from the per-seed mean off-diagonal CKA, and
    the mean RSA with the rich limit of both."""
    small, large = regimes["small"], regimes["large"]
    s, lg = small.offdiag.spread, large.offdiag.spread
    if not (np.isfinite(s.mean) and np.isfinite(lg.mean)):
        more = "undetermined"  # no converged pair of architectures in a regime
    else:
        more = "small" if s.mean > lg.mean else "large"
    (s_min, s_max), (l_min, l_max) = small.offdiag.range, large.offdiag.range
    separated = s_min > l_max or l_min > s_max
    with _nan_quietly():
        rich_s, rich_l = (
            float(np.nanmean([v.rsa_rich.spread.mean for v in r.agreement.values()]))
            for r in (small, large)
        )
    s0, l0 = small.offdiag_initial.spread.mean, large.offdiag_initial.spread.mean
    verdict = (
        "which aligns more is undetermined "
        if more == "undetermined"
        else f"{more} init aligns more "
    )
    return Comparison(
        aligns_more=more,
        difference=s.mean - lg.mean,
        seed_ranges_separate=bool(separated),
        mean_rsa_rich_small=rich_s,
        mean_rsa_rich_large=rich_l,
        text=(
            f"{task}: mean off-diagonal CKA {s.mean:.3f} ± {s.std:.3f} at small init vs "
            f"{lg.mean:.3f} ± {lg.std:.3f} at large init (mean ± spread over {s.n} seeds): "
            f"{verdict}(difference {s.mean - lg.mean:+.3f}; seed ranges "
            f"{'do not overlap' if separated else 'overlap'}); at initialisation {s0:.3f} and "
            f"{l0:.3f}. Mean RSA with the rich prediction (3.3): {rich_s:.3f} small vs "
            f"{rich_l:.3f} large."
        ),
    )
