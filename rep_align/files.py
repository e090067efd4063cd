"""Writing results files safely: atomic replacement and strict JSON.

A file that a reader may open at any time (a sweep's manifest, ``results.csv``, an
experiment's ``summary.json``) is written to a temporary name in the same directory and
moved into place with ``os.replace``, which is atomic on POSIX: a reader sees the old file
or the new one, never a torn one, and a killed writer leaves no partial file behind.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write", "jsonable", "write_json"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any] | bytes) -> Path:
    """Write ``path`` atomically: to a temporary file beside it, then ``os.replace``.

    Arguments:
        path: destination; its directory must exist.
        write: the bytes to write, or a function ``write(fh)`` that writes to a binary file.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            if isinstance(write, bytes | bytearray):
                fh.write(write)
            else:
                write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays turned into Python values, tuples into lists,
    and non-finite floats into None, for strict JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``jsonable(obj)`` as indented strict JSON to ``path`` (atomically, creating its
    directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(obj), indent=1, allow_nan=False)
    return atomic_write(path, text.encode())
