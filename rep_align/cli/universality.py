"""``rep-align universality``: the architecture zoo on XOR and the hierarchy, from small and
from large init; CKA between architectures and agreement with the many-point theory.

``--quick`` and the full run are the experiment's settings
(``experiments.universality.settings``, the same as the ``universality`` stage of
``rep-align reproduce``); the other options change them."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rep_align.experiments.universality import EPOCHS, MEMBERS, TASKS, settings

    quick, full = settings(True), settings(False)
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"seeds per member and regime (default {full.seeds}; {quick.seeds} with --quick)",
    )
    p.add_argument("--first-seed", type=int, default=None, help="first seed (default 0)")
    p.add_argument("--out", default="runs/universality", help="output directory")
    p.add_argument("--quick", action="store_true", help="the quick settings: fewer seeds")
    p.add_argument(
        "--float64",
        action="store_true",
        help="train in float64 (initial parameters drawn in float64)",
    )
    p.add_argument("--tasks", nargs="+", default=None, choices=list(TASKS), help="default both")
    p.add_argument(
        "--members", nargs="+", default=None, choices=list(MEMBERS), help="zoo members (all)"
    )
    p.add_argument("--width", type=int, default=None, help=f"hidden width ({full.width})")
    p.add_argument("--depth", type=int, default=None, help=f"hidden layers ({full.depth})")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs on every task (default "
        + ", ".join(f"{n} {t}" for t, n in EPOCHS.items())
        + ")",
    )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    out: dict[str, Any] = {}
    for name in ("seeds", "first_seed", "width", "depth"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    for name in ("tasks", "members"):
        if getattr(args, name) is not None:
            out[name] = tuple(getattr(args, name))
    if args.epochs is not None:
        from rep_align.experiments.universality import TASKS

        out["epochs"] = {t: args.epochs for t in (args.tasks or TASKS)}
    if args.float64:
        out["float64"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.universality import EXPERIMENT

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    nan = math.nan
    result = got.summary["result"]
    print(f"{'task':<10} {'regime':<6} {'CKA off-diag':>14}  {'RSA rich (3.3)':>14}  converged")
    for task, regimes in result["tasks"].items():
        for regime, r in regimes.items():
            rich = [a["rsa_rich"]["spread"]["mean"] for a in r["agreement"].values()]
            rich = [v for v in rich if v is not None]  # members with converged runs
            mean_rich = sum(rich) / len(rich) if rich else nan
            off = {k: nan if v is None else v for k, v in r["offdiag"]["spread"].items()}
            print(
                f"{task:<10} {regime:<6} {off['mean']:7.3f} ± {off['std']:.3f}  "
                f"{mean_rich:14.3f}  {r['converged']}/{r['runs']}"
            )
    for cmp in result["comparison"].values():
        print(cmp["text"])
    print_headlines(got.headlines)
    print(
        f"{got.seconds:.0f} s, {got.summary.get('runs_trained', 0)} runs trained; wrote "
        f"{got.out / _driver.SUMMARY} and figures",
        file=sys.stderr,
    )
    return 0
