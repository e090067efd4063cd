"""``rep-align xor``: learned vs predicted distance matrices of XOR networks (rich,
intermediate, lazy, shallow; docs/theory.md §6)."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rep_align.experiments.xor import (
        FULL_RATE_SEEDS,
        FULL_SEEDS,
        QUICK_RATE_SEEDS,
        QUICK_SEEDS,
    )
    from rep_align.presets import XOR_PRESETS

    p.add_argument(
        "--preset",
        nargs="+",
        default=list(XOR_PRESETS),
        choices=list(XOR_PRESETS),
        help="XOR preset(s) (docs/presets.md, XOR); default all four",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"XOR seeds per preset (default {FULL_SEEDS}; {QUICK_SEEDS} with --quick)",
    )
    p.add_argument(
        "--rate-seeds",
        type=int,
        default=None,
        help="seeds of the two-point default preset fitted for eta_h/eta_y "
        f"(default {FULL_RATE_SEEDS}; {QUICK_RATE_SEEDS} with --quick)",
    )
    rates = p.add_mutually_exclusive_group()
    rates.add_argument(
        "--rates-from",
        metavar="DIR",
        default=None,
        help="read eta_h/eta_y from a `rep-align two-points` output (its default preset) "
        "instead of training and fitting it",
    )
    rates.add_argument("--eta-ratio", type=float, default=None, help="use this eta_h/eta_y instead")
    p.add_argument("--out", default="runs/xor", help="output directory (default runs/xor)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer seeds; the paper's networks and epochs (the same experiment, less of it)",
    )
    p.add_argument("--float64", action="store_true", help="train in float64 (about 2x slower)")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.xor import run_xor

    res = run_xor(
        quick=args.quick,
        seeds=args.seeds,
        out=args.out,
        rates_from=args.rates_from,
        eta_ratio=args.eta_ratio,
        float64=args.float64,
        presets=args.preset,
        rate_seeds=args.rate_seeds,
    )
    print(f"eta_h/eta_y = {res.rates['ratio']:.5g} ({res.rates['source']})")
    print(
        f"{'preset':<13} {'r(pred)':>15} {'r(init)':>15} {'r(rich)':>15} "
        f"{'slope(pred)':>15} {'conv':>6}"
    )
    for name, reg in res.regimes.items():
        m, s = reg.mean, reg.std
        cells = [
            f"{m[k]:.3f} ± {s[k]:.3f}"
            for k in ("r_predicted", "r_initial", "r_rich", "slope_predicted")
        ]
        print(
            f"{name:<13} "
            + " ".join(f"{c:>15}" for c in cells)
            + f" {reg.n_converged:>2}/{reg.n_seeds:<3}"
        )
    for name, entry in res.checks.items():
        if isinstance(entry, dict):
            print(f"check {name}: " + ", ".join(f"{k}: {v}" for k, v in entry.items()))
    print(f"wrote {os.path.join(args.out, 'summary.json')} and figures", file=sys.stderr)
    return 0
