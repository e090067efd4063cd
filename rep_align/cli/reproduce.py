"""``rep-align reproduce``: the main job, every experiment of the paper and one report."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="quick",
        action="store_true",
        default=True,
        help="quick mode (default): paper sizes where time allows, fewer seeds; "
        "numbers that cannot be compared with the full run are labelled",
    )
    mode.add_argument(
        "--full", dest="quick", action="store_false", help="the paper's sizes throughout"
    )
    p.add_argument(
        "--out",
        default="runs/reproduce",
        help="output directory (full runs go to OUT/full); default runs/reproduce",
    )
    from rep_align.experiments import names

    p.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"run only these experiments (of: {', '.join(names())})",
    )


def run(args: argparse.Namespace) -> int:
    from rep_align.experiments.reproduce import run_reproduce

    result = run_reproduce(args.out, quick=args.quick, only=args.only)
    failed = [k for k, v in result.stages.items() if v["status"] == "failed"]
    print(f"wrote {result.out / 'report.md'}, report.html and summary.json", file=sys.stderr)
    for name, rec in result.stages.items():
        for h in rec["headlines"]:
            verdict = (
                "not comparable"
                if not h["comparable"]
                else {None: "", True: "agrees", False: "DISAGREES"}[h["agrees"]]
            )
            print(f"{name:<14} {h['name']:<48} {h['value']:>10.4g}  {verdict}")
    if failed:
        print(f"failed stages: {', '.join(failed)} (see the report)", file=sys.stderr)
        return 1
    return 0
