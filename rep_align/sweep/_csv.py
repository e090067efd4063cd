"""``results.csv`` of a store: the scalar columns of every verified run, one row per run.

Rebuilt from the verified chunks (``store.load_results``) at the end of every ``run_sweep``
call and written atomically (``files.atomic_write``): a process killed during the rebuild
leaves the previous file, and the next call rebuilds it whole.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from rep_align.files import atomic_write

__all__ = ["write_csv"]


def write_csv(out: Path) -> None:
    """Rewrite ``results.csv`` atomically: the scalar columns of every finished run.

    Several processes may call this as they end: it runs under an exclusive lock on
    ``DIR/.results.lock`` (``fcntl.flock``, where the OS has it), so the process that ends
    last reads every chunk the others wrote and its file is the one that stays."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock: one writer at a time is assumed
        _write_csv(out)
        return
    with open(out / ".results.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _write_csv(out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_csv(out: Path) -> None:
    from rep_align.sweep.store import load_results

    res = load_results(out)
    names = [k for k, v in res.table.items() if v.ndim == 1]
    if "pair" in res.table:
        names.insert(names.index("layer_index"), "pair")

    def fmt(k: str, i: int) -> str:
        v = res.table[k][i]
        if k == "pair":
            return f"{int(v[0])} {int(v[1])}"
        if isinstance(v, np.floating):
            return repr(float(v))
        if isinstance(v, np.bool_):
            return "true" if v else "false"
        return str(v)

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(names)
    for i in range(len(res)):
        w.writerow([fmt(k, i) for k in names])
    atomic_write(out / "results.csv", buf.getvalue().encode())
