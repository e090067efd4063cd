"""``rep-align lazy``: a wide network at large and at small gain against the kernel
prediction of its outputs at init (the lazy limit).

``--quick`` and the full run are the experiment's settings (``experiments.lazy.settings``,
the same as the ``lazy`` stage of ``rep-align reproduce``); the other options change them."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

#: Options that set the setting of the same name.
_SETTINGS = (
    "seeds",
    "first_seed",
    "task",
    "width",
    "depth",
    "activation",
    "large_gain",
    "small_gain",
    "steps",
    "kernel_every",
    "tolerance",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rep_align.experiments.lazy import settings

    quick, full = settings(True), settings(False)
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"seeds per gain (default {full.seeds}; {quick.seeds} with --quick)",
    )
    p.add_argument("--first-seed", type=int, default=None, help="first seed (default 0)")
    p.add_argument("--out", default="runs/lazy", help="output directory")
    p.add_argument("--quick", action="store_true", help="the quick settings: fewer seeds")
    p.add_argument("--float64", action="store_true", help="train and compare in float64")
    p.add_argument(
        "--task", default=None, choices=["hierarchy", "xor"], help=f"data (default {full.task})"
    )
    p.add_argument("--width", type=int, default=None, help=f"hidden width ({full.width})")
    p.add_argument("--depth", type=int, default=None, help=f"hidden layers ({full.depth})")
    p.add_argument("--activation", default=None, help=f"nonlinearity ({full.activation})")
    p.add_argument(
        "--large-gain", type=float, default=None, help=f"lazy init gain ({full.large_gain:g})"
    )
    p.add_argument(
        "--small-gain", type=float, default=None, help=f"rich init gain ({full.small_gain:g})"
    )
    p.add_argument("--steps", type=int, default=None, help=f"descent steps ({full.steps})")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help=f"bound on the large-gain output error (default {full.tolerance:g}, for the "
        "default sizes)",
    )
    p.add_argument(
        "--kernel-every",
        type=int,
        default=None,
        help=f"steps between kernel snapshots ({full.kernel_every})",
    )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    out = {k: getattr(args, k) for k in _SETTINGS if getattr(args, k) is not None}
    if args.float64:
        out["float64"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.lazy import EXPERIMENT

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    result = got.summary["result"]
    print(
        f"{'regime':<6} {'gain':>5} {'seed':>4} {'output err':>10} {'hidden chg':>10} "
        f"{'kernel dist':>11}"
    )
    for regime in ("large", "small"):
        for r in result[regime]["runs"]:
            r = {k: math.nan if v is None else v for k, v in r.items()}
            print(
                f"{regime:<6} {r['gain']:5g} {r['seed']:4d} {r['max_output_error']:10.4f} "
                f"{r['max_hidden_change']:10.4f} {r['final_kernel_distance']:11.4f}"
            )
    print(result["text"])
    print_headlines(got.headlines)
    print(
        f"{got.seconds:.0f} s, {got.summary.get('runs_trained', 0)} runs trained; wrote "
        f"{got.out / _driver.SUMMARY} and figures",
        file=sys.stderr,
    )
    return 0
