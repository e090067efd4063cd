"""The sweep engine: runs of a spec grouped, chunked, spread over devices, stored.

Execution (docs/architecture.md, "How a run flows"):

- Runs that share their static settings (``config.STATIC_FIELDS``) form a *group*, compiled
  once; their traced settings (gain, lr, dx2, dy2, seed, rtol, atol) are the inputs of one
  vmapped function, so new values never recompile.
- A group runs as a sequence of *chunks* of ``per_device × n_devices`` runs. ``per_device``
  is the largest batch that fits ``memory_budget_mb`` (by ``estimate_run_bytes``), capped by
  ``max_chunk``. Each device runs its part of a chunk as an independent vmapped batch
  (``devices.vmap_over_devices``, a ``shard_map`` with no communication), so adaptive
  while-loops are never sharded automatically. The last chunk is padded with copies of a
  real run (dropped before writing), so every chunk has the same shape. With
  ``runs_per_device`` n, a chunk is instead split into blocks of n runs (the last one not
  padded), block k running as one vmapped call on device k mod (devices). Within a group,
  pair runs are ordered by (lr, gain, dx2, dy2, seed), so an adaptive solve's chunk holds
  runs of similar stiffness; points runs (``RunConfig.record``) keep their plan order, so
  that the runs of an experiment's list share blocks as they always have.
- A group's chunks are trained by ``rep_align.sweep.runner.GroupRunner``. Runs with a
  ``stop_loss`` train in segments of ``runner.STOP_SEGMENT_RECORDS`` records; after each
  segment the runs below the loss stop, and the next segment trains only those still going
  (per block, or as one batch padded to a multiple of the device count).

Numbers and chunk shapes: a run's result does not depend on which chunk or device computed
it, up to the floating-point reassociation XLA may choose for a different batch size. On the
two-point task with leaky-ReLU networks that reassociation is not harmless: the second input
starts on every unit's kink and the rounding grows to per-cent differences in the records
within a few hundred steps (measured on the default 20 × 500 network, whose CPU code changes
between 8 and 12 runs per batch). ``runs_per_device`` fixes the batch a run is trained in,
so its record does not depend on how many runs the sweep has; to compare two sweeps member by
member otherwise, run both with chunks of the same shape. Fitted rates (``fit = true``) are
computed one run at a time (``fit_chunk``), so they depend on the chunking only through the
record they are fitted to.

Before training, the store's chunks are verified (``rep_align.sweep._health``: foreign or
corrupt ones are moved to ``DIR/quarantine`` and their runs trained again), a read-only
store with runs left is refused, and the ``Plan`` (``rep_align.sweep.plan``: runs, groups,
chunks, memory per chunk, disk) goes to the caller's ``plan`` callback, which may refuse it.

Several processes: each process takes the runs whose position in the plan is ≡
``process_index`` (mod ``process_count``), by default ``jax.process_index()`` and
``jax.process_count()`` after ``jax.distributed.initialize()``, runs them on its local
devices and writes its own chunk files into the shared store.

Inside compiled code nothing raises: a run whose loss becomes non-finite carries
``diverged = True`` (and ``diverged_step``), a gradient-flow run whose solver failed carries
``solver_ok = False``, and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import rep_align.sweep.store as store
from rep_align.config import ADDED_FIELDS, STATIC_FIELDS, RunConfig
from rep_align.sweep._csv import write_csv
from rep_align.sweep.plan import Plan, record_bytes
from rep_align.sweep.runner import GroupRunner, traced_inputs
from rep_align.sweep.spec import SweepSpec

__all__ = ["ReadOnlyStoreError", "SweepReport", "estimate_run_bytes", "run_sweep"]


class ReadOnlyStoreError(ValueError):
    """The store cannot be written and runs are left to train."""


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}
_FIT_COLUMNS = (
    "eta_h",
    "eta_y",
    "eta_m",
    "fit_loss",
    "r2_h",
    "r2_y",
    "r2_w",
    "fit_ok",
    "fit_converged",
)


@dataclasses.dataclass(frozen=True)
class SweepReport:
    """What one ``run_sweep`` call did.

    Attributes:
        out: the results directory.
        num_runs: runs in the spec (for this process, if several share the sweep).
        skipped: runs found finished already (resumed).
        completed: runs computed by this call.
        diverged: runs of this call flagged diverged or with a failed solver.
        num_groups, num_chunks: compiled groups and chunks executed by this call.
        seconds: wall time of this call.
    """

    out: Path
    num_runs: int
    skipped: int
    completed: int
    diverged: int
    num_groups: int
    num_chunks: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs sharing their static settings; ``runs`` in execution order."""

    key: str  # short hash of the static settings
    static: RunConfig  # the first run, for its static settings
    runs: tuple[RunConfig, ...]


