"""Verifying what a results store holds before any of it is read or resumed.

Every chunk file is checked before its runs count (``check_chunk``):

- *corrupt*: the file cannot be read whole: not a zip (truncated, ``zipfile.BadZipFile``),
  a member whose CRC does not match (a flipped byte), an ``.npy`` header that does not
  parse, a required column missing (``__format__``, ``spec_hash``, ``group``, ``run_id``,
  ``loss_final``), or a per-run column whose length is not the chunk's run count;
- *foreign*: readable, but written for another spec: another format tag, another spec hash
  than the manifest's, or a run id that is not one of the spec's runs;
- *ok*: otherwise. Only ok chunks are read (``verified_chunks``).

A writer (``run_sweep``) moves corrupt and foreign chunks into ``DIR/quarantine/`` (never
deletes them), so their runs count as missing and are trained again, and nothing else is
touched; a reader (``load_results``, ``rep-align sweep-plot``) skips them with a warning
naming the file. A run stored in two ok chunks counts once (the chunk first by name wins).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rep_align.sweep.spec import FORMAT

__all__ = ["ChunkCheck", "Health", "QUARANTINE", "check_chunk", "health", "verified_chunks"]

#: Folder inside the store where a writer moves chunks that fail their check.
QUARANTINE = "quarantine"
_REQUIRED = ("__format__", "spec_hash", "group", "run_id", "loss_final")
#: Columns that are not one value per run.
_NOT_PER_RUN = ("__format__", "spec_hash", "group", "times")
_UNREADABLE = (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, RuntimeError)


@dataclasses.dataclass(frozen=True)
class ChunkCheck:
    """The verdict on one chunk file: ``state`` "ok", "foreign" or "corrupt", the
    ``reason`` in words ("" if ok) and the run ids it holds (empty unless readable)."""

    path: Path
    state: str
    reason: str = ""
    run_ids: tuple[str, ...] = ()


def _headers(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of every array of an ``.npz``, from the ``.npy`` headers, after checking
    every member's CRC (reads the whole file once, loads no array)."""
    shapes = {}
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
        for info in z.infolist():
            with z.open(info) as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = (
                    np.lib.format.read_array_header_1_0
                    if major == 1
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = read(fh)
            shapes[info.filename.removesuffix(".npy")] = tuple(shape)
    return shapes


def check_chunk(path: Path, spec_hash: str, spec_ids: set[str]) -> ChunkCheck:
    """Verify one chunk file against the store's spec hash and run ids (module docstring)."""
    try:
        shapes = _headers(path)
        missing = [k for k in _REQUIRED if k not in shapes]
        if missing:
            return ChunkCheck(path, "corrupt", f"missing column(s) {', '.join(missing)}")
        with np.load(path, allow_pickle=False) as f:
            fmt, chash = str(f["__format__"]), str(f["spec_hash"])
            ids = tuple(str(i) for i in f["run_id"])
    except _UNREADABLE as err:
        return ChunkCheck(path, "corrupt", f"unreadable ({type(err).__name__}: {err})")
    n = len(ids)
    for k, shape in shapes.items():
        if k in _NOT_PER_RUN or (shape == () and k not in ("run_id", "loss_final")):
            continue  # a scalar column holds one value for every run
        if not shape or shape[0] != n:
            return ChunkCheck(path, "corrupt", f"column {k} has shape {shape}, not ({n}, ...)")
    if fmt != FORMAT:
        return ChunkCheck(path, "foreign", f"format {fmt!r}, not {FORMAT!r}", ids)
    if chash != spec_hash:
        return ChunkCheck(path, "foreign", f"spec hash {chash}, the store's is {spec_hash}", ids)
    strangers = [i for i in ids if i not in spec_ids]
    if strangers:
        return ChunkCheck(path, "foreign", f"run {strangers[0]} is not a run of the spec", ids)
    return ChunkCheck(path, "ok", "", ids)


def _quarantine(out: Path, check: ChunkCheck) -> Path:
    """Move a chunk that failed its check into ``out/quarantine`` (a free name)."""
    folder = out / QUARANTINE
    folder.mkdir(exist_ok=True)
    dest = folder / check.path.name
    k = 1
    while dest.exists():
        dest = folder / f"{check.path.stem}.{k}{check.path.suffix}"
        k += 1
    try:
        os.replace(check.path, dest)
    except FileNotFoundError:  # another process of the sweep moved it first
        return dest
    (folder / f"{dest.name}.why.txt").write_text(f"{check.state}: {check.reason}\n")
    return dest


def verified_chunks(
    out: Path, paths: Iterable[Path], spec_hash: str, spec_ids: set[str], *, writer: bool
) -> list[ChunkCheck]:
    """The ok chunks among ``paths``; the others moved aside (``writer``) or skipped, each
    with a warning naming the file and the reason."""
    good = []
    for path in paths:
        check = check_chunk(path, spec_hash, spec_ids)
        if check.state == "ok":
            good.append(check)
            continue
        where = "skipped"
        if writer:
            where = f"moved to {_quarantine(out, check)}; its runs count as missing"
        warnings.warn(f"{check.state} chunk {path}: {check.reason}; {where}", stacklevel=3)
    return good


@dataclasses.dataclass(frozen=True)
class Health:
    """A store's state as ``rep-align sweep --check`` reports it (nothing is moved).

    Attributes:
        directory: the store.
        num_runs: runs of its spec.
        chunks: every chunk file's ``ChunkCheck``, sorted by name.
        stored: distinct runs in ok chunks.
        duplicates: runs found in more than one ok chunk (counted once in ``stored``).
        quarantined: files already in ``DIR/quarantine``.
    """

    directory: Path
    num_runs: int
    chunks: tuple[ChunkCheck, ...]
    stored: int
    duplicates: int
    quarantined: int

    @property
    def missing(self) -> int:
        return self.num_runs - self.stored

    @property
    def healthy(self) -> bool:
        """Every chunk ok and no run stored twice."""
        return self.duplicates == 0 and all(c.state == "ok" for c in self.chunks)

    def lines(self) -> list[str]:
        """The report in words: a summary line, then one line per bad chunk."""
        count = {s: sum(c.state == s for c in self.chunks) for s in ("ok", "foreign", "corrupt")}
        head = (
            f"{self.directory}: chunks {count['ok']} ok, {count['foreign']} foreign, "
            f"{count['corrupt']} corrupt; runs {self.stored} stored, {self.missing} missing "
            f"of {self.num_runs}; {self.duplicates} duplicates"
        )
        if self.quarantined:
            head += f"; {self.quarantined} file(s) in {QUARANTINE}/"
        bad = [f"  {c.state} {c.path.name}: {c.reason}" for c in self.chunks if c.state != "ok"]
        return [head, *bad]


def health(out: Path, paths: Iterable[Path], spec_hash: str, spec_ids: set[str]) -> Health:
    """Check every chunk of the store ``out`` without moving anything."""
    checks = tuple(check_chunk(p, spec_hash, spec_ids) for p in paths)
    seen: set[str] = set()
    dup = 0
    for c in checks:
        if c.state == "ok":
            dup += sum(i in seen for i in set(c.run_ids))
            seen.update(c.run_ids)
    q = out / QUARANTINE
    n_q = sum(1 for p in q.glob("*.npz")) if q.is_dir() else 0
    return Health(out, len(spec_ids), checks, len(seen), dup, n_q)
