"""Command-line interface: ``rep-align COMMAND [options]``.

The CLI is thin: each command lives in its own module of this package, which defines
``add_arguments(parser)`` (declares its options) and ``run(args) -> int`` (calls the
library and writes files). ``main`` only dispatches.

A mistake of the user is reported on one line, ``rep-align COMMAND: error: ...`` naming the
option and its value, with exit status 2, before anything is computed: argparse's own errors,
output paths that cannot be written (``--out``, ``--store``: checked here for every command
but ``sweep`` and ``sweep-plot``, which check their stores themselves) and the ``ValueError``
of a command's or the library's argument checks. A computation that runs and fails (a solve,
a diverged training) exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import re
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


class _Parser(argparse.ArgumentParser):
    """argparse's parser with errors on one line and negative numbers taken as values.

    argparse reads ``--eta-h -5e-4`` as two options (its pattern of a negative number has
    no exponent) and fails with "expected one argument"; here any negative decimal, with or
    without an exponent, is a value, as ``--eta-h=-5e-4`` is. No option of rep-align looks
    like a negative number, so nothing is lost.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# the options naming an output directory, checked before a command runs
_OUTPUT_DIRS = ("out", "store")
# commands whose stores check their own --out (rep_align.cli.sweep, sweep_plot)
_OWN_OUTPUT_CHECKS = ("sweep", "sweep-plot")


def _check_outputs(args: argparse.Namespace) -> None:
    from rep_align.cli._args import output_dir

    if args.command in _OWN_OUTPUT_CHECKS:
        return
    for name in _OUTPUT_DIRS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            output_dir(f"--{name}", value)


def _build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = _Parser(
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
        _check_outputs(args)
        return int(args._run(args) or 0)
    except ValueError as err:  # bad user input found by the library: no traceback
        print(f"rep-align {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