def groups_of(runs: Iterable[RunConfig]) -> list[Group]:
    """The runs grouped by static settings (first appearance order); a group of pair runs
    sorted by (lr, gain, dx2, dy2, seed) so that similar stiffness sits side by side, a
    group of points runs in plan order (module docstring)."""
    by_key: dict[tuple, list[RunConfig]] = {}
    for r in runs:
        by_key.setdefault(r.static_key, []).append(r)
    out = []
    for members in by_key.values():
        # settings added later enter the key only when set, so group keys stay stable
        first = members[0]
        values = [
            getattr(first, name)
            for name in STATIC_FIELDS
            if not (name in ADDED_FIELDS and getattr(first, name) == _DEFAULTS[name])
        ]
        text = json.dumps([list(k) if isinstance(k, tuple) else k for k in values])
        if first.record == "pair":
            members = sorted(members, key=lambda r: (r.lr, r.gain, r.dx2, r.dy2, r.seed))
        gkey = hashlib.sha256(text.encode()).hexdigest()[:8]
        out.append(Group(key=gkey, static=members[0], runs=tuple(members)))
    return out


def estimate_run_bytes(cfg: RunConfig) -> int:
    """Rough peak memory of one run of ``cfg`` inside a vmapped chunk, in bytes.

    Counts parameters, gradients and updates (×3, plus 2 Adam moments), a factor 2 for
    XLA's temporaries, the forward activations of all points, and the recorded observables
    ``(steps/record_every + 1) × (layers + 4)`` (twice: scan buffer and output); for a
    points run the records are the probe points' hidden and output values at each of its
    ``epochs/record_every + 1`` records. Gradient flow adds Tsit5's 7 stages and error
    estimate. Meant for sizing chunks, not exact.
    """
    net = cfg.network()
    dummy = jax.eval_shape(lambda k: net.init(k), jax.random.key(0))
    n_params = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(dummy))
    item = jnp.dtype(cfg.dtype).itemsize
    copies = 3 + (2 if cfg.optimizer == "adam" else 0) + (9 if cfg.method == "flow" else 0)
    n = cfg.n_points
    if n is None:  # MNIST from a directory: its size is known once it is read
        n = len(cfg.data()[0])
    act = n * sum(math.prod(s) for s in net.hidden_shapes) * 4
    if cfg.record == "points":
        probes = len(cfg.probe) or n
        n_rec = cfg.epochs // cfg.record_every + 1
        feat = math.prod(net.hidden_shapes[cfg.layer_index])
        records = 2 * n_rec * (probes * (feat + net.out_dim) + 2)
    else:
        n_rec = cfg.steps // cfg.record_every + 1
        records = 2 * n_rec * (net.num_hidden + 4)
    return int(item * (2 * copies * n_params + act + records) + 4096)


# ------------------------------------------------------------------------- fitting


