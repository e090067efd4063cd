"""``rep-align kernel-rates``: effective rates read off the tangent kernels at initialisation
(docs/theory.md §8) against the rates fitted to the same runs."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="source",
        default=None,
        help="a two-points output directory with summary.json (paper size); default: train "
        "and fit the presets here (stored under OUT/sweeps, resumable)",
    )
    p.add_argument(
        "--depth", default=None, help="a depth.json (rep-align depth) to compare per layer"
    )
    p.add_argument(
        "--presets",
        nargs="+",
        default=None,
        help="preset names (default: all in --from, else 'default')",
    )
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per preset when training here (default 2)"
    )
    p.add_argument(
        "--motion",
        nargs="*",
        default=None,
        help="presets to train once more (seed 0) reading the kernels along training "
        "(default: none with --quick, else 'default linear two_layer')",
    )
    p.add_argument("--segments", type=int, default=12, help="checkpoints along training (12)")
    p.add_argument(
        "--trace-seeds",
        type=int,
        default=1,
        help="seeds per preset with the trace estimate (F backward passes each; default 1)",
    )
    p.add_argument("--out", default="runs/kernel_rates", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the default preset only, 1 seed, no runs along training (still paper size)",
    )
    p.add_argument("--float64", action="store_true", help="train here in float64 (about 2x slower)")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.kernel_rates import run_kernel_rates

    presets = args.presets
    if args.quick and presets is None and args.source is None:
        presets = ["default"]
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 2)
    motion = args.motion
    if motion is None:
        motion = [] if args.quick else ["default", "linear", "two_layer"]
    res = run_kernel_rates(
        source=args.source,
        depth=args.depth,
        presets=presets,
        seeds=seeds,
        motion=motion,
        segments=args.segments,
        trace_seeds=args.trace_seeds,
        float64=args.float64,
        out=args.out,
    )
    print(
        f"{'preset':<10} {'eta_h K':>9} {'eta_h fit':>9} {'ratio':>7} {'eta_y K':>9} "
        f"{'eta_y fit':>9} {'ratio':>7} {'h_inf K':>8} {'h_inf fit':>9} {'h final':>8}"
    )
    for name, p in res.presets.items():
        s = p.summary
        print(
            f"{name:<10} {s['eta_h']:9.3g} {s['eta_h_fit']:9.3g} {s['ratio_h']:7.3g} "
            f"{s['eta_y']:9.3g} {s['eta_y_fit']:9.3g} {s['ratio_y']:7.3g} "
            f"{s['h_inf_kernel']:8.3g} {s['h_inf_fit']:9.3g} {s['h_final']:8.3g}"
        )
    if res.depth is not None:
        print(f"{'layer':>5} {'ratio eta_h':>11} {'ratio eta_y':>11}")
        for r in res.depth.layers:
            print(f"{r['layer']:>5} {r['ratio_h']:11.3g} {r['ratio_y']:11.3g}")
    print(f"wrote {os.path.join(args.out, 'summary.json')} and figures", file=sys.stderr)
    return 0
