"""A two-point preset's network read through its tangent kernels (docs/theory.md §8): the
kernel rates at a parameter set (``network_rates``), at a seed's initialisation as the sweep
engine draws it (``initial_params``), and along one run trained in segments
(``kernel_motion``). Used by the kernel-rates experiment (``experiments.kernel_rates``).

Kernels are computed in float64 from the parameters as trained (float32 unless the run is
float64). Rates are per gradient step at the preset's learning rate.

The run along training is trained here, not by the sweep engine: the engine stores records,
not the parameters the kernels need. It is ``training.train`` from the previous segment's
parameters; full-batch SGD has no optimiser state, so the segments continue one run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import kernel_rates as kr
from rep_align import ntk, theory, training
from rep_align.presets import TwoPointPreset

__all__ = [
    "KernelMotion",
    "TRACE_MAX_WIDTH",
    "initial_params",
    "kernel_motion",
    "motion_segment",
    "network_rates",
]

#: Read-out layers wider than this get no trace estimate (F backward passes each).
TRACE_MAX_WIDTH = 1000


# ------------------------------------------------------------------- one network


def initial_params(preset: TwoPointPreset, seed: int):
    """The initial parameters of seed ``seed`` of ``preset``, as the sweep engine draws
    them (float32 unless the run's dtype is float64): ``network.init`` with the first key
    of ``training.split_run_key(jax.random.key(seed))`` and the preset's gain."""
    cfg = preset.config
    key = training.split_run_key(jax.random.key(int(seed)))[0]
    init_dtype = cfg.dtype if cfg.init_dtype == "auto" else cfg.init_dtype
    return cfg.network(dtype=init_dtype).init(key, gain=cfg.gain)


def _f64(params):
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)


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
        p = _f64(params)
        x, y = cfg.data(dtype="float64")
        width = math.prod(net.hidden_shapes[layer])
        kw = dict(layer=layer, lr=cfg.lr, pair=cfg.pair)
        trace = bool(trace and width <= TRACE_MAX_WIDTH)
        r = kr.kernel_rates(net, p, x, y, trace=trace, **kw).as_dict()
        if velocity:
            v = np.asarray(kr.flow_velocity(net, p, x, y, **kw))
            r.update(dh_dt=float(v[0]), dy_dt=float(v[1]), dw_dt=float(v[2]))
    return r


# ------------------------------------------------------------------ along training


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


def motion_segment(preset: TwoPointPreset, segments: int) -> int:
    """Gradient steps per segment of ``preset``'s run along training in ``segments``
    segments.

    Raises:
        ValueError: for Adam (its state would restart at every segment), or a segment
            length that is not a multiple of the record interval.
    """
    cfg = preset.config
    if cfg.optimizer != "sgd":
        raise ValueError(
            f"motion needs plain SGD (its state would restart at every segment), preset "
            f"{preset.name!r} uses {cfg.optimizer}"
        )
    seg, rem = divmod(cfg.steps, int(segments))
    if segments < 1 or rem or seg % cfg.record_every:
        raise ValueError(
            f"segments={segments} must split {cfg.steps} steps of {preset.name!r} into "
            f"multiples of record_every={cfg.record_every}"
        )
    return seg


def _velocities(row: Mapping[str, float], fitted: Mapping[str, float]) -> dict[str, float]:
    """The theory's d(h, y, w)/dt at ``row``'s state, at its kernel rates and at the
    fitted ones."""
    z = np.array([row["h"], row["y"], row["w"]])
    out = {}
    for tag, eh, ey in (
        ("kernel", row["eta_h"], row["eta_y"]),
        ("fit", fitted.get("eta_h", math.nan), fitted.get("eta_y", math.nan)),
    ):
        with jax.enable_x64(True):
            v = theory.vector_field(z, eta_h=eh, eta_y=ey, dx2=row["dx2"], dy2=row["dy2"])
        out |= dict(
            zip((f"dh_dt_{tag}", f"dy_dt_{tag}", f"dw_dt_{tag}"), map(float, v), strict=True)
        )
    return out


def kernel_motion(
    preset: TwoPointPreset,
    seed: int = 0,
    *,
    segments: int = 12,
    fitted: Mapping[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> KernelMotion:
    """Train one run of ``preset`` in ``segments`` equal segments and read the kernel rates
    at the start and after every segment (module docstring).

    Raises:
        ValueError: for Adam (its state would restart at every segment), or a segment
            length that is not a multiple of the record interval.
    """
    cfg = preset.config
    seg = motion_segment(preset, segments)
    fitted = dict(fitted or {})
    key = jax.random.key(int(seed))
    params = initial_params(preset, seed)
    with jax.enable_x64(True):
        net64 = cfg.network(dtype="float64")
        x64, _ = cfg.data(dtype="float64")
        k0 = ntk.empirical_ntk(net64, _f64(params), x64)
    rows = []
    for i in range(segments + 1):
        row = dict(step=i * seg, **network_rates(preset, params, trace=False, velocity=True))
        with jax.enable_x64(True):
            k_t = ntk.empirical_ntk(net64, _f64(params), x64)
            row["ntk_distance"] = float(ntk.kernel_distance(k0, k_t))
        row |= _velocities(row, fitted)
        row["dh_dt_descent"] = math.nan
        if i < segments:
            # dropout masks are drawn from the key by step: a new key per segment
            with jax.enable_x64(cfg.dtype == "float64"):
                net = cfg.network()
                x, y = cfg.data()
                traj, params = training.train(
                    net,
                    x,
                    y,
                    key=jax.random.fold_in(key, i) if net.stochastic else key,
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
                f"  {preset.name} step {row['step']}: h {row['h']:.4g} eta_h {row['eta_h']:.3g} "
                f"eta_y {row['eta_y']:.3g} ntk distance {row['ntk_distance']:.3g}"
            )
    return KernelMotion(preset.name, int(seed), segments, tuple(rows), fitted)
