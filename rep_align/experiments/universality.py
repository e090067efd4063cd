"""Universality: do different architectures learn aligned representations, and does the
many-point theory predict them? (docs/theory.md §3, (3.3), and §6, (6.1).) This project's
addition (``ours``), declared once (``EXPERIMENT``).

The *zoo* (``ZOO``) is the two-point table's architectures (docs/presets.md,
"Architectures"): MLPs with every nonlinearity (leaky ReLU, ReLU, tanh, ELU, SiLU, none),
the ResNet ("skip"), a CNN, the dropout MLP, and the leaky-ReLU MLP at a lower and a higher
gain. Each member is trained on two multi-point tasks, XOR (``data.xor``: 4 points, 1
output) and the tree-structured items (``data.hierarchy``: 8 one-hot items, 15 tree-node
targets), from a *small* and from a *large* initial gain, over several seeds, by full-batch
gradient descent on 0.5·mse. The runs are points runs of the sweep engine (``Runs.points``:
trained once into the run store; a killed experiment started again trains only what is
missing). The hidden representation of every point is recorded at a middle layer.

Regimes. The gains are per member (``ZooMember``), chosen by measurement (width 256,
depth 4): the small gain puts the network in the rich regime (its hidden distances move
far from their initial values, by factors 1.4-200) while it still converges in the epoch
budget; the large gain (2; 1.7 and 2.8 for the gain variants, 2.4 for the CNN, 3 for SiLU,
whose slope at 0 is 1/2) puts it in the lazy regime (hidden distances change by 1-15 %).
The dropout MLP is the exception: at large gain it neither stays lazy (hidden change
0.1-0.7) nor fits XOR within the budget (loss 0.014-0.025), which the results report.

Convergence (seeds 0-4, float32; a run counts when its final loss is below 1e-2): 198 of
210 runs. Not converged: the dropout MLP at large gain on XOR (5 of 5) and at small gain on
XOR in 2 of 5 seeds (its inputs are dropped too: final losses 0.003-0.013); the CNN at
small gain in seed 2 on both tasks (its output stays at the mean target); the CNN at large
gain on the hierarchy in 3 of 5 seeds (final loss 0.05-0.07: λ_max of its kernel at init
varies 80-fold between seeds). Runs that did not converge enter no statistic.

Learning rates. The small-gain one is one per task (``SMALL_LR``; an eighth of it for the
CNN). The large-gain one is ``ntk.lazy_learning_rate`` (f·N/λ_max(K_0), N = points ×
outputs, f = ``ZooMember.large_lr_fraction``: 0.5, 1.0 for the CNN) of each seed's own
initial network, to two significant digits, so that every lazy network takes stable steps
of the same size relative to its own kernel. They are computed when the runs are listed
(``universality_runs``, one kernel per member, task and seed: 23 s for 2 seeds, 40 s for 5
on the shared 2-core CPU at load 2-3), not stored.

Analysis (float64), for each task and regime (``_analyse_regime``):

- *CKA matrix*: linear CKA (``metrics.cka_from_grams``) between the final representations
  of members A and B of the same seed, averaged over seeds; the diagonal pairs seed s of a
  member with seed s+1 of the same member (NaN with one seed). The headline is the mean
  off-diagonal CKA per seed, over seeds, and the same at every record (CKA over training).
- *Agreement with the theory*, per member: RSA (Pearson over pairs i < j) between the
  learned distance matrix (unsquared, at the end) and (i) the rich limit, √ of (3.3),
  (ρ D^x D^y)^{1/2}, which does not depend on ρ under RSA; (ii) √ of (6.1) with the
  network's own initial squared hidden and output distances and ρ = ``RATE_RATIO``; (iii)
  the initial distance matrix (the lazy limit (3.4)).
- *Hidden change* ‖D_T − D_0‖/‖D_0‖, which says which regime a run was in.

Every spread over seeds is ``_protocol.spread`` (population standard deviation). A linear
network cannot fit XOR (its best fit is the constant 0.5), so ``linear`` trains on the
hierarchy only.

What it finds (``reproduction/universality``, 5 seeds). Linear CKA between architectures
does not separate the regimes, because the architectures already agree at initialisation
(mean off-diagonal CKA at init 0.91-0.97): lazy networks keep that shared geometry (XOR
0.916, hierarchy 0.957), while at small init the hierarchy stays at 0.944 and XOR falls to
0.610. What separates the regimes is agreement with the rich limit (3.3): mean RSA over
members 0.90 (small) vs 0.11 (large) on the hierarchy, 0.38 vs −0.64 on XOR. On XOR the
ReLU family reaches the rich limit (RSA 0.90-0.999) and the smooth activations, the ResNet
and the CNN do not (−0.52 to 0.21): near zero a smooth nonlinearity is nearly linear, and
small weights keep its pre-activations there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from rep_align import checks, ntk
from rep_align.config import RunConfig
from rep_align.experiments._protocol import Check, Experiment, Headline
from rep_align.experiments.alignment import (
    CONVERGED_LOSS,
    Comparison,
    RegimeResult,
    analyse_regime,
    compare,
)
from rep_align.experiments.points import PointsRun, points_data
from rep_align.files import jsonable
from rep_align.networks import num_hidden
from rep_align.training import split_run_key

__all__ = [
    "CONVERGED_LOSS",
    "EPOCHS",
    "EXPERIMENT",
    "LAZY_LR_FRACTION",
    "RATE_RATIO",
    "SMALL_LR",
    "TASKS",
    "ZOO",
    "UniversalityResult",
    "UniversalitySettings",
    "ZooMember",
    "analyse",
    "checks_for",
    "figures",
    "headlines",
    "settings",
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

#: Large-gain runs take lr = ``ntk.lazy_learning_rate`` with this fraction by default.
LAZY_LR_FRACTION = 0.5

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
        large_lr_fraction: the large-gain lr is ``ntk.lazy_learning_rate`` with this
            fraction.
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
MEMBERS = tuple(m.name for m in ZOO)

CNN_KERNEL = 5
CNN_CHANNELS = 8
REGIMES = ("small", "large")


# ---------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class UniversalitySettings:
    """What the experiment runs.

    Attributes:
        seeds: seeds per member, task and regime (≥ 1), from ``first_seed``.
        first_seed: the first seed (≥ 0).
        members: names of ``ZOO`` members, at least two.
        tasks: a subset of ``TASKS``.
        width, depth: network sizes (the CNN's signal length and number of convolutions);
            the hidden representation is recorded at layer ``num_hidden // 2``.
        epochs: full-batch epochs per task (``EPOCHS`` for tasks not given).
        float64: train in float64 (initial parameters drawn in float64).
        rate_ratio: ρ = η_h/η_y of (6.1) (> 0).
    """

    seeds: int
    first_seed: int = 0
    members: tuple[str, ...] = MEMBERS
    tasks: tuple[str, ...] = TASKS
    width: int = 256
    depth: int = 4
    epochs: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(EPOCHS))
    float64: bool = False
    rate_ratio: float = RATE_RATIO

    def __post_init__(self) -> None:
        checks.integer("seeds", self.seeds, minimum=1)
        checks.integer("first_seed", self.first_seed, minimum=0)
        checks.integer("width", self.width, minimum=1)
        checks.integer("depth", self.depth, minimum=1)
        tasks = tuple(checks.choice("tasks", t, TASKS) for t in self.tasks)
        if not tasks:
            raise ValueError("tasks must name at least one task, got ()")
        members = tuple(checks.choice("members", m, MEMBERS) for m in self.members)
        if len(members) < 2:
            raise ValueError(f"members must name at least two architectures, got {members!r}")
        epochs = dict(EPOCHS)
        for task, n in dict(self.epochs).items():
            epochs[checks.choice("epochs", task, TASKS)] = checks.integer(
                f"epochs[{task!r}]", n, minimum=1
            )
        checks.boolean("float64", self.float64)
        checks.values("rate_ratio", self.rate_ratio, positive=True, scalar=True)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "epochs", epochs)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


def settings(quick: bool) -> UniversalitySettings:
    """Every member, both tasks, width 256, depth 4, float32; 5 seeds, quick 2 (the same
    runs, fewer seeds). From an empty store on the shared 2-core CPU: full 13 min (load
    3-4), quick 2.4 to 9 min (load 1 to 8-12)."""
    return UniversalitySettings(seeds=2 if quick else 5)


# ---------------------------------------------------------------------------- the runs


def _zoo(names: Sequence[str]) -> tuple[ZooMember, ...]:
    by_name = {m.name: m for m in ZOO}
    return tuple(by_name[checks.choice("members", n, MEMBERS)] for n in names)


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


def _lazy_lrs(run: RunConfig, seeds: Sequence[int], fraction: float) -> list[float]:
    """``ntk.lazy_learning_rate`` of each seed's initial network (``run`` at its gain), to
    two significant digits."""
    x, _ = points_data(run)
    with jax.enable_x64(run.dtype == "float64"):
        net = run.network()
        xs = jnp.asarray(x, net.dtype)
        lrs = []
        for seed in seeds:
            # The initial network of the engine's run of this seed.
            params = net.init(split_run_key(jax.random.key(int(seed)))[0], gain=run.gain)
            lr = ntk.lazy_learning_rate(net, params, xs, fraction=fraction)
            lrs.append(float(f"{lr:.2g}"))
    return lrs


def universality_runs(
    *,
    seeds: Sequence[int],
    members: Sequence[str] = MEMBERS,
    tasks: Sequence[str] = TASKS,
    width: int = 256,
    depth: int = 4,
    epochs: Mapping[str, int] | None = None,
    float64: bool = False,
) -> dict[tuple[str, str, str], list[RunConfig]]:
    """The experiment's runs: ``{(task, member, regime): [points run per seed]}``, in the
    order the engine trains them. The large-gain learning rates are computed here (module
    docstring: one kernel per member, task and seed)."""
    epochs = dict(EPOCHS, **(epochs or {}))
    dtype = "float64" if float64 else "float32"
    out: dict[tuple[str, str, str], list[RunConfig]] = {}
    for task in tasks:
        for m in _zoo(members):
            if task not in m.tasks:
                continue
            base = _base_run(m, task, width=width, depth=depth, epochs=epochs[task], dtype=dtype)
            small = base.replace(gain=m.small_gain, lr=SMALL_LR[task] * m.small_lr_factor)
            large = base.replace(gain=m.large_gain)
            lrs = _lazy_lrs(large, seeds, m.large_lr_fraction)
            out[(task, m.name, "small")] = [small.replace(seed=int(s)) for s in seeds]
            out[(task, m.name, "large")] = [
                large.replace(seed=int(s), lr=lr) for s, lr in zip(seeds, lrs, strict=True)
            ]
    return out


# ---------------------------------------------------------------------------- analysis


@dataclasses.dataclass(frozen=True)
class UniversalityResult:
    """The universality experiment.

    Attributes:
        learning_rates: ``{"task/member/regime": (lr per seed)}``.
        layers: the recorded hidden layer of each member.
        tasks: per task and regime (``alignment.RegimeResult``): CKA between
            members, its mean off-diagonal over seeds and over training, and per member
            the agreement with the theory and convergence.
        comparison: per task, which regime aligns more (``Comparison``).
    """

    learning_rates: Mapping[str, tuple[float, ...]]
    layers: Mapping[str, int]
    tasks: Mapping[str, Mapping[str, RegimeResult]]
    comparison: Mapping[str, Comparison]


def analyse(settings: UniversalitySettings, runs: Any) -> UniversalityResult:
    """Train (or read) the zoo's runs and analyse each task and regime."""
    zoo = _zoo(settings.members)
    runs.say(
        f"universality: {len(zoo)} members x {len(settings.tasks)} tasks x 2 regimes x "
        f"{settings.seeds} seeds"
    )
    plan = universality_runs(
        seeds=settings.seed_list,
        members=settings.members,
        tasks=settings.tasks,
        width=settings.width,
        depth=settings.depth,
        epochs=settings.epochs,
        float64=settings.float64,
    )
    flat = [r for rs in plan.values() for r in rs]
    by_run = dict(zip(flat, runs.points(flat), strict=True))
    tasks: dict[str, dict[str, RegimeResult]] = {}
    for task in settings.tasks:
        x, y = points_data(PointsRun(task=task))
        names = [m.name for m in zoo if task in m.tasks]
        tasks[task] = {}
        for regime in REGIMES:
            records = {n: [by_run[r] for r in plan[(task, n, regime)]] for n in names}
            res = analyse_regime(names, records, x, y, settings.rate_ratio)
            tasks[task][regime] = res
            off = res.offdiag.spread
            runs.say(f"  {task} {regime}: mean off-diagonal CKA {off.mean:.3f} ± {off.std:.3f}")
    return UniversalityResult(
        learning_rates={
            f"{t}/{n}/{regime}": tuple(r.lr for r in rs) for (t, n, regime), rs in plan.items()
        },
        layers={m.name: _layer(m, settings.depth) for m in zoo},
        tasks=tasks,
        comparison={task: compare(task, regimes) for task, regimes in tasks.items()},
    )


# ------------------------------------------------------------------- what is reported


def _cka_name(task: str, regime: str) -> str:
    return f"{task}: mean CKA between architectures, {regime} init"


def _rich_name(task: str, regime: str) -> str:
    return f"{task}: mean RSA with the rich limit (3.3), {regime} init"


def headlines(result: UniversalityResult, settings: UniversalitySettings) -> list[Headline]:
    """Per task: the mean off-diagonal CKA at small and at large init (mean ± spread over
    seeds) and the mean RSA with the rich limit over members at small and at large init."""
    heads = []
    for task, cmp in result.comparison.items():
        small, large = (result.tasks[task][r] for r in REGIMES)
        s, lg = small.offdiag.spread, large.offdiag.spread
        heads += [
            Headline(
                _cka_name(task, "small"),
                s.mean,
                s.std,
                s.n,
                note=(
                    f"at initialisation {small.offdiag_initial.spread.mean:.3g}; seed ranges "
                    f"{'separate' if cmp.seed_ranges_separate else 'overlap'}"
                ),
            ),
            Headline(
                _cka_name(task, "large"),
                lg.mean,
                lg.std,
                lg.n,
                note=f"at initialisation {large.offdiag_initial.spread.mean:.3g}",
            ),
            Headline(
                _rich_name(task, "small"),
                cmp.mean_rsa_rich_small,
                n=s.n,
                note=f"large init {cmp.mean_rsa_rich_large:.3g} (means over architectures)",
            ),
            Headline(
                _rich_name(task, "large"),
                cmp.mean_rsa_rich_large,
                n=lg.n,
                note="mean over architectures",
            ),
        ]
    return heads


def checks_for(settings: UniversalitySettings) -> list[Check]:
    """Per task: small init aligns more than large init, by CKA between architectures and
    by RSA with the rich limit (a measurement that is not finite never passes)."""
    out = []
    for task in settings.tasks:
        out += [
            Check(
                _cka_name(task, "small"),
                ">",
                _cka_name(task, "large"),
                source=(
                    "this project's claim (docs/theory.md §3, §6): architectures started from "
                    "small weights align more than from large weights; the bound is the same "
                    "zoo's large-init measurement"
                ),
                label="> large init",
            ),
            Check(
                _rich_name(task, "small"),
                ">",
                _rich_name(task, "large"),
                source=(
                    "this project's claim (docs/theory.md (3.3)): small-init networks are "
                    "organised as the rich limit, large-init ones keep their initial geometry; "
                    "the bound is the same zoo's large-init mean RSA"
                ),
                label="> large init",
            ),
        ]
    return out


def figures(result: UniversalityResult, settings: UniversalitySettings) -> dict[str, Any]:
    """CKA heatmaps, CKA over training and the agreement with the theory per member."""
    from rep_align.plots import universality as uplots

    data, described = jsonable(result), jsonable(settings)
    return {
        "cka_heatmaps": uplots.cka_heatmaps(data, described),
        "cka_over_training": uplots.cka_over_training(data, described),
        "agreement": uplots.agreement_bars(data, described),
    }


EXPERIMENT = Experiment(
    name="universality",
    title="Universality: architectures align (the title claim)",
    claim=(
        "Different architectures, flexible enough and started from small weights, learn "
        "aligned representations, organised as the rich limit of the pairwise theory; "
        "from large weights each keeps its own initial geometry (docs/theory.md §3, §6)."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=checks_for,
    figures=figures,
    ours=True,
)
