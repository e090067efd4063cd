"""Universality: do different architectures learn aligned representations, and does the
many-point theory predict them? (docs/theory.md §3, (3.3), and §6, (6.1).)

A sweep plus an analysis. The *zoo* (``ZOO``) is the two-point table's architectures
(docs/presets.md, "Architectures"): MLPs with every nonlinearity (leaky ReLU, ReLU, tanh,
ELU, SiLU, none), the ResNet ("skip"), a CNN, the dropout MLP, and the leaky-ReLU MLP at a
lower and a higher gain. Each member is trained on two multi-point tasks, XOR
(``data.xor``: 4 points, 1 output) and the tree-structured items (``data.hierarchy``:
8 one-hot items, 15 tree-node targets), from a *small* and from a *large* initial gain,
over several seeds, by full-batch gradient descent on 0.5·mse (``experiments.points``:
cached per run under ``out/sweeps/universality``). The hidden representation of every
point is recorded at a middle layer over training.

Regimes. The gains are per member (``ZooMember``), chosen by measurement (width 256,
depth 4): the small gain puts the network in the rich regime (its hidden distances move
far from their initial values, by factors 1.4-200) while it still converges in the epoch
budget; the large gain (2; 1.7 and 2.8 for the gain variants, 2.4 for the CNN, 3 for SiLU,
whose slope at 0 is 1/2) puts it in the lazy regime (hidden distances change by 1-15 %).
The dropout MLP is the exception: dropout noise on a large initial output is not
removed by a small weight change, and at large gain it neither stays lazy (hidden change
0.1-0.7) nor fits XOR within the budget (loss 0.014-0.025), which the results report as
they are.

Convergence (measured at the defaults, seeds 0-4, float32; a run counts when its final
loss is below 1e-2): 198 of 210 runs. Not converged: the dropout MLP at large gain on
XOR (5 of 5; see above) and at small gain on XOR in 2 of 5 seeds (its inputs are
dropped too: final losses 0.003-0.013, just around the filter); the CNN at small gain in
seed 2 on both tasks (its output stays at the mean target; no learning rate 0.025-0.05 or
gain 1.0-1.3 tried changes that); the CNN at large gain on the hierarchy in 3 of 5 seeds
(final loss 0.05-0.07: its kernel at init is badly conditioned, λ_max varies 80-fold
between seeds, and the steps follow λ_max). Runs that did not converge enter no
statistic (``_analyse_regime``).

The small-gain learning rate is one per task (``SMALL_LR``; an eighth of it for the
CNN); the large-gain one is f·N/λ_max(K_0) from the run's own empirical NTK at init,
rounded to two significant digits (per seed: for the CNN λ_max varies 100-fold between
seeds), N = points × outputs, f =
``LAZY_LR_FRACTION`` = 0.5 (1.0 for the CNN), so that every lazy network takes stable
steps of the same size relative to its own kernel.

Analysis (float64), for each task and regime:

- *CKA matrix*: linear CKA (``metrics.cka_from_grams``) between the final representations
  of members A and B of the same seed s, averaged over seeds; the diagonal pairs seed s of
  a member with seed s+1 of the same member (its agreement with itself across inits; NaN
  with one seed). The headline is the mean off-diagonal CKA per seed, with its mean and
  spread over seeds, and the same at every record (CKA over training).
- *Agreement with the theory*, per member: RSA (Pearson, ``metrics.rsa``) between the
  learned distance matrix (unsquared, at the end) and (i) the rich limit, √ of (3.3)
  per pair, (ρ D^x D^y)^{1/2}, which does not depend on ρ under RSA; (ii) √ of (6.1)
  with the network's own initial squared hidden and output distances and the rate ratio
  ρ = ``RATE_RATIO``; (iii) the initial distance matrix (the lazy limit (3.4)).
- *Hidden change* ‖D_T − D_0‖/‖D_0‖, which says which regime a run was in.

A linear network cannot fit XOR (its best fit is the constant 0.5, loss 0.125), so the
``linear`` member is trained on the hierarchy only.

What it finds (``reproduction/universality``, 5 seeds at the defaults). Linear CKA between
architectures does not separate the regimes here, because the architectures already agree
at initialisation (mean off-diagonal CKA at init 0.91-0.97 in every task and regime): lazy
networks keep that shared geometry (large init: XOR 0.916 ± 0.013, hierarchy 0.957 ±
0.005), while at small init the hierarchy stays at 0.944 ± 0.013 and XOR falls to 0.610 ±
0.030. What separates the regimes is agreement with the rich limit (3.3): mean RSA over
members 0.90 (small) vs 0.11 (large) on the hierarchy, 0.38 vs −0.64 on XOR. On XOR the
ReLU family (leaky ReLU, ReLU, dropout, both gain variants) reaches the rich limit (RSA
0.90-0.999) and the smooth activations (tanh, ELU, SiLU), the ResNet and the CNN do not
(−0.52 to 0.21): near zero a smooth nonlinearity is nearly linear, and small weights keep
its pre-activations there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import checks, metrics, ntk, theory
from rep_align.experiments.common import Status, store_root
from rep_align.experiments.points import PointsRun, points_data, train_points, write_settings
from rep_align.files import write_json
from rep_align.networks import make_network, num_hidden
from rep_align.sweep.store import CONVERGED_LOSS as SWEEP_CONVERGED_LOSS
from rep_align.training import split_run_key

__all__ = [
    "CONVERGED_LOSS",
    "LAZY_LR_FRACTION",
    "RATE_RATIO",
    "SMALL_LR",
    "TASKS",
    "ZOO",
    "UniversalityResult",
    "ZooMember",
    "run_universality",
    "universality_runs",
]

TASKS = ("xor", "hierarchy")

#: η_h/η_y of the many-point prediction (6.1): the mean fitted η_h over the mean fitted η_y
#: of the two-point ``default`` preset, 20 seeds at the paper's size
#: (reproduction/two_points_default20.json: 7.458e-4 / 4.216e-2), as the reference study
#: takes its XOR prediction from the default preset (docs/presets.md, "XOR").
RATE_RATIO = 0.0177

#: Learning rate of the small-gain runs, per task (loss 0.5·mse averaged over points and
#: output units, so the hierarchy's 15 outputs need a larger step).
SMALL_LR = {"xor": 0.2, "hierarchy": 2.0}

#: Large-gain runs take lr = f · N / λ_max(K_0), f = ``ZooMember.large_lr_fraction``,
#: by default this (module docstring).
LAZY_LR_FRACTION = 0.5

#: A run has converged when its final loss (0.5·mse, without dropout) is below this: the
#: paper's filter (``sweep.store.CONVERGED_LOSS``). The dropout MLP cannot go much lower
#: (its inputs are dropped too: 2.8e-3 on XOR at small init).
CONVERGED_LOSS = SWEEP_CONVERGED_LOSS

#: Epochs per task (full batch: one step each), and records per run (plus the initial one).
EPOCHS = {"xor": 3000, "hierarchy": 2000}
RECORDS = 100


@dataclasses.dataclass(frozen=True)
class ZooMember:
    """One architecture of the zoo.

    Attributes:
        name: label in the results.
        arch, activation: ``networks.make_network`` arguments.
        small_gain, large_gain: init gains of the rich and the lazy regime.
        small_lr_factor: multiplies the task's ``SMALL_LR`` for this member.
        large_lr_fraction: the large-gain lr is this · N / λ_max(K_0).
        tasks: the tasks it is trained on.
    """

    name: str
    arch: str
    activation: str
    small_gain: float
    large_gain: float
    small_lr_factor: float = 1.0
    large_lr_fraction: float = LAZY_LR_FRACTION
    tasks: tuple[str, ...] = TASKS

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The architecture zoo (module docstring); the CNN uses kernel 5 and 8 channels
#: (``CNN_KERNEL``, ``CNN_CHANNELS``), the dropout MLP rate 0.1.
ZOO: tuple[ZooMember, ...] = (
    ZooMember("leaky_relu", "mlp", "leaky_relu", 0.5, 2.0),
    ZooMember("relu", "mlp", "relu", 0.5, 2.0),
    ZooMember("tanh", "mlp", "tanh", 0.7, 2.0),
    ZooMember("elu", "mlp", "elu", 0.7, 2.0),
    ZooMember("silu", "mlp", "silu", 1.0, 3.0),
    ZooMember("linear", "mlp", "none", 0.5, 2.0, tasks=("hierarchy",)),
    ZooMember("resnet", "resnet", "leaky_relu", 0.3, 2.0),
    # The CNN's last convolution has one channel: at the MLPs' step it stalls (its output
    # stays at the mean target on XOR at lr 0.1-0.2 for every gain tried), so it steps 8x
    # smaller (XOR seeds 0-3 at lr 0.025: 3 converge by epoch 500; seed 2 stays at the mean
    # at every lr 0.025-0.05 and gain 1.0-1.3 tried); at gain 1 its output still starts
    # ~1e-3 and its hidden distances grow 1.2-7x.
    # At gain 2 it is not lazy on the hierarchy (hidden change 0.5); at 2.4 its kernel is
    # badly conditioned, so it takes steps twice the MLPs' fraction of the stability limit.
    ZooMember("cnn", "cnn", "leaky_relu", 1.0, 2.4, small_lr_factor=0.125, large_lr_fraction=1.0),
    ZooMember("dropout", "dropout", "leaky_relu", 0.5, 2.0),
    ZooMember("gain_low", "mlp", "leaky_relu", 0.35, 1.7),
    ZooMember("gain_high", "mlp", "leaky_relu", 0.7, 2.8),
)

CNN_KERNEL = 5
CNN_CHANNELS = 8
REGIMES = ("small", "large")


def _zoo(names: Sequence[str] | None) -> tuple[ZooMember, ...]:
    if names is None:
        return ZOO
    by_name = {m.name: m for m in ZOO}
    for n in names:
        checks.choice("members", n, tuple(by_name))
    return tuple(by_name[n] for n in names)


def _layer(member: ZooMember, depth: int) -> int:
    return num_hidden(member.arch, depth) // 2


def _base_run(member: ZooMember, task: str, *, width: int, depth: int, epochs: int, dtype: str):
    return PointsRun(
        task=task,
        arch=member.arch,
        width=width,
        depth=depth,
        activation=member.activation,
        kernel_size=CNN_KERNEL,
        channels=CNN_CHANNELS,
        epochs=epochs,
        record_every=max(1, epochs // RECORDS),
        layer=_layer(member, depth),
        dtype=dtype,
    )


def _sig2(v: float) -> float:
    return float(f"{v:.2g}")


def _lazy_lrs(
    run: PointsRun, seeds: Sequence[int], x: np.ndarray, y: np.ndarray, fraction: float
) -> list[float]:
    """fraction · N / λ_max(K_0) of each seed's initial network (``run`` at its gain),
    to two significant digits."""
    with jax.enable_x64(run.dtype == "float64"):
        dtype = jnp.float64 if run.dtype == "float64" else jnp.float32
        net = make_network(
            run.arch,
            in_dim=x.shape[1],
            out_dim=y.shape[1],
            width=run.width,
            depth=run.depth,
            activation=run.activation,
            dropout_rate=run.dropout_rate,
            kernel_size=run.kernel_size,
            channels=run.channels,
            dtype=dtype,
        )
        xs = jnp.asarray(x, dtype)
        lrs = []
        for seed in seeds:
            # The initial network of train_points' run of this seed.
            params = net.init(split_run_key(jax.random.key(int(seed)))[0], gain=run.gain)
            k0 = ntk.empirical_ntk(net, params, xs)
            lam = np.linalg.eigvalsh(np.asarray(ntk.flatten_kernel(k0), np.float64))[-1]
            lrs.append(_sig2(fraction * y.size / lam))
    return lrs


def universality_runs(
    *,
    seeds: Sequence[int],
    members: Sequence[str] | None = None,
    tasks: Sequence[str] = TASKS,
    width: int = 256,
    depth: int = 4,
    epochs: Mapping[str, int] | None = None,
    float64: bool = False,
    root: str | os.PathLike | None = None,
) -> dict[tuple[str, str, str], list[PointsRun]]:
    """The experiment's runs: ``{(task, member, regime): [PointsRun per seed]}``.

    The large-gain learning rates need one kernel evaluation per member, task and seed;
    they are cached in ``root/lazy_lrs.json`` when ``root`` is given.
    """
    epochs = dict(EPOCHS, **(epochs or {}))
    dtype = "float64" if float64 else "float32"
    cache_path = None if root is None else Path(root) / "lazy_lrs.json"
    cache: dict[str, float] = {}
    if cache_path is not None and cache_path.exists():
        cache = json.loads(cache_path.read_text())
    out: dict[tuple[str, str, str], list[PointsRun]] = {}
    for task in tasks:
        x, y = points_data(PointsRun(task=task))
        for m in _zoo(members):
            if task not in m.tasks:
                continue
            base = _base_run(m, task, width=width, depth=depth, epochs=epochs[task], dtype=dtype)
            small = base.replace(gain=m.small_gain, lr=SMALL_LR[task] * m.small_lr_factor)
            large = base.replace(gain=m.large_gain)
            keys = {s: f"{large.replace(seed=int(s)).run_id}/{m.large_lr_fraction}" for s in seeds}
            todo = [s for s in seeds if keys[s] not in cache]
            if todo:
                lrs = _lazy_lrs(large, todo, x, y, m.large_lr_fraction)
                cache.update({keys[s]: lr for s, lr in zip(todo, lrs, strict=True)})
            out[(task, m.name, "small")] = [small.replace(seed=int(s)) for s in seeds]
            out[(task, m.name, "large")] = [
                large.replace(seed=int(s), lr=cache[keys[s]]) for s in seeds
            ]
    if cache_path is not None:
        write_json(cache_path, cache)
    return out


# ---------------------------------------------------------------------------- analysis


def _grams(h: np.ndarray) -> np.ndarray:
    """(..., P, F) representations -> (..., P, P) linear Gram matrices, float64."""
    h = np.asarray(h, np.float64)
    return np.einsum("...pf,...qf->...pq", h, h)


@jax.jit
def _cka_pairs(ga, gb):
    return jax.vmap(metrics.cka_from_grams)(ga, gb)


#: Pairs of Gram matrices per compiled CKA call (padded), so every analysis of the same
#: number of points reuses one compiled function.
_CKA_CHUNK = 4096


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
    h = np.asarray(h, np.float64)
    return np.maximum(np.sum((h[..., :, None, :] - h[..., None, :, :]) ** 2, axis=-1), 0.0)


def _rsa(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson RSA, NaN where either matrix is not finite or constant above the diagonal."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    iu = np.triu_indices(a.shape[0], k=1)
    if np.ptp(a[iu]) == 0 or np.ptp(b[iu]) == 0:
        return float("nan")
    with jax.enable_x64(True):
        return float(metrics.rsa(jnp.asarray(a), jnp.asarray(b)))


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


def _spread(values) -> dict[str, Any]:
    """mean, std (ddof 1; 0 for one value), min, max of the finite values, and all of
    them."""
    v = np.asarray(values, float)
    f = v[np.isfinite(v)]
    if f.size == 0:
        nan = float("nan")
        return dict(mean=nan, std=nan, min=nan, max=nan, n=0, values=v)
    std = float(np.std(f, ddof=1)) if f.size > 1 else 0.0
    return dict(
        mean=float(np.mean(f)),
        std=std,
        min=float(np.min(f)),
        max=float(np.max(f)),
        n=int(f.size),
        values=v,
    )


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
    off = ~np.eye(a, dtype=bool)
    vals = c[off]  # (A(A-1), ...)
    with _nan_quietly():
        return np.nanmean(np.where(np.isfinite(vals), vals, np.nan), axis=0)


def _analyse_regime(
    names: Sequence[str],
    records: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    x: np.ndarray,
    y: np.ndarray,
    ratio: float,
) -> dict[str, Any]:
    """CKA matrix and its evolution, and agreement with the theory, for one task and
    regime. ``records[name]`` holds each seed's Snapshots arrays. Runs that did not
    converge (final loss not below ``CONVERGED_LOSS``) enter no statistic: their CKA
    entries and agreement values are NaN (the paper's filter, docs/presets.md
    "Protocols")."""
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
    same_seed = _cka(grams[ia], grams[ib])  # (A, A, S, T)
    c = same_seed.copy()
    if n_seeds > 1:
        shifted = np.roll(grams, -1, axis=1)
        cross = _cka(grams, shifted)  # (A, S, T): seed s against seed s+1
        for k in range(a):
            c[k, k] = cross[k]
    else:
        for k in range(a):
            c[k, k] = np.nan
    per_seed_t = _offdiag_mean(c)  # (S, T)
    final = c[..., -1]  # (A, A, S)
    with _nan_quietly():
        matrix = np.nanmean(final, axis=-1)
        matrix_std = np.nanstd(final, axis=-1, ddof=1) if n_seeds > 1 else np.zeros((a, a))
        t_mean = np.nanmean(per_seed_t, axis=0)
        t_std = np.nanstd(per_seed_t, axis=0, ddof=1) if n_seeds > 1 else np.zeros_like(t_mean)
    dx2, dy2 = _sq_distances(x), _sq_distances(y)
    rich = (dx2 * dy2) ** 0.25  # √ of (3.3) up to the constant ρ^{1/4}
    agreement = {}
    for k, name in enumerate(names):
        rows = dict(rsa_rich=[], rsa_theory=[], rsa_initial=[], hidden_change=[])
        for r in records[name]:
            h = np.asarray(r["hidden"], np.float64)
            h2_0, h2_t = _sq_distances(h[0]), _sq_distances(h[-1])
            d0, dt = np.sqrt(h2_0), np.sqrt(h2_t)
            y2_0 = _sq_distances(np.asarray(r["outputs"], np.float64)[0])
            rows["rsa_rich"].append(_rsa(dt, rich))
            rows["rsa_theory"].append(_rsa(dt, _theory_distances(dx2, dy2, h2_0, y2_0, ratio)))
            rows["rsa_initial"].append(_rsa(dt, d0))
            ref = np.linalg.norm(d0)
            rows["hidden_change"].append(np.linalg.norm(dt - d0) / ref if ref > 0 else np.nan)
        agreement[name] = {key: _spread(np.where(ok[k], v, np.nan)) for key, v in rows.items()}
        agreement[name]["final_loss"] = final_loss[k]
        agreement[name]["final_loss_max"] = float(np.max(final_loss[k]))
        agreement[name]["converged"] = int(np.sum(ok[k]))
        agreement[name]["diverged"] = int(sum(bool(r["diverged"]) for r in records[name]))
    epochs = np.asarray(records[names[0]][0]["epochs"])
    return dict(
        members=list(names),
        seeds=n_seeds,
        converged=int(np.sum(ok)),
        runs=int(ok.size),
        cka_final=matrix,
        cka_final_std=matrix_std,
        offdiag=_spread(per_seed_t[:, -1]),
        offdiag_initial=_spread(per_seed_t[:, 0]),
        cka_over_training=dict(epochs=epochs, mean=t_mean, std=t_std),
        agreement=agreement,
    )


def _compare(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Which regime aligns more, per task, from the per-seed mean off-diagonal CKA."""
    out: dict[str, Any] = {}
    for task, regimes in tasks.items():
        s, lg = regimes["small"]["offdiag"], regimes["large"]["offdiag"]
        if not (np.isfinite(s["mean"]) and np.isfinite(lg["mean"])):
            more = "undetermined"  # no converged pair of architectures in a regime
        else:
            more = "small" if s["mean"] > lg["mean"] else "large"
        separated = s["min"] > lg["max"] or lg["min"] > s["max"]
        with _nan_quietly():
            rich_s, rich_l = (
                np.nanmean([v["rsa_rich"]["mean"] for v in regimes[r]["agreement"].values()])
                for r in ("small", "large")
            )
        s0 = regimes["small"]["offdiag_initial"]["mean"]
        l0 = regimes["large"]["offdiag_initial"]["mean"]
        out[task] = dict(
            small_mean=s["mean"],
            small_std=s["std"],
            large_mean=lg["mean"],
            large_std=lg["std"],
            small_initial=s0,
            large_initial=l0,
            aligns_more=more,
            difference=s["mean"] - lg["mean"],
            seed_ranges_separate=bool(separated),
            mean_rsa_rich_small=float(rich_s),
            mean_rsa_rich_large=float(rich_l),
            text=(
                f"{task}: mean off-diagonal CKA {s['mean']:.3f} ± {s['std']:.3f} at small "
                f"init vs {lg['mean']:.3f} ± {lg['std']:.3f} at large init (mean ± std over "
                f"{s['n']} seeds): "
                + (
                    "which aligns more is undetermined "
                    if more == "undetermined"
                    else f"{more} init aligns more "
                )
                + f"(difference {s['mean'] - lg['mean']:+.3f}; seed ranges "
                f"{'do not overlap' if separated else 'overlap'}); at initialisation "
                f"{s0:.3f} and {l0:.3f}. Mean RSA with the rich prediction (3.3): "
                f"{rich_s:.3f} small vs {rich_l:.3f} large."
            ),
        )
    return out


