"""``rep-align sweep-plot DIR``: standard figures of a sweep results directory."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="DIR", help="results directory of rep-align sweep")


def run(args: argparse.Namespace) -> int:
    raise ValueError("not implemented yet")
