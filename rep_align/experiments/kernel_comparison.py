"""One trained network against the prediction of its tangent kernel at init: the
computation behind the lazy-limit experiment (``experiments.lazy``, whose docstring defines
the output error, the hidden change and the kernel distance).

``compare_with_kernel`` trains a network from given parameters and compares, all in one
call (for notebooks and tests). The experiment instead reads the training record from the
run store and only needs the parameters along training for the kernels: ``replay`` trains
the run once more in segments from ``initial_params`` (the engine's initial network of the
run), and ``kernel_comparison`` sets the stored record against the kernels.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import checks, ntk
from rep_align.files import npz_field
from rep_align.networks import Network
from rep_align.observables import pairwise_squared_distances
from rep_align.training import split_run_key, train_epochs

__all__ = ["LazyRun", "compare_with_kernel", "initial_params", "kernel_comparison", "replay"]


def _nanmax(a) -> float:
    a = np.asarray(a, float)
    return float(np.max(a[np.isfinite(a)])) if np.any(np.isfinite(a)) else float("nan")


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
        loss, linear_loss: (T,) 0.5·mse of the trained and of the predicted outputs.
        output_error: (T,) e(t) = ‖f_t − f_lin,t‖ / ‖f_0 − y*‖.
        hidden_change: (T,) ‖D_t − D_0‖ / ‖D_0‖ at the recorded layer.
        kernel_times: (K,) times of the kernel snapshots.
        kernel_distance: (K,) ‖K_t − K_0‖ / ‖K_0‖.
        diverged: whether the training loss became non-finite.
        outputs: (T, n, o) trained outputs (kept out of the JSON: ``npz_field``).
        linear: (T, n, o) kernel-predicted outputs (likewise).
        max_output_error, max_hidden_change, max_kernel_distance: maxima over the record
            (of the finite values); final_output_error, final_hidden_change,
            final_kernel_distance, initial_loss, final_loss, final_linear_loss: the first or
            last value (computed from the arrays).
    """

    gain: float
    seed: int
    lr: float
    lam_max: float
    times: np.ndarray
    loss: np.ndarray
    linear_loss: np.ndarray
    output_error: np.ndarray
    hidden_change: np.ndarray
    kernel_times: np.ndarray
    kernel_distance: np.ndarray
    diverged: bool
    outputs: np.ndarray = npz_field(repr=False)
    linear: np.ndarray = npz_field(repr=False)
    max_output_error: float = dataclasses.field(init=False)
    final_output_error: float = dataclasses.field(init=False)
    max_hidden_change: float = dataclasses.field(init=False)
    final_hidden_change: float = dataclasses.field(init=False)
    max_kernel_distance: float = dataclasses.field(init=False)
    final_kernel_distance: float = dataclasses.field(init=False)
    initial_loss: float = dataclasses.field(init=False)
    final_loss: float = dataclasses.field(init=False)
    final_linear_loss: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        scalars = dict(
            max_output_error=_nanmax(self.output_error),
            final_output_error=float(self.output_error[-1]),
            max_hidden_change=_nanmax(self.hidden_change),
            final_hidden_change=float(self.hidden_change[-1]),
            max_kernel_distance=_nanmax(self.kernel_distance),
            final_kernel_distance=float(self.kernel_distance[-1]),
            initial_loss=float(self.loss[0]),
            final_loss=float(self.loss[-1]),
            final_linear_loss=float(self.linear_loss[-1]),
        )
        for name, value in scalars.items():
            object.__setattr__(self, name, value)


def _relative_change(d: np.ndarray) -> np.ndarray:
    """‖d_t − d_0‖_F / ‖d_0‖_F over the leading axis; NaN where d_0 is all zero."""
    ref = np.linalg.norm(d[0])
    change = np.linalg.norm((d - d[0]).reshape(d.shape[0], -1), axis=1)
    return change / ref if ref > 0 else np.full(d.shape[0], np.nan)


def _distances(h: np.ndarray) -> np.ndarray:
    """(T, n, n) Euclidean distances between the n points of each record of h (T, n, F),
    float64."""
    with jax.enable_x64(True):
        d2 = [np.asarray(pairwise_squared_distances(np.asarray(r, np.float64))) for r in h]
    return np.sqrt(np.stack(d2))


