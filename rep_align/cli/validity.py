"""``rep-align validity``: where the two-point theory holds, over width × depth × gain."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick map: widths 16, 64, 256; depths 2, 4, 8; 2 seeds (same protocol)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 4; 2 quick)")
    p.add_argument("--out", default="runs/validity", help="output directory")


def run(args: argparse.Namespace) -> int:
    from rep_align.cli.sweep import _ProgressBar
    from rep_align.experiments.validity import R2_W_BOUND, run_validity

    res = run_validity(
        quick=args.quick, out=args.out, seeds=args.seeds, progress=_ProgressBar(sys.stderr)
    )
    print(f"where mean R² w >= {R2_W_BOUND} begins (smallest width from which all wider do):")
    print("gain  " + "  ".join(f"L={d:<4}" for d in res.depths))
    for gain in res.gains:
        cells = ["P>=" + str(w) if w else " none" for w in res.boundary[gain].values()]
        print(f"{gain:<5g} " + "  ".join(f"{c:<6}" for c in cells))
    print(f"wrote {os.path.join(args.out, 'validity.json')} and validity.png", file=sys.stderr)
    return 0
