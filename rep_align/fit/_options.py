"""The fit's settings (``FitOptions``) and the fixed constants of its procedure."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from rep_align import checks, theory

# Constants of the procedure (``rep_align.fit``'s docstring).
FLOOR_REL = 1e-3  # normalisation floor, relative to an observable's RMS
FINE_POINTS = 9  # scales in the fine scan, spanning ±1 coarse spacing
SCAN_PASSED = 100.0  # the scan stops once every run's loss exceeds its best this many times
MAX_LOG_STEP = 1.5  # trust bound on each log-rate per refinement step (a factor e^1.5)
LAMBDA_INIT = 1e-3  # Marquardt damping, relative to the diagonal of JᵀJ
LAMBDA_MAX = 1e8  # beyond this no step helps: we are at the minimum to solver precision
# Convergence: relative decrease of the loss, and log-step (relative change of a rate),
# below which the fit has converged. The solver's own error (rtol 1e-8 in the trajectory)
# moves the loss by about this much; asking for less only makes steps bounce off that
# noise. In float32 the floor is 100 ulps (about 1.2e-5).
TOL = 1e-8
ETA_M_GRID = np.logspace(-8.0, 2.0, 41)  # coarse scan of η_m


def convergence_tol(dtype) -> float:
    """Convergence tolerance of the refinements in ``dtype``."""
    return max(TOL, 100 * float(jnp.finfo(dtype).eps))


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """Settings of the rate fit (``fit_rates``, ``fit_run``, ``fit_records``).

    Frozen and hashable: the compiled fit takes it as its static argument, so the fit is
    compiled once per shape and ``FitOptions`` (``normalize`` excepted, which is traced and
    shares one compilation). Validated on construction; ``dataclasses.replace`` gives a
    validated variant.

    Attributes:
        variant: ``"theory"`` or an ablation of docs/theory.md §4, (4.1)-(4.4)
            (``theory.VARIANTS``); default ``"theory"``.
        normalize: divide each observable's squared error by its spread (default True;
            False: plain mean squared error over time and observables), docs/theory.md (5.1).
        rtol, atol: tolerances of every solve (as ``theory.solve``; default 1e-8, 1e-10).
        max_steps: step cap of every solve (default 4096); a refinement candidate that hits
            it is rejected, a scan chunk in which every solve fails ends the scan.
        scan_max_steps: step budget of the scan (default 2048): the theory's scan stops
            before a chunk that could need more (``rep_align.fit``'s docstring).
        scan_range: (low, high) of the scanned scales √(η_h η_y), per gradient step,
            0 < low < high < inf (default (1e-6, 1e2)).
        scan_points: number of log-spaced scales scanned, >= 3 (default 33: four per decade).
        max_iter: cap on refinement iterations (default 50; 3 to 10 are typical).

    Raises:
        ValueError: naming the option and its value, on an unknown ``variant``, a
            ``normalize`` that is not a bool, non-positive or non-finite tolerances, step
            caps or counts that are not positive integers, ``scan_points`` < 3, or a
            ``scan_range`` that is not a pair with 0 < low < high < inf.
    """

    variant: str = "theory"
    normalize: bool = True
    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 4_096
    scan_max_steps: int = 2_048
    scan_range: tuple[float, float] = (1e-6, 1e2)
    scan_points: int = 33
    max_iter: int = 50

    def __post_init__(self) -> None:
        def put(name, value):
            object.__setattr__(self, name, value)

        put("variant", checks.choice("variant", self.variant, theory.VARIANTS))
        put("normalize", checks.boolean("normalize", self.normalize))
        put("rtol", checks.real("rtol", self.rtol, positive=True))
        put("atol", checks.real("atol", self.atol, positive=True))
        put("max_steps", checks.integer("max_steps", self.max_steps, minimum=1))
        put(
            "scan_max_steps",
            checks.integer("scan_max_steps", self.scan_max_steps, minimum=1),
        )
        put("scan_points", checks.integer("scan_points", self.scan_points, minimum=3))
        put("max_iter", checks.integer("max_iter", self.max_iter, minimum=1))
        put("scan_range", _scan_range(self.scan_range))


def _scan_range(value: Any) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"scan_range must be a pair (low, high), got {value!r}") from None
    lo = checks.real("scan_range[0]", lo, positive=True)
    hi = checks.real("scan_range[1]", hi, positive=True)
    if not (0 < lo < hi < math.inf):
        raise ValueError(f"scan_range must satisfy 0 < low < high < inf, got {value!r}")
    return lo, hi


_FIELDS = tuple(f.name for f in dataclasses.fields(FitOptions))


def resolve(options: FitOptions | None, overrides: Mapping[str, Any], caller: str) -> FitOptions:
    """``options`` (default ``FitOptions()``) with the keyword settings ``overrides`` applied.

    Raises:
        TypeError: for a keyword that is not a ``FitOptions`` field (as for an unknown
            keyword argument of ``caller``).
        ValueError: when ``options`` is not a ``FitOptions`` or None, or an override is
            invalid (``FitOptions``).
    """
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}"
            f" (settings are the fields of FitOptions: {', '.join(_FIELDS)})"
        )
    if options is None:
        return FitOptions(**overrides)
    if not isinstance(options, FitOptions):
        raise ValueError(f"options must be a FitOptions or None, got {options!r}")
    return dataclasses.replace(options, **overrides) if overrides else options
