"""The one driver of every experiment: where results go, resume, timing, status, errors,
training through the sweep engine, analysis, ``summary.json`` and the figures.

``run(experiment, out, quick=...)`` is what ``rep-align NAME`` and every stage of
``rep-align reproduce`` call (docs/architecture.md, "Experiments"). It writes, into ``out``:

- ``summary.json``: the experiment's name, title and claim, the mode, its settings, where
  it comes from (``provenance``: commit, package versions, devices, command line, machine,
  start time), status, seconds, headlines with their verdicts, the typed result
  (``files.split_arrays``) and the figures' file names (or the error's traceback, when it
  failed);
- ``arrays.npz``: the result's fields declared with ``files.npz_field`` (if any);
- the figures, one PNG per name the experiment draws.

Runs are trained by the sweep engine into the run store (``store``, default ``out/store``;
``reproduce`` shares one store between all its stages, so runs that two experiments need are
trained once). A second call with the same settings into the same ``out`` finds
``summary.json`` with status "ok" and returns it without running anything; a call whose
experiment was killed midway trains only the runs the store does not hold.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rep_align.experiments._protocol import Experiment, Headline
from rep_align.files import jsonable, split_arrays, write_json, write_npz

__all__ = ["Outcome", "Runs", "SUMMARY", "provenance", "run"]

#: The file name of every experiment's summary (and of ``reproduce``'s).
SUMMARY = "summary.json"
#: The arrays of a result kept out of its JSON.
ARRAYS = "arrays.npz"


#: Packages whose versions every summary records.
_PACKAGES = ("rep_align", "jax", "jaxlib", "numpy", "flax", "optax", "equinox", "diffrax")


def _commit() -> str | None:
    """The git commit of the checkout rep_align is imported from (with "+dirty" when it
    has uncommitted changes), or None outside a git checkout."""
    import subprocess

    where = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def provenance() -> dict[str, Any]:
    """Where a result comes from: the code's commit, package versions, the devices, the
    command line, the machine and the time (UTC), for every ``summary.json``."""
    import datetime
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import jax

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return dict(
        commit=_commit(),
        versions=versions,
        python=platform.python_version(),
        devices=dict(platform=devices[0].platform, kind=devices[0].device_kind, count=len(devices)),
        command=list(sys.argv),
        machine=dict(
            system=platform.platform(), processor=platform.machine(), cores=os.cpu_count()
        ),
        started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


class Runs:
    """The run store as an experiment sees it: ask for runs, get their records; what is
    not stored yet is trained first (by the sweep engine, with progress lines).

    Arguments:
        root: directory of the store (created).
        progress: function receiving status lines.
    """

    def __init__(self, root: str | Path, progress: Callable[[str], None]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.say = progress
        self.trained = 0

    def sweep(self, spec: Any):
        """Train (or resume) the sweep ``spec`` in its store under the root; return its
        ``sweep.SweepResults``."""
        from rep_align.experiments.common import store_for
        from rep_align.sweep import load_results, run_sweep

        where = store_for(self.root, spec)
        report = run_sweep(spec, where, progress=self._progress(spec.name))
        self.trained += report.completed
        return load_results(where)

    def seeds(self, config: Any, seeds: Sequence[int], *, name: str):
        """``config`` over ``seeds``, trained or read back (``common.train_seeds``)."""
        from rep_align.experiments.common import train_seeds

        runs = train_seeds(config, seeds, root=self.root, name=name, progress=self._progress(name))
        self.trained += runs.report.completed
        return runs

    def points(self, runs: Sequence[Any]) -> list[dict[str, Any]]:
        """Many-point runs (``RunConfig``s with ``record="points"``), trained or read back
        (``points.run_points``, a store ``points-<hash>`` under the root): each run's
        snapshots as NumPy arrays, in the order of ``runs``."""
        from rep_align.experiments.points import run_points

        got = run_points(runs, self.root, progress=self.say)
        self.trained += got.report.completed
        return got.records

    def _progress(self, name: str) -> Callable[[int, int], None]:
        t0 = time.perf_counter()
        first: list[int] = []

        def report(done: int, total: int) -> None:
            if not first:
                first.append(done)
                if done < total:
                    self.say(f"  {name}: {total - done} of {total} runs to train")
                return
            new = done - first[0]
            el = time.perf_counter() - t0
            eta = el / new * (total - done) if new else float("nan")
            self.say(f"  {name}: {done}/{total} runs, {el:.0f} s, ETA {eta:.0f} s")

        return report


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What ``run`` did.

    Attributes:
        name: the experiment.
        status: "ok" or "failed".
        seconds: wall time of the call that computed it (the stored one when reused).
        reused: True when a stored ``summary.json`` was returned unchanged.
        settings: the settings as JSON.
        headlines: the headlines with their verdicts.
        result: the typed result (None when reused or failed; ``summary["result"]`` holds
            its JSON).
        summary: the content of ``summary.json``.
        out: the experiment's directory.
    """

    name: str
    status: str
    seconds: float
    reused: bool
    settings: Mapping[str, Any]
    headlines: tuple[Headline, ...]
    result: Any
    summary: Mapping[str, Any]
    out: Path

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def error(self) -> str | None:
        return self.summary.get("error")


