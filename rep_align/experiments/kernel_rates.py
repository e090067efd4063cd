"""Effective rates read off the network (docs/theory.md §8) against the fitted rates.

For every two-point preset at the paper's size, the kernel estimates (η_h, η_y) of
``rep_align.kernel_rates`` at initialisation, per seed, next to the rates the two-point
experiment fitted to the same runs (docs/theory.md §5), and the h∞ of (3.2) from the
init-time kernel rates next to the measured final h and the fitted-rate prediction; per
hidden layer for one run of the default preset (against the depth profile's fits); and,
for a few presets, the kernel rates along training, to show how far the kernels move.

A sweep plus an analysis. The fitted rates come from a two-point output directory
(``summary.json`` of ``rep-align two-points``, and optionally a ``depth.json``), or, without
one, from ``two_points.run_preset`` trained and fitted here (stored under
``out/sweeps``, resumable; the depth profile is then fitted from the same stored run). The
initial network of seed s is the one the sweep engine trains
(``network.init(split_run_key(jax.random.key(s))[0], gain=...)``, docs/architecture.md);
every row checks it against the record's h0. Units: the rates are per step at the
protocol's learning rate (the trajectory protocol's lr/2), as the fitted ones.

Kernels are computed in float64 from the float32 initial parameters. The runs along
training ("motion") are trained here in segments (``training.train`` from the previous
segment's parameters; full-batch SGD has no optimiser state, so the segments continue one
run) and cached as JSON under ``out/motion``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import fit, ntk, theory, training
from rep_align import kernel_rates as kr
from rep_align.experiments.common import Status, observed, store_root, train_seeds
from rep_align.experiments.two_points import preset_run_config, protocol_preset, run_preset
from rep_align.files import write_json
from rep_align.presets import TWO_POINT_PRESETS, TwoPointPreset

__all__ = [
    "DepthKernelRates",
    "KernelMotion",
    "KernelRatesResult",
    "PresetKernelRates",
    "initial_params",
    "kernel_motion",
    "network_rates",
    "run_kernel_rates",
]

#: Read-out layers wider than this get no trace estimate (F backward passes each).
TRACE_MAX_WIDTH = 1000

#: Presets whose kernel rates do not describe their training, and why.
NOTES = {
    "adam": "trained with Adam: a step is not lr times the gradient, so (8.4) does not apply",
    "dropout": "trained with dropout; the kernels are those of the network without it",
    "cnn": "no decoder Jacobian (CNN): eta_h_decoder and alignment not computed",
}


# ----------------------------------------------------------------- one network


def initial_params(preset: TwoPointPreset, seed: int):
    """The initial parameters of seed ``seed`` of ``preset``, as the sweep engine draws
    them (float32 unless the run's dtype is float64): ``network.init`` with the first key
    of ``training.split_run_key(jax.random.key(seed))`` and the preset's gain."""
    cfg = preset.config
    key = training.split_run_key(jax.random.key(int(seed)))[0]
    init_dtype = cfg.dtype if cfg.init_dtype == "auto" else cfg.init_dtype
    return cfg.network(dtype=init_dtype).init(key, gain=cfg.gain)


def network_rates(
    preset: TwoPointPreset,
    params,
    *,
    layer: int | None = None,
    trace: bool = True,
    velocity: bool = False,
) -> dict[str, float]:
    """``kernel_rates.kernel_rates`` of ``preset``'s network at ``params``, in float64.

    Arguments:
        preset: the preset as run (its lr is the one the rates are per step of).
        params: parameters of its network (any float dtype; cast to float64).
        layer: hidden layer; default the preset's read-out layer.
        trace: compute the trace estimate (skipped for layers wider than
            ``TRACE_MAX_WIDTH``).
        velocity: also the network's d(h, y, w)/dt (``kernel_rates.flow_velocity``) as
            ``dh_dt``, ``dy_dt``, ``dw_dt``.

    Returns:
        ``KernelRates.as_dict()`` (plus the velocity) as Python floats.
    """
    cfg = preset.config
    layer = cfg.layer_index if layer is None else layer
    with jax.enable_x64(True):
        net = cfg.network(dtype="float64")
        p = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
        x, y = cfg.data(dtype="float64")
        width = math.prod(net.hidden_shapes[layer])
        r = kr.kernel_rates(
            net,
            p,
            x,
            y,
            layer=layer,
            lr=cfg.lr,
            pair=cfg.pair,
            trace=bool(trace and width <= TRACE_MAX_WIDTH),
        ).as_dict()
        if velocity:
            v = np.asarray(kr.flow_velocity(net, p, x, y, layer=layer, lr=cfg.lr, pair=cfg.pair))
            r.update(dh_dt=float(v[0]), dy_dt=float(v[1]), dw_dt=float(v[2]))
    return r


def _h_inf(h0, y0, eta_h, eta_y, dx2, dy2) -> float:
    with jax.enable_x64(True):
        return float(fit.predicted_final_distance(h0, y0, eta_h, eta_y, dx2, dy2))


def _ratio(a, b) -> float:
    return float(a) / float(b) if b and np.isfinite(b) and b > 0 else math.nan


def _geomean(values) -> float:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    return float(np.exp(np.mean(np.log(v)))) if v.size else math.nan


# ------------------------------------------------------------------- presets


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

    def to_json(self) -> dict[str, Any]:
        return dict(
            config=dict(self.config),
            seeds=[dict(r) for r in self.seeds],
            summary=dict(self.summary),
            note=self.note,
        )


def preset_kernel_rates(
    preset: TwoPointPreset, fitted: Sequence[Mapping[str, Any]], *, trace_seeds: int = 1
) -> PresetKernelRates:
    """Kernel rates at initialisation of every seed in ``fitted`` (rows of a two-point
    ``summary.json``: seed, eta_h, eta_y, h0, y0, h_final, h_inf_theory, converged).

    Arguments:
        preset: the preset as run (trajectory protocol).
        fitted: the fitted rows, one per seed.
        trace_seeds: compute the trace estimate for the first this many seeds.
    """
    rows = []
    for i, f in enumerate(fitted):
        seed = int(f["seed"])
        k = network_rates(preset, initial_params(preset, seed), trace=i < trace_seeds)
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
            h_inf_kernel=_h_inf(k["h"], k["y"], k["eta_h"], k["eta_y"], k["dx2"], k["dy2"]),
        )
        rows.append(row)
    good = [r for r in rows if r["converged"]]
    summary: dict[str, float] = dict(n_seeds=len(rows), n_converged=len(good))
    for key in ("ratio_h", "ratio_y", "ratio_rho"):
        summary[key] = _geomean(r[key] for r in good)
    for key in (
        "eta_h",
        "eta_y",
        "eta_h_fit",
        "eta_y_fit",
        "eta_h_trace",
        "eta_h_decoder",
        "alignment",
        "bias_share_h",
        "bias_share_y",
        "h_final",
        "h_inf_fit",
        "h_inf_kernel",
    ):
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


