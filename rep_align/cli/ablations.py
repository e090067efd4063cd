"""``rep-align ablations``: the ablated theories of docs/theory.md §4 fitted to the same
runs as the theory.

``--quick`` and the full run are the experiment's settings
(``experiments.ablations.settings``, the same as the ``ablations`` stage of ``rep-align
reproduce``); the other options change them. The theory fits best when every ablation's
check agrees (the experiment's one rule).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="two-point preset (default 'default')")
    p.add_argument(
        "--seeds", type=int, default=None, help="runs (seeds) to fit (default: the mode's)"
    )
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="systems to fit, 'theory' among them (default: theory and every ablation of "
        "docs/theory.md §4)",
    )
    p.add_argument("--out", default="runs/ablations", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick settings: the two-point experiment's quick runs (4 seeds; full: 5)",
    )
    p.add_argument(
        "--small", action="store_true", help="shrink the network to width <= 64, depth <= 4"
    )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    out = {k: getattr(args, k) for k in ("preset", "seeds") if getattr(args, k) is not None}
    if args.variants is not None:
        out["variants"] = tuple(args.variants)
    if args.small:
        out["small"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.ablations import EXPERIMENT

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    nan = float("nan")
    print(f"{'variant':<14} {'R2 h':>7} {'R2 y':>7} {'R2 w':>7} failed")
    for name, r in got.summary["result"]["variants"].items():
        r = {k: nan if v is None else v for k, v in r.items()}
        print(f"{name:<14} {r['r2_h']:7.4f} {r['r2_y']:7.4f} {r['r2_w']:7.4f} {r['failed']}")
    print_headlines(got.headlines)
    best = all(h.agrees for h in got.headlines if h.agrees is not None)
    print("theory fits best" if best else "the theory was not shown to fit best")
    print(f"wrote {got.out / _driver.SUMMARY} and ablations.png", file=sys.stderr)
    return 0
