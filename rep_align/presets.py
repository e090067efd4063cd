"""Hyper-parameters of the reference study, as run configurations (docs/presets.md).

Frozen dataclasses only: nothing here builds networks or trains. A two-point preset is a
``RunConfig`` with a name and the reference study's protocols; learning rates are those of
the reference study's tables; use ``trajectory_protocol()`` (lr/2, 2× epochs) for the
trajectory figures and ``grid_protocol()`` for the final-distance grid, as
docs/presets.md ("Protocols") prescribes.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from rep_align.config import RunConfig
from rep_align.networks import num_hidden

__all__ = [
    "GRID_DISCARD_LOSS",
    "GRID_MAX_EPOCHS",
    "GRID_STOP_EVERY",
    "GRID_STOP_LOSS",
    "TWO_POINT_PRESETS",
    "XOR_PRESETS",
    "TwoPointPreset",
    "XorPreset",
    "get_preset",
    "get_xor_preset",
    "record_every_for",
]


#: Quick mode's size caps: width ≤ 64, depth ≤ 4 (CNN ≤ 3); see ``TwoPointPreset.quick``.
QUICK_WIDTH = 64
QUICK_DEPTH = 4
QUICK_CNN_DEPTH = 3

#: The final-distance grid protocol (docs/presets.md, "Protocols"): lr/5, at most 40,000
#: epochs, each run stopped at its first record (every 100 epochs) below loss 1e-4; a run
#: still above 1e-3 is discarded.
GRID_MAX_EPOCHS = 40_000
GRID_STOP_EVERY = 100
GRID_STOP_LOSS = 1e-4
GRID_DISCARD_LOSS = 1e-3


def record_every_for(steps: int, target_records: int = 600) -> int:
    """Largest divisor of ``steps`` giving at least ``target_records`` records (≥ 1)."""
    k = max(1, steps // target_records)
    while steps % k:
        k -= 1
    return k


@dataclasses.dataclass(frozen=True)
class TwoPointPreset:
    """One row of the reference study's two-point table (docs/presets.md, "Two-point task").

    A preset is a run configuration plus its name and protocols: ``config`` is the table's
    row as a ``RunConfig`` (the table's learning rate, ``steps`` = the table's epochs, the
    read-out ``layer``, about 600 records), and ``trajectory_protocol``, ``grid_protocol``
    and ``quick`` derive the configurations the experiments run.

    Attributes:
        name: preset name ("default", "shallow", …).
        config: the row as a ``RunConfig`` (seed 0; experiments set the seeds).

    The row's values are also attributes: ``arch`` ("mlp", "resnet", "cnn" or "dropout";
    the table's "skip" is "resnet"), ``activation``, ``gain``, ``lr``, ``width`` (P),
    ``depth`` (L, hidden layers), ``epochs`` (full-batch steps), ``layer`` (the hidden
    layer read out), ``optimizer`` ("sgd" or "adam"), ``dx2``, ``dy2``, ``in_dim``,
    ``out_dim`` (the data: dx2 = 1, dy2 = 0.5, dims 1).
    """

    name: str
    config: RunConfig

    arch = property(lambda self: self.config.arch)
    activation = property(lambda self: self.config.activation)
    gain = property(lambda self: self.config.gain)
    lr = property(lambda self: self.config.lr)
    width = property(lambda self: self.config.width)
    depth = property(lambda self: self.config.depth)
    epochs = property(lambda self: self.config.steps)
    layer = property(lambda self: self.config.layer)
    optimizer = property(lambda self: self.config.optimizer)
    dx2 = property(lambda self: self.config.dx2)
    dy2 = property(lambda self: self.config.dy2)
    in_dim = property(lambda self: self.config.in_dim)
    out_dim = property(lambda self: self.config.out_dim)

    def describe(self) -> dict[str, Any]:
        """The row as plain values (for JSON): name, arch, activation, gain, lr, width,
        depth, epochs, layer, optimizer, dx2, dy2, in_dim, out_dim."""
        keys = ("arch", "activation", "gain", "lr", "width", "depth", "epochs", "layer")
        keys += ("optimizer", "dx2", "dy2", "in_dim", "out_dim")
        return {"name": self.name, **{k: getattr(self, k) for k in keys}}

    def replace(self, *, epochs: int | None = None, **changes: Any) -> TwoPointPreset:
        """A copy with ``changes`` to the configuration (``epochs`` sets ``steps``; the
        record interval follows the new length unless ``record_every`` is given)."""
        if epochs is not None:
            changes["steps"] = epochs
            changes.setdefault("record_every", record_every_for(epochs))
        return dataclasses.replace(self, config=self.config.replace(**changes))

    def trajectory_protocol(self) -> TwoPointPreset:
        """The protocol of the trajectory figures and rate fits: lr/2 and 2 × epochs."""
        return self.replace(lr=self.lr / 2, epochs=2 * self.epochs)

    def grid_protocol(self, *, max_epochs: int = GRID_MAX_EPOCHS) -> TwoPointPreset:
        """The final-distance grid protocol: lr/5, up to ``max_epochs`` epochs (a multiple
        of 100), each run stopped at its first record every 100 epochs below loss 1e-4."""
        return self.replace(
            lr=self.lr / 5,
            epochs=max_epochs,
            record_every=GRID_STOP_EVERY,
            stop_loss=GRID_STOP_LOSS,
        )

    def quick(self) -> TwoPointPreset:
        """A small stand-in: width ≤ 64, depth ≤ 4 (CNN ≤ 3), the read-out layer at the
        same relative depth; learning rate, epochs and data unchanged. Outside the regime
        the theory describes (flexible networks): for a fast, complete pipeline only."""
        cnn = self.arch == "cnn"
        depth = min(self.depth, QUICK_CNN_DEPTH if cnn else QUICK_DEPTH)
        width = min(self.width, QUICK_WIDTH)
        n_hidden = num_hidden(self.arch, depth)
        layer = min(n_hidden - 1, round(self.layer * depth / self.depth))
        return self.replace(width=width, depth=depth, layer=layer)


def _tp(name, arch, activation, gain, lr, width, depth, layer, optimizer="sgd") -> TwoPointPreset:
    config = RunConfig(
        task="two_points",
        arch=arch,
        activation=activation,
        gain=gain,
        lr=lr,
        width=width,
        depth=depth,
        steps=3000,
        record_every=record_every_for(3000),
        layer=layer,
        optimizer=optimizer,
    )
    return TwoPointPreset(name, config)


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
    """One row of the reference study's XOR table (docs/presets.md, "XOR"): a ReLU MLP on
    the four XOR points.

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


