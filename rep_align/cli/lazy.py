"""``rep-align lazy``: a wide network at large and at small gain against the kernel
prediction of its outputs at init (the lazy limit)."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per gain (default 3; 1 with --quick)"
    )
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="runs/lazy", help="output directory")
    p.add_argument("--quick", action="store_true", help="the same runs with one seed")
    p.add_argument("--float64", action="store_true", help="train and compare in float64")
    p.add_argument(
        "--task", default="hierarchy", choices=["hierarchy", "xor"], help="data (default hierarchy)"
    )
    p.add_argument("--width", type=int, default=1024, help="hidden width (default 1024)")
    p.add_argument("--depth", type=int, default=2, help="hidden layers (default 2)")
    p.add_argument("--activation", default="leaky_relu", help="nonlinearity (default leaky_relu)")
    p.add_argument("--large-gain", type=float, default=3.0, help="lazy init gain (default 3)")
    p.add_argument("--small-gain", type=float, default=0.3, help="rich init gain (default 0.3)")
    p.add_argument("--steps", type=int, default=1000, help="descent steps (default 1000)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="bound on the large-gain output error (default 0.05, for the default sizes)",
    )
    p.add_argument(
        "--kernel-every", type=int, default=100, help="steps between kernel snapshots (default 100)"
    )


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.lazy import run_lazy

    res = run_lazy(
        task=args.task,
        width=args.width,
        depth=args.depth,
        activation=args.activation,
        large_gain=args.large_gain,
        small_gain=args.small_gain,
        steps=args.steps,
        kernel_every=args.kernel_every,
        seeds=args.seeds,
        **({} if args.tolerance is None else {"tolerance": args.tolerance}),
        first_seed=args.first_seed,
        quick=args.quick,
        float64=args.float64,
        out=args.out,
    )
    print(
        f"{'regime':<6} {'gain':>5} {'seed':>4} {'output err':>10} {'hidden chg':>10} "
        f"{'kernel dist':>11}"
    )
    for regime, runs in res.runs.items():
        for r in runs:
            h = r.headline()
            print(
                f"{regime:<6} {h['gain']:5g} {h['seed']:4d} {h['max_output_error']:10.4f} "
                f"{h['max_hidden_change']:10.4f} {h['final_kernel_distance']:11.4f}"
            )
    print(res.verdict["text"])
    print(
        f"large gain within tolerance {res.tolerance}: {res.verdict['large_within_tolerance']}; "
        f"small gain fails the kernel prediction: {res.verdict['small_fails_kernel']}"
    )
    t = res.timing
    print(
        f"training {t['train_s']:.0f} s, total {t['total_s']:.0f} s; "
        f"wrote {os.path.join(args.out, 'summary.json')} and figures",
        file=sys.stderr,
    )
    return 0
