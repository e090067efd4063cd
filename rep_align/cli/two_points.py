"""``rep-align two-points``: the paper's two-point reproduction over presets and seeds.

``--quick`` and the full run are the experiment's settings (``experiments.two_points.settings``,
the same as the ``two_points`` stage of ``rep-align reproduce``); the other options change
them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        nargs="+",
        default=None,
        help="preset name(s) of the two-point table (docs/presets.md), or 'all' (default: the "
        "mode's: all in full, default with --quick)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per preset (default: the mode's)")
    p.add_argument("--first-seed", type=int, default=None, help="first seed (default 0)")
    p.add_argument("--out", default="runs/two_points", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick settings: the default preset over 4 seeds (full: every preset, 3 seeds)",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help="shrink the networks to width <= 64, depth <= 4 (a fast pipeline, outside the "
        "theory's regime)",
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="train in float64 from the float32 runs' initial parameters (about 2x slower)",
    )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the options change from the mode's."""
    from rep_align.presets import TWO_POINT_PRESETS

    out: dict[str, Any] = {}
    if args.preset is not None:
        out["presets"] = tuple(TWO_POINT_PRESETS) if args.preset == ["all"] else tuple(args.preset)
    for key in ("seeds", "first_seed"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    for key in ("small", "float64"):
        if getattr(args, key):
            out[key] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver
    from rep_align.experiments.two_points import EXPERIMENT

    got = _driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    print(f"{'preset':<12} {'R2 h':>7} {'R2 y':>7} {'R2 w':>7} {'conv':>5}  fit")
    for name, res in got.summary["result"]["presets"].items():
        m = {k: float("nan") if v is None else v for k, v in res["mean"].items()}
        print(
            f"{name:<12} {m['r2_h']:7.4f} {m['r2_y']:7.4f} {m['r2_w']:7.4f} "
            f"{res['n_converged']:>2}/{res['n_seeds']:<2}  {res['fit_quality']}"
        )
    print_headlines(got.headlines)
    print(f"wrote {got.out / _driver.SUMMARY}, arrays.npz and figures", file=sys.stderr)
    return 0
