"""XOR: learned vs predicted distance matrices in rich, intermediate, lazy and shallow nets
(docs/theory.md §6 and §7, "XOR" row; docs/presets.md, "XOR").

A sweep plus an analysis, following the reference notebook (``experiments/XOR.ipynb``):

- **Runs.** Each preset of ``presets.XOR_PRESETS`` (ReLU MLP of width 500, depth 20,
  read-out layer 10; ``shallow``: depth 1, layer 0), trained over seeds by full-batch SGD
  on the four XOR points at the table's epochs. The reference trains on plain mse; this
  project trains on 0.5·mse, so the learning rate is ``XorPreset.half_mse_lr`` (2 · lr:
  the same updates; our losses are half the reference's). Trained through
  ``experiments.points`` (cached under ``OUT/sweeps/xor``), with ``RECORDS`` + 1 records
  from the initial network to the last epoch.
- **Rates.** η_h/η_y is the ratio of the mean fitted rates of the two-point ``default``
  preset at the paper's size (trajectory protocol), trained here through
  ``two_points.run_preset`` into ``OUT/sweeps`` (resumable) or read from an earlier
  ``rep-align two-points`` output (``predict.rates_from_two_points``).
- **Analysis, per seed.** From the seed's initial hidden (read-out layer) and output
  distances, the prediction (6.1) (``predict.predict_distances``); its square root is
  compared with the learned distance matrix (unsquared) at the last record, as the
  reference does, and so are the initial distances and the rich-limit prediction
  (square root of (3.3) pair by pair, no initial terms). Each comparison is the Pearson r
  over the 6 off-diagonal entries of the upper triangle, with the least-squares slope
  through the origin (learned ≈ slope · other), so the scale is reported as well.
- **Summary.** Per preset, mean ± sd over the seeds whose values are finite (a diverged
  run has none); final loss and convergence (final 0.5·mse < ``CONVERGED_LOSS``) per seed.
  The acceptance checks (``ACCEPTANCE``) are this project's thresholds, not the paper's,
  which reports figures only.

``--quick`` keeps the paper's networks and every preset's epochs and shrinks only the
number of seeds (``QUICK_SEEDS`` XOR seeds, ``QUICK_RATE_SEEDS`` seed of the default
preset for the rates); the full run uses ``FULL_SEEDS`` and ``FULL_RATE_SEEDS``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rep_align import checks
from rep_align.experiments.common import Status, nanstats, store_root
from rep_align.experiments.points import PointsRun, points_data, train_points, write_settings
from rep_align.files import jsonable, write_json
from rep_align.predict import (
    TwoPointRates,
    origin_slope,
    pairwise_squared_distances,
    predict_distances,
    rates_from_two_points,
    upper_pearson,
)
from rep_align.presets import XOR_PRESETS, XorPreset, get_xor_preset
from rep_align.sweep.store import CONVERGED_LOSS

__all__ = [
    "ACCEPTANCE",
    "FULL_RATE_SEEDS",
    "FULL_SEEDS",
    "QUICK_RATE_SEEDS",
    "QUICK_SEEDS",
    "RECORDS",
    "XorRegime",
    "XorResult",
    "analyse_xor",
    "xor_rates",
    "xor_runs",
    "run_xor",
]

#: XOR seeds per preset: quick and full runs.
QUICK_SEEDS = 1
FULL_SEEDS = 10
#: Seeds of the two-point default preset fitted for η_h/η_y: quick and full runs.
QUICK_RATE_SEEDS = 1
FULL_RATE_SEEDS = 5
#: Records over training after the initial one (fewer where the epochs have no divisor).
RECORDS = 20

#: This project's acceptance thresholds on the means over seeds (docs/theory.md §7: the
#: paper reports figures, not thresholds): (key, comparison, value) per preset.
ACCEPTANCE: Mapping[str, tuple[tuple[str, str, float], ...]] = {
    "rich": (("r_predicted", ">=", 0.99), ("r_rich", ">=", 0.99)),
    "lazy": (("r_initial", ">=", 0.99), ("r_rich", "<", 0.5)),
}

#: Per-seed scalar entries of the summary, in order.
SEED_KEYS = (
    "seed",
    "r_predicted",
    "r_initial",
    "r_rich",
    "slope_predicted",
    "slope_initial",
    "slope_rich",
    "loss_initial",
    "loss_final",
    "converged",
    "diverged",
)

_COMPARED = ("predicted", "initial", "rich")


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
) -> list[PointsRun]:
    """The ``PointsRun`` of ``preset`` for each seed (docs/presets.md, "XOR").

    ReLU MLP, full-batch SGD at ``preset.half_mse_lr`` (0.5·mse, equivalent to the
    reference's plain mse at ``preset.lr``), the preset's epochs, width, depth and read-out
    layer, all four points recorded.

    Arguments:
        preset: the XOR preset.
        seeds: one run per seed.
        float64: float64 networks (initialised in float64: other draws than float32's).
        override: ``PointsRun`` fields to change in every run (e.g. ``width``, ``depth``,
            ``layer``, ``epochs``) -- for tests and exploration; not the paper's runs.
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


def _row_entry(seed, compare, loss, diverged) -> dict[str, Any]:
    loss0, loss1 = float(loss[0]), float(loss[-1])
    row: dict[str, Any] = dict(seed=int(seed))
    for name in _COMPARED:
        row[f"r_{name}"] = compare[name][0]
        row[f"slope_{name}"] = compare[name][1]
    row.update(
        loss_initial=loss0,
        loss_final=loss1,
        converged=bool(math.isfinite(loss1) and loss1 < CONVERGED_LOSS),
        diverged=bool(diverged),
    )
    return row


def analyse_xor(
    records: Sequence[Mapping[str, np.ndarray]],
    seeds: Sequence[int],
    x: np.ndarray,
    y: np.ndarray,
    *,
    eta_ratio: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Compare each run's learned distance matrix with the predictions (module docstring).

    Arguments:
        records: per seed, the ``Snapshots`` fields (``experiments.points``): ``epochs
            (T,)``, ``loss (T,)``, ``hidden (T, n, F)``, ``outputs (T, n, d_out)``,
            ``diverged ()``; record 0 is the initial network.
        seeds: the seed of each record.
        x, y: the training data (n, d_in), (n, d_out) the runs were trained on.
        eta_ratio: η_h/η_y (> 0) for (6.1) and the rich limit.

    Returns:
        ``(rows, curves)``: per seed a dict with ``SEED_KEYS`` and the 4 distance matrices
        ``initial``, ``learned``, ``predicted``, ``rich_limit`` (unsquared, n × n lists);
        and ``curves``: ``epochs (T,)``, and per seed ``loss`` and ``r_predicted``,
        ``r_initial``, ``r_rich`` at every record (lists of T values, under ``seeds``).

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
            h2 = np.asarray(pairwise_squared_distances(hidden[0]))
            pred = np.sqrt(
                np.asarray(
                    predict_distances(x, y, hidden0=hidden[0], outputs0=outputs[0], eta_ratio=ratio)
                )
            )
            initial = np.sqrt(h2)
            others = {"predicted": pred, "initial": initial, "rich": rich}
            per_t = {k: [] for k in _COMPARED}
            learned = initial
            for t in range(hidden.shape[0]):
                if np.all(np.isfinite(hidden[t])):
                    learned = np.sqrt(np.asarray(pairwise_squared_distances(hidden[t])))
                else:
                    learned = np.full_like(initial, np.nan)
                for k in _COMPARED:
                    per_t[k].append(upper_pearson(learned, others[k]))
            compare = {k: (per_t[k][-1], origin_slope(learned, others[k])) for k in _COMPARED}
            row = _row_entry(seed, compare, loss, rec.get("diverged", False))
            row.update(initial=initial, learned=learned, predicted=pred, rich_limit=rich)
            rows.append(row)
            curves.append(
                dict(seed=int(seed), loss=loss, **{f"r_{k}": per_t[k] for k in _COMPARED})
            )
    epochs = np.asarray(records[0]["epochs"]).astype(int)
    return rows, dict(epochs=epochs, seeds=curves)


@dataclasses.dataclass(frozen=True)
class XorRegime:
    """One XOR preset over seeds.

    Attributes:
        config: the runs' settings (``PointsRun.canonical`` without the seed) plus the
            preset's name and reference learning rate and loss.
        seeds: per-seed entries (``analyse_xor`` rows).
        curves: the comparisons over training (``analyse_xor``).
        mean, std: over the seeds with finite values, per numeric key.
        n_seeds, n_converged, n_diverged: counts.
        seconds: training (including compilation; 0 for runs found stored) and analysis.
        trained, reused: runs trained by this call and runs found in the cache.
    """

    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    curves: Mapping[str, Any]
    mean: Mapping[str, float]
    std: Mapping[str, float]
    n_seeds: int
    n_converged: int
    n_diverged: int
    seconds: Mapping[str, float]
    trained: int = 0
    reused: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(
            config=dict(self.config),
            n_seeds=self.n_seeds,
            n_converged=self.n_converged,
            n_diverged=self.n_diverged,
            mean=dict(self.mean),
            std=dict(self.std),
            seeds=[dict(r) for r in self.seeds],
            curves=dict(self.curves),
            seconds=dict(self.seconds),
            trained=self.trained,
            reused=self.reused,
        )


@dataclasses.dataclass(frozen=True)
class XorResult:
    """The XOR experiment: settings, rates, one ``XorRegime`` per preset, the checks."""

    settings: Mapping[str, Any]
    rates: Mapping[str, Any]
    regimes: Mapping[str, XorRegime]
    checks: Mapping[str, Any]
    seconds: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json`` (plain JSON values; NaN as None)."""
        return jsonable(
            dict(
                settings=dict(self.settings),
                rates=dict(self.rates),
                regimes={k: v.to_json() for k, v in self.regimes.items()},
                checks=dict(self.checks),
                seconds=dict(self.seconds),
            )
        )


def _summarise(rows: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
    numeric = [k for k in SEED_KEYS if k not in ("seed", "converged", "diverged")]
    stats = {k: nanstats([r[k] for r in rows]) for k in numeric}
    return {k: v[0] for k, v in stats.items()}, {k: v[1] for k, v in stats.items()}


def acceptance(regimes: Mapping[str, XorRegime], *, paper_size: bool) -> dict[str, Any]:
    """The checks of ``ACCEPTANCE`` on the means over seeds, for the presets present."""
    out: dict[str, Any] = dict(
        thresholds="this project's acceptance thresholds on means over seeds (the paper "
        "reports figures only)",
        paper_size=paper_size,
    )
    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b}
    for name, tests in ACCEPTANCE.items():
        if name not in regimes:
            continue
        entry = {}
        for key, op, value in tests:
            m = regimes[name].mean[key]
            entry[f"{key} {op} {value}"] = bool(math.isfinite(m) and ops[op](m, value))
        entry["pass"] = all(entry.values())
        out[name] = entry
    return out


def xor_rates(
    *,
    root: str | os.PathLike,
    seeds: int,
    rates_from: str | os.PathLike | None = None,
    eta_ratio: float | None = None,
    float64: bool = False,
    out: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """η_h/η_y for the predictions: given, read, or fitted on the two-point default preset.

    Arguments:
        root: directory of the sweep stores (the default preset's runs resume there).
        seeds: seeds of the default preset to train and fit (paper size, trajectory
            protocol) when neither ``rates_from`` nor ``eta_ratio`` is given.
        rates_from: a ``rep-align two-points`` output directory (or its summary.json).
        eta_ratio: the ratio itself.
        float64: train the default preset in float64.
        out: if given, the fitted preset's summary goes to ``out/two_points/summary.json``
            (readable by ``--rates-from``).
        progress: function called with status lines (default: lines on stderr).

    Returns:
        ``ratio``, ``eta_h``, ``eta_y`` (None when only the ratio was given), ``source``,
        ``seeds`` used, ``n_seeds``, ``seconds``.

    Raises:
        ValueError: both ``rates_from`` and ``eta_ratio``; a bad ratio or summary; no
            converged seed of the default preset.
    """
    t0 = time.perf_counter()
    if rates_from is not None and eta_ratio is not None:
        raise ValueError("give rates_from or eta_ratio, not both")
    if eta_ratio is not None:
        ratio = checks.real("eta_ratio", eta_ratio, positive=True)
        return dict(
            ratio=ratio, eta_h=None, eta_y=None, source="given", seeds=[], n_seeds=0, seconds=0.0
        )
    if rates_from is not None:
        rates = rates_from_two_points(rates_from)
    else:
        from rep_align.experiments.two_points import TwoPointsResult, protocol_preset, run_preset

        seeds = checks.integer("rate seeds", seeds, minimum=1)
        preset = protocol_preset("default", quick=False)
        say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        say(f"  rates: two-point default preset, paper size, {seeds} seed(s) (trained or resumed)")
        res = run_preset(
            preset,
            np.arange(seeds),
            root=root,
            float64=float64,
            progress=lambda done, total: say(f"  rates: {done}/{total} default-preset runs"),
        )
        if res.n_converged == 0:
            raise ValueError(f"no converged seed of the default preset in {seeds}")
        used = tuple(int(r["seed"]) for r in res.seeds if r["converged"])
        source = "fitted here: two-point default preset, paper size, trajectory protocol"
        if out is not None:
            summary = TwoPointsResult(
                dict(
                    protocol="trajectory (lr/2, 2x epochs)",
                    quick=False,
                    seeds=seeds,
                    precision="float64" if float64 else "float32",
                    converged_if_final_loss_below=CONVERGED_LOSS,
                    mean_and_std_over="converged seeds",
                ),
                {"default": res},
            ).to_json()
            path = write_json(Path(out) / "two_points" / "summary.json", summary)
            source += f" ({path})"
        rates = TwoPointRates(
            eta_h=float(res.mean["eta_h"]),
            eta_y=float(res.mean["eta_y"]),
            ratio=float(res.mean["eta_h"] / res.mean["eta_y"]),
            seeds=used,
            n_seeds=res.n_seeds,
            preset="default",
            source=source,
        )
    out_rates = rates.to_json()
    out_rates["seconds"] = time.perf_counter() - t0
    return out_rates


def run_xor(
    *,
    quick: bool = False,
    seeds: int | None = None,
    out: str | os.PathLike | None = None,
    rates_from: str | os.PathLike | None = None,
    eta_ratio: float | None = None,
    float64: bool = False,
    presets: Sequence[str] = tuple(XOR_PRESETS),
    rate_seeds: int | None = None,
    override: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> XorResult:
    """Train the XOR presets over seeds, predict their final distances, compare, summarise.

    Writes ``out/summary.json`` (``XorResult.to_json``), one heatmap figure per preset
    (``xor_<preset>.png``: initial, learned, predicted, rich limit) and the comparisons
    over training (``xor_over_training.png``) when ``out`` is given; the runs are cached
    under ``out/sweeps`` (a second call with the same settings trains nothing).

    Arguments:
        quick: fewer seeds (``QUICK_SEEDS``, ``QUICK_RATE_SEEDS``), same networks.
        seeds: XOR seeds per preset (seeds 0 … seeds − 1); default by ``quick``.
        out: output directory; None writes nothing (runs in a temporary cache).
        rates_from: read η_h/η_y from a ``rep-align two-points`` output instead of fitting.
        eta_ratio: use this η_h/η_y instead (exclusive with ``rates_from``).
        float64: train in float64.
        presets: names from ``XOR_PRESETS`` (default all four).
        rate_seeds: seeds of the default preset for the rates; default by ``quick``.
        override: ``PointsRun`` changes for every XOR run (``xor_runs``); makes the runs
            differ from the paper's, which the summary records.
        progress: function called with status lines (default: lines on stderr).

    Raises:
        ValueError: unknown presets, ``seeds < 1``, bad rate options.
    """
    t_start = time.perf_counter()
    chosen = [get_xor_preset(n) for n in ([presets] if isinstance(presets, str) else presets)]
    if not chosen:
        raise ValueError("presets must name at least one XOR preset")
    n_seeds = checks.integer(
        "seeds", seeds if seeds is not None else (QUICK_SEEDS if quick else FULL_SEEDS), minimum=1
    )
    n_rate = checks.integer(
        "rate_seeds",
        rate_seeds if rate_seeds is not None else (QUICK_RATE_SEEDS if quick else FULL_RATE_SEEDS),
        minimum=1,
    )
    if rates_from is not None and eta_ratio is not None:
        raise ValueError("give rates_from or eta_ratio, not both")
    seed_list = list(range(n_seeds))
    status = Status(len(chosen) + 1, "xor")
    x, y = points_data(PointsRun(task="xor"))
    settings = dict(
        quick=quick,
        quick_means="same networks and epochs as the full run, fewer seeds",
        seeds=n_seeds,
        rate_seeds=n_rate if rates_from is None and eta_ratio is None else None,
        precision="float64" if float64 else "float32",
        loss="0.5*mse at 2*lr (same updates as the reference's plain mse at lr); losses "
        "here are half the reference's",
        optimizer="full-batch SGD",
        compared="distances (square roots): learned at the last record vs sqrt of eq. (6.1) "
        "from the seed's initial network, the initial distances, and sqrt of eq. (3.3)",
        pearson_over="the 6 upper-triangle entries",
        slope="least squares through the origin, learned = slope * other",
        mean_and_std_over="seeds with finite values",
        converged_if_final_loss_below=CONVERGED_LOSS,
        override=dict(override) if override else None,
    )
    regimes: dict[str, XorRegime] = {}
    result = None
    with store_root(out) as root:
        rates = xor_rates(
            root=root,
            seeds=n_rate,
            rates_from=rates_from,
            eta_ratio=eta_ratio,
            float64=float64,
            out=out,
            progress=progress,
        )
        status.step(f"rates: eta_h/eta_y = {rates['ratio']:.5g} ({rates['source']})")
        cache = Path(root) / "xor"
        for preset in chosen:
            runs = xor_runs(preset, seed_list, float64=float64, override=override)
            t0 = time.perf_counter()
            stored = sum((cache / f"{r.run_id}.npz").exists() for r in runs)
            records = train_points(runs, cache, progress=progress)
            write_settings(cache, runs)
            t1 = time.perf_counter()
            rows, curves = analyse_xor(records, seed_list, x, y, eta_ratio=rates["ratio"])
            mean, std = _summarise(rows)
            config = {k: v for k, v in runs[0].canonical().items() if k != "seed"}
            config.update(preset=preset.name, reference_lr=preset.lr, reference_loss=preset.loss)
            regimes[preset.name] = XorRegime(
                config=config,
                seeds=tuple(rows),
                curves=curves,
                mean=mean,
                std=std,
                n_seeds=len(rows),
                n_converged=sum(r["converged"] for r in rows),
                n_diverged=sum(r["diverged"] for r in rows),
                seconds=dict(train=t1 - t0, analysis=time.perf_counter() - t1),
                trained=len(runs) - stored,
                reused=stored,
            )
            status.step(
                f"{preset.name}: r(pred) {mean['r_predicted']:.3f}, r(init) "
                f"{mean['r_initial']:.3f}, r(rich) {mean['r_rich']:.3f}, slope(pred) "
                f"{mean['slope_predicted']:.3g}; {regimes[preset.name].n_converged}/{n_seeds} "
                f"converged ({t1 - t0:.0f} s training)"
            )
            result = XorResult(
                settings=settings,
                rates=rates,
                regimes=dict(regimes),
                checks=acceptance(regimes, paper_size=not override),
                seconds=dict(rates=rates["seconds"], total=time.perf_counter() - t_start),
            )
            if out is not None:
                write_json(Path(out) / "summary.json", result.to_json())
    assert result is not None
    if out is not None:
        from rep_align import plots
        from rep_align.plots.xor import xor_heatmaps, xor_over_training

        summary = result.to_json()
        for name in regimes:
            plots.save(xor_heatmaps(summary, name), Path(out) / f"xor_{name}.png")
        plots.save(xor_over_training(summary), Path(out) / "xor_over_training.png")
    return result
