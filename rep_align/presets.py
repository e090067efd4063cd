"""Hyper-parameters of the reference study, as data (PRESETS.md).

Frozen dataclasses only: nothing here builds networks or trains. Learning rates are those
of the reference study's tables; use ``trajectory_protocol()`` (lr/2, 2× epochs) for the
trajectory figures, as PRESETS.md prescribes.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

__all__ = [
    "TWO_POINT_PRESETS",
    "XOR_PRESETS",
    "TwoPointPreset",
    "XorPreset",
    "get_preset",
    "get_xor_preset",
]


@dataclasses.dataclass(frozen=True)
class TwoPointPreset:
    """One row of PRESETS.md's two-point table.

    Attributes:
        name: preset name ("default", "shallow", …).
        arch: "mlp", "resnet", "cnn" or "dropout" (``rep_align.networks`` names; the
            table's "skip" is "resnet").
        activation: nonlinearity name of ``rep_align.networks.ACTIVATIONS``.
        gain: Xavier-normal init gain.
        lr: learning rate of the table (plain full-batch gradient descent on 0.5·mse unless
            ``optimizer`` says otherwise).
        width: P. depth: L, hidden layers.
        epochs: full-batch steps of the table.
        layer: hidden layer read out (index into the network's hidden activations).
        optimizer: "sgd" or "adam".
        dx2, dy2, in_dim, out_dim: the data (PRESETS.md: dx2 = 1, dy2 = 0.5, dims 1).
    """

    name: str
    arch: str
    activation: str
    gain: float
    lr: float
    width: int
    depth: int
    epochs: int
    layer: int
    optimizer: str = "sgd"
    dx2: float = 1.0
    dy2: float = 0.5
    in_dim: int = 1
    out_dim: int = 1

    def trajectory_protocol(self) -> TwoPointPreset:
        """The protocol of the trajectory figures and rate fits: lr/2 and 2 × epochs."""
        return dataclasses.replace(self, lr=self.lr / 2, epochs=2 * self.epochs)


def _tp(name, arch, activation, gain, lr, width, depth, layer, **kw) -> TwoPointPreset:
    return TwoPointPreset(name, arch, activation, gain, lr, width, depth, 3000, layer, **kw)


_TWO_POINT = (
    _tp("default", "mlp", "leaky_relu", 1.0, 0.01, 500, 20, 10),
    _tp("shallow", "mlp", "leaky_relu", 0.35, 0.02, 500, 2, 1),
    _tp("narrow", "mlp", "leaky_relu", 1.05, 0.01, 50, 20, 10),
    _tp("linear", "mlp", "none", 0.85, 0.0025, 500, 20, 10),
    _tp("elu", "mlp", "elu", 0.95, 0.0009, 500, 20, 10),
    _tp("tanh", "mlp", "tanh", 0.85, 0.0025, 500, 20, 10),
    _tp("relu", "mlp", "relu", 1.0, 0.01, 500, 20, 10),
    _tp("swish", "mlp", "silu", 1.7, 0.005, 500, 20, 10),
    _tp("skip", "resnet", "leaky_relu", 0.1, 0.02, 500, 20, 10),
    _tp("cnn", "cnn", "leaky_relu", 0.95, 0.004, 500, 10, 5),
    _tp("dropout", "dropout", "leaky_relu", 1.0, 0.01, 500, 10, 5),
    _tp("gain_0.9", "mlp", "leaky_relu", 0.9, 0.03, 500, 20, 10),
    _tp("gain_1.1", "mlp", "leaky_relu", 1.1, 0.005, 500, 20, 10),
    _tp("gain_1.2", "mlp", "leaky_relu", 1.2, 0.0025, 500, 20, 10),
    _tp("gain_1.3", "mlp", "leaky_relu", 1.3, 0.0015, 500, 20, 10),
    _tp("gain_1.4", "mlp", "leaky_relu", 1.4, 0.0005, 500, 20, 10),
    _tp("gain_1.6", "mlp", "leaky_relu", 1.6, 0.000003, 500, 20, 10),
    _tp("adam", "mlp", "leaky_relu", 1.0, 0.000001, 500, 20, 10, optimizer="adam"),
    _tp("two_layer", "mlp", "none", 0.1, 0.01, 500, 1, 0),
)

TWO_POINT_PRESETS: MappingProxyType[str, TwoPointPreset] = MappingProxyType(
    {p.name: p for p in _TWO_POINT}
)


@dataclasses.dataclass(frozen=True)
class XorPreset:
    """One row of PRESETS.md's XOR table (ReLU MLP on the four XOR points).

    Attributes:
        name: "rich", "intermediate", "lazy" or "shallow".
        gain, lr, epochs: as in the table; full-batch gradient descent.
        width, depth, layer: P = 500, L = 20, layer 10 (L = 1, layer 0 for "shallow").
        arch, activation, optimizer: "mlp", "relu", "sgd".
        loss: "mse" — the reference study trained XOR on plain mse, twice rep_align's
            0.5·mse; ``half_mse_lr`` is the equivalent learning rate for the latter.
    """

    name: str
    gain: float
    lr: float
    epochs: int
    width: int = 500
    depth: int = 20
    layer: int = 10
    arch: str = "mlp"
    activation: str = "relu"
    optimizer: str = "sgd"
    loss: str = "mse"

    @property
    def half_mse_lr(self) -> float:
        """Learning rate giving the same updates under 0.5·mse (``rep_align.training``)."""
        return 2 * self.lr if self.loss == "mse" else self.lr

    def trajectory_protocol(self) -> XorPreset:
        """lr/2 and 2 × epochs, as for the two-point presets."""
        return dataclasses.replace(self, lr=self.lr / 2, epochs=2 * self.epochs)


XOR_PRESETS: MappingProxyType[str, XorPreset] = MappingProxyType(
    {
        p.name: p
        for p in (
            XorPreset("rich", 0.85, 0.015, 3000),
            XorPreset("intermediate", 1.25, 0.002, 1000),
            XorPreset("lazy", 2.0, 0.000000003, 1000),
            XorPreset("shallow", 0.0015, 0.03, 2000, depth=1, layer=0),
        )
    }
)


def get_preset(name: str) -> TwoPointPreset:
    """The two-point preset called ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return TWO_POINT_PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown two-point preset {name!r}; known: {', '.join(TWO_POINT_PRESETS)}"
        ) from None


def get_xor_preset(name: str) -> XorPreset:
    """The XOR preset called ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return XOR_PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown XOR preset {name!r}; known: {', '.join(XOR_PRESETS)}") from None
