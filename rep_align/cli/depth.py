"""``rep-align depth``: fitted effective rates at every hidden layer of one run.

``--quick`` and the full run are the experiment's settings (``experiments.depth.settings``,
the same as the ``depth`` stage of ``rep-align reproduce``: seed 0 of the two-point
experiment's runs in that mode, read from the same store when ``--out`` holds them); the
other options change them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="two-point preset (default 'default')")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the run's seed (default 0; a seed outside the two-point experiment's is "
        "trained alone)",
    )
    p.add_argument("--out", default="runs/depth", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick settings: seed 0 of the two-point experiment's quick runs",
    )
    p.add_argument(
        "--small", action="store_true", help="shrink the network to width <= 64, depth <= 4"
    )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    from rep_align.experiments.depth import settings

    out: dict[str, Any] = {}
    if args.preset is not None:
        out["preset"] = args.preset
    if args.seed is not None:
        out["seed"] = args.seed
        if args.seed not in settings(args.quick).store_seeds:
            out["store_seeds"] = (args.seed,)
    if args.small:
        out["small"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.depth import EXPERIMENT

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    nan = float("nan")
    print(
        f"{'layer':>5} {'eta_h':>10} {'eta_y':>10} {'fit loss':>10} {'R2 h':>7} {'R2 y':>7} "
        f"{'R2 w':>7}"
    )
    for r in got.summary["result"]["layers"]:
        r = {k: nan if v is None else v for k, v in r.items()}
        print(
            f"{r['layer']:>5} {r['eta_h']:10.3e} {r['eta_y']:10.3e} {r['fit_loss']:10.3e} "
            f"{r['r2_h']:7.4f} {r['r2_y']:7.4f} {r['r2_w']:7.4f}"
        )
    print_headlines(got.headlines)
    print(f"wrote {got.out / _driver.SUMMARY} and depth.png", file=sys.stderr)
    return 0