@dataclasses.dataclass(frozen=True)
class BlobPreset:
    """One row of the reference study's context-blobs table (docs/presets.md, "Context
    blobs"): a 4-layer MLP of width 100 on the 1,800 blob images, read out at layer 2.

    Attributes:
        name: "high_init", "low_init" or "vlow_init".
        gain, lr, epochs: as in the table. The loss is 0.5·mse, as in the reference, so
            the learning rate is used as it is (not halved or doubled).
        width, depth, layer: P = 100, L = 4, read-out layer 2.
        batch_size: 64 (mini-batch SGD, reshuffled every epoch).
        activation: "leaky_relu", what the published runs used (the reference notebook
            never passes the settings' nonlinearity to the model); ``settings_activation``
            is "tanh", what the settings file states.
        arch, optimizer, loss: "mlp", "sgd", "half_mse".
        source: where the row comes from.
    """

    name: str
    gain: float
    lr: float
    epochs: int
    width: int = 100
    depth: int = 4
    layer: int = 2
    batch_size: int = 64
    activation: str = "leaky_relu"
    settings_activation: str = "tanh"
    arch: str = "mlp"
    optimizer: str = "sgd"
    loss: str = "half_mse"
    source: str = (
        "code: experiments/model_settings/orthogonal.txt at 0547c8c and "
        "experiments/orthogonal.ipynb (verified); paper: appendix"
    )


BLOB_PRESETS: MappingProxyType[str, BlobPreset] = MappingProxyType(
    {
        p.name: p
        for p in (
            BlobPreset("high_init", 2.0, 0.0015, 750),
            BlobPreset("low_init", 0.5, 0.015, 1500),
            BlobPreset("vlow_init", 0.275, 0.05, 2000),
        )
    }
)


@dataclasses.dataclass(frozen=True)
class MnistPreset:
    """One row of the reference study's MNIST table (docs/presets.md, "MNIST"): a 4-layer
    leaky-ReLU MLP of width 200 trained on MNIST, read out at layer 2.

    Attributes:
        name: "structure" (the structure experiment) or "trajectories" (the 0/1 pair).
        optimizer, lr, epochs: Adam at 0.005 for "structure", SGD at 0.003 for
            "trajectories"; 200 epochs each. The loss is 0.5·mse, as in the reference.
        gain: 0.5.
        width, depth, layer: P = 200, L = 4, read-out layer 2.
        batch_size: 64 (mini-batches reshuffled every epoch).
        activation, arch, loss: "leaky_relu" (the notebooks pass no nonlinearity, so the
            model's default is used), "mlp", "half_mse".
        source: where the row comes from.
    """

    name: str
    optimizer: str
    lr: float
    epochs: int = 200
    gain: float = 0.5
    width: int = 200
    depth: int = 4
    layer: int = 2
    batch_size: int = 64
    activation: str = "leaky_relu"
    arch: str = "mlp"
    loss: str = "half_mse"
    source: str = ""


MNIST_PRESETS: MappingProxyType[str, MnistPreset] = MappingProxyType(
    {
        p.name: p
        for p in (
            MnistPreset(
                "structure",
                "adam",
                0.005,
                source="code: experiments/model_settings/mnist.txt at c4f4956 (row verified)"
                " and experiments/mnist_structure.ipynb (Adam verified); paper: appendix",
            ),
            MnistPreset(
                "trajectories",
                "sgd",
                0.003,
                source="code: experiments/model_settings/mnist.txt at c4f4956 (row verified)"
                " and experiments/mnist.ipynb (SGD verified); paper: appendix",
            ),
        )
    }
)

__all__ += ["BLOB_PRESETS", "MNIST_PRESETS", "BlobPreset", "MnistPreset"]
