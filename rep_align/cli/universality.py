"""``rep-align universality``: the architecture zoo on XOR and the hierarchy, from small and
from large init; CKA between architectures and agreement with the many-point theory."""

from __future__ import annotations

import argparse
import math
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per member and regime (default 5; 2 with --quick)",
    )
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="runs/universality", help="output directory")
    p.add_argument(
        "--quick", action="store_true", help="the same runs with fewer seeds (2 unless --seeds)"
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="train in float64 (initial parameters drawn in float64)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["xor", "hierarchy"],
        choices=["xor", "hierarchy"],
        help="tasks (default both)",
    )
    p.add_argument("--members", nargs="+", default=None, help="zoo members (default all)")
    p.add_argument("--width", type=int, default=256, help="hidden width (default 256)")
    p.add_argument("--depth", type=int, default=4, help="hidden layers (default 4)")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs on every task (default 3000 XOR, 2000 hierarchy)",
    )


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.universality import run_universality

    res = run_universality(
        seeds=args.seeds,
        first_seed=args.first_seed,
        quick=args.quick,
        members=args.members,
        tasks=args.tasks,
        width=args.width,
        depth=args.depth,
        epochs=None if args.epochs is None else {t: args.epochs for t in args.tasks},
        float64=args.float64,
        out=args.out,
    )
    print(f"{'task':<10} {'regime':<6} {'CKA off-diag':>14}  {'RSA rich (3.3)':>14}  converged")
    for task, regimes in res.tasks.items():
        for regime, r in regimes.items():
            finite = [a["rsa_rich"]["mean"] for a in r["agreement"].values()]
            finite = [v for v in finite if math.isfinite(v)]  # members with converged runs
            rich = sum(finite) / len(finite) if finite else math.nan
            off = r["offdiag"]
            print(
                f"{task:<10} {regime:<6} {off['mean']:7.3f} ± {off['std']:.3f}  {rich:14.3f}"
                f"  {r['converged']}/{r['runs']}"
            )
    for text in (c["text"] for c in res.comparison.values()):
        print(text)
    t = res.timing
    print(
        f"training {t['train_s']:.0f} s, total {t['total_s']:.0f} s; "
        f"wrote {os.path.join(args.out, 'summary.json')} and figures",
        file=sys.stderr,
    )
    return 0
