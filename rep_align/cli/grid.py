"""``rep-align grid``: the final-distance grid, measured h_inf vs the theory's.

``--quick`` and the full run are the experiment's settings (``experiments.grid.settings``,
the same as the ``grid`` stage of ``rep-align reproduce``); the other options change them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="two-point preset (default 'default')")
    p.add_argument("--seeds", type=int, default=None, help="seeds per grid point (default 1)")
    p.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="epoch cap of the grid protocol, a multiple of 100 (default 40000)",
    )
    p.add_argument("--out", default="runs/grid", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick settings: small network (width <= 64, depth <= 4), same protocol",
    )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    keys = ("preset", "seeds", "max_epochs")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.grid import EXPERIMENT

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    res = got.summary["result"]
    s = res["stats"]
    print(
        f"grid {res['config']['name']}: {s['n_kept']}/{s['n_runs']} runs kept, "
        f"eta_h/eta_y = {res['rates']['ratio']:.4g}"
    )
    print_headlines(got.headlines)
    print(f"wrote {got.out / _driver.SUMMARY} and grid.png", file=sys.stderr)
    return 0
