"""Effective learning rates read off a network's tangent kernels (docs/theory.md §8).

The theory's η_h and η_y (docs/theory.md §2) are the speeds at which the encoder moves the
pair's representation difference Δh and the decoder moves the output difference Δŷ. Under
gradient flow a network moves Δh through the tangent kernel of the read-out layer with
respect to the encoder's parameters, and Δŷ, at fixed representation, through the tangent
kernel of the output with respect to the decoder's parameters. Matching the network's
kernel-induced velocities to the theory's right-hand side gives the estimates
(docs/theory.md (8.4)-(8.6)):

    η_h = lr · κ_h / (2 d_out d_x²),   κ_h = Δhᵀ K_h Δh / h,
    η_y = lr · κ_y / (2 d_out h),      κ_y = tr K_y / d_out,

with K_h = J_h J_hᵀ (F × F), J_h = ∂Δh/∂θ_enc the Jacobian of the pair's hidden difference
with respect to the encoder's parameters (every layer up to and including the read-out
layer), and K_y = J_y J_yᵀ (d_out × d_out), J_y = ∂Δŷ/∂θ_dec with respect to the decoder's
parameters (every layer after it), both at the given parameters. Rates are per gradient
step at learning rate ``lr``, like the fitted rates of docs/theory.md §5. For a two-layer
linear network with zero biases and inputs and targets symmetric about zero the estimates
are exact: η_h = η_y = lr/(2 d_out) (docs/theory.md (8.8)).

Everything here handles one network and one pair (vmap over parameter sets or pairs).
Kernels are never formed over the parameters: J_hᵀ v is one vector-Jacobian product, so
κ_h costs one backward pass; the trace of K_h (an alternative, isotropic estimate) costs
F of them, done ``chunk_size`` at a time, and the full F × F matrix
(``encoder_difference_kernel``) F backward and F forward products, so memory is bounded by
``chunk_size`` parameter-sized vectors.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from rep_align import checks
from rep_align.networks import ACTIVATIONS, Network
from rep_align.observables import pair_observables
from rep_align.training._trajectory import loss_fn, prepare_data

__all__ = [
    "KernelRates",
    "decoder_difference_kernel",
    "decoder_jacobian",
    "encoder_decoder_split",
    "encoder_difference_kernel",
    "flow_velocity",
    "kernel_rates",
]

#: Architectures whose decoder can be run from a hidden layer here (``decoder_jacobian``).
DECODER_ARCHS = ("mlp", "resnet", "dropout")


class KernelRates(eqx.Module):
    """Kernel estimates of the effective rates for one pair at one parameter set.

    Rates are per gradient step at the learning rate given (docs/theory.md §2, "Time and
    rates"); kernels are in the units of the network's activations squared per unit
    parameter change squared. All fields are scalars (leading axes under vmap).

    Attributes:
        eta_h: encoder rate, lr·κ_h/(2 d_out d_x²), docs/theory.md (8.5).
        eta_y: decoder rate, lr·κ_y/(2 d_out h), docs/theory.md (8.6).
        eta_h_trace: lr·(tr K_h / F)/(2 d_out d_x²), the isotropic estimate (NaN if not
            computed).
        eta_h_decoder: lr·κ_h^dec/(2 d_out d_x²) with the Rayleigh quotient of K_h along
            the decoder's rows, the rate at which the encoder moves the outputs (NaN where
            the decoder Jacobian is not available: the CNN).
        kappa_h: Δhᵀ K_h Δh / h.
        kappa_h_trace: tr K_h / F (F = size of the read-out layer), or NaN.
        kappa_h_decoder: tr(D_y K_h D_yᵀ)/‖D_y‖_F², or NaN.
        kappa_y: tr K_y / d_out.
        bias_share_h, bias_share_y: the fraction of κ_h and of κ_y that comes from the
            biases (each kernel is a sum over parameters, so it splits into weights and
            biases); in [0, 1].
        alignment: ‖D_y Δh‖ / (‖D_y‖_F ‖Δh‖) in [0, 1]: 1 when the decoder reads the hidden
            layer only along Δh, the set on which the theory's closure is exact
            (docs/theory.md §2); NaN where D_y is not available.
        h, y, w, m, dx2, dy2: the pair's observables at these parameters (docs/theory.md §1),
            h at the read-out layer.
        lr: the learning rate the rates are per step of.
    """

    eta_h: Float[Array, ""]
    eta_y: Float[Array, ""]
    eta_h_trace: Float[Array, ""]
    eta_h_decoder: Float[Array, ""]
    kappa_h: Float[Array, ""]
    kappa_h_trace: Float[Array, ""]
    kappa_h_decoder: Float[Array, ""]
    kappa_y: Float[Array, ""]
    bias_share_h: Float[Array, ""]
    bias_share_y: Float[Array, ""]
    alignment: Float[Array, ""]
    h: Float[Array, ""]
    y: Float[Array, ""]
    w: Float[Array, ""]
    m: Float[Array, ""]
    dx2: Float[Array, ""]
    dy2: Float[Array, ""]
    lr: Float[Array, ""]

    def as_dict(self) -> dict[str, float]:
        """Every field as a Python float (for JSON); one parameter set only."""
        return {k: float(v) for k, v in vars(self).items()}


# ------------------------------------------------------------------- the split


def encoder_decoder_split(network: Network, layer: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the top-level parameter groups of the encoder and of the decoder.

    The encoder of hidden layer ``layer`` is every layer its activation depends on, the
    decoder every later one (docs/theory.md §1). MLP, ResNet and dropout MLP: ``dense_0`` …
    ``dense_layer`` and the rest. CNN (hidden 0 is the affine layer, hidden i ≥ 1 the
    convolution ``conv_{i-1}``): ``dense_0``, ``conv_0`` … ``conv_{layer-1}``, and the
    remaining convolutions with ``dense_1``.

    Raises:
        ValueError: for a layer outside [0, ``network.num_hidden``).
    """
    layer = checks.integer("layer", layer, minimum=0, maximum=network.num_hidden - 1)
    if network.arch == "cnn":
        enc = ("dense_0", *(f"conv_{i}" for i in range(layer)))
        dec = (*(f"conv_{i}" for i in range(layer, network.depth + 1)), "dense_1")
    else:
        enc = tuple(f"dense_{i}" for i in range(layer + 1))
        dec = tuple(f"dense_{i}" for i in range(layer + 1, network.depth + 1))
    return enc, dec


