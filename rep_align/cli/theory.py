"""``rep-align theory``: integrate the two-point effective theory and report its end state.

Exit status 0 when the solve succeeds, 1 when it fails (the reason is printed: a result of
``theory.RESULT_MESSAGES``; with ``--json`` in ``"result"``), 2 for invalid arguments. The
JSON is strict: a non-finite number is written as null.
"""

from __future__ import annotations

import argparse
import math
import sys

# the float options that are state or rates of the theory, which squares them
_NUMBERS = ("h0", "y0", "w0", "eta_h", "eta_y", "dx2", "dy2", "t_max")
# --plot: file types written by rep_align.plots.save (matplotlib's formats)
_PLOT_TYPES = ("png", "pdf", "svg", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--h0", type=float, default=0.01, help="initial ‖Δh‖² (> 0)")
    p.add_argument("--y0", type=float, default=0.001, help="initial ‖Δŷ‖² (>= 0)")
    p.add_argument("--w0", type=float, default=0.0, help="initial Δŷ·(Δŷ − Δy*)")
    p.add_argument("--eta-h", type=float, default=3e-3, help="encoder rate per step (> 0)")
    p.add_argument("--eta-y", type=float, default=6e-3, help="decoder rate per step (> 0)")
    p.add_argument("--dx2", type=float, default=1.0, help="‖Δx‖², squared input distance")
    p.add_argument("--dy2", type=float, default=0.5, help="‖Δy*‖², squared target distance")
    p.add_argument("--t-max", type=float, default=6000.0, help="horizon in gradient steps")
    p.add_argument("--n-save", type=int, default=601, help="number of save times")
    p.add_argument("--variant", default="theory", help="theory or an ablation name")
    p.add_argument("--float32", action="store_true", help="integrate in float32")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--plot", metavar="FILE", help="save h, y, w over time to FILE (PNG/PDF)")


def _check(args: argparse.Namespace) -> None:
    import numpy as np

    from rep_align.cli._args import finite, output_file
    from rep_align.theory import VARIANTS

    if args.variant not in VARIANTS:
        raise ValueError(f"--variant must be one of {', '.join(VARIANTS)}, got {args.variant!r}")
    if args.n_save < 2:
        raise ValueError(f"--n-save must be >= 2, got {args.n_save}")
    # The theory squares its state and rates (h0², A_high² in h_inf): anything above the
    # square root of the largest float overflows.
    limit = math.sqrt(float(np.finfo(np.float32 if args.float32 else np.float64).max))
    for name in _NUMBERS:
        finite("--" + name.replace("_", "-"), getattr(args, name), max_abs=limit)
    if not args.t_max > 0:
        raise ValueError(f"--t-max must be > 0, got {args.t_max}")
    if args.plot:
        output_file("--plot", args.plot, _PLOT_TYPES)


def run(args: argparse.Namespace) -> int:
    import jax

    _check(args)
    with jax.enable_x64(not args.float32):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import jax.numpy as jnp
    import numpy as np

    from rep_align import theory
    from rep_align.files import dumps_json

    rates = dict(eta_h=args.eta_h, eta_y=args.eta_y, dx2=args.dx2, dy2=args.dy2)
    # the closed form first: it checks the arguments before the solve is compiled
    try:
        h_inf = float(theory.final_distance(args.h0, args.y0, **rates))
    except OverflowError:  # Python floats: A_high² of eq. (3.2) out of range
        raise ValueError(
            f"--h0 {args.h0:g}, --y0 {args.y0:g}, --dx2 {args.dx2:g} and "
            f"--eta-h/--eta-y {args.eta_h / args.eta_y:g}: h_inf (eq. 3.2) overflows, "
            "rescale them"
        ) from None
    ts = jnp.linspace(0.0, args.t_max, args.n_save)
    z0 = jnp.array([args.h0, args.y0, args.w0])
    z, info = theory.solve(z0, ts, variant=args.variant, full_output=True, **rates)
    z = np.asarray(z)
    result_code = int(info.result)
    reason = theory.RESULT_MESSAGES[result_code]
    c = np.asarray(theory.conserved_quantity(z, eta_h=args.eta_h, eta_y=args.eta_y, dx2=args.dx2))
    drift = (
        float(np.max(np.abs(c - c[0])) / abs(c[0]))
        if c[0] != 0
        else float(np.max(np.abs(c - c[0])))
    )
    h, y, w = (float(v) for v in z[-1])
    result = {
        "h": h,
        "y": y,
        "w": w,
        "h_inf": h_inf,
        "conserved_drift": drift,
        "t_max": args.t_max,
        "variant": args.variant,
        "success": bool(info.success),
        "result": reason,
        "solver_steps": int(info.num_steps),
    }
    if args.json:
        print(dumps_json(result))
    else:
        print(f"t = {args.t_max:g} steps ({args.variant}): h = {h:.6g}, y = {y:.6g}, w = {w:.6g}")
        print(f"analytic h_inf = {h_inf:.6g}  (rich limit {float(theory.rich_limit(**rates)):.6g})")
        print(
            f"conserved quantity: relative drift {drift:.3g}; solver steps "
            f"{int(info.num_steps)}{'' if info.success else ' (FAILED)'}"
        )
    if not info.success:
        print(f"rep-align theory: the solve failed: {reason}", file=sys.stderr)
    if args.plot:
        _plot(np.asarray(ts), z, h_inf=h_inf, dy2=args.dy2, variant=args.variant, path=args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0 if info.success else 1


def _plot(ts, z, *, h_inf: float, dy2: float, variant: str, path: str) -> None:
    from rep_align import theory
    from rep_align.plots import plot_theory, save

    # The command does not follow the pair's mean output, so the loss (3.5) is drawn as if
    # it were fitted already (m0 = 0, one output unit).
    loss = theory.loss_curve(ts, z, eta_m=0.0, m0=0.0, dy2=dy2)
    fig = plot_theory(
        ts,
        z,
        h_inf=h_inf,
        dy2=dy2,
        loss=loss,
        title=f"two-point effective theory ({variant}); loss (3.5) with m0 = 0",
    )
    save(fig, path, dpi=120)
