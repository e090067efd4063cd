"""Argument checks on concrete values, shared by every module of rep_align.

Every public function validates what it is given before anything is traced, with a message
that names the argument and shows the bad value (``ValueError``). Values that are JAX
tracers (inside ``jit``, ``vmap`` or ``grad``) cannot be inspected: the array checks here
let them pass, and the compiled code reports bad values per run instead (NaN results and
status flags), so a sweep survives one bad member.

The checks return the value converted to its plain Python type where that is useful
(``integer`` returns an ``int``, ``real`` a ``float``), so callers can write
``width = checks.integer("width", width, minimum=1)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np

__all__ = [
    "concrete",
    "is_concrete",
    "integer",
    "real",
    "choice",
    "boolean",
    "values",
    "describe",
]


def is_concrete(x: Any) -> bool:
    """True unless ``x`` is (or contains) a JAX tracer, whose value is unknown."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array, or None if it is traced (its value cannot be checked)."""
    if not is_concrete(x):
        return None
    return np.asarray(x)


def describe(v: Any, *, limit: int = 4) -> str:
    """A short text of a value for an error message: scalars as they are, arrays by their
    first few entries and shape."""
    a = np.asarray(v)
    if a.ndim == 0:
        return repr(a.item()) if a.dtype.kind in "biuf" else repr(v)
    flat = a.ravel()
    head = ", ".join(repr(x.item()) for x in flat[:limit])
    more = ", …" if flat.size > limit else ""
    return f"array([{head}{more}], shape={a.shape})"


def integer(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """``value`` as an ``int``; raise unless it is an integer (not a bool) in
    [``minimum``, ``maximum``].

    A float with an integral value (``3.0``, as TOML or JSON may give) is accepted.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not ok and isinstance(value, float | np.floating) and float(value).is_integer():
        value, ok = int(value), True
    if not ok:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer ≤ {maximum}, got {value!r}")
    return value


def real(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    below: float | None = None,
    finite: bool = True,
) -> float:
    """``value`` as a ``float``; raise unless it is a real scalar (not a bool) that is
    finite (unless ``finite=False``), > 0 if ``positive``, ≥ 0 if ``nonnegative`` and
    < ``below`` if given.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    a = np.asarray(value) if not isinstance(value, bool) else None
    if a is None or a.shape != () or a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(a)
    if finite and not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    if below is not None and not v < below:
        raise ValueError(f"{name} must be below {below}, got {value!r}")
    return v


def choice(name: str, value: Any, options: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``options``; otherwise raise listing them.

    Raises:
        ValueError: naming ``name``, the value and the options.
    """
    options = tuple(options)
    try:
        known = value in options
    except TypeError:  # unhashable or incomparable
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def boolean(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (``True``/``False``, NumPy's too); otherwise raise.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def values(
    name: str,
    x: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
    scalar: bool = False,
) -> None:
    """Check every entry of a scalar or array argument that may be traced.

    A traced ``x`` passes unchecked (module docstring). A concrete one must be numeric,
    a scalar if ``scalar``, and every entry finite (unless ``finite=False``), > 0 if
    ``positive``, ≥ 0 if ``nonnegative``.

    Raises:
        ValueError: naming ``name`` and showing the offending entries.
    """
    a = concrete(x)
    if a is None:
        return
    if a.dtype.kind not in "biuf" or a.dtype.kind == "b":
        raise ValueError(f"{name} must be numeric, got {describe(x) if a.size else x!r}")
    if scalar and a.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    if finite and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {describe(a)}")
    if positive and not np.all(a > 0):
        raise ValueError(f"{name} must be positive, got {describe(a)}")
    if nonnegative and not np.all(a >= 0):
        raise ValueError(f"{name} must be non-negative, got {describe(a)}")


def float_dtype(name: str, dtype: Any) -> Any:
    """The float dtype to compute in: JAX's default float (float32, or float64 under
    ``jax_enable_x64``) for None, else ``dtype`` itself, unchanged.

    Raises:
        ValueError: naming ``name`` when ``dtype`` is not a dtype or not a floating one.
    """
    if dtype is None:
        return jax.numpy.result_type(float)
    try:
        floating = bool(jax.numpy.issubdtype(dtype, jax.numpy.floating))
    except TypeError:
        floating = False
    if not floating:
        raise ValueError(f"{name} must be a floating dtype, got {dtype!r}")
    return dtype


__all__ += ["float_dtype"]
