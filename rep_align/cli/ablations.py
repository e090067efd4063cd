"""``rep-align ablations``: the ablated theories of docs/theory.md §4 fitted to the same
runs as the theory."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", help="two-point preset (default 'default')")
    p.add_argument("--seeds", type=int, default=5, help="runs (seeds) to fit (default 5)")
    p.add_argument("--out", default="runs/ablations", help="output directory")
    p.add_argument("--quick", action="store_true", help="small network, same protocol")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.ablations import run_ablations

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    res = run_ablations(args.preset, seeds=args.seeds, quick=args.quick, out=args.out)
    res = res.to_json()
    print(
        f"{'variant':<14} {'mean fit loss':>14} {'std':>10} {'R2 h':>7} {'R2 y':>7} "
        f"{'R2 w':>7} failed"
    )
    for name, r in res["variants"].items():
        print(
            f"{name:<14} {r['mean_fit_loss']:14.4e} {r['std_fit_loss']:10.3e} "
            f"{r['r2_h']:7.4f} {r['r2_y']:7.4f} {r['r2_w']:7.4f} {r['failed']}"
        )
    print("theory fits best" if res["theory_best"] else "an ablation fits as well or better")
    print(f"wrote {os.path.join(args.out, 'ablations.json')} and ablations.png", file=sys.stderr)
    return 0
