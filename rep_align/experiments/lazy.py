"""The lazy limit: a wide network at large gain trains as its linearisation at init; at
small gain it does not (docs/theory.md §3, (3.4); Lee et al. 2019).

For each gain and seed, one network is trained by full-batch gradient descent on a small
data set (the 8 tree-structured items of ``data.hierarchy`` by default), in segments of
``kernel_every`` steps so that its parameters are available at the segment ends. Against
the record of that run the experiment sets:

- the kernel prediction of the outputs: the linearised network's outputs under the same
  descent steps, from the empirical NTK at init (``ntk.linearized_outputs``,
  ``mode="descent"``, in closed form);
- the *output error* over training, e(t) = ‖f_t − f_lin,t‖_F / ‖f_0 − y*‖_F: the mismatch
  between trained and predicted outputs (all points and output units) relative to the
  distance the outputs have to travel, so e = 0.1 means the prediction is off by 10 % of
  the whole change to be made; the headline is its maximum over the record;
- the *hidden change*, ‖D_t − D_0‖_F / ‖D_0‖_F, with D_t the matrix of (unsquared)
  distances between the points' hidden representations at the recorded layer: 0 while
  the representation keeps its initial geometry (3.4);
- the *kernel distance* ‖K_t − K_0‖_F / ‖K_0‖_F at every segment end
  (``ntk.kernel_over_training``, ``ntk.kernel_distance``).

Learning rate. Each run takes lr = ``lr_fraction`` · N / λ_max(K_0), N = n·o outputs,
from its own kernel at init, so that the fastest linear mode shrinks by the same factor
1 − ``lr_fraction`` per step at every gain and both gains cover the same fraction of their
linear dynamics in the same number of steps (the stability limit of the linear model is
``lr_fraction`` = 2).

Why not XOR by default. XOR's input (0, 0) meets zero initial biases: every pre-activation
of that point is exactly 0, on the kink of the (leaky) ReLU, where the network is not
differentiable in its parameters, so its linearisation fails at first order for that
point whatever the width or gain (measured with the default MLP at gain 3: maximum output
error 0.03-0.07 at widths 256 and 1024, 0.03-0.06 at gains 4 and 5, float32 and float64
alike; with tanh instead, 0.001). The hierarchy's one-hot inputs put no point on a kink.
XOR remains available (``task="xor"``), e.g. with a smooth activation.

Gradient flow is not run: ``ntk.linearized_outputs`` has the flow form, but integrating
the network's own flow through ReLU kinks costs the adaptive solver thousands of steps
(``training.gradient_flow``), more than the descent runs it would stand in for.

The runs are cached as ``.npz`` files (named by a hash of their settings) under the
experiment's store, so a second call retrains nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import checks, data, ntk
from rep_align.experiments.common import store_root
from rep_align.files import atomic_write, write_json
from rep_align.networks import Network, make_network
from rep_align.training import split_run_key, train_epochs

__all__ = [
    "LAZY_TOLERANCE",
    "RICH_FACTOR",
    "LazyResult",
    "LazyRun",
    "compare_with_kernel",
    "run_lazy",
]

#: Bound on the maximum output error e(t) of the large-gain runs (module docstring). Chosen
#: from measurement: the default setting (hierarchy, 1024-wide leaky-ReLU MLP of depth 2,
#: gain 3, float32) gives 0.025 per seed; see ``run_lazy`` for the numbers and the margin.
LAZY_TOLERANCE = 0.05

#: The small-gain runs count as failing the kernel prediction when their maximum output
#: error is at least this many times the tolerance above.
RICH_FACTOR = 4.0

_TASKS = ("xor", "hierarchy")


@dataclasses.dataclass(frozen=True)
class LazyRun:
    """One trained network against its kernel prediction.

    Times are in gradient-descent steps; T records every ``record_every`` steps, K kernel
    snapshots every ``kernel_every`` steps (both including step 0).

    Attributes:
        gain: Xavier-normal init gain.
        seed: PRNG seed of the initial parameters.
        lr: learning rate of the loss 0.5·mse.
        lam_max: λ_max(K_0) of the flattened (N × N) kernel at init.
        times: (T,) record times.
        outputs: (T, n, o) trained outputs.
        linear: (T, n, o) kernel-predicted outputs.
        loss, linear_loss: (T,) 0.5·mse of the trained and of the predicted outputs.
        output_error: (T,) e(t) = ‖f_t − f_lin,t‖ / ‖f_0 − y*‖.
        hidden_change: (T,) ‖D_t − D_0‖ / ‖D_0‖ at the recorded layer.
        kernel_times: (K,) times of the kernel snapshots.
        kernel_distance: (K,) ‖K_t − K_0‖ / ‖K_0‖.
        diverged: whether the training loss became non-finite.
    """

    gain: float
    seed: int
    lr: float
    lam_max: float
    times: np.ndarray
    outputs: np.ndarray
    linear: np.ndarray
    loss: np.ndarray
    linear_loss: np.ndarray
    output_error: np.ndarray
    hidden_change: np.ndarray
    kernel_times: np.ndarray
    kernel_distance: np.ndarray
    diverged: bool

    def headline(self) -> dict[str, Any]:
        """Scalar summary: maxima over the record and final values."""
        return dict(
            gain=self.gain,
            seed=self.seed,
            lr=self.lr,
            lam_max=self.lam_max,
            max_output_error=_nanmax(self.output_error),
            final_output_error=float(self.output_error[-1]),
            max_hidden_change=_nanmax(self.hidden_change),
            final_hidden_change=float(self.hidden_change[-1]),
            max_kernel_distance=_nanmax(self.kernel_distance),
            final_kernel_distance=float(self.kernel_distance[-1]),
            initial_loss=float(self.loss[0]),
            final_loss=float(self.loss[-1]),
            final_linear_loss=float(self.linear_loss[-1]),
            diverged=self.diverged,
        )

    def to_json(self) -> dict[str, Any]:
        """Headline numbers and the curves over training (outputs excluded: see
        ``arrays``)."""
        return dict(
            self.headline(),
            times=self.times,
            output_error=self.output_error,
            hidden_change=self.hidden_change,
            loss=self.loss,
            linear_loss=self.linear_loss,
            kernel_times=self.kernel_times,
            kernel_distance=self.kernel_distance,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array field, for ``np.savez``."""
        return {
            f.name: np.asarray(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in ("gain", "seed", "lr", "lam_max", "diverged")
        }


def _nanmax(a) -> float:
    a = np.asarray(a, float)
    return float(np.max(a[np.isfinite(a)])) if np.any(np.isfinite(a)) else float("nan")


def _distances(h: np.ndarray) -> np.ndarray:
    """(T, n, n) Euclidean distances between the n points of each record of h (T, n, F)."""
    d2 = np.sum((h[:, :, None, :] - h[:, None, :, :]) ** 2, axis=-1)
    return np.sqrt(np.maximum(d2, 0.0))


def _relative_change(d: np.ndarray) -> np.ndarray:
    """‖d_t − d_0‖_F / ‖d_0‖_F over the leading axis; NaN where d_0 is all zero."""
    ref = np.linalg.norm(d[0])
    change = np.linalg.norm((d - d[0]).reshape(d.shape[0], -1), axis=1)
    return change / ref if ref > 0 else np.full(d.shape[0], np.nan)


def compare_with_kernel(
    network: Network,
    params,
    x,
    y,
    *,
    lr: float,
    steps: int,
    record_every: int = 10,
    kernel_every: int | None = None,
    layer: int = 0,
    gain: float = float("nan"),
    seed: int = -1,
) -> LazyRun:
    """Train ``network`` from ``params`` by full-batch descent and compare with its kernel
    prediction (module docstring). One run; everything is computed in the network's dtype
    except the error measures (float64 NumPy).

    Arguments:
        network: from ``make_network`` (a dropout network is trained with dropout, but the
            kernel and the records are without it).
        params: initial parameters.
        x: inputs (n, in_dim); y: targets (n, out_dim).
        lr: learning rate (> 0) of the loss 0.5·mse.
        steps: descent steps (≥ 1), a multiple of ``kernel_every``.
        record_every: steps between records of the outputs and hidden representations;
            divides ``kernel_every``.
        kernel_every: steps between kernel snapshots (and training segments); default
            ``steps`` (kernels at init and at the end only).
        layer: hidden layer whose distances are recorded.
        gain, seed: stored with the result (labels only).

    Returns:
        A ``LazyRun``.

    Raises:
        ValueError: for steps, record_every or kernel_every that are not positive integers
            dividing each other as stated, or lr ≤ 0.
    """
    steps = checks.integer("steps", steps, minimum=1)
    record_every = checks.integer("record_every", record_every, minimum=1)
    kernel_every = steps if kernel_every is None else kernel_every
    kernel_every = checks.integer("kernel_every", kernel_every, minimum=1)
    if steps % kernel_every:
        raise ValueError(f"kernel_every={kernel_every} must divide steps={steps}")
    if kernel_every % record_every:
        raise ValueError(f"record_every={record_every} must divide kernel_every={kernel_every}")
    checks.values("lr", lr, positive=True, scalar=True)
    x = jnp.asarray(x, network.dtype)
    y = jnp.asarray(y, network.dtype)
    k0 = ntk.empirical_ntk(network, params, x)
    lam_max = float(np.linalg.eigvalsh(np.asarray(ntk.flatten_kernel(k0), np.float64))[-1])
    snapshots, outputs, hidden, loss = [params], [], [], []
    diverged = False
    current = params
    for segment in range(steps // kernel_every):
        snaps, current = train_epochs(
            network,
            x,
            y,
            key=jax.random.key(0),  # full batch, parameters given: the key is unused
            lr=lr,
            epochs=kernel_every,
            layer=layer,
            record_every=record_every,
            params=current,
            return_params=True,
        )
        keep = slice(0 if segment == 0 else 1, None)  # each segment re-records its start
        outputs.append(np.asarray(snaps.outputs, np.float64)[keep])
        hidden.append(np.asarray(snaps.hidden, np.float64)[keep])
        loss.append(np.asarray(snaps.loss, np.float64)[keep])
        diverged = diverged or bool(snaps.diverged)
        snapshots.append(current)
    outputs, hidden, loss = (np.concatenate(a) for a in (outputs, hidden, loss))
    times = np.arange(outputs.shape[0]) * record_every
    y64 = np.asarray(y, np.float64)
    linear = np.asarray(
        ntk.linearized_outputs(k0, outputs[0], y64, lr=lr, times=times, mode="descent"),
        np.float64,
    )
    scale = np.linalg.norm(outputs[0] - y64)
    error = np.linalg.norm((outputs - linear).reshape(len(times), -1), axis=1) / scale
    kernels = ntk.kernel_over_training(network, snapshots, x)
    kd = np.asarray(ntk.kernel_distance(kernels[0], kernels), np.float64)
    if diverged:  # kernels of non-finite parameters
        kd = np.where(np.isfinite(kd), kd, np.nan)
    return LazyRun(
        gain=float(gain),
        seed=int(seed),
        lr=float(lr),
        lam_max=lam_max,
        times=times.astype(np.float64),
        outputs=outputs,
        linear=linear,
        loss=loss,
        linear_loss=0.5 * np.mean((linear - y64) ** 2, axis=(1, 2)),
        output_error=error,
        hidden_change=_relative_change(_distances(hidden)),
        kernel_times=np.arange(len(snapshots), dtype=np.float64) * kernel_every,
        kernel_distance=kd,
        diverged=diverged,
    )


@dataclasses.dataclass(frozen=True)
class LazyResult:
    """The lazy-limit experiment: large- and small-gain runs against their kernel
    predictions.

    Attributes:
        settings: every setting (network, data, steps, lr rule, gains, seeds, precision).
        runs: ``{"large": [LazyRun per seed], "small": [...]}``.
        tolerance: the bound on the large-gain maximum output error (``LAZY_TOLERANCE``
            unless given).
        verdict: the headline comparison: per regime the mean, min and max over seeds of
            the maximum output error, hidden change and kernel distance; whether every
            large-gain run is within the tolerance; the ratio of the smallest small-gain
            error to the largest large-gain error.
        timing: wall-clock seconds (training and analysis; runs found cached cost ~0).
    """

    settings: Mapping[str, Any]
    runs: Mapping[str, Sequence[LazyRun]]
    tolerance: float
    verdict: Mapping[str, Any]
    timing: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return dict(
            settings=dict(self.settings),
            tolerance=self.tolerance,
            verdict=dict(self.verdict),
            timing=dict(self.timing),
            runs={k: [r.to_json() for r in v] for k, v in self.runs.items()},
        )


def _stats(values) -> dict[str, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return dict(mean=float("nan"), min=float("nan"), max=float("nan"))
    return dict(mean=float(np.mean(v)), min=float(np.min(v)), max=float(np.max(v)))


def _verdict(runs: Mapping[str, Sequence[LazyRun]], tolerance: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for regime, rs in runs.items():
        heads = [r.headline() for r in rs]
        out[regime] = {
            key: _stats([h[key] for h in heads])
            for key in ("max_output_error", "max_hidden_change", "final_kernel_distance")
        }
        out[regime]["diverged"] = int(sum(h["diverged"] for h in heads))
    large = [r.headline()["max_output_error"] for r in runs["large"]]
    small = [r.headline()["max_output_error"] for r in runs["small"]]
    out["large_within_tolerance"] = bool(all(np.isfinite(large)) and max(large) <= tolerance)
    ratio = np.nanmin(small) / max(large) if np.all(np.isfinite(large)) else float("nan")
    out["small_over_large_error"] = float(ratio)
    out["small_fails_kernel"] = bool(np.nanmin(small) >= RICH_FACTOR * tolerance)
    out["text"] = (
        f"large gain: max output error {max(large):.4f} over seeds (tolerance {tolerance}); "
        f"small gain: at least {np.nanmin(small):.3f} ({ratio:.1f}x); kernel distance at "
        f"the end {out['large']['final_kernel_distance']['mean']:.3f} vs "
        f"{out['small']['final_kernel_distance']['mean']:.3f}; hidden change "
        f"{out['large']['max_hidden_change']['mean']:.4f} vs "
        f"{out['small']['max_hidden_change']['mean']:.3f}"
    )
    return out


def _data(task: str, dtype):
    return data.xor(dtype=dtype) if task == "xor" else data.hierarchy(dtype=dtype)


def _cache_path(root: Path, settings: Mapping[str, Any]) -> Path:
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return root / f"lazy-{hashlib.sha256(text.encode()).hexdigest()[:16]}.npz"


def _save(path: Path, run: LazyRun, settings: Mapping[str, Any]) -> None:
    buf = io.BytesIO()
    scalars = dict(gain=run.gain, seed=run.seed, lr=run.lr, lam_max=run.lam_max)
    np.savez(
        buf,
        settings=np.asarray(json.dumps(dict(settings), sort_keys=True)),
        scalars=np.asarray(json.dumps(scalars)),
        diverged=np.asarray(run.diverged),
        **run.arrays(),
    )
    atomic_write(path, buf.getvalue())


def _load(path: Path) -> LazyRun:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k not in ("settings", "scalars", "diverged")}
        scalars = json.loads(str(f["scalars"]))
        diverged = bool(f["diverged"])
    return LazyRun(**scalars, diverged=diverged, **arrays)


def run_lazy(
    *,
    task: str = "hierarchy",
    width: int = 1024,
    depth: int = 2,
    activation: str = "leaky_relu",
    large_gain: float = 3.0,
    small_gain: float = 0.3,
    steps: int = 1000,
    record_every: int = 10,
    kernel_every: int = 100,
    lr_fraction: float = 0.5,
    tolerance: float = LAZY_TOLERANCE,
    seeds: int | None = None,
    first_seed: int = 0,
    quick: bool = False,
    float64: bool = False,
    out: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> LazyResult:
    """Train a wide MLP at a large and at a small gain and compare each with its kernel
    prediction (module docstring).

    Defaults: the hierarchy (8 one-hot items, 15 outputs); MLP of width 1024 and depth 2
    (two hidden layers), leaky ReLU, hidden distances at layer ``depth // 2``; gains 3.0
    and 0.3; 1,000 descent steps at lr = 0.5·N/λ_max(K_0); records every 10 steps, kernels
    every 100; float32 training. ``quick`` changes only the number of seeds (1 instead of
    3). Measured on the project's 2-core CPU shared with other jobs (load 4-10): 8.7 min
    (522 s) for 3 seeds, 4.5 min (270 s) for ``quick``.

    Tolerance (``LAZY_TOLERANCE`` = 0.05): at the defaults the large-gain maximum output
    error is 0.025 (seeds 0 and 1: 0.0247, 0.0252), with the kernel moving by 7.6-8.0 %
    and the hidden distances by 1.7-2.2 %; the linearisation's error is a finite-size
    effect of the order of a third of the kernel's own change. 0.05 leaves a margin of 2x
    and still rejects a prediction with a wrong time scale (lr/N doubled or halved gives
    errors of 0.15-0.17 on the wide-network case of ``tests/test_ntk.py``). The small-gain runs must
    exceed ``RICH_FACTOR`` x 0.05 = 0.2; measured 0.57-0.58, with the kernel moving by
    230 % and the hidden distances by a factor 28.

    Arguments:
        task: "hierarchy" (default) or "xor" (4 points, 1 output; see the module
            docstring).
        width, depth, activation: the MLP (``make_network("mlp", ...)``).
        large_gain, small_gain: the two init gains (> 0).
        steps, record_every, kernel_every: as ``compare_with_kernel``.
        lr_fraction: lr = lr_fraction · N / λ_max(K_0) per run (> 0; < 2 for a stable
            linear model).
        tolerance: bound on the large-gain maximum output error used by the verdict
            (default ``LAZY_TOLERANCE``, stated for the default sizes; smaller networks
            need a looser one, the error growing about as 1/√width).
        seeds: seeds per gain (default 3; 1 with ``quick``); first_seed: the first.
        quick: one seed unless ``seeds`` is given.
        float64: train and compare in float64 (initial parameters drawn in float64).
        out: directory for ``summary.json``, ``lazy_records.npz`` and the figures; runs
            are cached under ``out/sweeps/lazy`` (a temporary directory if None).
        progress: function called with a status line per run (default: stderr).

    Returns:
        A ``LazyResult``.

    Raises:
        ValueError: for an unknown task, non-positive sizes, gains or lr_fraction, or
            inconsistent steps.
    """
    t_start = time.perf_counter()
    task = checks.choice("task", task, _TASKS)
    seeds = (1 if quick else 3) if seeds is None else seeds
    seeds = checks.integer("seeds", seeds, minimum=1)
    first_seed = checks.integer("first_seed", first_seed, minimum=0)
    for name, value in (("large_gain", large_gain), ("small_gain", small_gain)):
        checks.values(name, value, positive=True, scalar=True)
    checks.values("lr_fraction", lr_fraction, positive=True, scalar=True)
    checks.values("tolerance", tolerance, positive=True, scalar=True)
    float64 = checks.boolean("float64", float64)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    dtype = jnp.float64 if float64 else jnp.float32
    settings = dict(
        task=task,
        arch="mlp",
        width=int(width),
        depth=int(depth),
        activation=activation,
        layer=int(depth) // 2,
        large_gain=float(large_gain),
        small_gain=float(small_gain),
        steps=int(steps),
        record_every=int(record_every),
        kernel_every=int(kernel_every),
        lr_rule="lr = lr_fraction * n * out_dim / lambda_max(K_0), per run",
        lr_fraction=float(lr_fraction),
        seeds=list(range(first_seed, first_seed + seeds)),
        precision="float64" if float64 else "float32",
        loss="0.5 * mse, full-batch gradient descent",
        output_error="max over records of ||f_t - f_lin_t||_F / ||f_0 - y*||_F",
        hidden_change="||D_t - D_0||_F / ||D_0||_F, D = distance matrix at the layer",
        kernel_distance="||K_t - K_0||_F / ||K_0||_F",
    )
    runs: dict[str, list[LazyRun]] = {"large": [], "small": []}
    t_train = 0.0
    with store_root(out) as root, jax.enable_x64(float64):
        cache = Path(root) / "lazy"
        cache.mkdir(parents=True, exist_ok=True)
        x, y = _data(task, dtype)
        net = make_network(
            "mlp",
            in_dim=x.shape[1],
            out_dim=y.shape[1],
            width=width,
            depth=depth,
            activation=activation,
            dtype=dtype,
        )
        for regime, gain in (("large", large_gain), ("small", small_gain)):
            for seed in settings["seeds"]:
                key = dict(settings, gain=float(gain), seed=seed)
                for k in ("seeds", "large_gain", "small_gain"):
                    key.pop(k)
                path = _cache_path(cache, key)
                if path.exists():
                    run = _load(path)
                    how = "cached"
                else:
                    t0 = time.perf_counter()
                    params = net.init(split_run_key(jax.random.key(seed))[0], gain=gain)
                    k0 = ntk.empirical_ntk(net, params, x)
                    lam = np.linalg.eigvalsh(np.asarray(ntk.flatten_kernel(k0), np.float64))
                    lr = float(lr_fraction * y.size / lam[-1])
                    run = compare_with_kernel(
                        net,
                        params,
                        x,
                        y,
                        lr=lr,
                        steps=steps,
                        record_every=record_every,
                        kernel_every=kernel_every,
                        layer=settings["layer"],
                        gain=gain,
                        seed=seed,
                    )
                    _save(path, run, key)
                    t_train += time.perf_counter() - t0
                    how = f"{time.perf_counter() - t0:.0f} s"
                runs[regime].append(run)
                h = run.headline()
                say(
                    f"  lazy {regime} gain {gain} seed {seed}: output error max "
                    f"{h['max_output_error']:.4f}, hidden change {h['max_hidden_change']:.4f},"
                    f" kernel distance {h['final_kernel_distance']:.4f} ({how})"
                )
    result = LazyResult(
        settings=settings,
        runs=runs,
        tolerance=float(tolerance),
        verdict=_verdict(runs, float(tolerance)),
        timing=dict(train_s=t_train, total_s=time.perf_counter() - t_start),
    )
    if out is not None:
        from rep_align import plots
        from rep_align.plots import lazy as lazy_plots

        write_json(os.path.join(out, "summary.json"), result.to_json())
        np.savez_compressed(
            os.path.join(out, "lazy_records.npz"),
            **{
                f"{regime}_seed{r.seed}_{k}": v
                for regime, rs in runs.items()
                for r in rs
                for k, v in r.arrays().items()
            },
        )
        summary = result.to_json()
        plots.save(lazy_plots.lazy_errors(summary), os.path.join(out, "lazy_errors.png"))
        arrays = {k: [r.arrays() for r in v] for k, v in runs.items()}
        plots.save(lazy_plots.lazy_outputs(summary, arrays), os.path.join(out, "lazy_outputs.png"))
    return result