# --------------------------------------------------------------------- depth


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

    def to_json(self) -> dict[str, Any]:
        return dict(config=dict(self.config), seed=self.seed, layers=[dict(r) for r in self.layers])


def depth_kernel_rates(
    preset: TwoPointPreset,
    seed: int,
    fitted: Sequence[Mapping[str, Any]],
    *,
    progress: Callable[[str], None] | None = None,
) -> DepthKernelRates:
    """Kernel rates at every layer in ``fitted`` (rows with layer, eta_h, eta_y)."""
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
                f"layer {layer}: ratio eta_h {rows[-1]['ratio_h']:.3g}, "
                f"eta_y {rows[-1]['ratio_y']:.3g}"
            )
    return DepthKernelRates(config=preset.describe(), seed=int(seed), layers=tuple(rows))


def _fit_layers(preset: TwoPointPreset, runs, seed_index: int = 0) -> list[dict[str, Any]]:
    """Fitted rates at every hidden layer of one stored run (as ``experiments.depth``)."""
    ts, z = observed(runs.records, 0)
    h_all = np.asarray(runs.records["h"], np.float64)[seed_index]
    n = h_all.shape[1]
    z_layers = np.stack(
        [np.stack([h_all[:, k], z[seed_index, :, 1], z[seed_index, :, 2]], -1) for k in range(n)]
    )
    res = fit.fit_records(ts, z_layers, dx2=preset.dx2, dy2=preset.dy2)
    return [dict(layer=k, eta_h=float(res.eta_h[k]), eta_y=float(res.eta_y[k])) for k in range(n)]


