"""``rep-align kernel-rates``: effective rates read off the tangent kernels at initialisation
(docs/theory.md §8) against the rates fitted to the same runs.

``--quick`` and the full run are the experiment's settings (``experiments.kernel_rates.settings``,
the same as the ``kernel_rates`` stage of ``rep-align reproduce``: the two-point experiment's
presets and seeds in that mode, read from the run store when it holds them); the other
options change them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rep_align.experiments.kernel_rates import settings

    quick, full = settings(True), settings(False)
    p.add_argument(
        "--presets",
        nargs="+",
        default=None,
        help="two-point presets (default: all; 'default' with --quick)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"seeds per preset (default {full.seeds}; {quick.seeds} with --quick: the "
        "two-point experiment's)",
    )
    p.add_argument(
        "--motion",
        nargs="*",
        default=None,
        help="presets whose seed 0 is trained once more, reading the kernels along training "
        f"(default {' '.join(full.motion)}; none with --quick)",
    )
    p.add_argument(
        "--segments", type=int, default=None, help=f"checkpoints along training ({full.segments})"
    )
    p.add_argument(
        "--trace-seeds",
        type=int,
        default=None,
        help="seeds per preset with the trace estimate (F backward passes each; default "
        f"{full.trace_seeds})",
    )
    p.add_argument("--no-depth", action="store_true", help="leave out the per-layer comparison")
    p.add_argument("--out", default="runs/kernel_rates", help="output directory")
    p.add_argument(
        "--store",
        default=None,
        help="run store (default OUT/store); e.g. OUT/store of `rep-align reproduce`, whose "
        "two-point runs are then read instead of trained",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the default preset only, no runs along training (still paper size)",
    )
    p.add_argument("--float64", action="store_true", help="train in float64 (about 2x slower)")


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    out: dict[str, Any] = {}
    for name in ("presets", "seeds", "motion", "segments", "trace_seeds"):
        value = getattr(args, name)
        if value is not None:
            out[name] = tuple(value) if isinstance(value, list) else value
    if args.no_depth:
        out["depth_preset"] = None
    if args.float64:
        out["float64"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.kernel_rates import EXPERIMENT

    got = _driver.run(
        EXPERIMENT, args.out, quick=args.quick, changes=changes(args), store=args.store
    )
    result = got.summary["result"]
    nan = float("nan")
    print(
        f"{'preset':<10} {'eta_h K':>9} {'eta_h fit':>9} {'ratio':>7} {'eta_y K':>9} "
        f"{'eta_y fit':>9} {'ratio':>7} {'h_inf K':>8} {'h_inf fit':>9} {'h final':>8}"
    )
    for name, p in result["presets"].items():
        s = {k: nan if v is None else v for k, v in p["summary"].items()}
        print(
            f"{name:<10} {s['eta_h']:9.3g} {s['eta_h_fit']:9.3g} {s['ratio_h']:7.3g} "
            f"{s['eta_y']:9.3g} {s['eta_y_fit']:9.3g} {s['ratio_y']:7.3g} "
            f"{s['h_inf_kernel']:8.3g} {s['h_inf_fit']:9.3g} {s['h_final']:8.3g}"
        )
    if result["depth"] is not None:
        print(f"{'layer':>5} {'ratio eta_h':>11} {'ratio eta_y':>11}")
        for r in result["depth"]["layers"]:
            r = {k: nan if v is None else v for k, v in r.items()}
            print(f"{r['layer']:>5} {r['ratio_h']:11.3g} {r['ratio_y']:11.3g}")
    print_headlines(got.headlines)
    print(f"wrote {got.out / _driver.SUMMARY} and figures", file=sys.stderr)
    return 0
