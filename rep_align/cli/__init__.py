"""Command-line interface: ``rep-align COMMAND [options]``.

The CLI is thin: each command lives in its own module of this package, which defines
``add_arguments(parser)`` (declares its options) and ``run(args) -> int`` (calls the
library and writes files). ``main`` only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module under rep_align.cli, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("reproduce", "the main job: every experiment of the paper, one report"),
    "theory": ("theory", "integrate the two-point effective theory (docs/theory.md §2)"),
    "sweep": ("sweep", "run or resume a sweep spec (TOML) into a results directory"),
    "sweep-plot": ("sweep_plot", "standard figures of a sweep results directory"),
    "two-points": ("two_points", "reproduce the two-point results: train presets, fit, summarise"),
    "grid": ("grid", "final-distance grid over (dx, dy): measured vs predicted h_inf"),
    "depth": ("depth", "fitted effective rates at every hidden layer of one run"),
    "ablations": ("ablations", "fit the ablated theories of docs/theory.md §4 to the same runs"),
    "train": ("train", "train one two-point preset network; write h, y, w, loss and a plot"),
    "xor": ("xor", "XOR in rich, intermediate, lazy regimes: learned vs predicted distances"),
    "predict": ("predict", "predicted final distance matrix of your own data (eq. 6.1)"),
    "blobs": (
        "blobs",
        "context blobs: 3-D MDS of layer 2, hidden vs input distances, context ratio",
    ),
    "mnist": (
        "mnist",
        "MNIST: structure heuristic vs learned distances, and the 0/1 pair's trajectories",
    ),
    "kernel-rates": (
        "kernel_rates",
        "effective rates read off the tangent kernels vs fitted rates (docs/theory.md §8)",
    ),
    "universality": (
        "universality",
        "the architecture zoo from small and large init: CKA between architectures, theory",
    ),
    "lazy": ("lazy", "large vs small gain against the tangent-kernel prediction (lazy limit)"),
    "validity": ("validity", "map where the theory fits: width x depth x gain, every run fitted"),
}


def _build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(
        prog="rep-align",
        description="Representation learning dynamics: effective theory and real networks.",
    )
    parser.add_argument("--version", action="version", version=f"rep_align {version('rep_align')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(f"rep_align.cli.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rep-align`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from rep_align.devices import use_host_devices

    use_host_devices()  # one JAX CPU device per core, before anything touches JAX
    try:
        return int(args._run(args) or 0)
    except ValueError as err:  # bad user input found by the library: no traceback
        print(f"rep-align {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
