"""Instruments of the lazy limit: the empirical neural tangent kernel and linearised training.

Near the lazy limit (large initial weights, docs/theory.md §3, (3.4): the initial
representation is kept) a network trains as its first-order Taylor model in the parameters,
f_lin(θ) = f(θ0) + J(θ0)·(θ − θ0), whose function-space dynamics are set by the empirical
neural tangent kernel K = J Jᵀ (Jacot, Gabriel & Hongler 2018, "Neural Tangent Kernel:
Convergence and Generalization in Neural Networks"; Lee et al. 2019, "Wide Neural Networks of
Any Depth Evolve as Linear Models Under Gradient Descent"). This module computes that kernel
for any network of ``rep_align.networks`` and the closed-form outputs of the linearised model
under the library's loss, so that a caller can measure how far a trained network is from the
lazy limit (``kernel_distance`` over training, and outputs against the linear prediction).

Conventions:

- K[i, j, a, b] = Σ_θ ∂f_a(x1_i)/∂θ · ∂f_b(x2_j)/∂θ, summed over every parameter (every leaf
  of the parameter pytree), shape (n1, n2, o, o); f is the network output (o = out_dim) or a
  hidden activation, flattened (o = its size), so that an encoder kernel for Δh is available.
  The network is evaluated without dropout.
- Loss L = 0.5 · mean over the n points and o output units of (f − y)², as
  ``rep_align.training.loss_fn``; time is in gradient steps of learning rate lr. For the
  linear model one step θ ← θ − lr·∇L moves the outputs, flattened to N = n·o entries, by
  f ← f − (lr/N)·K·(f − y), since ∇L = Jᵀ(f − y)/N.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from rep_align import checks
from rep_align.networks import Network

__all__ = [
    "empirical_ntk",
    "flatten_kernel",
    "kernel_distance",
    "kernel_over_training",
    "largest_eigenvalue",
    "lazy_learning_rate",
    "linearized_outputs",
]

METHODS: tuple[str, ...] = ("jacobian", "jvp")
MODES: tuple[str, ...] = ("flow", "descent")


# ------------------------------------------------------------------------------ kernel


def _features(network: Network, output: str | int, params: PyTree, x: Array) -> Array:
    """The selected output of a batch x (c, in_dim), flattened per point: (c, o)."""
    out, hiddens = network.apply(params, x)
    a = out if output == "out" else hiddens[output]
    return a.reshape(a.shape[0], -1)


def _jacobian(network: Network, output: str | int, params: PyTree, x: Array) -> list[Array]:
    """Per-point Jacobians of the points x (c, in_dim): one (c, o, size) array per leaf."""

    def one(p: PyTree, xi: Array) -> Array:
        return _features(network, output, p, xi[None])[0]

    jac = jax.vmap(jax.jacrev(one), in_axes=(None, 0))(params, x)
    return [leaf.reshape(leaf.shape[0], leaf.shape[1], -1) for leaf in jax.tree.leaves(jac)]


def _contract(j1: list[Array], j2: list[Array]) -> Array:
    """Σ over leaves and parameters of J1[i, a, p]·J2[j, b, p]: (c1, c2, o, o)."""
    return sum(jnp.einsum("iap,jbp->ijab", a, b) for a, b in zip(j1, j2, strict=True))


def _chunked(x: Array, chunk: int) -> Array:
    """x (n, d) padded with copies of its first row to a multiple of chunk: (m, chunk, d)."""
    n = x.shape[0]
    m = -(-n // chunk)
    pad = jnp.broadcast_to(x[:1], (m * chunk - n, x.shape[1]))
    return jnp.concatenate([x, pad]).reshape(m, chunk, x.shape[1])


def _kernel_jacobian(network, output, params, x1, x2, chunk):
    if chunk is None:
        j1 = _jacobian(network, output, params, x1)
        j2 = j1 if x2 is None else _jacobian(network, output, params, x2)
        return _contract(j1, j2)
    n1 = x1.shape[0]
    x2 = x1 if x2 is None else x2
    n2 = x2.shape[0]
    c2 = _chunked(x2, chunk)

    def block_row(x1c: Array) -> Array:
        j1 = _jacobian(network, output, params, x1c)
        return jax.lax.map(lambda x2c: _contract(j1, _jacobian(network, output, params, x2c)), c2)

    blocks = jax.lax.map(block_row, _chunked(x1, chunk))  # (m1, m2, c, c, o, o)
    m1, m2, _, _, o, _ = blocks.shape
    k = blocks.transpose(0, 2, 1, 3, 4, 5).reshape(m1 * chunk, m2 * chunk, o, o)
    return k[:n1, :n2]


def _kernel_jvp(network, output, params, x1, x2, chunk):
    x2 = x1 if x2 is None else x2
    n2 = x2.shape[0]
    # Forward-mode linearisation on all of x1: applying it to a tangent v gives J1·v without
    # ever forming J1 (only the forward pass's residuals are stored).
    _, push = jax.linearize(lambda p: _features(network, output, p, x1), params)

    def columns(xj: Array) -> Array:
        out, pull = jax.vjp(lambda p: _features(network, output, p, xj[None])[0], params)
        (tangents,) = jax.vmap(pull)(jnp.eye(out.shape[0], dtype=out.dtype))  # Jᵀ·e_b
        return jax.vmap(push)(tangents)  # (o_b, n1, o_a)

    if chunk is None:
        cols = jax.vmap(columns)(x2)
    else:
        cols = jax.lax.map(jax.vmap(columns), _chunked(x2, chunk))
        cols = cols.reshape(-1, *cols.shape[2:])[:n2]
    return cols.transpose(2, 0, 3, 1)  # K[i, j, a, b] = cols[j, b, i, a]


@functools.partial(jax.jit, static_argnames=("network", "output", "method", "chunk"))
def _ntk_core(params, x1, x2, *, network, output, method, chunk):
    kernel = _kernel_jacobian if method == "jacobian" else _kernel_jvp
    return kernel(network, output, params, x1, x2, chunk)


@functools.lru_cache(maxsize=64)
def _param_shapes(network: Network):
    shapes = jax.eval_shape(network.init, jax.random.key(0))
    return jax.tree.structure(shapes), [s.shape for s in jax.tree.leaves(shapes)]


def _check_params(network: Network, params: PyTree, name: str = "params", stacked=False):
    """Raise unless params has the network's structure and leaf shapes (each with one
    leading axis of a common length if ``stacked``); return that length or None."""
    structure, shapes = _param_shapes(network)
    if jax.tree.structure(params) != structure:
        raise ValueError(f"{name} does not have the structure of {network.arch} parameters")
    got = [tuple(np.shape(leaf)) for leaf in jax.tree.leaves(params)]
    if stacked:
        lengths = {g[0] if g else None for g in got}
        if len(lengths) != 1 or None in lengths or [g[1:] for g in got] != shapes:
            raise ValueError(f"{name} must have one leading snapshot axis on every leaf")
        return lengths.pop()
    if got != shapes:
        raise ValueError(f"{name} leaf shapes {got} differ from the network's {shapes}")
    return None


def _check_output(network: Network, output: Any) -> str | int:
    if isinstance(output, str):
        return checks.choice("output", output, ("out",))
    return checks.integer("output", output, minimum=0, maximum=network.num_hidden - 1)


def _check_inputs(network: Network, name: str, x: Any) -> Array:
    x = jnp.asarray(x, network.dtype)
    if x.ndim != 2 or x.shape[1] != network.in_dim or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, {network.in_dim}), got {tuple(x.shape)}")
    return x


def _check_kernel_settings(network, output, method, chunk_size):
    if not isinstance(network, Network):
        raise ValueError(f"network must come from make_network, got {type(network).__name__}")
    output = _check_output(network, output)
    method = checks.choice("method", method, METHODS)
    if chunk_size is not None:
        chunk_size = checks.integer("chunk_size", chunk_size, minimum=1)
    return output, method, chunk_size


def empirical_ntk(
    network: Network,
    params: PyTree,
    x1: Float[Array, "n1 in_dim"],
    x2: Float[Array, "n2 in_dim"] | None = None,
    *,
    chunk_size: int | None = None,
    method: str = "jacobian",
    output: str | int = "out",
) -> Float[Array, "n1 n2 o o"]:
    """Empirical neural tangent kernel of ``network`` at ``params`` (Jacot et al. 2018).

    K[i, j, a, b] = Σ_θ ∂f_a(x1_i)/∂θ · ∂f_b(x2_j)/∂θ, summed over every parameter leaf; f is
    evaluated without dropout. Compiled once per network, output, method, chunk size and
    shapes; new values of params and inputs compile nothing. One parameter set per call
    (``kernel_over_training`` maps over several).

    Memory: with ``method="jacobian"`` and no chunking, the per-point Jacobians of all
    points, (n1 + n2)·o rows of P = number of parameters. With ``chunk_size`` c, the kernel
    is built block by block (``lax.map`` over chunks of x1, and inside over chunks of x2,
    recomputing the x2 Jacobians per x1 chunk), so at most 2·c·o rows live at once. With
    ``method="jvp"``, J1 is never formed: each column (x2_j, b) is J1·(J2ᵀ e_jb), a
    vector-Jacobian product on x2_j followed by a forward-mode product on all of x1; the
    chunk size is then the number of x2 points whose c·o parameter-space vectors live at
    once (all n2 without chunking).

    Arguments:
        network: from ``make_network``.
        params: its parameter pytree (from ``network.init`` or training).
        x1: inputs (n1, in_dim); cast to ``network.dtype``.
        x2: inputs (n2, in_dim); default None means x1 (the Gram kernel, symmetric).
        chunk_size: points per chunk (≥ 1), or None (default) for all at once. The last
            chunk is padded with copies of the first point and the padding dropped.
        method: "jacobian" (default; reverse-mode per-point Jacobians, contracted) or
            "jvp" (vjp then jvp, no Jacobian of x1 stored).
        output: "out" (default) for the network output, o = out_dim; or a hidden layer's
            index in [0, ``network.num_hidden``), whose activation is flattened,
            o = prod(``network.hidden_shapes[output]``): the encoder kernel that drives Δh.

    Returns:
        K, shape (n1, n2, o, o), in the parameters' dtype.

    Raises:
        ValueError: for a network not from ``make_network``, params of the wrong structure
            or shapes, inputs of the wrong shape, an unknown method or output, or
            chunk_size < 1.
    """
    output, method, chunk_size = _check_kernel_settings(network, output, method, chunk_size)
    _check_params(network, params)
    x1 = _check_inputs(network, "x1", x1)
    if x2 is not None:
        x2 = _check_inputs(network, "x2", x2)
    return _ntk_core(
        params, x1, x2, network=network, output=output, method=method, chunk=chunk_size
    )


@functools.partial(jax.jit, static_argnames=("network", "output", "method", "chunk"))
def _ntk_stack(stacked, x, *, network, output, method, chunk):
    kernel = _kernel_jacobian if method == "jacobian" else _kernel_jvp
    return jax.vmap(lambda p: kernel(network, output, p, x, None, chunk))(stacked)


def kernel_over_training(
    network: Network,
    params: Sequence[PyTree] | PyTree,
    x: Float[Array, "n in_dim"],
    *,
    chunk_size: int | None = None,
    method: str = "jacobian",
    output: str | int = "out",
) -> Float[Array, "T n n o o"]:
    """Empirical kernels K_t on x at several parameter snapshots (vmapped over them).

    Pair it with ``kernel_distance(k[0], k)`` for ‖K_t − K_0‖_F/‖K_0‖_F over training: small
    near the lazy limit (docs/theory.md §3, (3.4); Lee et al. 2019), large in the rich
    regime. Memory is T times that of one ``empirical_ntk`` call.

    Arguments:
        network: from ``make_network``.
        params: a list or tuple of T parameter pytrees, or one pytree whose leaves carry a
            leading snapshot axis of length T (e.g. from a vmapped or scanned training).
        x: inputs (n, in_dim).
        chunk_size, method, output: as ``empirical_ntk``.

    Returns:
        K_t, shape (T, n, n, o, o).

    Raises:
        ValueError: as ``empirical_ntk``; for an empty list, or snapshots of the wrong
            structure or shapes.
    """
    output, method, chunk_size = _check_kernel_settings(network, output, method, chunk_size)
    if isinstance(params, list | tuple):
        if not params:
            raise ValueError("params must hold at least one snapshot, got an empty sequence")
        for t, p in enumerate(params):
            _check_params(network, p, name=f"params[{t}]")
        params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
    else:
        _check_params(network, params, stacked=True)
    x = _check_inputs(network, "x", x)
    return _ntk_stack(params, x, network=network, output=output, method=method, chunk=chunk_size)


def flatten_kernel(k: Float[Array, "n1 n2 o o"]) -> Float[Array, "n1*o n2*o"]:
    """The kernel as a matrix over flattened outputs: row i·o + a, column j·o + b.

    This ordering matches ``f.reshape(-1)`` of outputs f of shape (n, o).

    Raises:
        ValueError: unless k is 4-D with equal last two axes.
    """
    k = jnp.asarray(k)
    if k.ndim != 4 or k.shape[2] != k.shape[3]:
        raise ValueError(f"k must have shape (n1, n2, o, o), got {tuple(k.shape)}")
    n1, n2, o, _ = k.shape
    return k.transpose(0, 2, 1, 3).reshape(n1 * o, n2 * o)


def largest_eigenvalue(k: Float[Array, "n n o o"]) -> float:
    """λ_max of a Gram kernel over flattened outputs (``flatten_kernel``), in float64.

    Arguments:
        k: a symmetric kernel of shape (n, n, o, o), e.g. ``empirical_ntk(network, params, x)``.

    Returns:
        The largest eigenvalue, a Python float (NumPy's ``eigvalsh`` in float64).

    Raises:
        ValueError: as ``flatten_kernel``.
    """
    return float(np.linalg.eigvalsh(np.asarray(flatten_kernel(k), np.float64))[-1])


def lazy_learning_rate(
    network: Network, params: PyTree, x: Float[Array, "n in_dim"], *, fraction: float
) -> float:
    """Learning rate lr = fraction · N / λ_max(K_0) of plain descent near the lazy limit.

    K_0 is the empirical kernel of the network output at ``params`` on the n training
    points x and N = n·o the number of outputs. For the linear model one step of descent
    multiplies the error along K_0's top eigenvector by 1 − lr·λ_max/N = 1 − fraction
    (module docstring), so the step is a fixed fraction of the stability limit (fraction
    < 2) whatever the gain, and runs at different gains cover the same share of their
    slowest kernel mode per step.

    Arguments:
        network: from ``make_network``.
        params: its initial parameters.
        x: the training inputs (n, in_dim).
        fraction: lr·λ_max/N (> 0).

    Returns:
        The learning rate, a Python float (λ_max from ``largest_eigenvalue``, float64).

    Raises:
        ValueError: for fraction ≤ 0, or as ``empirical_ntk``.
    """
    checks.values("fraction", fraction, positive=True, scalar=True)
    k0 = empirical_ntk(network, params, x)
    outputs = k0.shape[0] * k0.shape[2]
    return float(fraction * outputs / largest_eigenvalue(k0))


def kernel_distance(k0: Array, k1: Array) -> Array:
    """Relative kernel change ‖K1 − K0‖_F / ‖K0‖_F.

    Arguments:
        k0: the reference kernel, any shape (e.g. (n, n, o, o) at initialisation).
        k1: a kernel of the same shape, or a stack of them with leading axes (e.g. the
            (T, n, n, o, o) output of ``kernel_over_training``); the norms run over the
            trailing ``k0.ndim`` axes.

    Returns:
        The distance, shape ``k1.shape[:k1.ndim - k0.ndim]`` (a scalar for one kernel).

    Raises:
        ValueError: if the trailing axes of k1 differ from the shape of k0.
    """
    k0, k1 = jnp.asarray(k0), jnp.asarray(k1)
    if k1.ndim < k0.ndim or k1.shape[k1.ndim - k0.ndim :] != k0.shape:
        raise ValueError(f"k1 {tuple(k1.shape)} must end with the shape of k0 {k0.shape}")
    axes = tuple(range(k1.ndim - k0.ndim, k1.ndim))
    return jnp.sqrt(jnp.sum((k1 - k0) ** 2, axis=axes) / jnp.sum(k0**2))


# ------------------------------------------------------------------ linearised dynamics


@functools.partial(jax.jit, static_argnames=("mode",))
def _linear_core(k, f0, y, lr, times, *, mode):
    n, o = f0.shape
    big_k = flatten_kernel(k)
    lam, v = jnp.linalg.eigh(0.5 * (big_k + big_k.T))
    rate = lr * lam / (n * o)  # per gradient step
    coef = v.T @ (f0 - y).reshape(-1)
    t = times[:, None]
    if mode == "flow":
        decay = jnp.exp(-rate * t)
    else:
        base = 1.0 - rate
        steps = jnp.round(t)
        odd = jnp.mod(steps, 2.0) == 1.0
        decay = jnp.abs(base) ** steps * jnp.where((base < 0) & odd, -1.0, 1.0)
    residual = (decay * coef) @ v.T
    return y + residual.reshape(times.shape[0], n, o)


def linearized_outputs(
    k: Float[Array, "n n o o"],
    f0: Float[Array, "n o"],
    y: Float[Array, "n o"],
    *,
    lr: float | Float[Array, ""],
    times: Float[Array, " T"],
    mode: str = "flow",
) -> Float[Array, "T n o"]:
    """Outputs of the linearised network trained on (x, y), in closed form (Lee et al. 2019).

    With K the (N × N) flattened kernel at initialisation (N = n·o, ``flatten_kernel``),
    eigendecomposed as K = V Λ Vᵀ (symmetric PSD), and the library's loss
    0.5·mean((f − y)²) over points and output units, the outputs of f_lin(θ) = f(θ0) +
    J(θ − θ0) under gradient steps of learning rate lr are, with time t in gradient steps:

    - ``mode="descent"``: f_{t+1} = f_t − (lr/N)·K·(f_t − y), so
      f_t = y + V diag((1 − lr·λ/N)^t) Vᵀ (f0 − y);
    - ``mode="flow"`` (the lr → 0 limit at fixed lr·t, as ``training.gradient_flow``):
      df/dt = −(lr/N)·K·(f − y), so f_t = y + V diag(exp(−lr·λ·t/N)) Vᵀ (f0 − y).

    For a real network these are its outputs near the lazy limit (docs/theory.md §3, (3.4)).
    Values may be traced (jit, vmap); the mode is static.

    Arguments:
        k: the kernel on the n training points, (n, n, o, o), from ``empirical_ntk`` at
            initialisation; symmetrised before the eigendecomposition.
        f0: initial outputs (n, o). y: targets (n, o).
        lr: learning rate (> 0).
        times: (T,) non-negative, non-decreasing times in gradient steps; whole numbers
            for "descent" (rounded if traced).
        mode: "flow" (default) or "descent".

    Returns:
        Predicted outputs, shape (T, n, o).

    Raises:
        ValueError: for inconsistent shapes, lr ≤ 0, times not 1-D, negative, decreasing or
            (for descent) not whole, or an unknown mode.
    """
    mode = checks.choice("mode", mode, MODES)
    k, f0, y = jnp.asarray(k), jnp.asarray(f0), jnp.asarray(y)
    if f0.ndim != 2:
        raise ValueError(f"f0 must have shape (n, o), got {tuple(f0.shape)}")
    n, o = f0.shape
    if y.shape != f0.shape:
        raise ValueError(f"y must have the shape of f0 {(n, o)}, got {tuple(y.shape)}")
    if k.shape != (n, n, o, o):
        raise ValueError(f"k must have shape {(n, n, o, o)} for f0 {(n, o)}, got {k.shape}")
    checks.values("lr", lr, positive=True, scalar=True)
    times = jnp.asarray(times)
    if times.ndim != 1 or times.shape[0] < 1:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {tuple(times.shape)}")
    checks.values("times", times, nonnegative=True)
    t = checks.concrete(times)
    if t is not None and np.any(np.diff(t) < 0):
        raise ValueError(f"times must be non-decreasing, got {checks.describe(t)}")
    if t is not None and mode == "descent" and not np.all(t == np.round(t)):
        raise ValueError(f"descent times must be whole steps, got {checks.describe(t)}")
    dtype = jnp.result_type(k.dtype, f0.dtype, y.dtype, jnp.float32)
    return _linear_core(
        k.astype(dtype),
        f0.astype(dtype),
        y.astype(dtype),
        jnp.asarray(lr, dtype),
        times.astype(dtype),
        mode=mode,
    )
