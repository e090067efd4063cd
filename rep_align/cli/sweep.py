"""``rep-align sweep SPEC.toml --out DIR``: run or resume a sweep, with a progress bar.

The spec format and the results store are described in ``rep_align.sweep``. Re-running the
same command after an interruption resumes: finished runs are skipped. A spec that differs
from the one stored in DIR is refused (exit status 2) and nothing is computed.

Several processes (``rep_align.sweep.processes``): ``--processes N`` starts N local
processes through ``jax.distributed`` on the loopback interface, with one progress bar for
the whole sweep; ``--coordinator HOST:PORT --num-processes N --process-id I`` makes this
process one of N on a cluster, and ``--distributed`` lets JAX read the cluster's
environment (SLURM, TPU pods).

Before training it prints the plan (``rep_align.sweep.plan``: runs, groups, chunks, memory
per chunk, disk) and refuses, exit status 2, a spec of more than ``plan.MAX_RUNS`` runs
(counted from the axes, before any run is built), one run over ``--memory-budget-mb``, or
records over the disk limits, unless given ``--force``. ``--check`` reports the store's
health (chunks ok, foreign or corrupt; runs stored, missing, duplicated) and trains nothing:
``rep-align sweep --check DIR`` (exit status 1 if anything is wrong).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import TextIO


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.toml", nargs="?", help="sweep spec (see rep_align.sweep)")
    p.add_argument("--out", metavar="DIR", help="results directory")
    p.add_argument(
        "--check",
        metavar="DIR",
        help="report the health of the store DIR (chunks, runs stored and missing); no training",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run a plan over the limits (runs, memory per run, disk; rep_align.sweep.plan)",
    )
    p.add_argument(
        "--memory-budget-mb",
        type=float,
        default=None,
        help="override the spec's memory budget per device (does not change results)",
    )
    p.add_argument(
        "--max-chunk",
        type=int,
        default=None,
        help="override the spec's cap on runs per device per chunk (does not change results)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("several processes (jax.distributed)")
    g.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="start N local processes on 127.0.0.1, each on its share of the cores",
    )
    g.add_argument(
        "--gpus",
        action="store_true",
        help="with --processes: one local accelerator per process instead of CPU cores",
    )
    g.add_argument(
        "--host-devices",
        type=int,
        default=None,
        help="with --processes: JAX CPU devices per process (default: its cores)",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="coordinator of jax.distributed")
    g.add_argument("--num-processes", type=int, default=None, help="processes in the sweep")
    g.add_argument("--process-id", type=int, default=None, help="this process's index")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="jax.distributed.initialize() from the cluster's environment (SLURM, TPU)",
    )
    g.add_argument("--local-device", type=int, default=None, help=argparse.SUPPRESS)


class _ProgressBar:
    """Runs done, runs/s and ETA on one line of ``stream`` (a line per update if not a tty)."""

    def __init__(self, stream: TextIO, width: int = 28) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.t0: float | None = None
        self.done0 = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.t0 is None:
            self.t0, self.done0 = now, done
        new, elapsed = done - self.done0, now - self.t0
        rate = new / elapsed if elapsed > 0 and new > 0 else 0.0
        eta = _clock((total - done) / rate) if rate > 0 else "?"
        frac = done / total if total else 1.0
        fill = round(frac * self.width)
        bar = "#" * fill + "-" * (self.width - fill)
        line = f"[{bar}] {done}/{total} runs  {rate:.2f} runs/s  ETA {eta}  ({_clock(elapsed)})"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _check(directory: str) -> int:
    from rep_align.sweep.store import health

    try:
        report = health(directory)
    except FileNotFoundError:
        raise ValueError(f"--check {directory}: no such directory") from None
    for line in report.lines():
        print(line)
    return 0 if report.healthy and report.missing == 0 else 1


def _load(args: argparse.Namespace):
    """The spec, after checking the arguments and the size of the spec."""
    from pathlib import Path

    from rep_align import sweep
    from rep_align.sweep.plan import MAX_RUNS
    from rep_align.sweep.spec import count_runs

    if args.spec is None or args.out is None:
        raise ValueError("give SPEC.toml and --out DIR (or --check DIR alone)")
    path, out = Path(args.spec), Path(args.out)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ValueError(f"SPEC.toml {args.spec} {what}: give a sweep spec file")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out} is a file: give a directory")
    n = count_runs(path)
    if n > MAX_RUNS and not args.force:
        raise ValueError(
            f"{args.spec} has {n} runs, over the limit of {MAX_RUNS} runs a sweep may have "
            "(rep_align.sweep.plan.MAX_RUNS): split it, or give --force to build it anyway"
        )
    return sweep.load_spec(path)


def _plan_check(force: bool):
    def check(plan) -> None:
        print(plan.line(), file=sys.stderr)
        problems = plan.problems()
        if problems and not force:
            raise ValueError("refused: " + "; ".join(problems) + " (or give --force)")

    return check


def run(args: argparse.Namespace) -> int:
    from rep_align import sweep
    from rep_align.sweep import processes

    if args.check is not None:
        if args.spec is not None or args.out is not None:
            raise ValueError("--check DIR takes no SPEC.toml or --out")
        return _check(args.check)
    cluster = [args.coordinator, args.num_processes, args.process_id]
    if args.processes is not None and (any(v is not None for v in cluster) or args.distributed):
        raise ValueError("--processes starts local processes: no --coordinator/--distributed")
    if args.processes is not None and args.processes < 1:
        raise ValueError(f"--processes must be >= 1, got {args.processes}")
    if args.distributed or any(v is not None for v in cluster):
        local = None if args.local_device is None else [args.local_device]
        processes.initialize(*cluster, local_device_ids=local)
    spec = _load(args)
    overrides = {}
    if args.memory_budget_mb is not None:
        overrides["memory_budget_mb"] = args.memory_budget_mb
    if args.max_chunk is not None:
        overrides["max_chunk"] = args.max_chunk
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    if Path(args.out).is_dir():  # another spec's or a damaged store: refused before anything
        from rep_align.sweep import store

        store.prepare(Path(args.out), spec, writer=False)
    print(
        f"sweep {spec.name!r}: {spec.num_runs} runs, spec hash {spec.spec_hash}, -> {args.out}",
        file=sys.stderr,
    )
    progress = None if args.quiet else _ProgressBar(sys.stderr)
    if args.processes is not None and args.processes > 1:
        argv = ["sweep", args.spec, "--out", args.out]
        for flag, value in (
            ("--memory-budget-mb", args.memory_budget_mb),
            ("--max-chunk", args.max_chunk),
        ):
            if value is not None:
                argv += [flag, str(value)]
        argv += ["--force"] if args.force else []
        start = time.perf_counter()
        status = processes.launch(
            argv,
            args.processes,
            out=args.out,
            total=spec.num_runs,
            progress=progress,
            gpus=args.gpus,
            host_devices=args.host_devices,
        )
        res = sweep.load_results(args.out)
        print(
            f"{len(res)} of {spec.num_runs} runs finished by {args.processes} processes in "
            f"{time.perf_counter() - start:.1f} s; results in {args.out}"
        )
        return status
    try:
        report = sweep.run_sweep(spec, args.out, progress=progress, plan=_plan_check(args.force))
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished chunks are saved; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"{report.completed} runs computed, {report.skipped} already finished, "
        f"{report.diverged} diverged or failed; {report.num_groups} groups, "
        f"{report.num_chunks} chunks, {report.seconds:.1f} s; results in {report.out}"
    )
    return 0
