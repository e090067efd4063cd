"""The results store of a sweep: one directory, readable with NumPy alone.

Layout::

    DIR/manifest.json         format tag, spec hash, name, run and group counts, versions
    DIR/spec.toml             the spec in canonical form (``rep-align sweep DIR/spec.toml``)
    DIR/chunks/*.npz          one file per finished chunk: per-run columns (run_id, every
                              setting, status flags, summary scalars, fitted rates) and,
                              unless ``save_trajectories = false``, the recorded
                              trajectories ``loss (n, T)``, ``h (n, T, L)``, ``y``, ``w``,
                              ``m (n, T)`` with ``times (T,)`` in gradient steps; for
                              points runs the snapshots ``loss``, ``accuracy (n, T)``,
                              ``hidden (n, T, P, F)``, ``outputs (n, T, P, out)`` with
                              ``times (T,)`` in epochs (``SweepResults.snapshots``)
    DIR/results.csv           one row per finished run (the scalar columns), rebuilt from
                              the verified chunks at the end of every ``run_sweep`` call
                              (atomically: a kill during the rebuild leaves the old file)
    DIR/quarantine/           chunk files that failed their check, moved here by a writer
                              with a ``NAME.why.txt`` beside each (``rep_align.sweep._health``)

Why NumPy ``.npz`` plus JSON/CSV: ``.npz`` is a zip of ``.npy`` arrays, NumPy's documented
and versioned binary format, loaded with ``numpy.load(path)`` (and by readers in Julia, R,
C++, ...), exact in every dtype and free of pickle. One small file per chunk, written to a
temporary name and moved into place with ``os.replace`` (atomic on POSIX,
``rep_align.files.atomic_write``), makes the store crash-safe with no locking: a killed
sweep leaves complete chunks or none, never a torn file. Groups with different record
lengths or depths sit in different files, so nothing ragged needs padding.

Resume and safety: a finished run is one whose id appears in a chunk file. The manifest
stores the spec's hash (over the run ids and output options); a different spec pointed at
the same directory raises ``SpecMismatchError`` before any compute, so results of two specs
never mix.

Verification: every chunk is checked before its runs count (``rep_align.sweep._health``): a
chunk that is corrupt (truncated, a flipped byte, a column missing) or foreign (another
spec's hash, a run id not in the spec) is skipped by readers with a warning naming the file,
and moved into ``DIR/quarantine/`` by a writer, whose resume then trains its runs again. A
run stored twice counts once. ``rep-align sweep --check DIR`` reports a store's health.
Reading needs no write access and takes no lock.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from rep_align.config import ADDED_FIELDS, FIELDS, RunConfig
from rep_align.files import atomic_write
from rep_align.sweep import _health
from rep_align.sweep.spec import FORMAT, SweepSpec, load_spec

__all__ = ["SpecMismatchError", "SweepResults", "load_results", "CONVERGED_LOSS"]

#: The reference study's filter for converged runs: final loss below this
#: (docs/presets.md, "Protocols").
CONVERGED_LOSS = 1e-2

CHUNKS = "chunks"
MANIFEST = "manifest.json"
#: Per-run scalar outputs of the engine, in the order they are stored.
SCALARS = (
    "data_dx2",
    "data_dy2",
    "diverged",
    "diverged_step",
    "n_steps",
    "solver_ok",
    "h0",
    "y0",
    "w0",
    "loss_final",
    "h_final",
    "y_final",
    "w_final",
)
#: Recorded trajectories, stored unless ``save_trajectories = false``.
TRAJECTORIES = ("loss", "h", "y", "w", "m")
#: Per-run scalar outputs of points runs.
POINTS_SCALARS = ("diverged", "diverged_epoch", "loss_final", "accuracy_final")
#: Snapshots of points runs (``training.Snapshots``, the epochs as ``times``), stored
#: unless ``save_trajectories = false``.
SNAPSHOTS = ("loss", "accuracy", "hidden", "outputs")
#: Columns of a chunk that hold no per-run values.
_META = ("__format__", "spec_hash", "times", *TRAJECTORIES, *SNAPSHOTS)
#: Fill values of per-run columns missing from older chunks (settings added later, or
#: outputs of runs that used them).
_MISSING = {
    "stop_step": -1,
    **{f.name: f.default for f in dataclasses.fields(RunConfig)},
    "probe": "",
}


class SpecMismatchError(ValueError):
    """The output directory holds results of a different spec (or is not a sweep store)."""


def _package_version() -> str:
    try:
        return version("rep_align")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def prepare(out: Path, spec: SweepSpec, *, writer: bool, num_groups: int = 0) -> None:
    """Create the store at ``out`` for ``spec`` or check that it belongs to ``spec``.

    Raises:
        SpecMismatchError: if ``out`` holds another spec's results or is not a store.
    """
    manifest = out / MANIFEST
    if not manifest.exists() and out.exists():
        # A store another process is creating right now holds at most these (spec.toml is
        # written before the manifest, and temporary files are hidden); the manifest may
        # appear between the two looks, so it is allowed here too.
        being_made = {CHUNKS, "spec.toml", MANIFEST}
        if any(p.name not in being_made and not p.name.startswith(".") for p in out.iterdir()):
            raise SpecMismatchError(
                f"{out} exists, is not empty and has no {MANIFEST}: not a sweep results "
                "store; choose another output directory"
            )
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except json.JSONDecodeError as err:
            raise SpecMismatchError(f"{manifest} is not valid JSON ({err})") from None
        if not isinstance(old, dict) or old.get("format") != FORMAT:
            raise SpecMismatchError(f"{out} is not a {FORMAT} results store")
        if old.get("spec_hash") != spec.spec_hash:
            raise SpecMismatchError(
                f"{out} holds results of a different spec ({old.get('name')!r}, hash "
                f"{old.get('spec_hash')}); this spec ({spec.name!r}) has hash {spec.spec_hash}. "
                "Results of two specs are never mixed: choose another output directory, "
                "or delete the old one to start over."
            )
        return
    if not writer:
        return
    import jax

    # chunks/ appears last, so a reader that sees it finds spec.toml and the manifest too
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "spec_hash": spec.spec_hash,
        "name": spec.name,
        "num_runs": spec.num_runs,
        "num_groups": num_groups,
        "axes": {k: list(v) for k, v in spec.axes},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rep_align_version": _package_version(),
        "jax_version": jax.__version__,
    }
    atomic_write(out / "spec.toml", spec.to_toml().encode())
    # Several processes may create the store at once: the manifest is linked into place,
    # which fails if it exists, so the first one wins and the others check against it.
    tmp = out / f".{MANIFEST}.{os.getpid()}.new"
    atomic_write(tmp, json.dumps(meta, indent=2).encode())
    try:
        os.link(tmp, manifest)
    except FileExistsError:
        tmp.unlink()
        prepare(out, spec, writer=False)
    except OSError:  # a file system without hard links: last writer wins (same content)
        os.replace(tmp, manifest)
    else:
        tmp.unlink()
    (out / CHUNKS).mkdir(exist_ok=True)


def chunk_files(out: Path) -> list[Path]:
    """The finished chunk files of the store, sorted by name."""
    return sorted((out / CHUNKS).glob("*.npz")) if (out / CHUNKS).exists() else []


def stored_chunks(
    out: Path, spec: SweepSpec | None = None, *, writer: bool = False
) -> list[_health.ChunkCheck]:
    """The verified chunks of the store ``out`` (of ``spec``, default the stored one), sorted
    by name; the others are moved aside (``writer``) or skipped (``rep_align.sweep._health``).
    """
    spec = load_spec(out / "spec.toml") if spec is None else spec
    ids = {r.run_id for r in spec.runs()}
    return _health.verified_chunks(out, chunk_files(out), spec.spec_hash, ids, writer=writer)


def health(out: str | os.PathLike) -> _health.Health:
    """The health of the store ``out`` (``rep-align sweep --check``); nothing is moved.

    Raises:
        SpecMismatchError: if ``out`` is not a results store.
        FileNotFoundError: if ``out`` does not exist.
    """
    out = Path(out)
    spec = _read_spec(out)
    ids = {r.run_id for r in spec.runs()}
    return _health.health(out, chunk_files(out), spec.spec_hash, ids)


def finished_ids(out: Path, spec: SweepSpec | None = None, *, verify: bool = True) -> set[str]:
    """Ids of every run stored in ``out`` (in verified chunks; ``verify=False`` reads only
    the run ids of the chunks that open, for polling progress)."""
    if verify:
        return {i for c in stored_chunks(out, spec) for i in c.run_ids}
    done: set[str] = set()
    for path in chunk_files(out):
        try:
            with np.load(path, allow_pickle=False) as f:
                done.update(str(i) for i in f["run_id"])
        except _health._UNREADABLE:
            continue
    return done


def write_chunk(
    out: Path,
    group_key: str,
    runs: Sequence[RunConfig],
    res: Mapping[str, np.ndarray],
    spec: SweepSpec,
    fitted: Mapping[str, np.ndarray] | None,
) -> Path:
    """Write one finished chunk atomically and return its path.

    Settings of ``ADDED_FIELDS`` get a column only when the chunk's runs set them (they are
    static, so a chunk's runs agree on them), so stores of sweeps that do not use them keep
    their layout; ``load_results`` fills such columns for chunks without them.
    """
    ids = [r.run_id for r in runs]
    digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
    path = out / CHUNKS / f"{group_key}-{digest}.npz"
    cols: dict[str, np.ndarray] = {
        "__format__": np.asarray(FORMAT),
        "spec_hash": np.asarray(spec.spec_hash),
        "group": np.asarray(group_key),
        "run_id": np.asarray(ids),
        "layer_index": np.full(len(runs), runs[0].layer_index, np.int32),
    }
    points = runs[0].record == "points"
    for name in FIELDS:
        vals = [getattr(r, name) for r in runs]
        if name in ADDED_FIELDS and vals[0] == RunConfig.__dataclass_fields__[name].default:
            continue
        if name == "pair":
            cols[name] = np.asarray(vals, np.int64)
        elif name == "layer":
            cols[name] = np.asarray([str(v) for v in vals])
        elif name == "probe":  # as text, like the pair in results.csv: "3 17 4"
            cols[name] = np.asarray([" ".join(map(str, v)) for v in vals])
        else:
            cols[name] = np.asarray(vals)
    for name in POINTS_SCALARS if points else (*SCALARS, "stop_step"):
        if name in res:
            cols[name] = res[name]
    if spec.save_trajectories:
        cols["times"] = res["epochs" if points else "times"][0]
        for name in SNAPSHOTS if points else TRAJECTORIES:
            cols[name] = res[name]
    for name, v in (fitted or {}).items():
        cols[name] = v
    atomic_write(path, lambda fh: np.savez(fh, **cols))
    return path


@dataclasses.dataclass(frozen=True)
class SweepResults:
    """The finished runs of a results store, as read by ``load_results``.

    Attributes:
        spec: the sweep spec stored with the results.
        table: per-run columns, one entry per finished run in plan order: ``run_id``,
            ``group``, every ``RunConfig`` setting, ``layer_index``, the status flags
            ``diverged``, ``diverged_step``, ``solver_ok``, ``n_steps`` (and ``stop_step``
            for runs with a ``stop_loss``), the summaries ``data_dx2``, ``data_dy2``,
            ``h0``, ``y0``, ``w0``, ``loss_final``, ``h_final``, ``y_final``, ``w_final``
            (h at the read-out layer; at the stop for runs that stopped), ``converged``
            (finite final loss below the threshold given to ``load_results``) and, if the
            sweep fitted rates, ``eta_h``, ``eta_y``, ``eta_m`` (two-point task only),
            ``fit_loss``, ``r2_h``, ``r2_y``, ``r2_w``, ``fit_ok`` (``fit.fits_well``:
            converged and R² ≥ ``fit.R2_MIN``), ``fit_converged`` (the optimisers'
            convergence alone; NaN rates and False for runs that could not be fitted, e.g.
            diverged ones) and the analytic ``h_inf_theory`` (docs/theory.md, eq. (3.2))
            from h0, y0 and the fitted rates.
        directory: where the store lives.
    """

    spec: SweepSpec
    table: Mapping[str, np.ndarray]
    directory: Path
    chunks: tuple[Path, ...] = ()  # the verified chunk files the table was read from

    def __len__(self) -> int:
        return len(self.table["run_id"])

    @property
    def num_missing(self) -> int:
        """Runs of the spec not finished yet."""
        return self.spec.num_runs - len(self)

    def trajectories(self, group: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Recorded trajectories of one group (see ``table["group"]``).

        Returns:
            ``(run_ids, arrays)`` with arrays ``times (T,)``, ``loss, y, w, m (n, T)``,
            ``h (n, T, L)``, rows in the order of ``run_ids`` (chunk by chunk).

        Raises:
            ValueError: if the sweep did not save trajectories or the group is unknown.
        """
        if not self.spec.save_trajectories:
            raise ValueError("this sweep was run with save_trajectories = false")
        ids, parts = [], {n: [] for n in TRAJECTORIES}
        times, seen = None, set()
        for path in self.chunks:
            with np.load(path, allow_pickle=False) as f:
                if str(f["group"]) != group:
                    continue
                if "record" in f.files and str(f["record"][0]) == "points":
                    raise ValueError(f"group {group!r} holds points runs: read them with snapshots")
                new = [k for k, i in enumerate(f["run_id"]) if str(i) not in seen]
                seen.update(str(i) for i in f["run_id"])
                ids.extend(str(f["run_id"][k]) for k in new)
                times = f["times"]
                for n in TRAJECTORIES:
                    parts[n].append(f[n][new])
        if times is None:
            raise ValueError(f"no finished runs in group {group!r}")
        return np.asarray(ids), {"times": times, **{n: np.concatenate(v) for n, v in parts.items()}}

    def to_xarray(self):
        """The results as an ``xarray.Dataset`` with the sweep axes as the run index, so
        ``ds.sel(width=500, gain=1.0)`` works, and the trajectories over (run, time, layer)
        (``rep_align.sweep.labelled``; needs the optional extra ``xarray``)."""
        from rep_align.sweep.labelled import to_dataset

        return to_dataset(self)

    def snapshots(self, run_ids: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """The stored snapshots of the points runs ``run_ids``, in that order.

        Returns:
            One dict per run with the fields of ``training.Snapshots`` as NumPy arrays:
            ``epochs (T,)``, ``loss (T,)``, ``accuracy (T,)``, ``hidden (T, P, F)``,
            ``outputs (T, P, out)``, ``diverged ()`` and ``diverged_epoch ()``.

        Raises:
            ValueError: if snapshots were not saved, or a run is not stored or is not a
                points run.
        """
        if not self.spec.save_trajectories:
            raise ValueError("this sweep was run with save_trajectories = false")
        wanted = set(run_ids)
        found: dict[str, dict[str, np.ndarray]] = {}
        for path in self.chunks:
            with np.load(path, allow_pickle=False) as f:
                rows = [(k, str(i)) for k, i in enumerate(f["run_id"]) if str(i) in wanted]
                if not rows or "record" not in f.files or str(f["record"][0]) != "points":
                    continue
                cols = {n: f[n] for n in (*SNAPSHOTS, "diverged", "diverged_epoch")}
                for k, run_id in rows:
                    snap = {n: np.asarray(cols[n][k]) for n in cols}
                    found.setdefault(run_id, {"epochs": f["times"], **snap})
        missing = [i for i in run_ids if i not in found]
        if missing:
            raise ValueError(f"points runs not in the store: {missing[:3]}")
        order = ("epochs", "loss", "accuracy", "hidden", "outputs", "diverged", "diverged_epoch")
        return [{n: found[i][n] for n in order} for i in run_ids]

    def records(self, run_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Recorded trajectories of the runs ``run_ids``, rows in that order.

        The runs must share their record times (for example, the runs of one group).

        Returns:
            ``times (T,)``, ``loss, y, w, m (n, T)``, ``h (n, T, L)``.

        Raises:
            ValueError: if trajectories were not saved, a run is not stored, or the runs'
                record times differ.
        """
        groups = {
            str(g)
            for g, i in zip(self.table["group"], self.table["run_id"], strict=True)
            if str(i) in set(run_ids)
        }
        rows: dict[str, tuple[dict[str, np.ndarray], int]] = {}
        for group in sorted(groups):
            ids, arrays = self.trajectories(group)
            for k, run_id in enumerate(ids):
                rows[str(run_id)] = (arrays, k)
        missing = [i for i in run_ids if i not in rows]
        if missing:
            raise ValueError(f"runs not in the store: {missing[:3]}")
        times = [rows[i][0]["times"] for i in run_ids]
        if any(t.shape != times[0].shape or np.any(t != times[0]) for t in times):
            raise ValueError("the runs have different record times; ask for one group at a time")
        out = {"times": times[0]}
        for n in TRAJECTORIES:
            out[n] = np.stack([rows[i][0][n][rows[i][1]] for i in run_ids])
        return out


def load_results(out: str | os.PathLike, *, converged_loss: float = CONVERGED_LOSS) -> SweepResults:
    """Read a results store written by ``run_sweep`` (finished runs only).

    Arguments:
        out: the results directory.
        converged_loss: a run counts as ``converged`` if its final loss is finite and below
            this (default 1e-2, the reference study's filter).

    Returns:
        A ``SweepResults``.

    Raises:
        SpecMismatchError: if ``out`` is not a results store.
        FileNotFoundError: if ``out`` does not exist.
    """
    out = Path(out)
    spec = _read_spec(out)
    chunks = stored_chunks(out, spec)
    parts: list[dict[str, np.ndarray]] = []
    names: list[str] = []
    seen: set[str] = set()
    for check in chunks:
        with np.load(check.path, allow_pickle=False) as f:
            n = len(f["run_id"])
            keep = np.asarray([i not in seen for i in check.run_ids], bool)  # a run counts once
            seen.update(check.run_ids)
            part = {}
            for k in f.files:
                if k in _META:
                    continue
                v = f[k]
                part[k] = (np.full(n, v) if v.ndim == 0 else v)[keep]
                if k not in names:
                    names.append(k)
            parts.append(part)
    paths = tuple(c.path for c in chunks)
    if not parts:
        empty = {"run_id": np.asarray([], str)}
        return SweepResults(spec=spec, table=empty, directory=out, chunks=paths)
    table: dict[str, np.ndarray] = {}
    for k in names:
        cols = []
        for part in parts:
            if k in part:
                cols.append(part[k])
            elif k in _MISSING:
                cols.append(np.full(len(part["run_id"]), _MISSING[k]))
            else:  # an output column (e.g. fitted rates) absent from some chunks
                cols.append(None)
        if any(c is None for c in cols):
            continue
        table[k] = np.concatenate(cols)
    order_of = {r.run_id: i for i, r in enumerate(spec.runs())}
    order = np.argsort([order_of.get(str(i), len(order_of)) for i in table["run_id"]])
    table = {k: v[order] for k, v in table.items()}
    lf = table["loss_final"]
    table["converged"] = np.isfinite(lf) & (lf < converged_loss)
    if "eta_h" in table:
        from rep_align.fit import predicted_final_distance

        args = [table[k] for k in ("h0", "y0", "eta_h", "eta_y", "data_dx2", "data_dy2")]
        table["h_inf_theory"] = predicted_final_distance(*args)
    return SweepResults(spec=spec, table=table, directory=out, chunks=paths)


def _read_spec(out: Path) -> SweepSpec:
    """The spec of the store ``out``, checked against its manifest."""
    if not out.is_dir():
        raise FileNotFoundError(f"no results directory {out}")
    if not (out / MANIFEST).exists():
        raise SpecMismatchError(f"{out} has no {MANIFEST}: not a sweep results store")
    spec = load_spec(out / "spec.toml")
    prepare(out, spec, writer=False)
    return spec
