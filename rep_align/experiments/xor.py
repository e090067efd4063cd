"""XOR: learned vs predicted distance matrices in rich, intermediate, lazy and shallow nets
(docs/theory.md §6 and §7, "XOR" row; docs/presets.md, "XOR").

Declared once (``EXPERIMENT``), run by the driver (``_driver.run``); following the
reference notebook (``experiments/XOR.ipynb``):

- **Settings** (``settings(quick)``): every preset of ``presets.XOR_PRESETS`` at the paper's
  size; 3 XOR seeds per preset in quick mode, 10 in full; the rates from 4 seeds of the
  two-point ``default`` preset in quick mode, 3 in full (the seeds the ``two_points``
  experiment trains in each mode, so its stored runs serve here too).
- **Runs** (``xor_runs``). Each preset (ReLU MLP of width 500, depth 20, read-out layer 10;
  ``shallow``: depth 1, layer 0), full-batch SGD on the four XOR points at the table's
  epochs, ``RECORDS`` + 1 records from the initial network on. The reference trains on plain
  mse, this project on 0.5·mse at ``XorPreset.half_mse_lr`` (2 · lr: the same updates).
- **Rates** (``fitted_rates``). η_h/η_y is the ratio of the mean fitted rates over the
  converged seeds of the two-point ``default`` preset at the paper's size, trajectory
  protocol, unless the settings give the rates (``rates``) or the ratio (``eta_ratio``).
- **Analysis, per seed** (``analyse_xor``). From the seed's initial hidden (read-out layer)
  and output distances, the prediction (6.1) (``predict.predict_distances``); its square
  root is compared with the learned distance matrix (unsquared) at the last record, as the
  reference does, and so are the initial distances and the rich-limit prediction (square
  root of (3.3) pair by pair, no initial terms). Each comparison is the Pearson r over the
  6 off-diagonal entries of the upper triangle, with the least-squares slope through the
  origin (learned ≈ slope · other), so the scale is reported as well.
- **Summary.** Per preset, ``_protocol.spread`` over the seeds whose values are finite (a
  diverged run has none); final loss and convergence (final 0.5·mse < ``CONVERGED_LOSS``)
  per seed. The checks (``CHECKS``) are this project's thresholds, not the paper's, which
  reports figures only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from rep_align import checks
from rep_align.experiments._protocol import Check, Experiment, Headline, Spread, spread
from rep_align.experiments.points import PointsRun, points_data
from rep_align.observables import pairwise_squared_distances
from rep_align.predict import TwoPointRates, origin_slope, predict_distances, upper_pearson
from rep_align.presets import XOR_PRESETS, XorPreset, get_xor_preset
from rep_align.sweep.store import CONVERGED_LOSS

__all__ = [
    "CHECKS",
    "EXPERIMENT",
    "RECORDS",
    "XorCurve",
    "XorCurves",
    "XorRegime",
    "XorResult",
    "XorSeed",
    "XorSettings",
    "analyse",
    "analyse_xor",
    "fitted_rates",
    "headlines",
    "settings",
    "xor_runs",
]

#: Records over training after the initial one (fewer where the epochs have no divisor).
RECORDS = 20

#: What the learned matrix is compared with: the prediction (6.1), the initial distances,
#: the rich limit (3.3).
COMPARED = ("predicted", "initial", "rich")
#: Per-seed numbers summarised over seeds, in order.
STATS = (
    *(f"r_{k}" for k in COMPARED),
    *(f"slope_{k}" for k in COMPARED),
    "loss_initial",
    "loss_final",
)


@dataclasses.dataclass(frozen=True)
class XorSettings:
    """What the XOR experiment runs.

    Attributes:
        presets: names from ``presets.XOR_PRESETS`` (default all four, in their order).
        seeds: XOR seeds per preset (seeds 0 … seeds − 1).
        rate_seeds: seeds of the two-point ``default`` preset (paper size, trajectory
            protocol) whose fitted rates give η_h/η_y, when neither ``rates`` nor
            ``eta_ratio`` is given.
        rates: the rates given instead of fitted (the CLI's ``--rates-from``, read from a
            ``rep-align two-points`` output).
        eta_ratio: η_h/η_y given instead (exclusive with ``rates``).
        float64: train in float64 (the XOR runs and the fitted default preset).
        override: ``RunConfig`` settings changed in every XOR run (``xor_runs``; e.g.
            ``width``, ``depth``, ``layer``, ``epochs``): tests and exploration, not the
            paper's runs (the headlines say so).
    """

    seeds: int
    rate_seeds: int
    presets: tuple[str, ...] = tuple(XOR_PRESETS)
    rates: TwoPointRates | None = None
    eta_ratio: float | None = None
    float64: bool = False
    override: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        presets = (self.presets,) if isinstance(self.presets, str) else tuple(self.presets)
        if not presets or len(set(presets)) != len(presets):
            raise ValueError(f"presets must name distinct XOR presets, got {self.presets!r}")
        for name in presets:
            get_xor_preset(name)  # raises for an unknown name, listing the known ones
        object.__setattr__(self, "presets", presets)
        for name in ("seeds", "rate_seeds"):
            object.__setattr__(self, name, checks.integer(name, getattr(self, name), minimum=1))
        if self.rates is not None and self.eta_ratio is not None:
            raise ValueError(f"give rates or eta_ratio, not both (eta_ratio={self.eta_ratio!r})")
        if not isinstance(self.rates, TwoPointRates | None):
            raise ValueError(f"rates must be a predict.TwoPointRates, got {self.rates!r}")
        if self.eta_ratio is not None:
            ratio = checks.real("eta_ratio", self.eta_ratio, positive=True)
            object.__setattr__(self, "eta_ratio", ratio)
        if not isinstance(self.float64, bool):
            raise ValueError(f"float64 must be True or False, got {self.float64!r}")
        if self.override is not None:
            if not isinstance(self.override, Mapping) or "seed" in self.override:
                raise ValueError(
                    f"override must be a mapping of run settings other than seed, got "
                    f"{self.override!r}"
                )
            object.__setattr__(self, "override", dict(self.override))
            xor_runs(XOR_PRESETS[presets[0]], [0], override=self.override)  # validates


def settings(quick: bool) -> XorSettings:
    """The XOR experiment's settings: quick and full side by side (module docstring)."""
    if quick:
        return XorSettings(seeds=3, rate_seeds=4)
    return XorSettings(seeds=10, rate_seeds=3)


