"""Sweeps over networks, optimisers, data geometry and seeds as compiled, vmapped, sharded jobs.

A sweep is declared, not programmed: a ``SweepSpec`` (``rep_align.sweep.spec``) names fixed
settings and *axes* (lists of values) of ``rep_align.config.RunConfig``; the product of the
axes is the set of runs, each with a stable id (a hash of its settings). ``run_sweep``
(``rep_align.sweep.engine``) trains them in compiled groups and device-sharded chunks and
writes each finished chunk to a results store (``rep_align.sweep.store``) that NumPy alone
can read; ``load_results`` reads it back. Re-running a spec into its store resumes it.
docs/architecture.md shows how a run flows from a spec to a figure.
"""

from rep_align.config import STATIC_FIELDS as STATIC_FIELDS
from rep_align.config import TRACED_FIELDS as TRACED_FIELDS
from rep_align.config import RunConfig as RunConfig
from rep_align.sweep.engine import ReadOnlyStoreError as ReadOnlyStoreError
from rep_align.sweep.engine import SweepReport as SweepReport
from rep_align.sweep.engine import estimate_run_bytes as estimate_run_bytes
from rep_align.sweep.engine import run_sweep as run_sweep
from rep_align.sweep.labelled import open_dataset as open_dataset
from rep_align.sweep.labelled import save_dataset as save_dataset
from rep_align.sweep.spec import FORMAT as FORMAT
from rep_align.sweep.spec import SweepSpec as SweepSpec
from rep_align.sweep.spec import load_spec as load_spec
from rep_align.sweep.spec import spec_from_dict as spec_from_dict
from rep_align.sweep.store import SpecMismatchError as SpecMismatchError
from rep_align.sweep.store import SweepResults as SweepResults
from rep_align.sweep.store import load_results as load_results

__all__ = [
    "FORMAT",
    "ReadOnlyStoreError",
    "RunConfig",
    "STATIC_FIELDS",
    "TRACED_FIELDS",
    "SpecMismatchError",
    "SweepResults",
    "SweepReport",
    "SweepSpec",
    "estimate_run_bytes",
    "load_results",
    "load_spec",
    "open_dataset",
    "run_sweep",
    "save_dataset",
    "spec_from_dict",
]
