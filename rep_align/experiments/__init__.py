"""The experiments: each declared once (``_protocol.Experiment``) in its own module, run by
one driver (``_driver.run``), listed here in the order ``rep-align reproduce`` runs them.

``run(experiment, out, quick=...)`` runs one (``_driver.run``); ``get(name)`` returns an
experiment's declaration (importing its module on first use, so
``import rep_align.experiments`` stays cheap); ``register(experiment)`` adds one of your own
(docs/architecture.md, "Adding an experiment"); ``names()`` lists them all.

Every experiment's runs are sweeps, trained by the sweep engine into the run store and read
back in the order the analysis wants: a killed experiment, started again with the same
output directory, trains only the runs that are not stored.
"""

from __future__ import annotations

import importlib

from rep_align.experiments._driver import Outcome, Runs, run
from rep_align.experiments._protocol import Check, Experiment, Headline, Spread, spread

#: The experiments of the main job, in the order it runs them: name -> module.
_BUILT_IN = {
    "two_points": "two_points",
    "grid": "grid",
    "depth": "depth",
    "ablations": "ablations",
    "xor": "xor",
    "blobs": "blobs",
    "mnist": "mnist",
    "kernel_rates": "kernel_rates",
    "universality": "universality",
    "lazy": "lazy",
}
#: Experiments with a command of their own that the main job does not run.
_EXTRA = {"validity": "validity"}
_REGISTERED: dict[str, Experiment] = {}


def names() -> list[str]:
    """The experiments of the main job: the built-in ones in running order, then registered
    ones (``validity``, which has a command of its own only, is not among them)."""
    return list(_BUILT_IN) + [n for n in _REGISTERED if n not in _BUILT_IN]


def get(name: str) -> Experiment:
    """The declaration of experiment ``name``.

    Raises:
        ValueError: for an unknown name.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    modules = _BUILT_IN | _EXTRA
    if name not in modules:
        raise ValueError(f"unknown experiment {name!r}; choose from {names() + list(_EXTRA)}")
    module = importlib.import_module(f"rep_align.experiments.{modules[name]}")
    return module.EXPERIMENT


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (replacing one of the same name); returns it.

    Raises:
        ValueError: if ``experiment`` is not an ``Experiment``.
    """
    if not isinstance(experiment, Experiment):
        raise ValueError(f"experiment must be an Experiment, got {type(experiment).__name__}")
    _REGISTERED[experiment.name] = experiment
    return experiment


__all__ = [
    "Check",
    "Experiment",
    "Headline",
    "Outcome",
    "Runs",
    "Spread",
    "get",
    "names",
    "register",
    "run",
    "spread",
]
