"""``rep-align predict``: the predicted final distance matrix of a user's data set
(docs/theory.md §6), in the rich limit or from a network's initial representations."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", required=True, metavar="X.npy", help="inputs, (n, d_in) array")
    p.add_argument("--targets", required=True, metavar="Y.npy", help="targets, (n, d_out) array")
    p.add_argument(
        "--hidden",
        metavar="H0.npy",
        default=None,
        help="initial hidden activations (n, F) of a network at its read-out layer "
        "(with --outputs); omit both for the rich limit",
    )
    p.add_argument("--outputs", metavar="Y0.npy", default=None, help="initial outputs (n, d_out)")
    rates = p.add_mutually_exclusive_group()
    rates.add_argument(
        "--eta-ratio",
        type=float,
        default=None,
        help="eta_h/eta_y; required with --hidden unless --rates-from (rich limit: default 1, "
        "which only sets the scale)",
    )
    rates.add_argument(
        "--rates-from",
        metavar="DIR",
        default=None,
        help="read eta_h/eta_y from a `rep-align two-points` output (preset default)",
    )
    p.add_argument("--out", default="runs/predict", help="output directory (default runs/predict)")
    p.add_argument("--float64", action="store_true", help="compute in float64")


def _load(flag: str, path: str | None):
    import numpy as np

    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{flag}: cannot read {path!r} as a .npy array: {err}") from None


def _check_range(flag: str, path: str | None, arr) -> None:
    """Refuse an array whose squared pairwise distances overflow the working float.

    Arrays that are not 2-D, numeric and finite are left to ``predict.predict_distances``,
    which says what is wrong with them.
    """
    import jax.numpy as jnp
    import numpy as np

    from rep_align import predict

    if arr is None or arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        return
    if np.iscomplexobj(arr) or not np.isfinite(arr).all():
        return
    dtype = jnp.result_type(float)
    d2 = np.asarray(predict.pairwise_squared_distances(jnp.asarray(arr, dtype)))
    if np.isfinite(d2).all():
        return
    name = np.dtype(dtype).name
    hint = "rerun with --float64" if name == "float32" else "rescale the data"
    raise ValueError(
        f"{flag} {path!r}: the squared distances between its rows overflow {name} "
        f"(largest |value| {float(np.max(np.abs(arr))):.3g}); {hint}"
    )


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from rep_align import plots, predict
    from rep_align.files import atomic_write, jsonable, write_json
    from rep_align.plots.xor import distance_heatmap

    x = _load("--inputs", args.inputs)
    y = _load("--targets", args.targets)
    h0 = _load("--hidden", args.hidden)
    y0 = _load("--outputs", args.outputs)
    rates = None
    ratio = args.eta_ratio
    if args.rates_from is not None:
        from rep_align.cli._args import rates_from

        rates = rates_from(args.rates_from)
        ratio = rates.ratio
    rich = h0 is None and y0 is None
    with jax.enable_x64(args.float64):
        for flag, path, arr in (
            ("--inputs", args.inputs, x),
            ("--targets", args.targets, y),
            ("--hidden", args.hidden, h0),
            ("--outputs", args.outputs, y0),
        ):
            _check_range(flag, path, arr)
        h2 = np.asarray(predict.predict_distances(x, y, hidden0=h0, outputs0=y0, eta_ratio=ratio))
        rich2 = np.asarray(predict.predict_distances(x, y, eta_ratio=ratio or 1.0))
        init2 = None if rich else np.asarray(predict.pairwise_squared_distances(np.asarray(h0)))
        dx2 = np.asarray(predict.pairwise_squared_distances(np.asarray(x)))
    dist = np.sqrt(h2)
    os.makedirs(args.out, exist_ok=True)
    for name, arr in (("predicted.npy", h2), ("distances.npy", dist)):
        atomic_write(os.path.join(args.out, name), lambda fh, a=arr: np.save(fh, a))
    mode = "rich limit, eq. (3.3) per pair" if rich else "initial network, eq. (6.1)"
    n = h2.shape[0]
    off = dist[np.triu_indices(n, 1)]
    summary = dict(
        mode=mode,
        n_points=n,
        input_dim=int(np.shape(x)[1]),
        target_dim=int(np.shape(y)[1]),
        hidden_dim=None if rich else int(np.shape(h0)[1]),
        eta_ratio=1.0 if ratio is None else float(ratio),
        eta_ratio_source=(
            jsonable(rates)
            if rates is not None
            else "given"
            if ratio is not None
            else "default 1.0 (rich limit: only sets the scale)"
        ),
        precision="float64" if args.float64 else "float32",
        files=dict(
            squared="predicted.npy (squared distances H_inf)",
            distances="distances.npy (sqrt of predicted.npy)",
            heatmap="predicted.png (distances)",
        ),
        distance_min=float(off.min()),
        distance_max=float(off.max()),
        distance_mean=float(off.mean()),
        pearson_with_input_distances=predict.upper_pearson(dist, np.sqrt(dx2)),
        pearson_with_rich_limit=predict.upper_pearson(dist, np.sqrt(rich2)),
        pearson_with_initial=None if rich else predict.upper_pearson(dist, np.sqrt(init2)),
        inputs=os.path.abspath(args.inputs),
        targets=os.path.abspath(args.targets),
        hidden=None if rich else os.path.abspath(args.hidden),
        outputs=None if rich else os.path.abspath(args.outputs),
    )
    write_json(os.path.join(args.out, "summary.json"), summary)
    title = f"predicted final distances √H∞ ({mode}), n = {n}, η_h/η_y = {summary['eta_ratio']:.4g}"
    plots.save(distance_heatmap(dist, title=title), os.path.join(args.out, "predicted.png"))
    print(f"{mode}: {n} points, distances {off.min():.4g} to {off.max():.4g}")
    print(
        f"wrote {args.out}/predicted.npy, distances.npy, predicted.png, summary.json",
        file=sys.stderr,
    )
    return 0
