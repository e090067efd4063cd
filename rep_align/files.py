"""Writing results files safely: atomic replacement and strict JSON.

A file that a reader may open at any time (a sweep's manifest, ``results.csv``, an
experiment's ``summary.json``) is written to a temporary name in the same directory and
moved into place with ``os.replace``, which is atomic on POSIX: a reader sees the old file
or the new one, never a torn one, and a killed writer leaves no partial file behind.

Every JSON that rep_align writes or prints is strict (RFC 8259), readable by any parser:
``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` would emit, are written as
``null`` (``jsonable``), and ``json.dumps`` runs with ``allow_nan=False`` so that a value
that escaped the mapping fails loudly instead of producing a file other tools reject. Use
``write_json`` for files and ``dumps_json`` for text (a command's ``--json`` output), never
``json.dump``/``json.dumps`` on results directly. (Hashing a canonical JSON of settings, as
``config.RunConfig.run_id`` does, writes nothing and is not concerned.)
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "NPZ",
    "atomic_write",
    "dumps_json",
    "jsonable",
    "npz_field",
    "split_arrays",
    "write_json",
    "write_npz",
]

#: Metadata key of a dataclass field whose value goes to the ``.npz`` beside a result's
#: JSON instead of into it (``npz_field``, ``split_arrays``).
NPZ = "rep_align.npz"


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
    """``obj`` with dataclasses turned into dicts of their fields, NumPy scalars and arrays
    into Python values, tuples into lists, and non-finite floats into None, for strict
    JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
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


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """``jsonable(obj)`` as strict JSON text: non-finite floats become ``null``.

    Arguments:
        obj: what to write (``jsonable`` converts it).
        **kwargs: passed to ``json.dumps`` (``indent``, ``ensure_ascii``, ...), but not
            ``allow_nan``, which is always False.
    """
    return json.dumps(jsonable(obj), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``jsonable(obj)`` as indented strict JSON to ``path`` (atomically, creating its
    directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, dumps_json(obj, indent=1).encode())


def npz_field(**kwargs: Any) -> Any:
    """A dataclass field whose value (an array, or a mapping of arrays) is kept out of
    the result's JSON and written to the ``.npz`` beside it (``split_arrays``)."""
    return dataclasses.field(metadata={NPZ: True}, **kwargs)


def split_arrays(obj: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``(json_ready, arrays)``: ``jsonable(obj)`` without the fields declared with
    ``npz_field``, and those fields' arrays keyed by their dotted path (``"runs.0.hidden"``);
    in the JSON such a field holds the string ``"npz:<path>"``.

    This is how every typed result becomes files: one generic function instead of a
    ``to_json`` per class.
    """
    arrays: dict[str, np.ndarray] = {}

    def walk(o: Any, path: str) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            out = {}
            for f in dataclasses.fields(o):
                where = f"{path}.{f.name}" if path else f.name
                value = getattr(o, f.name)
                if f.metadata.get(NPZ):
                    out[f.name] = f"npz:{where}"
                    _collect(value, where, arrays)
                else:
                    out[f.name] = walk(value, where)
            return out
        if isinstance(o, Mapping):
            return {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(o)]
        return jsonable(o)

    return walk(obj, ""), arrays


def _collect(value: Any, path: str, arrays: dict[str, np.ndarray]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _collect(v, f"{path}.{k}", arrays)
    elif isinstance(value, list | tuple) and not all(np.isscalar(v) for v in value):
        for i, v in enumerate(value):
            _collect(v, f"{path}.{i}", arrays)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect(getattr(value, f.name), f"{path}.{f.name}", arrays)
    elif value is not None:
        arrays[path] = np.asarray(value)


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz`` (atomically; no pickle)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write(path, buf.getvalue())
