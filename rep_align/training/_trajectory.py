"""The record of a run (``Trajectory``), the loss, and the steps every run shares.

``train``, ``gradient_flow`` and ``train_ensemble`` (``rep_align.training``) validate data
and pair with ``prepare_data``, derive their keys with ``split_run_key``, record with
``observe``/``record`` (the loss and the pair observables of docs/theory.md §1) and pack the
result with ``finish``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from rep_align.networks import Network
from rep_align.observables import pair_observables

_FORMAT = "rep_align.Trajectory/1"


class Trajectory(eqx.Module):
    """Recorded training dynamics of one run (or a batch of runs, with leading axes).

    Shapes are for one run; vmapped runs add leading batch axes to every field.

    Attributes:
        times: (T,) record times in gradient steps (floats, for descent and flow alike).
        loss: (T,) full-batch loss 0.5·mse, evaluated without dropout.
        h: (T, num_hidden) squared representational distance ‖Δh‖² of the pair, per
            hidden layer.
        y: (T,) squared output distance ‖Δŷ‖².
        w: (T,) y − Δy*·Δŷ.
        m: (T,) squared error of the pair's mean output.
        dx2, dy2: () squared input and target distances of the pair.
        diverged: () True if the loss became non-finite.
        diverged_step: () first step with non-finite loss, −1 if none. For gradient flow,
            the first save time (rounded down) at which the loss was non-finite.
            Records at and after that time are NaN.
        n_steps: () gradient-descent steps taken, or solver steps (accepted and rejected)
            of gradient flow.
        solver_ok: () False if the ODE solver failed (e.g. max_steps reached); records it
            did not reach are NaN. Always True for ``train``.
    """

    times: Float[Array, " T"]
    loss: Float[Array, " T"]
    h: Float[Array, "T layers"]
    y: Float[Array, " T"]
    w: Float[Array, " T"]
    m: Float[Array, " T"]
    dx2: Float[Array, ""]
    dy2: Float[Array, ""]
    diverged: Bool[Array, ""]
    diverged_step: Int[Array, ""]
    n_steps: Int[Array, ""]
    solver_ok: Bool[Array, ""]

    @property
    def num_hidden(self) -> int:
        """Number of hidden layers recorded (last axis of ``h``)."""
        return self.h.shape[-1]

    def save(self, path: str) -> None:
        """Write every field to an ``.npz`` file at exactly ``path`` (no pickling).

        Batched (vmapped) trajectories are saved as they are, with their leading axes.
        """
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}
        with open(path, "wb") as fh:
            np.savez(fh, __format__=np.asarray(_FORMAT), **arrays)

    @classmethod
    def load(cls, path: str) -> Trajectory:
        """Read a file written by ``save``; fields come back as NumPy arrays, bit for bit.

        Raises:
            ValueError: if the file is not a saved ``Trajectory``.
        """
        with np.load(path, allow_pickle=False) as data:
            if "__format__" not in data.files or str(data["__format__"]) != _FORMAT:
                raise ValueError(f"{path!r} is not a saved rep_align Trajectory ({_FORMAT})")
            names = [f.name for f in dataclasses.fields(cls)]
            missing = [n for n in names if n not in data.files]
            if missing:
                raise ValueError(f"{path!r} lacks Trajectory fields {missing}")
            return cls(**{n: data[n] for n in names})


class Record(NamedTuple):
    """The quantities recorded at one time: loss, h (per hidden layer), y, w, m."""

    loss: Array
    h: Array
    y: Array
    w: Array
    m: Array


def loss_fn(
    params: PyTree,
    network: Network,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    train: bool = False,
    key: PRNGKeyArray | None = None,
) -> tuple[Float[Array, ""], tuple[Array, tuple[Array, ...]]]:
    """L = 0.5 · mean((ŷ − y*)²) over points and output units, with the forward pass.

    Returns:
        ``(loss, (output, hiddens))``, ready for ``jax.value_and_grad(..., has_aux=True)``
        so the observables reuse the forward pass that the gradient needed anyway.
    """
    out, hiddens = network.apply(params, x, train=train, key=key)
    return 0.5 * jnp.mean((out - y) ** 2), (out, hiddens)


def record(loss: Array, x: Array, y: Array, out: Array, hiddens: tuple, pair) -> Record:
    """Pack a loss and the pair observables (docs/theory.md §1) into a ``Record``."""
    obs = pair_observables(x, y, out, hiddens, pair=pair)
    return Record(loss, obs.h, obs.y, obs.w, obs.m)


def observe(params: PyTree, network: Network, x: Array, y: Array, pair) -> Record:
    """The full-data record (no dropout) of one parameter set."""
    loss, (out, hiddens) = loss_fn(params, network, x, y)
    return record(loss, x, y, out, hiddens, pair)


def prepare_data(network: Network, x: Any, y: Any, pair: Any) -> tuple[Array, Array, tuple]:
    """Validate shapes and the pair, and cast the data to the network's dtype.

    Returns ``(x, y, (a, b))`` with x (n, in_dim), y (n, out_dim) and the pair as ints.

    Raises:
        ValueError: for a network not from ``make_network``, bad shapes or a bad pair.
    """
    if not isinstance(network, Network):
        raise ValueError(f"network must come from make_network, got {type(network).__name__}")
    x = jnp.asarray(x, network.dtype)
    y = jnp.asarray(y, network.dtype)
    if x.ndim != 2 or x.shape[1] != network.in_dim:
        raise ValueError(f"x must have shape (n, {network.in_dim}), got {tuple(x.shape)}")
    if y.ndim != 2 or y.shape != (x.shape[0], network.out_dim):
        raise ValueError(
            f"y must have shape ({x.shape[0]}, {network.out_dim}), got {tuple(y.shape)}"
        )
    n = x.shape[0]
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in pair)
    ):
        raise ValueError(f"pair must be two integer indices, got {pair!r}")
    a, b = (int(i) for i in pair)
    if a == b or not (0 <= a < n and 0 <= b < n):
        raise ValueError(f"pair must be two distinct indices in [0, {n}), got {pair!r}")
    return x, y, (a, b)


def split_run_key(key: PRNGKeyArray) -> tuple[PRNGKeyArray, PRNGKeyArray, PRNGKeyArray]:
    """The (init, shuffle, dropout) keys of one run, from its ``key``.

    ``train``, ``gradient_flow`` and ``rep_align.dynamics`` draw the initial parameters
    from the first, so the same key gives the same initial network everywhere; ``train``
    shuffles mini-batches with the second and draws dropout masks from the third.

    Arguments:
        key: a JAX PRNG key.

    Returns:
        ``(init_key, shuffle_key, dropout_key)``.
    """
    init_key, shuffle_key, dropout_key = jax.random.split(key, 3)
    return init_key, shuffle_key, dropout_key


def initial_params(
    network: Network, params: PyTree | None, gain: Any, init_key: PRNGKeyArray
) -> PyTree:
    """``params`` if given, else ``network.init(init_key, gain=gain)``."""
    if params is not None:
        return params
    return network.init(init_key, gain=gain)


def finish(
    times: Array,
    recs: Record,
    x: Array,
    y: Array,
    pair: tuple[int, int],
    diverged_step: Array,
    n_steps: Array,
    solver_ok: Array,
) -> Trajectory:
    """Blank out records from the divergence on and pack a ``Trajectory``."""
    a, b = pair
    diverged = diverged_step >= 0
    bad = diverged & (times >= diverged_step)
    recs = jax.tree_util.tree_map(
        lambda v: jnp.where(bad.reshape(bad.shape + (1,) * (v.ndim - 1)), jnp.nan, v), recs
    )
    return Trajectory(
        times=times,
        loss=recs.loss,
        h=recs.h,
        y=recs.y,
        w=recs.w,
        m=recs.m,
        dx2=jnp.sum((x[b] - x[a]) ** 2),
        dy2=jnp.sum((y[b] - y[a]) ** 2),
        diverged=diverged,
        diverged_step=diverged_step.astype(jnp.int32),
        n_steps=jnp.asarray(n_steps, jnp.int32),
        solver_ok=jnp.asarray(solver_ok, bool),
    )
