"""``rep-align two-points``: the paper's two-point reproduction over presets and seeds."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        nargs="+",
        default=["all"],
        help="preset name(s) of the two-point table (docs/presets.md), or 'all' (default)",
    )
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per preset (default 5; 3 with --quick)"
    )
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="runs/two_points", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small networks (width <= 64, depth <= 4), same protocol",
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="train in float64 from the float32 runs' initial parameters (about 2x slower)",
    )


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.two_points import run_two_points

    names = "all" if args.preset == ["all"] else args.preset
    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 5)
    summary = run_two_points(
        names,
        seeds=seeds,
        quick=args.quick,
        out=args.out,
        first_seed=args.first_seed,
        float64=args.float64,
    )
    print(f"{'preset':<12} {'R2 h':>7} {'R2 y':>7} {'R2 w':>7} {'conv':>5}  fit")
    for name, res in summary.presets.items():
        m = res.mean
        print(
            f"{name:<12} {m['r2_h']:7.4f} {m['r2_y']:7.4f} {m['r2_w']:7.4f} "
            f"{res.n_converged:>2}/{res.n_seeds:<2}  {res.fit_quality}"
        )
    trained = sum(r.trained for r in summary.presets.values())
    reused = sum(r.reused for r in summary.presets.values())
    print(f"{trained} runs trained, {reused} reused from {args.out}/sweeps", file=sys.stderr)
    print(f"wrote {os.path.join(args.out, 'summary.json')} and figures", file=sys.stderr)
    return 0
