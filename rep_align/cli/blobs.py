"""``rep-align blobs``: the context-blobs experiment (high, low and very low init).

``--quick`` and the full run are the experiment's settings (``experiments.blobs.settings``,
the same as the ``blobs`` stage of ``rep-align reproduce``); the other options change them.
"""

from __future__ import annotations

import argparse
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
        "(default: the mode's, both in full, leaky_relu with --quick)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per regime (default: the mode's)")
    p.add_argument("--first-seed", type=int, default=None, help="first seed (default 0)")
    p.add_argument("--out", default="runs/blobs", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick settings: fewer seeds, leaky ReLU only, fewer epochs at high and "
        "low init (where r has settled in the full runs); same network, data and lr",
    )
    p.add_argument("--float64", action="store_true", help="train in float64")


def changes(args: argparse.Namespace) -> dict:
    """The settings the options change from the mode's."""
    from rep_align.experiments.blobs import ACTIVATIONS

    out: dict = {}
    if args.regime != ["all"]:
        out["regimes"] = tuple(args.regime)
    if args.activation is not None:
        out["activations"] = ACTIVATIONS if args.activation == "both" else (args.activation,)
    if args.seeds is not None:
        out["seeds"] = args.seeds
    if args.first_seed is not None:
        out["first_seed"] = args.first_seed
    if args.float64:
        out["float64"] = True
    return out


def run(args: argparse.Namespace) -> int:
    from rep_align.cli._experiment import print_headlines
    from rep_align.experiments import _driver as driver
    from rep_align.experiments.blobs import EXPERIMENT

    got = driver.run(EXPERIMENT, args.out, quick=args.quick, changes=changes(args))
    res = got.summary["result"]
    print(
        f"{'activation':<11} {'regime':<10} {'r_input':>8} {'(init)':>7} {'ratio':>7} "
        f"{'(init)':>7} {'paired':>7} {'loss':>9} {'settled':>7}"
    )
    nan = float("nan")
    for act, regimes in res["regimes"].items():
        for name, r in regimes.items():
            f, i = (
                {k: nan if v["mean"] is None else v["mean"] for k, v in r[w].items()}
                for w in ("final", "init")
            )
            print(
                f"{act:<11} {name:<10} {f['r_input']:8.3f} {i['r_input']:7.3f} "
                f"{f['ratio']:7.2f} {i['ratio']:7.2f} {f['paired_ratio']:7.2f} "
                f"{f['loss']:9.2e} {'yes' if r['settled'] else 'NO':>7}"
            )
    print(
        f"input: ratio {res['input']['ratio']:.2f}, paired ratio {res['input']['paired_ratio']:.2f}"
    )
    print_headlines(got.headlines)
    print(f"wrote {got.out / 'summary.json'}, arrays.npz and figures", file=sys.stderr)
    return 0
