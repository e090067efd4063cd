"""Is a poor R² the fit's fault or the record's? Scan the theory's two rates around the fit.

``python reproduction/scan_rates.py --preset default --seed 3 [--quick] [--points 81]``

Trains one seed of a two-point preset under the trajectory protocol (as ``rep-align
two-points`` does), fits (η_h, η_y) with ``rep_align.fit``, then evaluates the theory on a
log-spaced grid of both rates from 1/10 to 10 times the fitted values (one stacked
``theory.solve``) and reports R² of h, y and w at every grid point: the best R² of w
reachable at all, and the best reachable while h and y keep R² >= 0.98 (the per-seed bound
of the reproduction). If the fitted point is that best, no choice of rates does better on
this record. Writes nothing; prints a summary.
"""

from __future__ import annotations

import argparse
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from rep_align import fit, theory
from rep_align.experiments.common import observed, train_seeds
from rep_align.experiments.two_points import protocol_preset


def r2_grid(ts, z, eta_h, eta_y, *, dx2, dy2, span=10.0, points=81):
    """R² (points², 3) of h, y, w for rates on a log grid around (eta_h, eta_y)."""
    factors = np.geomspace(1 / span, span, points)
    eh, ey = np.meshgrid(eta_h * factors, eta_y * factors, indexing="ij")
    with jax.enable_x64(True):
        zz = np.asarray(
            theory.solve(
                jnp.asarray(z[0]),
                jnp.asarray(ts),
                eta_h=jnp.asarray(eh.ravel()),
                eta_y=jnp.asarray(ey.ravel()),
                dx2=dx2,
                dy2=dy2,
            )
        )
    sst = np.sum((z - z.mean(axis=0)) ** 2, axis=0)
    r2 = 1.0 - np.sum((zz - z) ** 2, axis=1) / sst
    return eh.ravel(), ey.ravel(), r2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the preset's quick size")
    parser.add_argument("--points", type=int, default=81, help="grid points per rate")
    args = parser.parse_args(argv)

    preset = protocol_preset(args.preset, quick=args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        runs = train_seeds(preset.config, [args.seed], root=tmp, name="scan")
    ts, z = observed(runs.records, preset.layer)
    z = z[0]
    with jax.enable_x64(True):
        res = fit.fit_rates(jnp.asarray(ts), jnp.asarray(z[None]), dx2=preset.dx2, dy2=preset.dy2)
    eta_h, eta_y = float(res.eta_h[0]), float(res.eta_y[0])
    r2_fit = np.asarray(res.r2[0])
    eh, ey, r2 = r2_grid(ts, z, eta_h, eta_y, dx2=preset.dx2, dy2=preset.dy2, points=args.points)
    print(f"{preset.name}, seed {args.seed}: fitted eta_h {eta_h:.4g}, eta_y {eta_y:.4g}")
    print(f"  R² at the fit: h {r2_fit[0]:.4f}, y {r2_fit[1]:.4f}, w {r2_fit[2]:.4f}")
    best = int(np.nanargmax(r2[:, 2]))
    print(
        f"  best R² w on the grid: {r2[best, 2]:.4f} at eta_h x{eh[best] / eta_h:.3g}, "
        f"eta_y x{ey[best] / eta_y:.3g} (there R² h {r2[best, 0]:.3g}, y {r2[best, 1]:.3g})"
    )
    ok = (r2[:, 0] >= 0.98) & (r2[:, 1] >= 0.98)
    if ok.any():
        i = np.flatnonzero(ok)[int(np.nanargmax(r2[ok, 2]))]
        print(
            f"  best R² w with R² h, y >= 0.98: {r2[i, 2]:.4f} at eta_h x{eh[i] / eta_h:.3g}, "
            f"eta_y x{ey[i] / eta_y:.3g} ({int(ok.sum())} of {len(ok)} grid points qualify)"
        )
    else:
        print("  no grid point has R² h, y >= 0.98")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
