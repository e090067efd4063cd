"""``rep-align depth``: fitted effective rates at every hidden layer of one run."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", help="two-point preset (default 'default')")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--out", default="runs/depth", help="output directory")
    p.add_argument("--quick", action="store_true", help="small network, same protocol")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.depth import run_depth

    res = run_depth(args.preset, seed=args.seed, quick=args.quick, out=args.out).to_json()
    print(
        f"{'layer':>5} {'eta_h':>10} {'eta_y':>10} {'fit loss':>10} {'R2 h':>7} {'R2 y':>7} "
        f"{'R2 w':>7}"
    )
    for r in res["layers"]:
        print(
            f"{r['layer']:>5} {r['eta_h']:10.3e} {r['eta_y']:10.3e} {r['fit_loss']:10.3e} "
            f"{r['r2_h']:7.4f} {r['r2_y']:7.4f} {r['r2_w']:7.4f}"
        )
    t = res["trend"]
    print(
        f"mean fit loss: early layers {t['mean_fit_loss_early_layers']:.3e}, later layers "
        f"{t['mean_fit_loss_late_layers']:.3e}"
    )
    print(f"wrote {os.path.join(args.out, 'depth.json')} and depth.png", file=sys.stderr)
    return 0
