"""``rep-align validity``: where the two-point theory holds, over width × depth × gain.

``--quick`` and the full map are the experiment's settings
(``experiments.validity.settings``); the other options change them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick map: widths 16, 64, 256; depths 2, 4, 8; 2 seeds (same protocol)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 4; 2 quick)")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="widths of the map")
    p.add_argument("--depths", type=int, nargs="+", default=None, help="depths of the map")
    p.add_argument("--out", default="runs/validity", help="output directory")


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    out: dict[str, Any] = {}
    if args.seeds is not None:
        out["seeds"] = args.seeds
    for key in ("widths", "depths"):
        if getattr(args, key) is not None:
            out[key] = tuple(getattr(args, key))
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.validity import EXPERIMENT, R2_W_BOUND

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    res = got.summary["result"]
    print(f"where mean R² w >= {R2_W_BOUND} begins (smallest width from which all wider do):")
    print("gain  " + "  ".join(f"L={d:<4}" for d in res["depths"]))
    for m in res["maps"]:
        cells = ["P>=" + str(w) if w else " none" for w in m["boundary"].values()]
        print(f"{m['gain']:<5g} " + "  ".join(f"{c:<6}" for c in cells))
    print_headlines(got.headlines)
    print(f"wrote {got.out / _driver.SUMMARY} and validity.png", file=sys.stderr)
    return 0
