"""``rep-align sweep-plot DIR``: standard figures of a sweep results directory.

Writes, as far as the sweep allows, final h and loss against the main axis (gain if swept),
fitted rates against it, heat maps (final h; R² of h, y, w if fitted), measured h against
the theory's h∞ and the trajectories of one group (see ``rep_align.plots.standard_figures``).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="DIR", help="results directory written by rep-align sweep")
    p.add_argument("--out", metavar="FIGDIR", help="where to write figures (default DIR/figures)")
    p.add_argument("--format", default="png", choices=("png", "pdf", "svg"), help="file format")
    p.add_argument(
        "--converged-loss",
        type=float,
        default=None,
        help="final loss below which a run counts as converged (default 1e-2, the paper's)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rep_align import sweep
    from rep_align.plots import standard_figures
    from rep_align.sweep.store import CONVERGED_LOSS

    threshold = CONVERGED_LOSS if args.converged_loss is None else args.converged_loss
    try:
        res = sweep.load_results(args.results, converged_loss=threshold)
    except FileNotFoundError as err:
        if Path(args.results).is_dir():
            raise ValueError(
                f"DIR {args.results}: not a sweep results store ({Path(err.filename).name} is "
                "missing)"
            ) from None
        raise ValueError(f"DIR {args.results}: no such results directory") from None
    out = Path(args.out) if args.out else Path(args.results) / "figures"
    paths = standard_figures(res, out, fmt=args.format)
    n_conv = int(res.table["converged"].sum()) if "converged" in res.table else 0
    print(
        f"{len(res)} of {res.spec.num_runs} runs finished, {n_conv} converged "
        f"(final loss < {threshold:g})",
        file=sys.stderr,
    )
    for p in paths:
        print(p)
    return 0
