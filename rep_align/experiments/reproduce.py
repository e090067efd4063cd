"""The main job: every registered experiment, one report that says where we agree.

``run_reproduce(out, quick=...)`` runs the experiments of ``experiments.names()`` (those of
docs/theory.md §7 and this project's additions: universality, the lazy limit, rates from
kernels) one after the other through the driver (``_driver.run``), each into
``out/<name>/`` with one run store ``out/store`` shared by all (runs two experiments need
are trained once), and writes

- ``out/summary.json``: where it comes from (``_driver.provenance``: commit, package
  versions, devices, command line, machine, start time), the total time, and per
  experiment its status, time, settings, headlines (with spread over seeds), the criterion
  each is checked against, where its bound comes from and whether it holds;
- ``out/report.md`` and a self-contained ``out/report.html`` (``rep_align.report``).

Resuming. An experiment that finished wrote ``out/<name>/summary.json``; a second call with
the same settings reads it instead of running again, and an experiment killed midway
resumes from the store, so nothing stored is retrained.

Quick and full. Each experiment declares its quick and full settings (``settings(quick)``).
Where a quick setting must shrink something, the experiment declares how far its quick
headlines may lie from the full-size ones (``tolerance``); they are compared with a full
run in the same ``out`` if there is one, else with the values this project measured at full
size (``full_reference``), and a quick number further away is labelled "not comparable".

Failures. An experiment that raises is reported with its error, the others still run, and
``run_reproduce`` returns a result whose ``ok`` is False (the CLI's exit status 1).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rep_align import experiments, report
from rep_align.experiments._driver import SUMMARY, provenance, run
from rep_align.experiments._protocol import Experiment, Headline
from rep_align.files import atomic_write, write_json

__all__ = ["ReproduceResult", "run_reproduce"]


@dataclasses.dataclass(frozen=True)
class ReproduceResult:
    """What ``run_reproduce`` did.

    Attributes:
        mode: "quick" or "full".
        stages: per experiment: status ("ok" or "failed"), seconds, reused, title, claim,
            ours, settings, headlines (as dicts), figures (paths relative to ``out``),
            error (traceback text when failed).
        out: the output directory.
    """

    mode: str
    stages: Mapping[str, Mapping[str, Any]]
    out: Path
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no experiment failed."""
        return all(s["status"] != "failed" for s in self.stages.values())

    def to_json(self) -> dict[str, Any]:
        return dict(
            mode=self.mode,
            ok=self.ok,
            seconds=self.seconds,
            provenance=dict(self.provenance),
            stages=dict(self.stages),
        )


def _full_values(base: Path, exp: Experiment) -> tuple[dict[str, float], str]:
    """Full-size headline values of ``exp``: from a full run under ``base/full`` if there is
    one, else the experiment's ``full_reference``."""
    stored = base / "full" / exp.name / SUMMARY
    if stored.exists():
        rec = json.loads(stored.read_text())
        if rec.get("status") == "ok" and rec.get("mode") == "full":
            return {h["name"]: h["value"] for h in rec["headlines"]}, str(stored)
    ref = exp.full_reference
    if ref:
        return dict(ref["values"]), str(ref["source"])
    return {}, ""


def label(exp: Experiment, heads: Sequence[Headline], base: Path) -> list[Headline]:
    """Quick headlines labelled against the full-size values (module docstring)."""
    full, source = _full_values(base, exp)
    out = []
    for h in heads:
        tol = exp.tolerance.get(h.name)
        if tol is None:
            if not h.comparable and h.name in full:
                # the experiment found its quick number not comparable: show the full one
                note = f"full size {full[h.name]:.4g} ({source})"
                h = dataclasses.replace(h, note=(h.note + " " + note).strip())
            out.append(h)
            continue
        if h.name not in full or full[h.name] is None:
            note = (h.note + " no full-size value to check against").strip()
            out.append(dataclasses.replace(h, comparable=False, note=note))
            continue
        diff = abs(h.value - full[h.name])
        note = (
            f"full size {full[h.name]:.4g} ({source}); |quick − full| = {diff:.3g}, tolerance {tol}"
        )
        out.append(
            dataclasses.replace(h, comparable=bool(diff <= tol), note=(h.note + " " + note).strip())
        )
    return out


def run_reproduce(
    out: str | Path = "runs/reproduce",
    *,
    quick: bool = True,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReproduceResult:
    """Run every experiment (or those in ``only``) and write the report.

    Arguments:
        out: output directory. Quick runs go to ``out/``, full runs to ``out/full/`` (so a
            full run never overwrites a quick one, and quick numbers can be checked
            against it).
        quick: quick mode (default) or the paper's sizes throughout.
        only: experiment names to run (default all, in ``experiments.names()`` order).
        progress: function receiving status lines (default: stderr).

    Returns:
        A ``ReproduceResult``; its ``ok`` is False if any experiment failed.

    Raises:
        ValueError: for an unknown experiment name in ``only``.
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    known = experiments.names()
    names = known if only is None else list(only)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {known}")
    base = Path(out)
    root = base if quick else base / "full"
    root.mkdir(parents=True, exist_ok=True)
    mode = "quick" if quick else "full"
    stages: dict[str, dict[str, Any]] = {}
    origin = provenance()
    t0 = time.perf_counter()
    for k, name in enumerate(names):
        say(f"[{k}/{len(names)} experiments] starting {name} ({mode})")
        exp = experiments.get(name)
        got = run(exp, root / name, quick=quick, store=root / "store", progress=say, capture=True)
        heads = label(exp, got.headlines, base) if got.ok else []
        stages[name] = dict(
            status=got.status,
            seconds=got.seconds,
            reused=got.reused,
            title=exp.title,
            claim=exp.claim,
            ours=exp.ours,
            settings=got.settings,
            headlines=[dataclasses.asdict(h) for h in heads],
            figures=[f"{name}/{f}" for f in got.summary.get("figures", [])],
            error=got.error,
        )
        el = time.perf_counter() - t0
        eta = el / (k + 1) * (len(names) - k - 1)
        say(
            f"[{k + 1}/{len(names)} experiments] {name}: {got.status}"
            f"{' (stored)' if got.reused else ''} in {got.seconds:.0f} s;"
            f" elapsed {el:.0f} s, ETA {eta:.0f} s"
        )
    result = ReproduceResult(mode, stages, root, origin, round(time.perf_counter() - t0, 1))
    summary = result.to_json()
    write_json(root / SUMMARY, summary)
    atomic_write(root / "report.md", report.report_markdown(summary).encode())
    atomic_write(root / "report.html", report.report_html(summary, root).encode())
    return result