# -------------------------------------------------------------------- motion


@dataclasses.dataclass(frozen=True)
class KernelMotion:
    """Kernel rates along one run: how far the kernels move during training.

    Attributes:
        name: the preset. seed: the run's seed. segments: checkpoints after the first.
        rows: per checkpoint (``step`` in gradient steps): the ``network_rates`` columns
            with the network's velocity ``dh_dt``, ``dy_dt``, ``dw_dt``; the theory's
            velocity at the kernel rates (``dh_dt_kernel``, …) and at the fitted rates
            (``dh_dt_fit``, …, NaN without them); ``dh_dt_descent``, the mean change of h
            per step over the next ``record_every`` steps of gradient descent; and
            ``ntk_distance``, ‖K_t − K_0‖_F/‖K_0‖_F of the output tangent kernel on the
            pair (``ntk.kernel_distance``).
        fitted: the fitted rates of this seed (eta_h, eta_y), if known.
    """

    name: str
    seed: int
    segments: int
    rows: tuple[Mapping[str, float], ...]
    fitted: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            seed=self.seed,
            segments=self.segments,
            rows=[dict(r) for r in self.rows],
            fitted=dict(self.fitted),
        )


def _motion_key(preset: TwoPointPreset, seed: int, segments: int) -> str:
    text = json.dumps(
        dict(run=preset.config.replace(seed=int(seed)).run_id, segments=segments, v=1),
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def kernel_motion(
    preset: TwoPointPreset,
    seed: int = 0,
    *,
    segments: int = 12,
    fitted: Mapping[str, float] | None = None,
    root: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> KernelMotion:
    """Train one run of ``preset`` in ``segments`` equal segments and read the kernel rates
    at the start and after every segment.

    Cached as ``root/<preset>-seed<seed>-<hash>.json``: a second call trains nothing.

    Raises:
        ValueError: for Adam (its state would restart at every segment), or a segment
            length that is not a multiple of the record interval.
    """
    cfg = preset.config
    if cfg.optimizer != "sgd":
        raise ValueError(
            f"kernel motion needs plain SGD, preset {preset.name!r} uses {cfg.optimizer}"
        )
    segments = int(segments)
    seg, rem = divmod(cfg.steps, segments)
    if segments < 1 or rem or seg % cfg.record_every:
        raise ValueError(
            f"segments={segments} must split {cfg.steps} steps into multiples of "
            f"record_every={cfg.record_every}"
        )
    fitted = dict(fitted or {})
    path = None
    if root is not None:
        path = Path(root) / f"{preset.name}-seed{seed}-{_motion_key(preset, seed, segments)}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            return KernelMotion(preset.name, int(seed), segments, tuple(stored["rows"]), fitted)
    wide = cfg.dtype == "float64"
    key = jax.random.key(int(seed))
    params = initial_params(preset, seed)
    with jax.enable_x64(True):
        x64, _ = cfg.data(dtype="float64")
        k0 = ntk.empirical_ntk(
            cfg.network(dtype="float64"),
            jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params),
            x64,
        )
    rows = []
    for i in range(segments + 1):
        row = dict(step=i * seg, **network_rates(preset, params, trace=False, velocity=True))
        z = np.array([row["h"], row["y"], row["w"]])
        with jax.enable_x64(True):
            pk = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
            k_t = ntk.empirical_ntk(cfg.network(dtype="float64"), pk, x64)
            row["ntk_distance"] = float(ntk.kernel_distance(k0, k_t))
            for tag, eh, ey in (
                ("kernel", row["eta_h"], row["eta_y"]),
                ("fit", fitted.get("eta_h", math.nan), fitted.get("eta_y", math.nan)),
            ):
                v = np.asarray(
                    theory.vector_field(z, eta_h=eh, eta_y=ey, dx2=row["dx2"], dy2=row["dy2"])
                )
                row |= {
                    f"dh_dt_{tag}": float(v[0]),
                    f"dy_dt_{tag}": float(v[1]),
                    f"dw_dt_{tag}": float(v[2]),
                }
        row["dh_dt_descent"] = math.nan
        if i < segments:
            # dropout masks are drawn from the key by step: a new key per segment
            with jax.enable_x64(wide):
                net = cfg.network()
                x, y = cfg.data()
                seg_key = jax.random.fold_in(key, i) if net.stochastic else key
                traj, params = training.train(
                    net,
                    x,
                    y,
                    key=seg_key,
                    lr=cfg.lr,
                    steps=seg,
                    params=jax.tree.map(partial(jnp.asarray, dtype=net.dtype), params),
                    record_every=cfg.record_every,
                    pair=cfg.pair,
                    return_params=True,
                )
            h = np.asarray(traj.h[:, cfg.layer_index], np.float64)
            row["dh_dt_descent"] = float((h[1] - h[0]) / cfg.record_every)
        rows.append(row)
        if progress:
            progress(
                f"{preset.name} step {row['step']}: h {row['h']:.4g} eta_h {row['eta_h']:.3g} "
                f"eta_y {row['eta_y']:.3g} ntk distance {row['ntk_distance']:.3g}"
            )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, dict(name=preset.name, seed=int(seed), segments=segments, rows=rows))
    return KernelMotion(preset.name, int(seed), segments, tuple(rows), fitted)