def settings_for(experiment: Experiment, quick: bool, changes: Mapping[str, Any] | None) -> Any:
    """The experiment's settings in the mode, with ``changes`` applied (validated by the
    settings class)."""
    settings = experiment.settings(quick)
    if changes:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(settings)})
        if unknown:
            raise ValueError(f"{experiment.name} has no setting(s) {unknown}")
        settings = dataclasses.replace(settings, **changes)
    return settings


def _stored(path: Path, name: str, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    same = rec.get("experiment") == name and rec.get("settings") == settings
    return rec if same and rec.get("status") == "ok" else None


def _headline(d: Mapping[str, Any]) -> Headline:
    fields = {f.name for f in dataclasses.fields(Headline)}
    return Headline(
        **{
            k: (float("nan") if v is None and k in ("value", "spread") else v)
            for k, v in d.items()
            if k in fields
        }
    )


def run(
    experiment: Experiment,
    out: str | Path,
    *,
    quick: bool = False,
    changes: Mapping[str, Any] | None = None,
    store: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    capture: bool = False,
    reuse: bool = True,
    figures: bool = True,
) -> Outcome:
    """Run ``experiment`` into the directory ``out`` (module docstring).

    Arguments:
        experiment: the declaration.
        out: its directory (created).
        quick: quick or full settings (``experiment.settings``).
        changes: settings to change from the mode's (e.g. ``{"seeds": 5}``).
        store: the run store's directory (default ``out/store``).
        progress: function receiving status lines (default: stderr).
        capture: record an exception as status "failed" (with its traceback in
            ``summary.json``) instead of raising it; ``reproduce`` captures, so one failing
            experiment does not stop the others.
        reuse: return a stored ``summary.json`` of the same settings instead of running.
        figures: draw and save the figures.

    Returns:
        An ``Outcome``.

    Raises:
        ValueError: for an unknown setting in ``changes`` or bad settings; whatever the
            experiment raises unless ``capture``.
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out)
    settings = settings_for(experiment, quick, changes)
    settings_json = jsonable(settings)
    summary_path = out / SUMMARY
    if reuse and (rec := _stored(summary_path, experiment.name, settings_json)) is not None:
        return Outcome(
            experiment.name,
            "ok",
            float(rec.get("seconds", 0.0)),
            True,
            settings_json,
            tuple(_headline(h) for h in rec.get("headlines", [])),
            None,
            rec,
            out,
        )
    out.mkdir(parents=True, exist_ok=True)
    runs = Runs(out / "store" if store is None else store, say)
    t0 = time.perf_counter()
    base = dict(
        experiment=experiment.name,
        title=experiment.title,
        claim=experiment.claim,
        mode="quick" if quick else "full",
        settings=settings_json,
        provenance=provenance(),
    )
    result, heads = None, []
    try:
        for spec in experiment.plan(settings):
            runs.sweep(spec)
        result = experiment.analyse(settings, runs)
        heads = experiment.verdicts(result, settings)
        result_json, arrays = split_arrays(result)
        names = []
        if figures:
            names = _save_figures(experiment.figures(result, settings) or {}, out)
        if arrays:
            write_npz(out / ARRAYS, arrays)
        rec = dict(
            base,
            status="ok",
            seconds=round(time.perf_counter() - t0, 1),
            runs_trained=runs.trained,
            headlines=[dataclasses.asdict(h) for h in heads],
            figures=names,
            result=result_json,
            error=None,
        )
    except Exception:
        if not capture:
            raise
        rec = dict(
            base,
            status="failed",
            seconds=round(time.perf_counter() - t0, 1),
            runs_trained=runs.trained,
            headlines=[],
            figures=[],
            result=None,
            error=traceback.format_exc(),
        )
        say(f"  {experiment.name} FAILED: {rec['error'].strip().splitlines()[-1]}")
    write_json(summary_path, rec)
    return Outcome(
        experiment.name,
        rec["status"],
        rec["seconds"],
        False,
        settings_json,
        tuple(heads),
        result,
        jsonable(rec),
        out,
    )


def _save_figures(figs: Mapping[str, Any], out: Path) -> list[str]:
    from rep_align import plots

    names = []
    for name, fig in figs.items():
        if fig is None:
            continue
        file = name if name.endswith(".png") else f"{name}.png"
        plots.save(fig, out / file)
        names.append(file)
    return names
