"""``rep-align grid``: the final-distance grid, measured h_inf vs the theory's."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", help="two-point preset (default 'default')")
    p.add_argument("--seeds", type=int, default=2, help="seeds per grid point (default 2)")
    p.add_argument(
        "--max-epochs",
        type=int,
        default=40_000,
        help="epoch cap of the grid protocol (default 40000)",
    )
    p.add_argument("--out", default="runs/grid", help="output directory")
    p.add_argument("--quick", action="store_true", help="small network, same protocol")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.grid import run_grid

    if args.max_epochs < 1:
        raise ValueError(f"--max-epochs must be >= 1, got {args.max_epochs}")
    res = run_grid(
        args.preset, seeds=args.seeds, quick=args.quick, out=args.out, max_epochs=args.max_epochs
    ).to_json()
    s = res["stats"]
    print(
        f"grid {args.preset}: Pearson r {s['pearson_r']:.4f}, slope {s['slope']:.3f}, "
        f"intercept {s['intercept']:.3g}, {s['n_kept']}/{s['n_runs']} runs kept, "
        f"eta_h/eta_y = {res['rates']['ratio']:.4g}"
    )
    print(f"wrote {os.path.join(args.out, 'grid.json')} and grid.png", file=sys.stderr)
    return 0