def fit_chunk(cfg: RunConfig, res: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fit effective rates to every run of a chunk (docs/theory.md §5).

    (η_h, η_y) are fitted to h (read-out layer), y, w with ``fit.fit_records`` and then η_m
    to the loss curve with ``fit.fit_eta_m_records``, in float64, one run at a time: the
    fit integrates its batch as one stacked system with one step size, so a run fitted
    with others would get numbers that depend on its chunk (and so on ``max_chunk``); alone,
    each run's numbers are the same bit for bit however the sweep is chunked, and the fit
    compiles once per record length. Runs that cannot be fitted (non-finite records, h0 =
    0, dx2 = 0) get NaN and ``fit_ok = False``; ``fit_ok`` is ``fit.fits_well`` (converged
    and R² ≥ ``fit.R2_MIN`` for h, y, w and, if fitted, the loss curve), ``fit_converged``
    only the optimisers' convergence (``success``; the former ``fit_ok``, for analyses that
    study R² and must not select on it). η_m is fitted for
    the two-point task only (its loss is the pair's loss).
    """
    rows = range(len(res["h0"]))
    parts = [_fit_one(cfg, {k: v[i : i + 1] for k, v in res.items()}) for i in rows]
    return {k: np.concatenate([p[k] for p in parts]) for k in _FIT_COLUMNS}


def _fit_one(cfg: RunConfig, res: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``fit_chunk`` of a chunk of one run."""
    from rep_align import fit

    z = np.stack([res["h"][:, :, cfg.layer_index], res["y"], res["w"]], axis=-1)
    ts = np.asarray(res["times"][0], np.float64)
    two = cfg.task == "two_points"
    rates = fit.fit_records(
        ts,
        z,
        dx2=res["data_dx2"],
        dy2=res["data_dy2"],
        return_trajectory=two,
        where=np.isfinite(res["loss"]).all(axis=1),
    )
    eta_m = None
    if two:
        eta_m = fit.fit_eta_m_records(
            ts,
            res["loss"],
            rates.z_fit,
            m0=res["m"][:, 0],
            dy2=res["data_dy2"],
            out_dim=cfg.out_dim,
        )
    out = {
        "eta_h": rates.eta_h,
        "eta_y": rates.eta_y,
        "eta_m": np.full(1, np.nan) if eta_m is None else eta_m.eta_m,
        "fit_loss": rates.loss,
        "r2_h": rates.r2[:, 0],
        "r2_y": rates.r2[:, 1],
        "r2_w": rates.r2[:, 2],
        "fit_ok": fit.fits_well(rates, eta_m),
        "fit_converged": rates.success & (True if eta_m is None else eta_m.success),
    }
    return {k: np.asarray(out[k]) for k in _FIT_COLUMNS}


# ------------------------------------------------------------------------- running


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike,
    *,
    devices: Sequence[jax.Device] | None = None,
    progress: Callable[[int, int], None] | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    plan: Callable[[Plan], None] | None = None,
) -> SweepReport:
    """Run (or resume) a sweep, writing each finished chunk to the store at ``out``.

    Validation happens before anything is compiled: the spec validates on construction, and
    the store is checked against it here. Runs already in the store are skipped, so calling
    this again after an interruption completes the sweep with every run exactly once.

    Arguments:
        spec: the sweep.
        out: results directory (created if missing; layout in ``rep_align.sweep.store``).
        devices: devices to spread chunks over; default ``jax.local_devices()``.
        progress: optional ``progress(done, total)`` called once at the start (with the runs
            already finished) and after every chunk.
        process_index, process_count: this process's share of the plan (runs whose plan
            position ≡ index mod count); default ``jax.process_index()``,
            ``jax.process_count()`` (several processes with ``jax.distributed``).
        plan: optional ``plan(Plan)`` called once the runs left are known, before anything
            trains; it may raise to refuse the plan (``rep-align sweep`` does, on
            ``Plan.problems``). Without it a run over the memory budget only warns.

    Returns:
        A ``SweepReport``.

    Raises:
        SpecMismatchError: if ``out`` holds another spec's results or is not a sweep store.
        ValueError: for an invalid ``process_index``/``process_count`` or empty ``devices``.
        ReadOnlyStoreError: if ``out`` cannot be written and runs are left to train (raised
            before training; with nothing left to do a read-only store is fine).
    """
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        raise ValueError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    out = Path(out)
    pcount = jax.process_count() if process_count is None else int(process_count)
    pindex = jax.process_index() if process_index is None else int(process_index)
    if pcount < 1 or not 0 <= pindex < pcount:
        raise ValueError(f"process_index={pindex} must lie in [0, process_count={pcount})")
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty")
    all_runs = spec.runs()
    writable = _writable(out)
    if writable:
        store.prepare(out, spec, writer=True, num_groups=len(groups_of(all_runs)))
    else:
        store.prepare(out, spec, writer=False)
    if pcount == 1 and writable:  # leftovers of a killed writer; several processes: live
        for tmp in (out / store.CHUNKS).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    mine = [r for i, r in enumerate(all_runs) if i % pcount == pindex]
    done = {i for c in store.stored_chunks(out, spec, writer=writable) for i in c.run_ids}
    todo = [r for r in mine if r.run_id not in done]
    total = len(mine)
    finished = total - len(todo)
    if todo and not writable:
        raise ReadOnlyStoreError(
            f"{out} is not writable and {len(todo)} of its {total} runs are left to train: "
            "make it writable or choose another output directory"
        )
    groups = groups_of(todo)
    shapes = []
    for group in groups:
        with jax.enable_x64(group.static.dtype == "float64"):
            shapes.append(_chunk_shape(spec, group.static, len(group.runs), devices))
    the_plan = _plan(spec, out, groups, shapes, len(todo), finished)
    if plan is not None:
        plan(the_plan)
    elif the_plan.runs and the_plan.run_bytes > the_plan.budget_bytes:
        warnings.warn(the_plan.problems()[0] + "; training one run per chunk", stacklevel=2)
    if progress is not None:
        progress(finished, total)
    n_chunks = n_bad = 0
    for group, (per_device, devs, _) in zip(groups, shapes, strict=True):
        cfg = group.static
        with jax.enable_x64(cfg.dtype == "float64"):
            size = per_device * len(devs)
            runner = GroupRunner(cfg, devs, spec.runs_per_device)
            for start in range(0, len(group.runs), size):
                runs = group.runs[start : start + size]
                # fixed blocks are not padded: a smaller last block is its own shape
                pad = 0 if spec.runs_per_device else size - len(runs)
                padded = list(runs) + [runs[-1]] * pad
                res = runner.run(traced_inputs(padded, cfg.dtype), len(runs))
                fitted = fit_chunk(cfg, res) if spec.fit else None
                store.write_chunk(out, group.key, runs, res, spec, fitted)
                failed = (
                    res["diverged"] | ~res["solver_ok"] if "solver_ok" in res else res["diverged"]
                )
                n_bad += int(np.sum(failed))
                n_chunks += 1
                finished += len(runs)
                if progress is not None:
                    progress(finished, total)
    if writable:  # every process, under a lock: the last to end writes it whole
        write_csv(out)
    return SweepReport(
        out=out,
        num_runs=total,
        skipped=total - len(todo),
        completed=len(todo),
        diverged=n_bad,
        num_groups=len(groups),
        num_chunks=n_chunks,
        seconds=time.perf_counter() - t_start,
    )