@dataclasses.dataclass(frozen=True)
class UniversalityResult:
    """The universality experiment.

    Attributes:
        settings: sizes, epochs, learning rates, gains, seeds, precision, ρ, criteria.
        tasks: per task and regime (``_analyse_regime``): members, CKA matrix (mean and
            std over seeds), per-seed mean off-diagonal CKA (at the end and at init), CKA
            over training, and per member the RSA with the rich limit (3.3), with (6.1)
            and with the initial distances, the hidden change and convergence.
        comparison: per task, which regime aligns more, with the numbers and a sentence.
        timing: wall-clock seconds of training and of the whole call.
    """

    settings: Mapping[str, Any]
    tasks: Mapping[str, Mapping[str, Any]]
    comparison: Mapping[str, Any]
    timing: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return dict(
            settings=dict(self.settings),
            comparison=dict(self.comparison),
            tasks={t: dict(v) for t, v in self.tasks.items()},
            timing=dict(self.timing),
        )


def run_universality(
    *,
    seeds: int | None = None,
    first_seed: int = 0,
    quick: bool = False,
    members: Sequence[str] | None = None,
    tasks: Sequence[str] = TASKS,
    width: int = 256,
    depth: int = 4,
    epochs: Mapping[str, int] | None = None,
    float64: bool = False,
    rate_ratio: float = RATE_RATIO,
    out: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> UniversalityResult:
    """Train the zoo on the tasks from small and large init and analyse (module docstring).

    Defaults: every member of ``ZOO``, both tasks, width 256, depth 4 (hidden
    representation at layer ``num_hidden // 2``: 2 for the MLPs, 3 for the CNN), 3,000
    full-batch epochs on XOR and 2,000 on the hierarchy (``EPOCHS``) with 101 records,
    float32, 5 seeds (2 with ``quick``: the same runs, fewer seeds). Measured from an empty
    store on the project's 2-core CPU while other jobs shared it (load 3-4): 13 min (776 s)
    for 5 seeds, 6.2 min (371 s) for ``quick``; a second call reads the store (~20 s).

    Arguments:
        seeds: seeds per member, task and regime (≥ 1); default 5, or 2 if ``quick``.
        first_seed: the first seed.
        quick: fewer seeds (see above); nothing else changes.
        members: names of ``ZOO`` members (default all).
        tasks: subset of ``TASKS``.
        width, depth: network sizes (the CNN's signal length and number of convolutions).
        epochs: per-task overrides of ``EPOCHS``.
        float64: train in float64 (initial parameters then drawn in float64).
        rate_ratio: ρ = η_h/η_y of (6.1) (> 0).
        out: directory for ``summary.json`` and the figures; runs are cached under
            ``out/sweeps/universality`` (a temporary directory if None).
        progress: called with status lines (default: stderr).

    Returns:
        A ``UniversalityResult``.

    Raises:
        ValueError: for unknown members or tasks, seeds < 1, bad sizes or rate_ratio ≤ 0.
    """
    t_start = time.perf_counter()
    seeds = (2 if quick else 5) if seeds is None else seeds
    seeds = checks.integer("seeds", seeds, minimum=1)
    first_seed = checks.integer("first_seed", first_seed, minimum=0)
    width = checks.integer("width", width, minimum=1)
    depth = checks.integer("depth", depth, minimum=1)
    tasks = tuple(checks.choice("tasks", t, TASKS) for t in tasks)
    if not tasks:
        raise ValueError("tasks must name at least one task")
    zoo = _zoo(members)
    if len(zoo) < 2:
        raise ValueError(f"members must name at least two architectures, got {members!r}")
    checks.values("rate_ratio", rate_ratio, positive=True, scalar=True)
    float64 = checks.boolean("float64", float64)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    seed_list = list(range(first_seed, first_seed + seeds))
    results: dict[str, dict[str, Any]] = {}
    with store_root(out) as root:
        store = Path(root) / "universality"
        store.mkdir(parents=True, exist_ok=True)
        say(f"universality: {len(zoo)} members x {len(tasks)} tasks x 2 regimes x {seeds} seeds")
        plan = universality_runs(
            seeds=seed_list,
            members=[m.name for m in zoo],
            tasks=tasks,
            width=width,
            depth=depth,
            epochs=epochs,
            float64=float64,
            root=store,
        )
        flat = [r for runs in plan.values() for r in runs]
        write_settings(store, flat)
        t0 = time.perf_counter()
        recs = train_points(flat, store, progress=say)
        t_train = time.perf_counter() - t0
        by_run = dict(zip(flat, recs, strict=True))
        status = Status(len(tasks) * len(REGIMES), "analyses")
        for task in tasks:
            x, y = points_data(PointsRun(task=task))
            names = [m.name for m in zoo if task in m.tasks]
            results[task] = {}
            for regime in REGIMES:
                records = {n: [by_run[r] for r in plan[(task, n, regime)]] for n in names}
                res = _analyse_regime(names, records, x, y, rate_ratio)
                results[task][regime] = res
                status.step(
                    f"{task} {regime}: mean off-diagonal CKA {res['offdiag']['mean']:.3f}"
                    f" ± {res['offdiag']['std']:.3f}"
                )
    settings = dict(
        members=[m.describe() for m in zoo],
        tasks=list(tasks),
        width=width,
        depth=depth,
        layers={m.name: _layer(m, depth) for m in zoo},
        cnn=dict(kernel_size=CNN_KERNEL, channels=CNN_CHANNELS),
        dropout_rate=PointsRun(task="xor").dropout_rate,
        epochs={t: dict(EPOCHS, **(epochs or {}))[t] for t in tasks},
        records_every={t: max(1, dict(EPOCHS, **(epochs or {}))[t] // RECORDS) for t in tasks},
        learning_rates={
            f"{t}/{n}/{regime}": [r.lr for r in runs] for (t, n, regime), runs in plan.items()
        },
        small_lr=SMALL_LR,
        large_lr_rule=(
            "large_lr_fraction * n * out_dim / lambda_max(K_0) of each seed's initial network,"
            " 2 significant digits"
        ),
        optimizer="sgd, full batch, loss 0.5 * mse",
        seeds=seed_list,
        quick=quick,
        precision="float64" if float64 else "float32",
        rate_ratio=rate_ratio,
        converged_if_final_loss_below=CONVERGED_LOSS,
        cka="linear CKA (biased HSIC); same-seed pairs between members, seed s vs s+1 on the "
        "diagonal",
        statistics="over converged runs only (final loss below converged_if_final_loss_below);"
        " a run that did not converge has NaN (null) entries",
        rsa="Pearson over pairs i < j of unsquared distance matrices",
    )
    timing = dict(train_s=t_train, total_s=time.perf_counter() - t_start)
    result = UniversalityResult(settings, results, _compare(results), timing)
    if out is not None:
        from rep_align import plots
        from rep_align.plots import universality as uplots

        summary = result.to_json()
        write_json(os.path.join(out, "summary.json"), summary)
        plots.save(uplots.cka_heatmaps(summary), os.path.join(out, "cka_heatmaps.png"))
        plots.save(uplots.cka_over_training(summary), os.path.join(out, "cka_over_training.png"))
        plots.save(uplots.agreement_bars(summary), os.path.join(out, "agreement.png"))
    return result