def _parts(params: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: params[k] for k in names}


def _sq(tree: PyTree) -> Array:
    """Sum of squares over every leaf of a pytree."""
    return sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree))


def _sq_bias(tree: PyTree) -> Array:
    """Sum of squares over the bias leaves (``{"kernel", "bias"}`` groups) of a pytree."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return sum(jnp.sum(v**2) for path, v in leaves if getattr(path[-1], "key", None) == "bias")


def _gram(trees: PyTree) -> Array:
    """Gram matrix of a stack of pytrees (every leaf with one leading axis of length k)."""
    leaves = jax.tree.leaves(trees)
    return sum(
        jnp.einsum("ip,jp->ij", v.reshape(v.shape[0], -1), v.reshape(v.shape[0], -1))
        for v in leaves
    )


def _pair_delta(network, layer, pair, x):
    """Functions of (encoder, decoder) parameters: Δh (F,) at ``layer`` and Δŷ (d_out,)."""
    a, b = pair

    def forward(pe, pd):
        out, hiddens = network.apply({**pe, **pd}, x)
        hl = hiddens[layer].reshape(x.shape[0], -1)
        return hl[b] - hl[a], out[b] - out[a]

    return forward


# ----------------------------------------------------------------- decoder map


def _decoder_output(network: Network, params, h_layer: Array, h_prev: Array, layer: int):
    """The output of one point computed from its hidden activation at ``layer``
    (``h_prev``, the activation one layer below, feeds the ResNet's skip)."""
    act = ACTIVATIONS[network.activation]
    acts = {layer - 1: h_prev, layer: h_layer}
    a = h_layer
    for k in range(layer + 1, network.depth + 1):
        p = params[f"dense_{k}"]
        a = a @ p["kernel"] + p["bias"]
        if k == network.depth:
            break
        a = act(a)
        if network.arch == "resnet" and k >= 2:
            a = a + acts[k - 2]
        acts[k] = a
    return a


def _decoder_jacobian(network, params, x, layer, pair):
    """D_y at the pair's midpoint: the mean of ∂ŷ/∂h at the two points, (d_out, F)."""
    _, hiddens = network.apply(params, x)
    hl = hiddens[layer]
    prev = hiddens[layer - 1] if layer >= 1 else jnp.zeros_like(hl)
    jac = jax.jacrev(lambda h, hp: _decoder_output(network, params, h, hp, layer))
    a, b = pair
    return 0.5 * (jac(hl[a], prev[a]) + jac(hl[b], prev[b]))


# ------------------------------------------------------------------ the rates


@functools.partial(
    jax.jit, static_argnames=("network", "layer", "pair", "chunk", "trace", "decoder")
)
def _rates_core(params, x, y, lr, *, network, layer, pair, chunk, trace, decoder):
    enc, dec = encoder_decoder_split(network, layer)
    pe, pd = _parts(params, enc), _parts(params, dec)
    forward = _pair_delta(network, layer, pair, x)
    dh, pull_h = jax.vjp(lambda q: forward(q, pd)[0], pe)
    dyh, pull_y = jax.vjp(lambda q: forward(pe, q)[1], pd)
    n_f, d_out = dh.shape[0], dyh.shape[0]
    dtype = dh.dtype
    out, hiddens = network.apply(params, x)
    obs = pair_observables(x, y, out, (hiddens[layer],), pair=pair)
    h = obs.h[0]

    (cot_h,) = pull_h(dh)
    kappa_h = _sq(cot_h) / h
    bias_h = _sq_bias(cot_h) / (h * kappa_h)
    nan = jnp.asarray(jnp.nan, dtype)
    if trace:
        eye = jnp.eye(n_f, dtype=dtype)
        m = -(-n_f // chunk)
        rows = jnp.concatenate([eye, jnp.zeros((m * chunk - n_f, n_f), dtype)])
        diag = jax.lax.map(jax.vmap(lambda r: _sq(pull_h(r))), rows.reshape(m, chunk, n_f))
        kappa_trace = jnp.sum(diag) / n_f
    else:
        kappa_trace = nan
    cot_y = jax.vmap(lambda r: pull_y(r)[0])(jnp.eye(d_out, dtype=dtype))
    kappa_y = jnp.trace(_gram(cot_y)) / d_out
    bias_y = _sq_bias(cot_y) / (d_out * kappa_y)
    if decoder:
        d_y = _decoder_jacobian(network, params, x, layer, pair).reshape(d_out, n_f)
        norm2 = jnp.sum(d_y**2)
        kappa_dec = jnp.sum(jax.vmap(lambda r: _sq(pull_h(r)))(d_y)) / norm2
        alignment = jnp.sqrt(jnp.sum((d_y @ dh) ** 2) / (norm2 * h))
    else:
        kappa_dec = alignment = nan
    scale = lr / (2.0 * d_out)
    return KernelRates(
        eta_h=scale * kappa_h / obs.dx2,
        eta_y=scale * kappa_y / h,
        eta_h_trace=scale * kappa_trace / obs.dx2,
        eta_h_decoder=scale * kappa_dec / obs.dx2,
        kappa_h=kappa_h,
        kappa_h_trace=kappa_trace,
        kappa_h_decoder=kappa_dec,
        kappa_y=kappa_y,
        bias_share_h=bias_h,
        bias_share_y=bias_y,
        alignment=alignment,
        h=h,
        y=obs.y,
        w=obs.w,
        m=obs.m,
        dx2=obs.dx2,
        dy2=obs.dy2,
        lr=jnp.asarray(lr, dtype),
    )


def _check_common(network, params, x, y, layer, pair):
    x, y, pair = prepare_data(network, x, y, pair)
    layer = checks.integer("layer", layer, minimum=0, maximum=network.num_hidden - 1)
    names = set(params) if isinstance(params, Mapping) else None
    enc, dec = encoder_decoder_split(network, layer)
    if names != set(enc) | set(dec):
        got = sorted(names) if names is not None else type(params).__name__
        raise ValueError(f"params must hold the groups {sorted(set(enc) | set(dec))}, got {got}")
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return x.astype(dtype), y.astype(dtype), layer, pair


def kernel_rates(
    network: Network,
    params: PyTree,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    layer: int,
    lr: float | Float[Array, ""],
    pair: tuple[int, int] = (0, 1),
    trace: bool = True,
    chunk_size: int = 8,
) -> KernelRates:
    """Estimate (η_h, η_y) of docs/theory.md §2 from the network's tangent kernels.

    Matches the velocities that gradient flow gives Δh (through the encoder's kernel) and
    Δŷ (through the decoder's) to the theory's right-hand side, docs/theory.md (8.5) and
    (8.6). Exact for a two-layer linear network with zero biases and data symmetric about
    zero, (8.8). One parameter set and one pair per call; compiled once per network,
    layer, pair and setting, so new parameter values compile nothing.

    Arguments:
        network: from ``make_network``; evaluated without dropout.
        params: its parameters (e.g. ``network.init(key)`` or trained ones); the kernels
            are computed in the parameters' dtype (float64 parameters under
            ``jax.enable_x64`` for precision).
        x: inputs (n, in_dim); y: targets (n, out_dim). The targets enter only the
            observables reported alongside (w, m, dy2), not the rates.
        layer: the read-out hidden layer, in [0, ``network.num_hidden``).
        lr: the learning rate whose steps the rates are per (> 0).
        pair: indices (a, b) of the pair; default (0, 1). Differences are b − a.
        trace: also compute tr K_h (F backward passes; ``eta_h_trace``). Default True.
        chunk_size: backward passes vectorised at once for the trace (memory: that many
            parameter-sized vectors); default 8.

    Returns:
        A ``KernelRates``.

    Raises:
        ValueError: bad shapes, pair, layer, lr ≤ 0, chunk_size < 1, or params without the
            network's parameter groups.
    """
    if not isinstance(network, Network):
        raise ValueError(f"network must come from make_network, got {type(network).__name__}")
    x, y, layer, pair = _check_common(network, params, x, y, layer, pair)
    checks.values("lr", lr, positive=True, scalar=True)
    trace = checks.boolean("trace", trace)
    chunk = checks.integer("chunk_size", chunk_size, minimum=1)
    return _rates_core(
        params,
        x,
        y,
        jnp.asarray(lr, x.dtype),
        network=network,
        layer=layer,
        pair=pair,
        chunk=chunk,
        trace=trace,
        decoder=network.arch in DECODER_ARCHS,
    )


# --------------------------------------------------------------- the kernels


@functools.partial(jax.jit, static_argnames=("network", "layer", "pair", "chunk"))
def _encoder_kernel_core(params, x, *, network, layer, pair, chunk):
    enc, dec = encoder_decoder_split(network, layer)
    pe, pd = _parts(params, enc), _parts(params, dec)
    forward = _pair_delta(network, layer, pair, x)
    f = lambda q: forward(q, pd)[0]  # noqa: E731
    dh, pull = jax.vjp(f, pe)
    _, push = jax.linearize(f, pe)
    n_f = dh.shape[0]
    m = -(-n_f // chunk)
    eye = jnp.eye(n_f, dtype=dh.dtype)
    rows = jnp.concatenate([eye, jnp.zeros((m * chunk - n_f, n_f), dh.dtype)])
    cols = jax.lax.map(jax.vmap(lambda r: push(pull(r)[0])), rows.reshape(m, chunk, n_f))
    return cols.reshape(m * chunk, n_f)[:n_f].T


def encoder_difference_kernel(
    network: Network,
    params: PyTree,
    x: Float[Array, "n in_dim"],
    *,
    layer: int,
    pair: tuple[int, int] = (0, 1),
    chunk_size: int = 8,
) -> Float[Array, "F F"]:
    """K_h = J_h J_hᵀ, J_h = ∂(h_b − h_a)/∂θ_enc at hidden layer ``layer`` (F × F).

    Equal to K(b,b) + K(a,a) − K(a,b) − K(b,a) of the hidden layer's empirical tangent
    kernel (``ntk.empirical_ntk(..., output=layer)``: the layer's activation depends only
    on the encoder's parameters), docs/theory.md (8.2). Built column by column as
    J_h(J_hᵀ e_i), ``chunk_size`` columns at a time (memory: that many parameter-sized
    vectors).

    Raises:
        ValueError: as ``kernel_rates``.
    """
    n_out = network.out_dim if isinstance(network, Network) else 1
    dummy_y = jnp.zeros((jnp.shape(x)[0], n_out))
    x, _, layer, pair = _check_common(network, params, x, dummy_y, layer, pair)
    chunk = checks.integer("chunk_size", chunk_size, minimum=1)
    return _encoder_kernel_core(params, x, network=network, layer=layer, pair=pair, chunk=chunk)


@functools.partial(jax.jit, static_argnames=("network", "layer", "pair"))
def _decoder_kernel_core(params, x, *, network, layer, pair):
    enc, dec = encoder_decoder_split(network, layer)
    pe, pd = _parts(params, enc), _parts(params, dec)
    forward = _pair_delta(network, layer, pair, x)
    dyh, pull = jax.vjp(lambda q: forward(pe, q)[1], pd)
    return _gram(jax.vmap(lambda r: pull(r)[0])(jnp.eye(dyh.shape[0], dtype=dyh.dtype)))


def decoder_difference_kernel(
    network: Network,
    params: PyTree,
    x: Float[Array, "n in_dim"],
    *,
    layer: int,
    pair: tuple[int, int] = (0, 1),
) -> Float[Array, "out_dim out_dim"]:
    """K_y = J_y J_yᵀ, J_y = ∂(ŷ_b − ŷ_a)/∂θ_dec: the output kernel of the decoder's
    parameters (those after ``layer``) on the pair's difference, docs/theory.md (8.3).

    Raises:
        ValueError: as ``kernel_rates``.
    """
    dummy_y = jnp.zeros((jnp.shape(x)[0], network.out_dim))
    x, _, layer, pair = _check_common(network, params, x, dummy_y, layer, pair)
    return _decoder_kernel_core(params, x, network=network, layer=layer, pair=pair)


def decoder_jacobian(
    network: Network,
    params: PyTree,
    x: Float[Array, "n in_dim"],
    *,
    layer: int,
    pair: tuple[int, int] = (0, 1),
) -> Float[Array, "out_dim F"]:
    """D_y: the decoder's Jacobian ∂ŷ/∂h at hidden layer ``layer``, averaged over the two
    points of the pair (the theory linearises about their midpoint, docs/theory.md §2).

    For the ResNet the activation one layer below is held fixed (it feeds the skip).

    Raises:
        ValueError: as ``kernel_rates``; for the CNN (not available).
    """
    dummy_y = jnp.zeros((jnp.shape(x)[0], network.out_dim))
    x, _, layer, pair = _check_common(network, params, x, dummy_y, layer, pair)
    checks.choice("network.arch", network.arch, DECODER_ARCHS)
    d_y = _decoder_jacobian(network, params, x, layer, pair)
    return d_y.reshape(network.out_dim, -1)


# ------------------------------------------------------------ the flow itself


@functools.partial(jax.jit, static_argnames=("network", "layer", "pair"))
def _velocity_core(params, x, y, lr, *, network, layer, pair):
    def observables(p):
        out, hiddens = network.apply(p, x)
        obs = pair_observables(x, y, out, (hiddens[layer],), pair=pair)
        return jnp.stack([obs.h[0], obs.y, obs.w])

    grad = jax.grad(lambda p: loss_fn(p, network, x, y)[0])(params)
    tangent = jax.tree.map(lambda g: -lr * g, grad)
    return jax.jvp(observables, (params,), (tangent,))[1]


def flow_velocity(
    network: Network,
    params: PyTree,
    x: Float[Array, "n in_dim"],
    y: Float[Array, "n out_dim"],
    *,
    layer: int,
    lr: float | Float[Array, ""],
    pair: tuple[int, int] = (0, 1),
) -> Float[Array, "3"]:
    """d(h, y, w)/dt of the network under gradient flow dθ/dt = −lr ∇L, per step at lr.

    The network's own right-hand side, to compare with ``theory.vector_field`` at the
    kernel rates (docs/theory.md §8): with L = 0.5·mse of ``training.loss_fn`` and h at
    hidden layer ``layer``. A forward-mode product of the observables along the gradient.

    Returns:
        (dh/dt, dy/dt, dw/dt), shape (3,).

    Raises:
        ValueError: as ``kernel_rates``.
    """
    x, y, layer, pair = _check_common(network, params, x, y, layer, pair)
    checks.values("lr", lr, positive=True, scalar=True)
    return _velocity_core(
        params, x, y, jnp.asarray(lr, x.dtype), network=network, layer=layer, pair=pair
    )
