"""rep_align's compiled ``train`` against a plain PyTorch eager loop: one run, from the shell.

A command-line front end to the single-run part of ``benchmarks/train_bench.py`` (case
"train" of ``python -m benchmarks``), whose docstring states the protocol: the paper's
``default`` two-point network, float32, plain gradient descent at lr 0.005, observables at
every step; rep_align compiled ahead of time (compile reported separately), PyTorch
initialised from the same parameters, both sides checked to compute the same records (in
float64) before the timings count; median over repeats. On a shared machine, run it when
idle: PyTorch's intra-op threads degrade badly when the cores are oversubscribed
(``--torch-threads 1`` is steadier; by default the faster of 1 thread and PyTorch's default
is used).

Run: ``python benchmarks/train_vs_torch.py [--steps 6000] [--repeats 3] [--torch-threads N]``
from the repository root. Needs the ``bench`` extra (``torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="PyTorch intra-op threads (default 0: the faster of 1 and PyTorch's default)",
    )
    args = parser.parse_args(argv)

    from benchmarks import train_bench
    from benchmarks.common import matmul_peak, memory_bandwidth

    size = dict(
        width=args.width,
        depth=args.depth,
        lr=args.lr,
        steps=args.steps,
        repeats=args.repeats,
        torch_steps=args.steps,
        torch_repeats=args.repeats,
        check_steps=min(args.steps, 300),
        seeds=(),  # no ensembles
        ensemble_steps=0,
        ensemble_repeats=0,
        torch_ensemble_steps=0,
        torch_threads=args.torch_threads or None,
    )
    limits = dict(memory_bandwidth=memory_bandwidth(), matmul_f32=matmul_peak())
    result = train_bench.run(limits=limits, size=size)
    row = result["rows"][0]
    ra = row["rep_align"]
    print(
        f"rep_align train: compile {ra['compile_seconds']:.2f} s (not in the run times); "
        f"median {ra['seconds']:.2f} s ({ra['network_steps_per_s']:.0f} steps/s), "
        f"{100 * ra['fraction_of_bandwidth_bound']:.0f} % of the memory-bandwidth bound"
    )
    if "torch" in row:
        t = row["torch"]
        check = result["check_float64"]
        print(
            f"pytorch eager ({result['torch']['threads']} threads): median {t['seconds']:.2f} s "
            f"({t['network_steps_per_s']:.0f} steps/s); float64 records agree over "
            f"{check['steps']} steps: {check['agrees']} ({check['deviation']})"
        )
        print(f"ratio pytorch / rep_align (run time): {row['ratio']:.2f}")
    else:
        print(result["torch"])
    return result


if __name__ == "__main__":
    main()
