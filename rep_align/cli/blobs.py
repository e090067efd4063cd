"""``rep-align blobs``: the context-blobs experiment (high, low and very low init)."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--regime",
        nargs="+",
        default=["all"],
        help="high_init, low_init, vlow_init, or 'all' (default)",
    )
    p.add_argument(
        "--activation",
        choices=["leaky_relu", "tanh", "both"],
        default=None,
        help="leaky_relu (as the published runs), tanh (as the settings file) or both "
        "(default both; leaky_relu only with --quick)",
    )
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per regime (default 3; 2 with --quick)"
    )
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="runs/blobs", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="2 seeds, leaky ReLU only, 150 and 600 epochs at high and low init (where r has "
        "settled in the full runs), 2000 at very low init; same network, data and lr",
    )
    p.add_argument("--float64", action="store_true", help="train in float64")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.blobs import ACTIVATIONS, REGIMES, run_blobs

    regimes = REGIMES if args.regime == ["all"] else args.regime
    act = args.activation or ("leaky_relu" if args.quick else "both")
    activations = ACTIVATIONS if act == "both" else (act,)
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
    res = run_blobs(
        seeds=seeds,
        regimes=regimes,
        activations=activations,
        quick=args.quick,
        float64=args.float64,
        out=args.out,
        first_seed=args.first_seed,
    )
    print(
        f"{'activation':<11} {'regime':<10} {'r_input':>8} {'(init)':>7} {'ratio':>7} "
        f"{'(init)':>7} {'paired':>7} {'loss':>9} {'settled':>7}"
    )
    for a, regs in res.regimes.items():
        for name, r in regs.items():
            m = r.mean
            print(
                f"{a:<11} {name:<10} {m['r_input']:8.3f} {m['r_input_init']:7.3f} "
                f"{m['ratio']:7.2f} {m['ratio_init']:7.2f} {m['paired_ratio']:7.2f} "
                f"{m['loss_final']:9.2e} {'yes' if r.settled else 'NO':>7}"
            )
    print(f"input: ratio {res.input['ratio']:.2f}, paired ratio {res.input['paired_ratio']:.2f}")
    for a, checks in res.acceptance.items():
        line = ", ".join(
            f"{n} {c['mean_r_input']:.3f} {c['threshold']} {'ok' if c['passed'] else 'FAIL'}"
            for n, c in checks.items()
        )
        print(f"acceptance ({a}): {line}")
    if args.out:
        print(f"wrote {os.path.join(args.out, 'summary.json')} and figures", file=sys.stderr)
    return 0