def _segments(network: Network, params, x, y, *, lr, steps, record_every, kernel_every, layer):
    """Full-batch descent from ``params`` in segments of ``kernel_every`` steps: the
    parameters at every segment end (and at the start), and the records as float64."""
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
    return snapshots, dict(outputs=outputs, hidden=hidden, loss=loss, diverged=diverged)


def _compare(network, snapshots, x, y, record, *, lr, record_every, kernel_every, gain, seed):
    """The ``LazyRun`` of a record (outputs, hidden, loss, diverged) and the parameters at
    the kernel snapshots."""
    k0 = ntk.empirical_ntk(network, snapshots[0], x)
    outputs = np.asarray(record["outputs"], np.float64)
    times = np.arange(outputs.shape[0]) * record_every
    y64 = np.asarray(y, np.float64)
    linear = np.asarray(
        ntk.linearized_outputs(k0, outputs[0], y64, lr=lr, times=times, mode="descent"),
        np.float64,
    )
    scale = np.linalg.norm(outputs[0] - y64)
    error = np.linalg.norm((outputs - linear).reshape(len(times), -1), axis=1) / scale
    diverged = bool(record["diverged"])
    kernels = ntk.kernel_over_training(network, snapshots, x)
    kd = np.asarray(ntk.kernel_distance(kernels[0], kernels), np.float64)
    if diverged:  # kernels of non-finite parameters
        kd = np.where(np.isfinite(kd), kd, np.nan)
    return LazyRun(
        gain=float(gain),
        seed=int(seed),
        lr=float(lr),
        lam_max=ntk.largest_eigenvalue(k0),
        times=times.astype(np.float64),
        loss=np.asarray(record["loss"], np.float64),
        linear_loss=0.5 * np.mean((linear - y64) ** 2, axis=(1, 2)),
        output_error=error,
        hidden_change=_relative_change(_distances(np.asarray(record["hidden"], np.float64))),
        kernel_times=np.arange(len(snapshots), dtype=np.float64) * kernel_every,
        kernel_distance=kd,
        diverged=diverged,
        outputs=outputs,
        linear=linear,
    )


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
    prediction (``experiments.lazy``). One run; everything is computed in the network's
    dtype except the error measures (float64 NumPy).

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
    snapshots, record = _segments(
        network,
        params,
        x,
        y,
        lr=lr,
        steps=steps,
        record_every=record_every,
        kernel_every=kernel_every,
        layer=layer,
    )
    return _compare(
        network,
        snapshots,
        x,
        y,
        record,
        lr=lr,
        record_every=record_every,
        kernel_every=kernel_every,
        gain=gain,
        seed=seed,
    )


@functools.partial(jax.jit, static_argnums=0)
def _init(network: Network, seed, gain):
    return network.init(split_run_key(jax.random.key(seed))[0], gain=gain)


def initial_params(network: Network, seed: int, gain: float):
    """The initial parameters of the engine's run of ``seed`` at ``gain``: drawn inside a
    compiled program from the run's key, as ``training.train_epochs`` draws them (drawn
    outside one, float32 rounding can differ in the last bit)."""
    return _init(network, jnp.asarray(seed, jnp.uint32), jnp.asarray(gain, network.dtype))


def replay(network: Network, params, x, y, run: Any, kernel_every: int):
    """Train the points run ``run`` (a ``RunConfig``) once more from ``params``, in segments
    of ``kernel_every`` epochs: ``(parameters at every segment end and the start, outputs
    (T, n, o) float64)``."""
    snapshots, record = _segments(
        network,
        params,
        x,
        y,
        lr=run.lr,
        steps=run.epochs,
        record_every=run.record_every,
        kernel_every=kernel_every,
        layer=run.layer_index,
    )
    return snapshots, record["outputs"]


def kernel_comparison(
    network: Network,
    snapshots: Sequence[Any],
    x,
    y,
    run: Any,
    record: Mapping[str, np.ndarray],
    kernel_every: int,
) -> LazyRun:
    """The ``LazyRun`` of the stored ``record`` of ``run`` (a points ``RunConfig``), with
    the kernels at ``snapshots`` (``replay``), ``kernel_every`` epochs apart."""
    return _compare(
        network,
        snapshots,
        x,
        y,
        record,
        lr=run.lr,
        record_every=run.record_every,
        kernel_every=kernel_every,
        gain=run.gain,
        seed=run.seed,
    )