# ------------------------------------------------------------------ the whole


@dataclasses.dataclass(frozen=True)
class KernelRatesResult:
    """The experiment: ``settings``, per-preset comparisons, the depth profile (or None)
    and the runs along training."""

    settings: Mapping[str, Any]
    presets: Mapping[str, PresetKernelRates]
    depth: DepthKernelRates | None
    motion: Mapping[str, KernelMotion]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return dict(
            settings=dict(self.settings),
            presets={k: v.to_json() for k, v in self.presets.items()},
            depth=None if self.depth is None else self.depth.to_json(),
            motion={k: v.to_json() for k, v in self.motion.items()},
        )


def _check_config(preset: TwoPointPreset, stored: Mapping[str, Any], where: str) -> None:
    want = preset.describe()
    diff = {k: (stored.get(k), v) for k, v in want.items() if k in stored and stored[k] != v}
    if diff:
        raise ValueError(
            f"{where}: the stored runs of {preset.name!r} differ from the preset: {diff}"
        )


def run_kernel_rates(
    *,
    source: str | os.PathLike | None = None,
    depth: str | os.PathLike | None = None,
    presets: Sequence[str] | None = None,
    seeds: int = 1,
    motion: Sequence[str] = (),
    segments: int = 12,
    trace_seeds: int = 1,
    float64: bool = False,
    depth_preset: str = "default",
    out: str | os.PathLike | None = None,
) -> KernelRatesResult:
    """Kernel rates against fitted rates for the two-point presets (module docstring).

    Arguments:
        source: a two-point output directory with ``summary.json`` (its presets, seeds
            and fitted rates are used); None trains and fits here with
            ``two_points.run_preset`` (paper size, trajectory protocol, ``seeds`` seeds,
            stored under ``out/sweeps``) and fits the depth profile of seed 0 of
            ``depth_preset`` from the same stored run.
        depth: a ``depth.json`` (``rep-align depth``) to compare per layer; with a source
            and no depth file the depth profile is left out.
        presets: preset names (default: every preset in the source, or ``["default"]``).
        seeds: seeds per preset when training here.
        motion: presets to train once more (seed 0) in ``segments`` segments, reading
            the kernels along training (cached under ``out/motion``).
        trace_seeds: seeds per preset with the trace estimate (F backward passes each).
        float64: train here in float64 (from the float32 runs' initial parameters).
        depth_preset: when training here without a depth file, the preset whose seed 0
            is fitted per layer (default "default", the reference study's depth profile).
        out: output directory for ``summary.json`` and figures; None writes nothing.

    Raises:
        ValueError: unknown preset names, a preset missing from the source, stored runs
            whose settings differ from the presets, or ``seeds < 1``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    stored: dict[str, Any] = {}
    if source is not None:
        summary_path = Path(source) / "summary.json"
        stored = json.loads(summary_path.read_text())
        if stored.get("settings", {}).get("quick"):
            raise ValueError(f"{summary_path}: quick-mode runs are not at the paper's size")
        names = list(presets) if presets else list(stored["presets"])
        missing = [n for n in names if n not in stored["presets"]]
        if missing:
            raise ValueError(f"presets {missing} are not in {summary_path}")
    else:
        names = list(presets) if presets else ["default"]
    unknown = [n for n in names + list(motion) if n not in TWO_POINT_PRESETS]
    if unknown:
        raise ValueError(f"unknown presets {unknown}; known: {list(TWO_POINT_PRESETS)}")
    status = Status(len(names) + len(motion) + 1, "steps")
    settings = dict(
        source=None if source is None else str(source),
        depth=None if depth is None else str(depth),
        protocol="trajectory (lr/2, 2x epochs)",
        rates_per="gradient step at the protocol's lr",
        kernel_precision="float64 from the float32 initial parameters",
        motion_segments=segments,
        trace_seeds=trace_seeds,
        ratios="kernel / fitted; summary ratios are geometric means over converged seeds",
    )
    results: dict[str, PresetKernelRates] = {}
    depth_result = None
    fitted_rows: dict[str, list] = {}
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(store_root(out)) if source is None else None
        for name in names:
            preset = protocol_preset(name, quick=False)
            if source is not None:
                entry = stored["presets"][name]
                _check_config(preset, entry["config"], str(source))
                rows = entry["seeds"]
            else:
                res = run_preset(preset, list(range(seeds)), root=root, float64=float64)
                rows = list(res.seeds)
                if name == depth_preset and depth is None:
                    # the same store as run_preset (same seeds): nothing is retrained
                    config = preset_run_config(preset, float64=float64)
                    runs = train_seeds(config, list(range(seeds)), root=root, name=preset.name)
                    depth_result = depth_kernel_rates(preset, 0, _fit_layers(preset, runs))
            fitted_rows[name] = rows
            results[name] = preset_kernel_rates(preset, rows, trace_seeds=trace_seeds)
            s = results[name].summary
            status.step(
                f"{name}: kernel/fitted eta_h {s['ratio_h']:.3g}, eta_y {s['ratio_y']:.3g}; "
                f"h_inf kernel {s['h_inf_kernel']:.3g} measured {s['h_final']:.3g}"
            )
        if depth is not None:
            d = json.loads(Path(depth).read_text())
            preset = protocol_preset(d["config"]["name"], quick=False)
            _check_config(preset, d["config"], str(depth))
            depth_result = depth_kernel_rates(preset, int(d["seed"]), d["layers"])
        status.step("depth profile" if depth_result is not None else "no depth profile")
        moved: dict[str, KernelMotion] = {}
        motion_root = None if out is None else Path(out) / "motion"
        for name in motion:
            preset = protocol_preset(name, quick=False)
            if float64:
                preset = preset.replace(dtype="float64", init_dtype="float32")
            fit_row = next((r for r in fitted_rows.get(name, []) if int(r["seed"]) == 0), None)
            fitted = (
                None if fit_row is None else dict(eta_h=fit_row["eta_h"], eta_y=fit_row["eta_y"])
            )
            moved[name] = kernel_motion(
                preset, 0, segments=segments, fitted=fitted, root=motion_root
            )
            first, last = moved[name].rows[0], moved[name].rows[-1]
            status.step(
                f"{name} along training: eta_h x{last['eta_h'] / first['eta_h']:.3g}, "
                f"eta_y x{last['eta_y'] / first['eta_y']:.3g}, "
                f"NTK distance {last['ntk_distance']:.3g}"
            )
    result = KernelRatesResult(settings, results, depth_result, moved)
    if out is not None:
        from rep_align.plots import kernel_rates as kplots
        from rep_align.plots._panels import save

        summary = result.to_json()
        write_json(Path(out) / "summary.json", summary)
        save(kplots.kernel_rate_overview(summary), Path(out) / "kernel_rates.png")
        if moved:
            save(kplots.kernel_motion(summary), Path(out) / "kernel_motion.png")
    return result
