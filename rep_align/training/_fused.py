"""Gradients on a few points as outer products, so XLA fuses them into the optimiser update.

On a few points the gradient of a dense layer's kernel is a sum of a few outer products,
``Σ_p a_p ⊗ δ_p`` (a_p the layer's input and δ_p the loss gradient at its pre-activation
for point p). Autodiff computes it as a dot that writes the whole gradient to memory, which
the optimiser then reads back with the weights: 6 passes over the parameters per step.
Written as elementwise products, XLA fuses the sum into the update: for plain SGD each
kernel is read and written once, 3 passes in all with the forward and backward reads. The
forward pass gives the same loss, output and hidden activations as ``loss_fn``.

Bit for bit: on the CPU, XLA's dot with a contraction of n ≤ ``MAX_POINTS`` accumulates
``fma(a_{n-1}, δ_{n-1}, … fma(a_1, δ_1, a_0·δ_0))`` and the elementwise sum below is
contracted to the same FMAs, so trajectories equal those of the autodiff path exactly
(``tests/test_fused_step.py`` checks this for every supported architecture). Other
backends run their dots differently, so the fused step is used on the CPU only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from rep_align.networks import Network

#: Largest number of points for which the fused step is used (the test checks bitwise
#: equality with the autodiff step up to this many).
MAX_POINTS = 4

#: Architectures built only of dense layers, the ones the fused step implements.
ARCHS = ("mlp", "resnet")

#: Switch for comparisons (benchmarks, tests): False always takes the autodiff path.
ENABLED = True

#: Switch for comparisons: False drops the ordering of ``after`` (XLA then copies kernels).
#: Used by the autodiff step (SGD 1.06×, Adam 1.18× faster with it on the default preset).
IN_PLACE = True


def supported(network: Network, points_per_step: int, optimizer) -> bool:
    """Whether ``train`` takes its gradients from ``value_and_grad``: plain SGD ("sgd"), a
    dense architecture without dropout, at most ``MAX_POINTS`` points per step (the batch
    size, or all points in full batch), on the CPU, and ``ENABLED``.

    Only plain SGD: with Adam the gradient, computed inside the update's fusion, is
    rounded into the moments differently (records differ by about one float32 rounding
    step, 6e-8, from the first steps on), so Adam keeps the autodiff path and its numbers.
    """
    return (
        ENABLED
        and isinstance(optimizer, str)
        and optimizer == "sgd"
        and network.arch in ARCHS
        and not network.stochastic
        and points_per_step <= MAX_POINTS
        and jax.default_backend() == "cpu"
    )


def after(kernel: Array, read: Array) -> Array:
    """``kernel``, bit for bit, made to depend on ``read`` (a result computed from the last
    read of the kernel before its update, such as the δ the backward pass gets through it),
    so that the update which overwrites the kernel is ordered after that read.

    Without it XLA sees no path from the backward dot through a kernel to that kernel's
    update, so it cannot update the loop-carried kernel in place and copies every kernel
    at the start of each step (19 MB read and written per step for the default preset).
    The dependency is an integer OR with a zero computed from ``read`` (its bits shifted
    right logically by width − 1, then by 1), which XLA does not fold away and which leaves
    every bit of the kernel as it was, NaN and signed zeros included.
    """
    if not IN_PLACE:
        return kernel
    width = 8 * jnp.dtype(kernel.dtype).itemsize
    uint = jnp.dtype(f"uint{width}")
    bits = jax.lax.bitcast_convert_type(read.ravel()[0].astype(kernel.dtype), uint)
    zero = jax.lax.shift_right_logical(bits, uint.type(width - 1))
    zero = jax.lax.shift_right_logical(zero, uint.type(1))
    kernel_bits = jax.lax.bitcast_convert_type(kernel, uint) | zero
    return jax.lax.bitcast_convert_type(kernel_bits, kernel.dtype)


def value_and_grad(
    params: PyTree, network: Network, x: Array, y: Array
) -> tuple[tuple[Array, tuple[Array, tuple[Array, ...]]], PyTree]:
    """L = 0.5·mean((ŷ − y*)²) and ∇L(θ), as ``jax.value_and_grad(loss_fn, has_aux=True)``
    returns them, with the kernels' gradients as elementwise outer products.

    Arguments:
        params: the network's parameters (``{"dense_i": {"kernel", "bias"}}``).
        network: an architecture in ``ARCHS``.
        x: inputs (n, in_dim), n ≤ ``MAX_POINTS``; y: targets (n, out_dim).

    Returns:
        ``((loss, (output, hiddens)), grads)``; ``grads`` has the structure of ``params``.

    The fused step does not order its update after the backward pass (``in_place``):
    measured on the default preset that made it slower (0.89×, geometric mean of 20
    interleaved pairs), as the per-step kernel copies let the update overlap the dots.
    """
    n_layers = network.depth + 1
    kernels = [params[f"dense_{i}"]["kernel"] for i in range(n_layers)]

    def forward(eps):
        # eps: zero perturbations of the pre-activations; their gradient is δ per layer.
        out, hiddens = network.apply(params, x, perturbations=eps)
        return 0.5 * jnp.mean((out - y) ** 2), (out, hiddens)

    eps = {f"pre_{i}": jnp.zeros((x.shape[0], k.shape[1]), x.dtype) for i, k in enumerate(kernels)}
    (loss, (out, hiddens)), deltas = jax.value_and_grad(forward, has_aux=True)(eps)
    # Layer i's input: x, then each hidden layer's output (after the residual sum).
    inputs = (x, *hiddens)
    grads = {}
    for i in range(n_layers):
        a, d = inputs[i], deltas[f"pre_{i}"]
        grad = a[0][:, None] * d[0][None, :]
        for p in range(1, x.shape[0]):
            grad = a[p][:, None] * d[p][None, :] + grad
        grads[f"dense_{i}"] = {"kernel": grad, "bias": jnp.sum(d, axis=0)}
    return (loss, (out, hiddens)), grads


def after_all(params: PyTree, read: Array) -> PyTree:
    """Every floating-point leaf of ``params`` ordered after ``read`` (``after``), bit for
    bit: for a record's forward pass, whose loss depends on its read of every parameter."""

    def tie(leaf):
        return after(leaf, read) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree_util.tree_map(tie, params)


def in_place(params: PyTree, grads: PyTree, network: Network) -> PyTree:
    """``params``, bit for bit, with each kernel of a dense network (``ARCHS``) ordered
    after the gradient of the kernel below it (``after``), which needs the backward pass's
    read of it; an update that reads the returned parameters then overwrites each kernel
    in place. Other architectures are returned as they are."""
    if network.arch not in ARCHS:
        return params
    ordered = {name: dict(layer) for name, layer in params.items()}
    for i in range(network.depth):
        layer = ordered[f"dense_{i + 1}"]
        layer["kernel"] = after(layer["kernel"], grads[f"dense_{i}"]["kernel"])
    return ordered
