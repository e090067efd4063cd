"""Checks of command-line arguments that the commands share, made before anything is computed.

The functions raise ``ValueError`` with one line that names the option and its value;
``rep_align.cli.main`` prints it and exits with status 2. ``seed`` is an argparse ``type``
and raises ``argparse.ArgumentTypeError`` instead, which argparse reports the same way.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


def seed(text: str) -> int:
    """argparse type of a PRNG seed: an integer in [0, 2**32), as every run setting's seed
    (``config.RunConfig.seed``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: must be in [0, 2**32)")
    return value


def _existing_ancestor(path: Path) -> Path:
    # Path.exists is False below a regular file (ENOTDIR), so this finds that file too.
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _creatable(flag: str, path: str | os.PathLike, directory: Path) -> None:
    # ``directory`` (``path`` or its parent) exists and is writable, or can be created
    base = _existing_ancestor(directory)
    if not base.is_dir():
        raise ValueError(f"{flag} {os.fspath(path)!r}: {str(base)!r} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {os.fspath(path)!r}: {str(base)!r} is not writable")


def output_dir(flag: str, path: str | os.PathLike) -> None:
    """Refuse ``path`` as an output directory if it cannot become one.

    Raises:
        ValueError: ``path`` exists and is not a directory, a parent of it is a file, or
            the directory (or the nearest existing parent it would be created in) is not
            writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {os.fspath(path)!r}: exists and is not a directory")
    _creatable(flag, path, p)


def output_file(flag: str, path: str | os.PathLike, suffixes: tuple[str, ...]) -> None:
    """Refuse ``path`` as a file to write if it is a directory, its directory cannot be
    created, or its suffix is not one of ``suffixes`` (without dots, lower case).

    Raises:
        ValueError: as said, naming ``flag`` and ``path``.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {os.fspath(path)!r}: is a directory, not a file")
    suffix = p.suffix.lower().lstrip(".")
    if suffix not in suffixes:
        raise ValueError(
            f"{flag} {os.fspath(path)!r}: unknown file type {p.suffix or '(none)'!r}, "
            f"expected one of {', '.join('.' + s for s in suffixes)}"
        )
    _creatable(flag, path, p.parent)


def finite(flag: str, value: float, *, max_abs: float = math.inf) -> None:
    """Refuse a non-finite number, or one whose magnitude exceeds ``max_abs``.

    Raises:
        ValueError: naming ``flag`` and ``value``.
    """
    if not math.isfinite(value):
        raise ValueError(f"{flag} must be a finite number, got {value!r}")
    if abs(value) > max_abs:
        raise ValueError(f"{flag} {value:g} is too large: its magnitude must be <= {max_abs:.3g}")


def rates_from(path: str):
    """``experiments.two_points.read_rates(path)`` with errors naming ``--rates-from``.

    Raises:
        ValueError: ``--rates-from 'PATH': why``, for any file that cannot be read as a
            two-point summary (not JSON, not UTF-8, a summary of another experiment, ...).
    """
    from rep_align.experiments.two_points import read_rates

    try:
        return read_rates(path)
    except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"--rates-from {path!r}: {err}") from None