def _record_every(epochs: int) -> int:
    """The largest divisor of ``epochs`` that gives at least ``RECORDS`` records."""
    for k in range(max(1, epochs // RECORDS), 0, -1):
        if epochs % k == 0:
            return k
    return 1


def xor_runs(
    preset: XorPreset,
    seeds: Sequence[int],
    *,
    float64: bool = False,
    override: Mapping[str, Any] | None = None,
) -> list:
    """The many-point runs (``points.PointsRun``) of ``preset``, one per seed
    (docs/presets.md, "XOR").

    ReLU MLP, full-batch SGD at ``preset.half_mse_lr`` (0.5·mse, equivalent to the
    reference's plain mse at ``preset.lr``), the preset's epochs, width, depth and read-out
    layer, all four points recorded.

    Arguments:
        preset: the XOR preset.
        seeds: one run per seed.
        float64: float64 networks (initialised in float64: other draws than float32's).
        override: settings to change in every run (e.g. ``width``, ``depth``, ``layer``,
            ``epochs``) -- for tests and exploration; not the paper's runs.
    """
    epochs = int((override or {}).get("epochs", preset.epochs))
    base = PointsRun(
        task="xor",
        arch=preset.arch,
        width=preset.width,
        depth=preset.depth,
        activation=preset.activation,
        gain=preset.gain,
        optimizer=preset.optimizer,
        lr=preset.half_mse_lr,
        epochs=epochs,
        batch_size=0,
        record_every=_record_every(epochs),
        layer=preset.layer,
        dtype="float64" if float64 else "float32",
    )
    if override:
        base = base.replace(**dict(override))
    return [base.replace(seed=int(s)) for s in seeds]


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class XorSeed:
    """One seed of one preset: the comparisons of its learned distance matrix.

    Attributes:
        seed: the run's seed.
        r_predicted, r_initial, r_rich: Pearson r of the learned matrix (last record) with
            the prediction (6.1), the initial distances and the rich limit (3.3).
        slope_predicted, slope_initial, slope_rich: least-squares slopes through the origin
            (learned ≈ slope · other).
        loss_initial, loss_final: training loss (0.5·mse) at the first and last record.
        converged: final loss finite and below ``CONVERGED_LOSS``.
        diverged: the run diverged.
        initial, learned, predicted, rich_limit: the (4, 4) distance matrices (unsquared).
    """

    seed: int
    r_predicted: float
    r_initial: float
    r_rich: float
    slope_predicted: float
    slope_initial: float
    slope_rich: float
    loss_initial: float
    loss_final: float
    converged: bool
    diverged: bool
    initial: np.ndarray
    learned: np.ndarray
    predicted: np.ndarray
    rich_limit: np.ndarray


@dataclasses.dataclass(frozen=True)
class XorCurve:
    """One seed over training: its loss and the Pearson r of its learned matrix with each
    of ``COMPARED`` at every record."""

    seed: int
    loss: np.ndarray
    r_predicted: tuple[float, ...]
    r_initial: tuple[float, ...]
    r_rich: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class XorCurves:
    """The comparisons over training: the record epochs and one ``XorCurve`` per seed."""

    epochs: np.ndarray
    seeds: tuple[XorCurve, ...]


@dataclasses.dataclass(frozen=True)
class XorRegime:
    """One XOR preset over seeds.

    Attributes:
        config: the runs' settings (``canonical`` without the seed) plus the preset's name
            and reference learning rate and loss.
        seeds: per-seed comparisons.
        curves: the comparisons over training.
        stats: ``spread`` over the seeds with finite values, for each of ``STATS``.
        n_seeds, n_converged, n_diverged: counts.
    """

    config: Mapping[str, Any]
    seeds: tuple[XorSeed, ...]
    curves: XorCurves
    stats: Mapping[str, Spread]
    n_seeds: int
    n_converged: int
    n_diverged: int


@dataclasses.dataclass(frozen=True)
class XorResult:
    """The XOR experiment.

    Attributes:
        eta_ratio: η_h/η_y used for (6.1) and the rich limit.
        rates: the rates it is the ratio of (None when the ratio was given).
        regimes: one ``XorRegime`` per preset, in the order of the settings.
    """

    eta_ratio: float
    rates: TwoPointRates | None
    regimes: Mapping[str, XorRegime]


# -------------------------------------------------------------------------- analysis


def analyse_xor(
    records: Sequence[Mapping[str, np.ndarray]],
    seeds: Sequence[int],
    x: np.ndarray,
    y: np.ndarray,
    *,
    eta_ratio: float,
) -> tuple[tuple[XorSeed, ...], XorCurves]:
    """Compare each run's learned distance matrix with the predictions (module docstring).

    Arguments:
        records: per seed, the ``Snapshots`` fields (``experiments.points``): ``epochs
            (T,)``, ``loss (T,)``, ``hidden (T, n, F)``, ``outputs (T, n, d_out)``,
            ``diverged ()``; record 0 is the initial network.
        seeds: the seed of each record.
        x, y: the training data (n, d_in), (n, d_out) the runs were trained on.
        eta_ratio: η_h/η_y (> 0) for (6.1) and the rich limit.

    Returns:
        ``(rows, curves)``: one ``XorSeed`` and one ``XorCurve`` (in ``curves``) per seed.

    Raises:
        ValueError: empty or mismatched ``records``/``seeds``, or a bad ``eta_ratio``.
    """
    if len(records) == 0 or len(records) != len(seeds):
        raise ValueError(
            f"records and seeds must be non-empty and of equal length, got {len(records)} "
            f"records and {len(seeds)} seeds"
        )
    ratio = checks.real("eta_ratio", eta_ratio, positive=True)
    rows, curves = [], []
    with jax.enable_x64(True):
        rich = np.sqrt(np.asarray(predict_distances(x, y, eta_ratio=ratio)))
        for rec, seed in zip(records, seeds, strict=True):
            hidden = np.asarray(rec["hidden"], np.float64)
            outputs = np.asarray(rec["outputs"], np.float64)
            loss = np.asarray(rec["loss"], np.float64)
            initial = np.sqrt(np.asarray(pairwise_squared_distances(hidden[0])))
            pred = np.sqrt(
                np.asarray(
                    predict_distances(x, y, hidden0=hidden[0], outputs0=outputs[0], eta_ratio=ratio)
                )
            )
            others = {"predicted": pred, "initial": initial, "rich": rich}
            per_t: dict[str, list[float]] = {k: [] for k in COMPARED}
            learned = initial
            for t in range(hidden.shape[0]):
                if np.all(np.isfinite(hidden[t])):
                    learned = np.sqrt(np.asarray(pairwise_squared_distances(hidden[t])))
                else:
                    learned = np.full_like(initial, np.nan)
                for k in COMPARED:
                    per_t[k].append(upper_pearson(learned, others[k]))
            final = float(loss[-1])
            rows.append(
                XorSeed(
                    seed=int(seed),
                    **{f"r_{k}": per_t[k][-1] for k in COMPARED},
                    **{f"slope_{k}": origin_slope(learned, others[k]) for k in COMPARED},
                    loss_initial=float(loss[0]),
                    loss_final=final,
                    converged=bool(math.isfinite(final) and final < CONVERGED_LOSS),
                    diverged=bool(rec.get("diverged", False)),
                    initial=initial,
                    learned=learned,
                    predicted=pred,
                    rich_limit=rich,
                )
            )
            curves.append(
                XorCurve(int(seed), loss, **{f"r_{k}": tuple(per_t[k]) for k in COMPARED})
            )
    epochs = np.asarray(records[0]["epochs"]).astype(int)
    return tuple(rows), XorCurves(epochs, tuple(curves))


def summarise(rows: Sequence[XorSeed]) -> dict[str, Spread]:
    """``spread`` over the seeds of each of ``STATS`` (non-finite values left out)."""
    return {k: spread([getattr(r, k) for r in rows]) for k in STATS}


def fitted_rates(settings: XorSettings, runs: Any) -> TwoPointRates:
    """The mean fitted rates of the two-point ``default`` preset (paper size, trajectory
    protocol) over ``settings.rate_seeds`` seeds: trained by the driver's ``runs`` into the
    store the ``two_points`` experiment fills (or found there), fitted by
    ``two_points.analyse_preset``.

    Raises:
        ValueError: no converged seed with finite rates.
    """
    from rep_align.experiments import two_points

    preset = two_points.protocol_preset("default", quick=False)
    config = two_points.preset_run_config(preset, float64=settings.float64)
    seed_runs = runs.seeds(config, range(settings.rate_seeds), name=preset.name)
    fitted = two_points.analyse_preset(preset, seed_runs, float64=settings.float64)
    return TwoPointRates.from_rows(
        fitted.seeds,
        preset=preset.name,
        source=f"fitted: two-point {preset.name} preset, paper size, trajectory protocol, "
        f"{settings.rate_seeds} seed(s)",
    )


def analyse(settings: XorSettings, runs: Any) -> XorResult:
    """Train (or read) the XOR runs of every preset and compare them with the predictions
    at η_h/η_y of ``settings`` (module docstring); ``runs`` is the driver's ``Runs``."""
    rates = settings.rates
    if settings.eta_ratio is not None:
        ratio = settings.eta_ratio
    else:
        rates = rates if rates is not None else fitted_rates(settings, runs)
        ratio = rates.ratio
    runs.say(f"  xor: eta_h/eta_y = {ratio:.5g}")
    x, y = points_data(PointsRun(task="xor"))
    seeds = list(range(settings.seeds))
    regimes = {}
    for name in settings.presets:
        preset = get_xor_preset(name)
        point_runs = xor_runs(preset, seeds, float64=settings.float64, override=settings.override)
        rows, curves = analyse_xor(runs.points(point_runs), seeds, x, y, eta_ratio=ratio)
        config = {k: v for k, v in point_runs[0].canonical().items() if k != "seed"}
        config.update(preset=preset.name, reference_lr=preset.lr, reference_loss=preset.loss)
        regimes[name] = XorRegime(
            config=config,
            seeds=rows,
            curves=curves,
            stats=summarise(rows),
            n_seeds=len(rows),
            n_converged=sum(r.converged for r in rows),
            n_diverged=sum(r.diverged for r in rows),
        )
    return XorResult(eta_ratio=ratio, rates=rates, regimes=regimes)


# ------------------------------------------------------------------ checks, headlines


def r_name(regime: str, compared: str) -> str:
    """The headline of the Pearson r of ``regime``'s learned matrix with ``compared``."""
    return f"{regime}: Pearson r, learned vs {compared}"


_OURS = "this project's bound on the mean over seeds (the paper shows the matrices, no number)"

#: The verdicts (docs/theory.md §7, XOR row: "rich reorganises by the task (points with
#: equal targets close), lazy keeps the input geometry").
CHECKS = tuple(
    Check(r_name(regime, compared), op, bound, source=_OURS + why)
    for regime, compared, op, bound, why in (
        ("rich", "predicted", ">=", 0.99, ": in the rich regime the prediction (6.1) holds"),
        ("rich", "rich", ">=", 0.99, ": the rich regime reorganises by the task, limit (3.3)"),
        ("lazy", "initial", ">=", 0.99, ": the lazy regime keeps the input geometry (3.4)"),
        ("lazy", "rich", "<", 0.5, "; a stated null: the kept input geometry is not the task's"),
    )
)


def headlines(result: XorResult, settings: XorSettings) -> list[Headline]:
    """Per preset: the Pearson r of the learned matrix with what its checks compare (with
    the prediction where it has none), and the slope on the prediction."""
    checked = {c.key for c in CHECKS}
    note = "" if settings.override is None else f"not the paper's runs: {settings.override}"
    heads = []
    for regime, reg in result.regimes.items():
        shown = [k for k in COMPARED if r_name(regime, k) in checked] or ["predicted"]
        named = [(r_name(regime, k), f"r_{k}") for k in shown]
        for name, key in [*named, (f"{regime}: slope, learned on predicted", "slope_predicted")]:
            s = reg.stats[key]
            heads.append(Headline(name, s.mean, s.std, s.n, note=note))
    return heads


def figures(result: XorResult, settings: XorSettings) -> dict[str, Any]:
    """One heatmap figure per preset (initial, learned, predicted, rich limit) and the
    comparisons over training, drawn from the result's JSON."""
    from rep_align.files import jsonable
    from rep_align.plots.xor import xor_heatmaps, xor_over_training

    doc = jsonable(result)
    figs = {f"xor_{name}": xor_heatmaps(doc, name) for name in result.regimes}
    figs["xor_over_training"] = xor_over_training(doc)
    return figs


EXPERIMENT = Experiment(
    name="xor",
    title="XOR in three regimes",
    claim=(
        "The pairwise theory (eq. (6.1)) predicts the learned 4 × 4 distance matrix: in "
        "the rich regime it is reorganised by the task (the rich limit), in the lazy "
        "regime the input geometry is kept (docs/theory.md §6-7)."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=CHECKS,
    figures=figures,
)
