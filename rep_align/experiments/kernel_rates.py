"""Effective rates read off the network (docs/theory.md §8) against the fitted rates: this
project's addition, not a claim of the paper.

For every two-point preset at the paper's size (trajectory protocol), the kernel estimates
(η_h, η_y) of ``rep_align.kernel_rates`` at initialisation, per seed, next to the rates the
two-point experiment fits to the same stored runs (``two_points.analyse_preset``), and the
h∞ of (3.2) from the init-time kernel rates next to the measured final h and the
fitted-rate prediction; per hidden layer of one run (against the depth profile's fits,
``depth.depth_profile``); and, for a few presets, the kernel rates along training, to show
how far the kernels move.

The runs are the two-point experiment's: the same configurations and seeds, read from (or
trained into) the run store through the driver's ``Runs``, so the stage finds the two-point
stage's runs stored. The initial network of seed s is the one the sweep engine trains
(``network.init(split_run_key(jax.random.key(s))[0], gain=...)``, docs/architecture.md);
every row checks it against the record's h0. Units: rates per step at the protocol's
learning rate (lr/2), as the fitted ones; ratios are kernel / fitted, and a preset's summary
ratios geometric means over its converged seeds.

Kernels are computed in float64 from the float32 parameters
(``experiments.preset_kernels``). The runs along training (``motion``, full mode only) are
recomputed by every analysis: the engine stores records, not the parameters the kernels
need. The three of full mode cost 105 s of CPU time (default 61 s, linear 43 s, two_layer
2 s, on the 2-core machine), against 4020 s for the two-point runs it reads
(reproduction/README.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from rep_align import checks, fit
from rep_align.experiments import depth, two_points
from rep_align.experiments._protocol import Experiment, Headline
from rep_align.experiments.preset_kernels import (
    KernelMotion,
    initial_params,
    kernel_motion,
    motion_segment,
    network_rates,
)
from rep_align.files import jsonable
from rep_align.presets import TWO_POINT_PRESETS, TwoPointPreset

__all__ = [
    "EXPERIMENT",
    "DepthKernelRates",
    "KernelRatesResult",
    "KernelRatesSettings",
    "PresetKernelRates",
    "analyse",
    "depth_kernel_rates",
    "figures",
    "headlines",
    "preset_kernel_rates",
    "settings",
]

#: Presets whose kernel rates do not describe their training, and why.
NOTES = {
    "adam": "trained with Adam: a step is not lr times the gradient, so (8.4) does not apply",
    "dropout": "trained with dropout; the kernels are those of the network without it",
    "cnn": "no decoder Jacobian (CNN): eta_h_decoder and alignment not computed",
}

#: Presets whose numbers are headlines (the report's rows).
HEADLINE_PRESETS = ("default", "two_layer")


# ------------------------------------------------------------------------ settings


@dataclasses.dataclass(frozen=True)
class KernelRatesSettings:
    """What the experiment runs (``settings(quick)``).

    Attributes:
        presets: two-point presets compared at initialisation (paper size, trajectory
            protocol).
        seeds: seeds 0 … seeds−1 of each preset: the two-point experiment's, so its stored
            runs are read, not retrained.
        motion: presets whose seed 0 is trained once more in ``segments`` segments,
            reading the kernels along training (plain SGD only).
        segments: checkpoints along training after the first (each a multiple of the
            preset's record interval).
        trace_seeds: seeds per preset with the trace estimate (F backward passes each).
        depth_preset: preset whose run ``depth_seed`` is compared per hidden layer with
            the depth profile's fits (None: no depth profile).
        depth_seed: that run's seed (one of ``seeds``).
        float64: train in float64 from the float32 runs' initial parameters (the runs are
            then not the two-point experiment's; about twice the time).
    """

    presets: tuple[str, ...]
    seeds: int
    motion: tuple[str, ...] = ()
    segments: int = 12
    trace_seeds: int = 1
    depth_preset: str | None = "default"
    depth_seed: int = 0
    float64: bool = False

    def __post_init__(self) -> None:
        for field in ("presets", "motion"):
            names = getattr(self, field)
            names = (names,) if isinstance(names, str) else tuple(names)
            for n in names:
                checks.choice(field, n, TWO_POINT_PRESETS)
            object.__setattr__(self, field, names)
        if not self.presets:
            raise ValueError("presets must name at least one two-point preset, got ()")
        checks.integer("seeds", self.seeds, minimum=1)
        checks.integer("segments", self.segments, minimum=1)
        checks.integer("trace_seeds", self.trace_seeds, minimum=0)
        checks.boolean("float64", self.float64)
        if self.depth_preset is not None:
            checks.choice("depth_preset", self.depth_preset, TWO_POINT_PRESETS)
            checks.integer("depth_seed", self.depth_seed, minimum=0, maximum=self.seeds - 1)
        for name in self.motion:
            motion_segment(_preset(name, self.float64), self.segments)


def settings(quick: bool) -> KernelRatesSettings:
    """The two-point experiment's presets and seeds in the same mode (quick: ``default``
    over 4 seeds; full: every preset over 3 seeds), the depth profile's run (``default``,
    seed 0), at the presets' own size; the runs along training of ``default``, ``linear``
    and ``two_layer`` in full mode only."""
    tp, dp = two_points.settings(quick), depth.settings(quick)
    return KernelRatesSettings(
        presets=tp.presets,
        seeds=tp.seeds,
        motion=() if quick else ("default", "linear", "two_layer"),
        depth_preset=dp.preset,
        depth_seed=dp.seed,
    )


def _preset(name: str, float64: bool = False) -> TwoPointPreset:
    """Preset ``name`` as the experiment runs it (paper size, trajectory protocol)."""
    preset = two_points.protocol_preset(name, quick=False)
    return preset.replace(dtype="float64", init_dtype="float32") if float64 else preset


def _ratio(a, b) -> float:
    return float(a) / float(b) if b and np.isfinite(b) and b > 0 else math.nan


def _geomean(values) -> float:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    return float(np.exp(np.mean(np.log(v)))) if v.size else math.nan


# ----------------------------------------------------------------------- presets


@dataclasses.dataclass(frozen=True)
class PresetKernelRates:
    """Kernel rates at initialisation against fitted rates, per seed of one preset.

    Attributes:
        name: the preset.
        config: the preset as run (``TwoPointPreset.describe()``; lr is the protocol's).
        seeds: per seed: ``seed``, ``converged``; fitted ``eta_h_fit``, ``eta_y_fit``;
            kernel ``eta_h``, ``eta_y``, ``eta_h_trace``, ``eta_h_decoder``, ``kappa_*``,
            ``bias_share_*``, ``alignment``; ``ratio_h`` = eta_h/eta_h_fit, ``ratio_y``,
            ``ratio_rho`` = (eta_h/eta_y)/(eta_h_fit/eta_y_fit); ``h0``, ``y0`` at init
            and ``h0_record``, ``y0_record`` from the run's record; ``h_final`` (measured),
            ``h_inf_fit`` (3.2 at the fitted rates), ``h_inf_kernel`` (3.2 at the kernel
            rates, with h0, y0 at init).
        summary: over converged seeds: geometric means of the ratios, means of the rates
            and of the h∞ columns, and the largest relative |h0 − h0_record|.
        note: why the comparison does not apply, or "".
    """

    name: str
    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    summary: Mapping[str, float]
    note: str = ""


_SUMMARY_MEANS = (
    *("eta_h", "eta_y", "eta_h_fit", "eta_y_fit", "eta_h_trace", "eta_h_decoder"),
    *("alignment", "bias_share_h", "bias_share_y", "h_final", "h_inf_fit", "h_inf_kernel"),
)


def preset_kernel_rates(
    preset: TwoPointPreset, fitted: Sequence[Mapping[str, Any]], *, trace_seeds: int = 1
) -> PresetKernelRates:
    """Kernel rates at initialisation of every seed in ``fitted`` (the per-seed rows of
    ``two_points.analyse_preset``: seed, eta_h, eta_y, h0, y0, h_final, h_inf_theory,
    converged).

    Arguments:
        preset: the preset as run (trajectory protocol).
        fitted: the fitted rows, one per seed.
        trace_seeds: compute the trace estimate for the first this many seeds.
    """
    rows = []
    for i, f in enumerate(fitted):
        seed = int(f["seed"])
        k = network_rates(preset, initial_params(preset, seed), trace=i < trace_seeds)
        with jax.enable_x64(True):
            h_inf = fit.predicted_final_distance(
                k["h"], k["y"], k["eta_h"], k["eta_y"], k["dx2"], k["dy2"]
            )
        row = dict(seed=seed, converged=bool(f.get("converged", True)))
        row |= dict(eta_h_fit=float(f["eta_h"]), eta_y_fit=float(f["eta_y"]))
        row |= {n: k[n] for n in ("eta_h", "eta_y", "eta_h_trace", "eta_h_decoder")}
        row |= {n: k[n] for n in ("kappa_h", "kappa_h_trace", "kappa_h_decoder", "kappa_y")}
        row |= {n: k[n] for n in ("bias_share_h", "bias_share_y", "alignment")}
        row |= dict(
            ratio_h=_ratio(k["eta_h"], f["eta_h"]),
            ratio_y=_ratio(k["eta_y"], f["eta_y"]),
            ratio_rho=_ratio(k["eta_h"] / k["eta_y"], _ratio(f["eta_h"], f["eta_y"])),
            h0=k["h"],
            y0=k["y"],
            h0_record=float(f["h0"]),
            y0_record=float(f["y0"]),
            h_final=float(f["h_final"]),
            h_inf_fit=float(f["h_inf_theory"]),
            h_inf_kernel=float(h_inf),
        )
        rows.append(row)
    good = [r for r in rows if r["converged"]]
    summary: dict[str, float] = dict(n_seeds=len(rows), n_converged=len(good))
    for key in ("ratio_h", "ratio_y", "ratio_rho"):
        summary[key] = _geomean(r[key] for r in good)
    for key in _SUMMARY_MEANS:
        vals = [r[key] for r in good if np.isfinite(r[key])]
        summary[key] = float(np.mean(vals)) if vals else math.nan
    summary["h0_max_rel_diff"] = max(
        (abs(r["h0"] - r["h0_record"]) / r["h0_record"] for r in rows), default=math.nan
    )
    return PresetKernelRates(
        name=preset.name,
        config=preset.describe(),
        seeds=tuple(rows),
        summary=summary,
        note=NOTES.get(preset.name, ""),
    )


# ------------------------------------------------------------------------- depth


@dataclasses.dataclass(frozen=True)
class DepthKernelRates:
    """Kernel rates at initialisation per hidden layer of one run, against the depth
    profile's fitted rates.

    Attributes:
        config: the preset as run. seed: the run's seed.
        layers: per layer: ``layer``, ``eta_h``, ``eta_y``, ``eta_h_decoder``,
            ``alignment``, ``bias_share_h``, ``bias_share_y``, ``h0``, fitted
            ``eta_h_fit``, ``eta_y_fit``, and ``ratio_h``, ``ratio_y``.
    """

    config: Mapping[str, Any]
    seed: int
    layers: tuple[Mapping[str, Any], ...]


def depth_kernel_rates(
    preset: TwoPointPreset,
    seed: int,
    fitted: Sequence[Mapping[str, Any]],
    *,
    progress: Callable[[str], None] | None = None,
) -> DepthKernelRates:
    """Kernel rates at every layer in ``fitted`` (rows with layer, eta_h, eta_y: the depth
    profile's)."""
    params = initial_params(preset, seed)
    rows = []
    for f in fitted:
        layer = int(f["layer"])
        k = network_rates(preset, params, layer=layer, trace=False)
        rows.append(
            dict(
                layer=layer,
                **{n: k[n] for n in ("eta_h", "eta_y", "eta_h_decoder", "alignment")},
                **{n: k[n] for n in ("bias_share_h", "bias_share_y")},
                h0=k["h"],
                eta_h_fit=float(f["eta_h"]),
                eta_y_fit=float(f["eta_y"]),
                ratio_h=_ratio(k["eta_h"], f["eta_h"]),
                ratio_y=_ratio(k["eta_y"], f["eta_y"]),
            )
        )
        if progress:
            progress(
                f"  layer {layer}: ratio eta_h {rows[-1]['ratio_h']:.3g}, "
                f"eta_y {rows[-1]['ratio_y']:.3g}"
            )
    return DepthKernelRates(config=preset.describe(), seed=int(seed), layers=tuple(rows))


# ------------------------------------------------------------------- the analysis


@dataclasses.dataclass(frozen=True)
class KernelRatesResult:
    """The experiment: per-preset comparisons at initialisation, the depth profile (None
    without one) and the runs along training (keyed by preset)."""

    presets: Mapping[str, PresetKernelRates]
    depth: DepthKernelRates | None
    motion: Mapping[str, KernelMotion]


def analyse(settings: KernelRatesSettings, runs: Any) -> KernelRatesResult:
    """Fit each preset's stored runs (``two_points.analyse_preset``), read the kernels at
    initialisation, the depth profile's run per layer and the runs along training."""
    seeds = list(range(settings.seeds))
    say = runs.say
    presets: dict[str, PresetKernelRates] = {}
    depth_result = None
    names = list(settings.presets)
    if settings.depth_preset and settings.depth_preset not in names:
        names.append(settings.depth_preset)
    for name in names:
        preset = _preset(name, settings.float64)
        config = two_points.preset_run_config(preset)
        seed_runs = runs.seeds(config, seeds, name=preset.name)
        if name == settings.depth_preset:
            profile = depth.depth_profile(preset, seed_runs, settings.depth_seed)
            depth_result = depth_kernel_rates(preset, settings.depth_seed, profile.layers)
            say(
                f"  depth profile of {name}, seed {settings.depth_seed}: "
                f"{len(depth_result.layers)} layers"
            )
        if name not in settings.presets:
            continue
        fitted = two_points.analyse_preset(preset, seed_runs)
        res = preset_kernel_rates(preset, fitted.seeds, trace_seeds=settings.trace_seeds)
        presets[name] = res
        s = res.summary
        say(
            f"  {name}: kernel/fitted eta_h {s['ratio_h']:.3g}, eta_y {s['ratio_y']:.3g}; "
            f"h_inf kernel {s['h_inf_kernel']:.3g} measured {s['h_final']:.3g}"
        )
    motion: dict[str, KernelMotion] = {}
    for name in settings.motion:
        row = {r["seed"]: r for r in presets[name].seeds}.get(0) if name in presets else None
        fitted_rates = None if row is None else dict(eta_h=row["eta_h_fit"], eta_y=row["eta_y_fit"])
        moved = kernel_motion(
            _preset(name, settings.float64), 0, segments=settings.segments, fitted=fitted_rates
        )
        motion[name] = moved
        first, last = moved.rows[0], moved.rows[-1]
        say(
            f"  {name} along training: eta_h x{last['eta_h'] / first['eta_h']:.3g}, "
            f"eta_y x{last['eta_y'] / first['eta_y']:.3g}, "
            f"NTK distance {last['ntk_distance']:.3g}"
        )
    return KernelRatesResult(presets, depth_result, motion)


# -------------------------------------------------------------- what is reported


def headlines(result: KernelRatesResult, settings: KernelRatesSettings) -> list[Headline]:
    """η_h and η_y kernel/fitted and h∞ at the kernel rates of the default and two_layer
    presets (reported, not checked: no spread, the ratio is a geometric mean)."""
    heads = []
    for name, entry in result.presets.items():
        if name not in HEADLINE_PRESETS:
            continue
        sm = entry.summary
        n = sm["n_converged"]
        heads += [
            Headline(
                f"{name}: η_h kernel / fitted",
                sm["ratio_h"],
                n=n,
                note="1 where the theory is exact (two-layer linear, docs/theory.md §8)",
            ),
            Headline(f"{name}: η_y kernel / fitted", sm["ratio_y"], n=n),
            Headline(
                f"{name}: h∞ from init-time kernel rates",
                sm["h_inf_kernel"],
                n=n,
                note=f"measured {sm['h_final']:.3g}, fitted-rate theory {sm['h_inf_fit']:.3g}",
            ),
        ]
    return heads


def figures(result: KernelRatesResult, settings: KernelRatesSettings) -> dict[str, Any]:
    """The overview (per preset, per layer, h∞) and, with runs along training, their
    rates, velocities and kernel distance."""
    from rep_align.plots import kernel_rates as kplots

    data = jsonable(result)
    figs = {"kernel_rates": kplots.kernel_rate_overview(data)}
    if result.motion:
        figs["kernel_motion"] = kplots.kernel_motion(data)
    return figs


EXPERIMENT = Experiment(
    name="kernel_rates",
    title="Effective rates read off the tangent kernels (not in the paper)",
    claim=(
        "This project's addition (docs/theory.md §8): the rates η_h, η_y estimated from "
        "the network's tangent kernels at initialisation, against the fitted rates. Exact "
        "for a two-layer linear network; reported, not claimed, elsewhere."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    figures=figures,
    ours=True,
)
