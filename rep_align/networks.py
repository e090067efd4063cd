"""The reference study's networks as pure JAX functions (docs/presets.md, "Architectures").

Four architectures, all built with flax so that parameters are plain pytrees (nested dicts
of arrays):

- ``"mlp"``: L+1 affine layers (in→P, P→P, …, P→out) with the nonlinearity after all but
  the last. Hidden activations: the L outputs after the nonlinearity.
- ``"resnet"`` (the "skip" preset): the MLP, but for hidden layers 2 … L−1 the hidden
  activation of two layers back is added after the nonlinearity.
- ``"cnn"``: affine in→P, then 1-D convolutions without padding over that length-P vector
  (1→C channels, C→C L−1 times, C→1; kernel k, stride 1), then affine to out. Hidden
  activations, as in the reference code: the affine layer and every convolution, so a CNN
  has L+2 of them (``num_hidden``); convolution activations have shape
  (batch, length, channels). Its final length is P − (k−1)(L+1).
- ``"dropout"``: the MLP with dropout (rate p, inverted scaling 1/(1−p)) before every affine
  layer, active only when ``train=True``. Hidden activations are taken after the
  nonlinearity and before the next dropout.

Weights are Xavier-normal with a gain, std = gain·sqrt(2/(fan_in+fan_out)) (fans include
the kernel size for convolutions, as PyTorch's ``xavier_normal_``); biases are zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from rep_align import checks

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "Network", "make_network", "num_hidden"]

ARCHITECTURES: tuple[str, ...] = ("mlp", "resnet", "cnn", "dropout")


def _identity(x: Array) -> Array:
    return x


def _leaky_relu(x: Array) -> Array:
    # Slope 0.01, PyTorch's default, which the reference study used. Written with x > 0
    # (not jax.nn.leaky_relu's x >= 0) so that the derivative at exactly 0 is the negative
    # slope, as in PyTorch: on the two-point task with dx2 = 1 the second input is 0 and
    # the biases start at 0, so the whole first layer sits on the kink at initialisation.
    return jnp.where(x > 0, x, 0.01 * x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "leaky_relu": _leaky_relu,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "silu": jax.nn.silu,
    "none": _identity,
}


def _xavier_normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    """Xavier-normal draw with gain 1 (the gain is applied afterwards by ``Network.init``).

    The kernel's last two axes are (in, out); any leading axes are the receptive field of a
    convolution and multiply both fans, as in PyTorch.
    """
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return std * jax.random.normal(key, shape, dtype)


class _Net(nn.Module):
    """The flax module behind ``Network``; see the module docstring for the architectures."""

    arch: str
    out_dim: int
    width: int
    depth: int
    activation: str
    dropout_rate: float
    kernel_size: int
    channels: int
    param_dtype: Any

    def _dense(self, features: int, name: str) -> nn.Dense:
        return nn.Dense(
            features,
            kernel_init=_xavier_normal,
            bias_init=nn.initializers.zeros,
            param_dtype=self.param_dtype,
            name=name,
        )

    def _conv(self, features: int, name: str) -> nn.Conv:
        return nn.Conv(
            features,
            kernel_size=(self.kernel_size,),
            padding="VALID",
            kernel_init=_xavier_normal,
            bias_init=nn.initializers.zeros,
            param_dtype=self.param_dtype,
            name=name,
        )

    @nn.compact
    def __call__(self, x: Array, train: bool) -> tuple[Array, tuple[Array, ...]]:
        act = ACTIVATIONS[self.activation]
        if self.arch == "cnn":
            return self._cnn(x, act)
        hiddens: list[Array] = []
        a = x
        for layer in range(self.depth + 1):
            if self.arch == "dropout":
                a = nn.Dropout(self.dropout_rate, deterministic=not train)(a)
            last = layer == self.depth
            a = self._dense(self.out_dim if last else self.width, name=f"dense_{layer}")(a)
            # A no-op unless ``apply`` gets perturbations: then their gradient is the loss
            # gradient at this pre-activation (``training._fused``).
            a = self.perturb(f"pre_{layer}", a)
            if last:
                break
            a = act(a)
            if self.arch == "resnet" and layer >= 2:
                a = a + hiddens[layer - 2]
            hiddens.append(a)
        return a, tuple(hiddens)

    def _cnn(self, x: Array, act: Callable[[Array], Array]) -> tuple[Array, tuple[Array, ...]]:
        hiddens: list[Array] = []
        a = act(self._dense(self.width, name="dense_0")(x))
        hiddens.append(a)
        # The length-P vector becomes a one-channel signal: (batch, length, channels).
        a = a[:, :, None]
        features = [self.channels] * self.depth + [1]
        for i, f in enumerate(features):
            a = act(self._conv(f, name=f"conv_{i}")(a))
            hiddens.append(a)
        a = a.reshape(a.shape[0], -1)
        out = self._dense(self.out_dim, name="dense_1")(a)
        return out, tuple(hiddens)


def num_hidden(arch: str, depth: int) -> int:
    """Number of recorded hidden activations of ``make_network(arch, depth=depth, ...)``:
    ``depth``, or ``depth + 2`` for the CNN (its first affine layer and every convolution,
    as in the reference code)."""
    return depth + 2 if arch == "cnn" else depth


@dataclasses.dataclass(frozen=True)
class Network:
    """An immutable description of one network; ``init`` and ``apply`` are pure functions.

    Build it with ``make_network``. Instances are hashable, so they can be static arguments
    of ``jax.jit``. The parameters live outside, as the pytree returned by ``init``.

    Attributes:
        arch: one of ``ARCHITECTURES``.
        in_dim, out_dim: input and output dimensions.
        width: P, the width of the hidden layers (for the CNN, the length of the signal
            after the first affine layer).
        depth: L, the number of hidden layers as docs/presets.md counts them.
        activation: a key of ``ACTIVATIONS``.
        gain: Xavier-normal gain used by ``init`` unless overridden there.
        dropout_rate: p, for ``arch="dropout"`` only.
        kernel_size, channels: convolution settings, for ``arch="cnn"`` only.
        dtype: parameter dtype (default float32).
    """

    arch: str
    in_dim: int
    out_dim: int
    width: int
    depth: int
    activation: str = "leaky_relu"
    gain: float = 1.0
    dropout_rate: float = 0.1
    kernel_size: int = 11
    channels: int = 20
    dtype: Any = jnp.float32

    @property
    def num_hidden(self) -> int:
        """Number of hidden activations ``apply`` returns: L, or L+2 for the CNN."""
        return num_hidden(self.arch, self.depth)

    @property
    def hidden_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Per-example shape of each hidden activation (without the batch axis)."""
        if self.arch != "cnn":
            return ((self.width,),) * self.depth
        shapes: list[tuple[int, ...]] = [(self.width,)]
        length = self.width
        for f in [self.channels] * self.depth + [1]:
            length -= self.kernel_size - 1
            shapes.append((length, f))
        return tuple(shapes)

    @property
    def stochastic(self) -> bool:
        """Whether ``apply(..., train=True)`` draws random numbers (dropout with p > 0)."""
        return self.arch == "dropout" and self.dropout_rate > 0

    def _module(self) -> _Net:
        return _Net(
            arch=self.arch,
            out_dim=self.out_dim,
            width=self.width,
            depth=self.depth,
            activation=self.activation,
            dropout_rate=self.dropout_rate,
            kernel_size=self.kernel_size,
            channels=self.channels,
            param_dtype=self.dtype,
        )

    def init(self, key: PRNGKeyArray, *, gain: float | Float[Array, ""] | None = None) -> PyTree:
        """Draw initial parameters.

        A pure function of ``key``: vmap over keys for many seeds. One example at a time.

        Arguments:
            key: a JAX PRNG key.
            gain: Xavier-normal gain; default ``self.gain``. May be a traced scalar, so a
                sweep can vmap over gains without recompiling: the weights are drawn with
                gain 1 and multiplied by it (biases are zero either way).

        Returns:
            The parameter pytree, ``{"dense_0": {"kernel": (in, P), "bias": (P,)}, …}``;
            convolution kernels are (kernel_size, in_channels, out_channels).

        Raises:
            ValueError: for a concrete gain ≤ 0.
        """
        if gain is None:
            gain = self.gain
        checks.values("gain", gain, positive=True, scalar=True)
        dummy = jnp.zeros((1, self.in_dim), self.dtype)
        params = self._module().init({"params": key}, dummy, False)["params"]
        return jax.tree_util.tree_map(lambda p: (p * gain).astype(p.dtype), params)

    def apply(
        self,
        params: PyTree,
        x: Float[Array, "batch in_dim"],
        *,
        train: bool = False,
        key: PRNGKeyArray | None = None,
        perturbations: dict[str, Array] | None = None,
    ) -> tuple[Float[Array, "batch out_dim"], tuple[Array, ...]]:
        """Run the network on a batch.

        Arguments:
            params: the pytree from ``init``.
            x: inputs, shape (batch, in_dim).
            train: dropout is active only when True (it changes nothing for the other
                architectures).
            key: PRNG key for dropout; required when ``train=True`` and the network is
                ``stochastic``, ignored otherwise.
            perturbations: optional arrays added to the dense layers' pre-activations,
                ``{"pre_i": (batch, features of dense_i)}`` for every layer i (MLP, ResNet
                and dropout MLP); at zero, their gradient is the loss gradient at each
                pre-activation.

        Returns:
            ``(output, hiddens)``: output (batch, out_dim) and a tuple of ``num_hidden``
            hidden activations after the nonlinearity, each (batch, …) as in
            ``hidden_shapes``.

        Raises:
            ValueError: if x has the wrong shape, or dropout needs a key and none was given.
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (batch, {self.in_dim}), got {tuple(x.shape)}")
        rngs = None
        if train and self.stochastic:
            if key is None:
                raise ValueError(
                    "apply(..., train=True) of a dropout network needs a PRNG key: pass key=..."
                )
            rngs = {"dropout": key}
        variables = {"params": params}
        if perturbations is not None:
            variables["perturbations"] = perturbations
        return self._module().apply(variables, x, train, rngs=rngs)


def make_network(
    arch: str,
    *,
    in_dim: int,
    out_dim: int,
    width: int,
    depth: int,
    activation: str = "leaky_relu",
    gain: float = 1.0,
    dropout_rate: float = 0.1,
    kernel_size: int = 11,
    channels: int = 20,
    dtype: Any = jnp.float32,
) -> Network:
    """Describe one of the reference study's networks (docs/presets.md, "Architectures").

    Arguments:
        arch: "mlp", "resnet" (the "skip" preset), "cnn" or "dropout".
        in_dim, out_dim: input and output dimensions (≥ 1).
        width: P, hidden width (≥ 1); for the CNN the signal length before convolving.
        depth: L, number of hidden layers (≥ 1).
        activation: "leaky_relu" (slope 0.01), "relu", "tanh", "elu", "silu" or "none".
        gain: Xavier-normal gain (> 0); default 1.0.
        dropout_rate: p in [0, 1), used by "dropout" only; default 0.1.
        kernel_size, channels: CNN convolution kernel (default 11) and channels (default 20).
        dtype: parameter dtype; default float32 (use float64 under ``jax_enable_x64``).

    Returns:
        A frozen, hashable ``Network``.

    Raises:
        ValueError: naming the argument and value, for an unknown architecture or
            activation, a non-positive size, gain ≤ 0, dropout_rate outside [0, 1), or a CNN
            whose signal would shrink below length 1 after its convolutions.
    """
    checks.choice("arch", arch, ARCHITECTURES)
    checks.choice("activation", activation, tuple(ACTIVATIONS))
    in_dim = checks.integer("in_dim", in_dim, minimum=1)
    out_dim = checks.integer("out_dim", out_dim, minimum=1)
    width = checks.integer("width", width, minimum=1)
    depth = checks.integer("depth", depth, minimum=1)
    kernel_size = checks.integer("kernel_size", kernel_size, minimum=1)
    channels = checks.integer("channels", channels, minimum=1)
    checks.values("gain", gain, positive=True, scalar=True)
    if not checks.is_concrete(gain):
        raise ValueError("gain of make_network must be concrete; pass a traced gain to init")
    rate = checks.real("dropout_rate", dropout_rate, nonnegative=True, below=1.0)
    if arch == "cnn":
        final = width - (kernel_size - 1) * (depth + 1)
        if final < 1:
            raise ValueError(
                f"cnn: width={width} shrinks to length {final} after depth+1={depth + 1} "
                f"unpadded convolutions with kernel_size={kernel_size}; "
                f"width must be at least {(kernel_size - 1) * (depth + 1) + 1}"
            )
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype!r}")
    return Network(
        arch=arch,
        in_dim=in_dim,
        out_dim=out_dim,
        width=width,
        depth=depth,
        activation=activation,
        gain=float(gain),
        dropout_rate=rate,
        kernel_size=kernel_size,
        channels=channels,
        dtype=dtype,
    )
