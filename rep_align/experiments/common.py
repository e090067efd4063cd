"""What the experiments share: runs declared as sweeps, trained by the sweep engine, and
read back from its store in the order the analysis wants.

Every experiment is a sweep plus an analysis (docs/architecture.md). Its runs are
``RunConfig``s from the presets, declared as a ``SweepSpec`` (``seed_spec``) and trained by
``sweep.run_sweep`` into a store under the experiment's output directory, so they batch,
spread over devices and processes, and resume like any sweep: a killed experiment, started
again with the same ``--out``, trains only the runs that are not stored. The analysis then
reads the stored records (``SeedRuns``).

Seeds are trained ``SEED_BLOCK`` runs per device per chunk (``SweepSpec.runs_per_device``),
so a seed's record does not depend on how many seeds are trained with it (XLA's CPU code
for a batched step changes with the batch size, and on the two-point task the changed
rounding grows to per-cent differences in the records).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rep_align.config import RunConfig
from rep_align.sweep import SweepReport, SweepSpec, load_results, run_sweep

__all__ = [
    "SEED_BLOCK",
    "SeedRuns",
    "observed",
    "seed_spec",
    "store_for",
    "train_seeds",
]

#: Seeds trained per device per chunk (module docstring).
SEED_BLOCK = 4


def seed_spec(config: RunConfig, seeds: Sequence[int], *, name: str) -> SweepSpec:
    """The sweep of ``config`` over ``seeds`` (its seed setting is replaced), trained in
    blocks of ``SEED_BLOCK`` runs per device, trajectories stored, no fit (the analyses fit
    all seeds of a configuration together)."""
    fixed = {k: v for k, v in config.changes().items() if k != "seed"}
    return SweepSpec(
        axes={"seed": [int(s) for s in seeds]},
        fixed=fixed,
        name=name,
        runs_per_device=SEED_BLOCK,
    )


def store_for(root: str | Path, spec: SweepSpec) -> Path:
    """The store of ``spec`` under ``root``: ``root/<name>-<first 8 hex digits of its hash>``,
    so that runs of other settings (``--quick`` or not, other seeds) get their own store
    and the same settings find theirs again."""
    return Path(root) / f"{spec.name}-{spec.spec_hash[:8]}"


@dataclasses.dataclass(frozen=True)
class SeedRuns:
    """The stored runs of one configuration over seeds, in the order of the seeds asked for.

    Attributes:
        seeds: (R,) the seeds.
        records: ``times (T,)``, ``loss, y, w, m (R, T)``, ``h (R, T, L)`` (float32 or
            float64 as trained; times in gradient steps).
        table: per-run columns of the store (``sweep.SweepResults.table``), rows as
            ``seeds``.
        report: what the engine did (runs trained now, runs found stored).
        store: the store's directory.
    """

    seeds: np.ndarray
    records: Mapping[str, np.ndarray]
    table: Mapping[str, np.ndarray]
    report: SweepReport
    store: Path


def train_seeds(
    config: RunConfig,
    seeds: Sequence[int],
    *,
    root: str | Path,
    name: str,
    progress: Callable[[int, int], None] | None = None,
) -> SeedRuns:
    """Train (or resume) ``config`` over ``seeds`` into its store under ``root``
    (``store_for``); read it back.

    Arguments:
        config: the run configuration (its seed is ignored).
        seeds: PRNG seeds, one run each.
        root: directory of the experiment's stores (created if missing).
        name: the sweep's name.
        progress: optional ``progress(done, total)`` (``sweep.run_sweep``).

    Returns:
        A ``SeedRuns`` with rows in the order of ``seeds``.
    """
    seeds = np.asarray(seeds, np.int64)
    spec = seed_spec(config, seeds, name=name)
    store = store_for(root, spec)
    report = run_sweep(spec, store, progress=progress)
    results = load_results(store)
    ids = [config.replace(seed=int(s)).run_id for s in seeds]
    where = {str(i): k for k, i in enumerate(results.table["run_id"])}
    rows = np.asarray([where[i] for i in ids])
    table = {k: v[rows] for k, v in results.table.items()}
    return SeedRuns(
        seeds=seeds, records=results.records(ids), table=table, report=report, store=store
    )


def observed(records: Mapping[str, np.ndarray], layer: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ts (T,), z_obs (R, T, 3))`` of h at ``layer``, y and w, as float64 NumPy arrays."""
    ts = np.asarray(records["times"], np.float64)
    ts = ts.reshape(-1, ts.shape[-1])[0]
    h = np.asarray(records["h"])[..., layer]
    z = np.stack([h, np.asarray(records["y"]), np.asarray(records["w"])], axis=-1)
    return ts, z.astype(np.float64)
