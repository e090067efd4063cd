"""``rep-align xor``: learned vs predicted distance matrices of XOR networks (rich,
intermediate, lazy, shallow; docs/theory.md §6). The settings are the experiment's
(``experiments.xor.settings``, the same as the ``xor`` stage of ``rep-align reproduce``);
the options change them."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rep_align.experiments.xor import settings
    from rep_align.presets import XOR_PRESETS

    quick, full = settings(True), settings(False)
    p.add_argument(
        "--preset",
        nargs="+",
        default=None,
        choices=list(XOR_PRESETS),
        help="XOR preset(s) (docs/presets.md, XOR); default all four",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"XOR seeds per preset (default {full.seeds}; {quick.seeds} with --quick)",
    )
    p.add_argument(
        "--rate-seeds",
        type=int,
        default=None,
        help="seeds of the two-point default preset fitted for eta_h/eta_y "
        f"(default {full.rate_seeds}; {quick.rate_seeds} with --quick)",
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


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change (reads the two-points summary of ``--rates-from``).

    Raises:
        ValueError: an unreadable ``--rates-from`` summary (``cli._args.rates_from``).
    """
    out: dict[str, Any] = {}
    if args.preset is not None:
        out["presets"] = tuple(args.preset)
    if args.seeds is not None:
        out["seeds"] = args.seeds
    if args.rate_seeds is not None:
        out["rate_seeds"] = args.rate_seeds
    if args.rates_from is not None:
        from rep_align.cli._args import rates_from

        out["rates"] = rates_from(args.rates_from)
    if args.eta_ratio is not None:
        out["eta_ratio"] = args.eta_ratio
    if args.float64:
        out["float64"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver, xor

    got = _driver.run(xor.EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    result = got.summary["result"]
    rates = result["rates"]
    source = rates["source"] if rates else "given"
    print(f"eta_h/eta_y = {result['eta_ratio']:.5g} ({source})")
    print_headlines(got.headlines)
    print(f"wrote {got.out / _driver.SUMMARY} and figures", file=sys.stderr)
    return 0