def _writable(out: Path) -> bool:
    """Whether a writer can create ``out`` or write into it and its chunks folder."""
    if not out.exists():
        parent = next((p for p in out.parents if p.exists()), Path("."))
        return os.access(parent, os.W_OK)
    where = [out] + ([out / store.CHUNKS] if (out / store.CHUNKS).exists() else [])
    return all(os.access(p, os.W_OK | os.X_OK) for p in where)


def _chunk_shape(
    spec: SweepSpec, cfg: RunConfig, n_runs: int, devices: Sequence[jax.Device]
) -> tuple[int, list[jax.Device], int]:
    """(runs per device, devices used, estimated bytes of one run) of a group's chunks."""
    run_bytes = estimate_run_bytes(cfg)
    if spec.runs_per_device:
        per_device = spec.runs_per_device
        used = devices[: max(1, min(len(devices), -(-n_runs // per_device)))]
        return per_device, list(used), run_bytes
    fit_in = int(spec.memory_budget_mb * 2**20 // run_bytes)
    per_device = max(1, min(spec.max_chunk, fit_in, math.ceil(n_runs / len(devices))))
    return per_device, list(devices), run_bytes


def _plan(spec: SweepSpec, out: Path, groups, shapes, n_todo: int, n_stored: int) -> Plan:
    """The ``Plan`` of the groups left, each with its ``_chunk_shape``."""
    pairs = list(zip(groups, shapes, strict=True))
    chunks = sum(-(-len(g.runs) // (per * len(devs))) for g, (per, devs, _) in pairs)
    disk = sum(
        len(g.runs) * record_bytes(g.static, save_trajectories=spec.save_trajectories)
        for g in groups
    )
    try:
        free = shutil.disk_usage(next(p for p in (out, *out.parents) if p.exists())).free
    except (OSError, StopIteration):
        free = -1
    return Plan(
        runs=n_todo,
        stored=n_stored,
        groups=len(groups),
        chunks=chunks,
        run_bytes=max((b for _, _, b in shapes), default=0),
        chunk_bytes=max((per * b for per, _, b in shapes), default=0),
        budget_bytes=int(spec.memory_budget_mb * 2**20),
        disk_bytes=disk,
        free_bytes=free,
    )
