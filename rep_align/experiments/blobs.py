"""The context-blobs experiment (docs/theory.md §7, "context blobs"; docs/presets.md,
"Context blobs"): does the hidden layer keep the input geometry (lazy, high init) or
reorganise it by the task (rich, low init)?

For each regime of ``presets.BLOB_PRESETS`` (high, low and very low init) and each
activation (leaky ReLU, as the published runs; tanh, as the settings file states), the
seeds are many-point runs of task "blobs" (``blob_runs``: 4 × 100 MLP, SGD at the row's
learning rate on 0.5·mse, batch 64) recording layer 2 for all 1,800 points at
initialisation and every tenth of the run, trained (or found stored) by the driver. The
analysis, per regime and seed, at every record (``blob_metrics``):

- ``r_input``: Pearson correlation between the hidden and the input Euclidean distances
  over all pairs i < j of the 1,800 points (``distance_correlation``); ``r_target`` the
  same with the target distances |y*_i − y*_j|;
- ``ratio``: the between/within-context distance ratio (``context_ratio``): the mean
  hidden distance between points of different contexts over the mean distance between
  distinct points of the same context;
- ``paired_ratio``: the mean distance between the two copies of one image (the same blob
  in context 0 and in context 1; rows i and i + 900) over the same within-context mean
  (``paired_ratio``);

the values at initialisation (record 0) are reported next to the final ones, and the
input's own ratios as the reference (the context units make them large). These numbers are
the core's (``rep_align.contexts``; ``distance_correlation`` is ``metrics.upper_pearson``),
re-exported here. For the figures,
the final layer-2 representation of the first seed of each regime is embedded in 3-D by
classical MDS (``embedding.mds_of_points``) and coloured by context, μx and μy.

The paper's visual claim, as numbers (``CHECKS``; leaky ReLU, mean over seeds): at high
init r_input ≥ 0.95 (the input geometry is kept; the contexts stay apart, ratio far above
1); at low and very low init r_input < 0.5 (ratio near 1). Quick settings shorten the runs
where full-size runs settle early; such a regime counts as comparable with the full size
only where r_input has settled (``BlobRegime.comparable_with_full``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import checks, data
from rep_align.contexts import METRICS, blob_metrics, context_ratio, paired_ratio
from rep_align.embedding import mds_of_points
from rep_align.experiments._protocol import Check, Experiment, Headline, Spread, spread
from rep_align.experiments.points import PointsRun
from rep_align.files import npz_field, split_arrays
from rep_align.metrics import upper_pearson as distance_correlation
from rep_align.presets import BLOB_PRESETS, BlobPreset

__all__ = [
    "ACTIVATIONS",
    "CHECKS",
    "EXPERIMENT",
    "METRICS",
    "RECORDS",
    "REGIMES",
    "BlobRegime",
    "BlobSeed",
    "BlobsResult",
    "BlobsSettings",
    "analyse",
    "analyse_regime",
    "blob_metrics",
    "blob_runs",
    "context_ratio",
    "distance_correlation",
    "headlines",
    "paired_ratio",
    "settings",
]

REGIMES = tuple(BLOB_PRESETS)
ACTIVATIONS = ("leaky_relu", "tanh")

#: Records per run after the initial one (every epochs/10 epochs).
RECORDS = 10


@dataclasses.dataclass(frozen=True)
class BlobsSettings:
    """Everything the experiment runs (``settings``).

    Attributes:
        seeds: seeds per regime and activation (≥ 1), from ``first_seed`` on.
        activations: some of ``ACTIVATIONS``.
        epochs: training epochs of every regime of ``REGIMES`` (positive multiples of
            ``RECORDS``); network, data, learning rate and batches are the preset's.
        regimes: the regimes run, some of ``REGIMES`` (default all).
        first_seed: the first seed (≥ 0).
        float64: train in float64.
        settled_tol: a run's r_input has settled when it changes by less than this over
            its last three records (the last fifth of the run).
    """

    seeds: int
    activations: tuple[str, ...]
    epochs: Mapping[str, int]
    regimes: tuple[str, ...] = REGIMES
    first_seed: int = 0
    float64: bool = False
    settled_tol: float = 0.02

    def __post_init__(self) -> None:
        checks.integer("seeds", self.seeds, minimum=1)
        checks.integer("first_seed", self.first_seed, minimum=0)
        checks.boolean("float64", self.float64)
        checks.real("settled_tol", self.settled_tol, positive=True)
        for name, allowed in (("activations", ACTIVATIONS), ("regimes", REGIMES)):
            chosen = tuple(checks.choice(name, v, allowed) for v in getattr(self, name))
            if not chosen:
                raise ValueError(f"{name} must not be empty")
            object.__setattr__(self, name, chosen)
        if sorted(self.epochs) != sorted(REGIMES):
            raise ValueError(f"epochs must give every regime of {REGIMES}, got {self.epochs!r}")
        for name, e in self.epochs.items():
            if checks.integer(f"epochs[{name!r}]", e, minimum=1) % RECORDS:
                raise ValueError(f"epochs[{name!r}] must be a multiple of {RECORDS}, got {e}")


def settings(quick: bool) -> BlobsSettings:
    """The settings of each mode (module docstring).

    Full: the reference's runs (every regime's epochs, 3 seeds), with both activations.
    Quick: 2 seeds, leaky ReLU only, and fewer epochs where full-size runs settle early.
    The quick epochs were chosen from full-size leaky-ReLU runs (seed 0, records every
    tenth of the run): r_input and the ratio reach their final values by 10 % of the run at
    high init (75 of 750 epochs) and by 30 % at low init (the drop from 0.90 to 0.13
    happens between epochs 300 and 450 of 1,500), but only after 65-70 % at very low init
    (the loss sits on its plateau until epoch ~1,300 of 2,000, then r falls from 0.88 to
    0.04), so very low init keeps all of its epochs. Whether r has settled is checked, not
    assumed (``settled_tol``, ``BlobRegime.comparable_with_full``).
    """
    if quick:
        epochs = {"high_init": 150, "low_init": 600, "vlow_init": 2000}
        return BlobsSettings(seeds=2, activations=("leaky_relu",), epochs=epochs)
    epochs = {name: p.epochs for name, p in BLOB_PRESETS.items()}
    return BlobsSettings(seeds=3, activations=ACTIVATIONS, epochs=epochs)


# ----------------------------------------------------------------------------- runs


def blob_runs(
    preset: BlobPreset,
    seeds: Sequence[int],
    *,
    activation: str | None = None,
    epochs: int | None = None,
    float64: bool = False,
) -> list[PointsRun]:
    """The runs of one regime over ``seeds``: all 1,800 points recorded at layer 2 every
    epochs/10 epochs, one run per seed.

    Arguments:
        preset: a row of ``BLOB_PRESETS``.
        seeds: PRNG seeds, one run each.
        activation: "leaky_relu" or "tanh"; default the preset's (leaky ReLU).
        epochs: training epochs, a multiple of ``RECORDS``; default the preset's.
        float64: train in float64.

    Raises:
        ValueError: for an unknown activation or epochs that are not a positive multiple
            of ``RECORDS``.
    """
    activation = checks.choice(
        "activation", preset.activation if activation is None else activation, ACTIVATIONS
    )
    epochs = preset.epochs if epochs is None else checks.integer("epochs", epochs, minimum=1)
    if epochs % RECORDS:
        raise ValueError(f"epochs must be a multiple of {RECORDS}, got {epochs}")
    return [
        PointsRun(
            task="blobs",
            arch=preset.arch,
            width=preset.width,
            depth=preset.depth,
            activation=activation,
            gain=preset.gain,
            optimizer=preset.optimizer,
            lr=preset.lr,
            epochs=epochs,
            batch_size=preset.batch_size,
            record_every=epochs // RECORDS,
            layer=preset.layer,
            seed=int(s),
            dtype="float64" if float64 else "float32",
        )
        for s in seeds
    ]


# ----------------------------------------------------------------------------- analysis

#: The numbers of each seed: ``METRICS`` and the loss.
_KEYS = (*METRICS, "loss")


@dataclasses.dataclass(frozen=True)
class BlobSeed:
    """One run's numbers.

    Attributes:
        seed: its PRNG seed.
        final, init: every ``METRICS`` name and "loss" at the last record and at
            initialisation (record 0).
        diverged: training diverged (the run is left out of the regime's spreads).
        settled: r_input changed by less than ``settled_tol`` over the last three records.
    """

    seed: int
    final: Mapping[str, float]
    init: Mapping[str, float]
    diverged: bool
    settled: bool


@dataclasses.dataclass(frozen=True)
class BlobRegime:
    """One regime and activation over seeds.

    Attributes:
        config: the runs' settings (``PointsRun.canonical`` but the seed) and the preset's
            epochs (``preset_epochs``).
        seeds: per seed, a ``BlobSeed``.
        final, init: per key of ``BlobSeed.final``, its ``Spread`` over the seeds that did
            not diverge.
        epochs: (T,) epochs of the records.
        curves: per ``METRICS`` name and "loss", the (seeds, T) values at every record.
        mds: the 3-D classical MDS of the first seed's representation: ``seed``,
            ``explained_final`` and ``explained_init`` (fraction of the variance in 3 axes
            at the end and at initialisation), ``eigenvalues`` (at the end).
        settled: r_input settled in every seed.
        comparable_with_full: trained for the preset's epochs, or shorter and settled (so
            the numbers stand for the full-size run's).
        coords: (n, 3) coordinates of that embedding, ``final`` and ``init`` (arrays.npz).
    """

    config: Mapping[str, Any]
    seeds: tuple[BlobSeed, ...]
    final: Mapping[str, Spread]
    init: Mapping[str, Spread]
    epochs: tuple[int, ...]
    curves: Mapping[str, np.ndarray]
    mds: Mapping[str, Any]
    settled: bool
    comparable_with_full: bool
    coords: Mapping[str, np.ndarray] = npz_field()


@dataclasses.dataclass(frozen=True)
class BlobsResult:
    """The context-blobs experiment.

    Attributes:
        input: the input's own ``ratio``, ``paired_ratio`` and ``r_target``, the reference
            for the hidden ones.
        regimes: activation → regime → ``BlobRegime``.
        labels: (n,) ``context``, ``mu_x`` and ``mu_y`` of the points, the figures' colours
            (arrays.npz).
    """

    input: Mapping[str, float]
    regimes: Mapping[str, Mapping[str, BlobRegime]]
    labels: Mapping[str, np.ndarray] = npz_field()


def _blob_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y, context, (μx, μy) and the (900, 2) copy pairs of the blob data, float64."""
    with jax.enable_x64(True):
        b = data.context_blobs(dtype=jnp.float64)
        x, y = np.asarray(b.x), np.asarray(b.y)
        context = np.asarray(b.context)
        mu = np.stack([np.asarray(b.mu_x), np.asarray(b.mu_y)], axis=1)
    half = x.shape[0] // 2
    pairs = np.stack([np.arange(half), np.arange(half) + half], axis=1)
    return x, y, context, mu, pairs


def analyse_regime(
    preset: BlobPreset,
    runs: Sequence[PointsRun],
    records: Sequence[Mapping[str, np.ndarray]],
    *,
    settled_tol: float = 0.02,
) -> BlobRegime:
    """Summarise the stored runs of one regime.

    Arguments:
        preset: the regime's preset.
        runs: its runs (``blob_runs``), one per seed, all with the same activation and
            epochs.
        records: their stored records (``Runs.points``), in the same order.
        settled_tol: as ``BlobsSettings.settled_tol``.
    """
    x, y, context, _, pairs = _blob_data()
    rows, curves = [], []
    for run, rec in zip(runs, records, strict=True):
        m = blob_metrics(np.asarray(rec["hidden"]), x, y, context, pairs)
        table = np.column_stack([m, np.asarray(rec["loss"], np.float64)])
        diverged = bool(np.asarray(rec["diverged"]))
        tail = m[-3:, 0]
        settled = not diverged and np.all(np.isfinite(tail)) and np.ptp(tail) < settled_tol
        at = {t: {k: float(v) for k, v in zip(_KEYS, table[t], strict=True)} for t in (0, -1)}
        rows.append(BlobSeed(run.seed, at[-1], at[0], diverged, bool(settled)))
        curves.append(table)
    ok = [r for r in rows if not r.diverged]
    hidden = np.asarray(records[0]["hidden"])
    coords: dict[str, np.ndarray] = {}
    mds: dict[str, Any] = {"seed": runs[0].seed}
    for tag, t in (("init", 0), ("final", -1)):
        coords[tag] = np.full((hidden.shape[1], 3), np.nan)
        mds[f"explained_{tag}"] = float("nan")
        if np.all(np.isfinite(hidden[t])):
            emb = mds_of_points(jnp.asarray(hidden[t], jnp.float32))
            coords[tag] = np.asarray(emb.coords, np.float64)
            mds[f"explained_{tag}"] = float(emb.explained)
            if tag == "final":
                mds["eigenvalues"] = np.asarray(emb.eigenvalues, np.float64)
    settled = all(r.settled for r in rows)
    return BlobRegime(
        config={k: v for k, v in runs[0].canonical().items() if k != "seed"}
        | {"preset_epochs": preset.epochs},
        seeds=tuple(rows),
        final={k: spread([r.final[k] for r in ok]) for k in _KEYS},
        init={k: spread([r.init[k] for r in ok]) for k in _KEYS},
        epochs=tuple(int(e) for e in np.asarray(records[0]["epochs"])),
        curves={k: np.stack([c[:, j] for c in curves]) for j, k in enumerate(_KEYS)},
        mds=mds,
        settled=settled,
        comparable_with_full=runs[0].epochs >= preset.epochs or settled,
        coords=coords,
    )


def _input_reference() -> dict[str, float]:
    """The input's own numbers (r_input = 1 by definition)."""
    x, y, context, _, pairs = _blob_data()
    # Zero columns leave the distances as they are and share the hidden layer's program.
    width = BLOB_PRESETS[REGIMES[0]].width
    padded = np.pad(x, ((0, 0), (0, max(0, width - x.shape[1]))))
    m = blob_metrics(padded[None], x, y, context, pairs)[0]
    return {name: float(v) for name, v in zip(METRICS, m, strict=True) if name != "r_input"}


def analyse(settings: BlobsSettings, runs: Any) -> BlobsResult:
    """Train (or read back) every regime's runs through the driver's ``runs`` and
    analyse them (module docstring)."""
    seeds = range(settings.first_seed, settings.first_seed + settings.seeds)
    plan = {
        (act, name): blob_runs(
            BLOB_PRESETS[name],
            seeds,
            activation=act,
            epochs=settings.epochs[name],
            float64=settings.float64,
        )
        for act in settings.activations
        for name in settings.regimes
    }
    records = iter(runs.points([r for rs in plan.values() for r in rs]))
    regimes: dict[str, dict[str, BlobRegime]] = {}
    for (act, name), rs in plan.items():
        res = analyse_regime(
            BLOB_PRESETS[name], rs, [next(records) for _ in rs], settled_tol=settings.settled_tol
        )
        regimes.setdefault(act, {})[name] = res
        f, i = res.final, res.init
        runs.say(
            f"  blobs {act} {name}: r_input {f['r_input'].mean:.3f} (init "
            f"{i['r_input'].mean:.3f}), ratio {f['ratio'].mean:.2f} (init {i['ratio'].mean:.2f})"
        )
    _, _, context, mu, _ = _blob_data()
    labels = {"context": context, "mu_x": mu[:, 0], "mu_y": mu[:, 1]}
    return BlobsResult(input=_input_reference(), regimes=regimes, labels=labels)


# ----------------------------------------------------------------------------- verdicts

_R = "r(hidden, input distances)"
_RATIO = "between/within-context distance ratio"
_FIGURE = "the paper's context-blobs MDS figure (docs/theory.md §7), as numbers (issue 13)"

#: The paper's claim is about the published runs (leaky ReLU); tanh is reported only.
CHECKS = (
    Check(f"leaky_relu high_init: {_R}", ">=", 0.95, source=f"{_FIGURE}: input geometry kept"),
    Check(f"leaky_relu low_init: {_R}", "<", 0.5, source=f"{_FIGURE}: organised by the task"),
    Check(f"leaky_relu vlow_init: {_R}", "<", 0.5, source=f"{_FIGURE}: organised by the task"),
)


def headlines(result: BlobsResult, settings: BlobsSettings) -> list[Headline]:
    """Per activation and regime: the mean r_input and the mean context ratio over seeds
    (``CHECKS`` judge the former)."""
    out = []
    for act, regimes in result.regimes.items():
        for name, reg in regimes.items():
            for label, key, note in (
                (_R, "r_input", ""),
                (_RATIO, "ratio", f"at initialisation {reg.init['ratio'].mean:.3g}"),
            ):
                s = reg.final[key]
                out.append(
                    Headline(
                        f"{act} {name}: {label}",
                        s.mean,
                        s.std,
                        s.n,
                        comparable=reg.comparable_with_full,
                        note=note,
                    )
                )
    return out


def figures(result: BlobsResult, settings: BlobsSettings) -> dict[str, Any]:
    """The MDS figure of every activation and the numbers over training, drawn from the
    result's JSON and arrays (as they are stored: ``summary.json`` and ``arrays.npz``)."""
    from rep_align.plots import blobs as blob_plots

    res, arrays = split_arrays(result)
    figs = {f"blobs_mds_{act}": blob_plots.mds_figure(res, arrays, act) for act in res["regimes"]}
    return figs | {"blobs_metrics": blob_plots.metrics_figure(res)}


EXPERIMENT = Experiment(
    name="blobs",
    title="Context blobs",
    claim=(
        "At high initial gain (lazy) the hidden layer keeps the input geometry and the two "
        "contexts stay apart; at low gains (rich) it is organised by the task and the "
        "contexts are no longer separated by the input's context units."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=CHECKS,
    figures=figures,
)
