"""The plan of a sweep, stated before anything trains: runs, groups, chunks, memory, disk.

``run_sweep`` builds a ``Plan`` once it knows which runs are left and hands it to its
``plan`` callback before the first chunk; ``rep-align sweep`` prints ``Plan.line()`` and
refuses a plan with ``Plan.problems()`` unless given ``--force``. The limits:

- ``MAX_RUNS`` (100 000) runs in one spec: counted from the axes before any run is built
  (``spec.count_runs``), so a spec of millions of runs is refused in well under a second
  instead of growing memory for a minute while its runs are listed;
- one run's estimated memory (``engine.estimate_run_bytes``) within ``memory_budget_mb``
  (below it the engine would still train one run per chunk, over the budget);
- the records to write within ``MAX_DISK_BYTES`` (100 GiB) and within the free space of
  the store's file system.

No time estimate is given: a run's time depends on the device, the compiled batch and (for
gradient flow) the stiffness, and nothing short of training measures it; the progress bar
gives the rate once chunks finish.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from rep_align.config import RunConfig

__all__ = ["MAX_DISK_BYTES", "MAX_RUNS", "Plan", "record_bytes"]

#: Runs in one spec above which ``rep-align sweep`` refuses without ``--force``.
MAX_RUNS = 100_000
#: Bytes of records above which ``rep-align sweep`` refuses without ``--force``.
MAX_DISK_BYTES = 100 * 2**30
#: Stored bytes of one run besides its records: run id, settings, scalars (an estimate).
_ROW_BYTES = 1024


def record_bytes(cfg: RunConfig, *, save_trajectories: bool = True) -> int:
    """Estimated bytes one run of ``cfg`` adds to the store: its row of scalars and, if
    trajectories are saved, its records (pair runs: ``loss, y, w, m (T,)`` and ``h (T, L)``;
    points runs: ``loss, accuracy (T,)``, ``hidden (T, P, F)``, ``outputs (T, P, out)``)."""
    if not save_trajectories:
        return _ROW_BYTES
    net = cfg.network()
    item = np.dtype(cfg.dtype).itemsize
    if cfg.record == "points":
        n_rec = cfg.epochs // cfg.record_every + 1
        probes = len(cfg.probe) or (cfg.n_points or 0)
        feat = math.prod(net.hidden_shapes[cfg.layer_index])
        values = n_rec * (probes * (feat + net.out_dim) + 2)
    else:
        values = (cfg.steps // cfg.record_every + 1) * (net.num_hidden + 4)
    return _ROW_BYTES + item * values


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a ``run_sweep`` call is about to do.

    Attributes:
        runs: runs this call trains.
        stored: runs of its share already stored (skipped).
        groups, chunks: compiled groups and chunks it will execute.
        run_bytes: the largest estimated memory of one run (``estimate_run_bytes``).
        chunk_bytes: the largest estimated memory of one chunk on one device.
        budget_bytes: the spec's ``memory_budget_mb`` in bytes.
        disk_bytes: estimated bytes the new chunks add to the store (``record_bytes``).
        free_bytes: free space of the store's file system (-1 if unknown).
    """

    runs: int
    stored: int
    groups: int
    chunks: int
    run_bytes: int
    chunk_bytes: int
    budget_bytes: int
    disk_bytes: int
    free_bytes: int = -1

    def line(self) -> str:
        """The plan in one line."""
        return (
            f"plan: {self.runs} runs to train ({self.stored} stored), {self.groups} groups, "
            f"{self.chunks} chunks; memory ~{_size(self.chunk_bytes)} per chunk per device "
            f"(~{_size(self.run_bytes)} per run, budget {_size(self.budget_bytes)}); "
            f"disk ~{_size(self.disk_bytes)}; time unknown (rate shown once chunks finish)"
        )

    def problems(self) -> list[str]:
        """Why the plan should not run as it is (empty if nothing is wrong)."""
        out = []
        if self.runs and self.run_bytes > self.budget_bytes:
            out.append(
                f"one run needs ~{_size(self.run_bytes)}, over memory_budget_mb "
                f"({_size(self.budget_bytes)}): raise --memory-budget-mb"
            )
        if self.disk_bytes > MAX_DISK_BYTES:
            out.append(f"the records need ~{_size(self.disk_bytes)}, over {_size(MAX_DISK_BYTES)}")
        if 0 <= self.free_bytes < self.disk_bytes:
            out.append(
                f"the records need ~{_size(self.disk_bytes)}, the disk has "
                f"{_size(self.free_bytes)} free"
            )
        return out
