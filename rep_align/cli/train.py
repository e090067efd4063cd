"""``rep-align train``: train one two-point preset and write its observables and a plot.

Uses the trajectory protocol of docs/presets.md (lr/2, 2 × epochs), records h (every hidden
layer), y, w, m and the loss at every ``--record-every`` steps, and writes
``NAME_seedN[_flow][_quick].npz`` (a ``Trajectory``), ``.png`` (h of the preset's layer, y,
w, loss against epochs) and ``.json`` (settings and summary) to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from rep_align.cli._args import seed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, help="two-point preset name (docs/presets.md)")
    p.add_argument("--seed", type=seed, default=0, help="PRNG seed in [0, 2**32) (default 0)")
    p.add_argument("--flow", action="store_true", help="integrate gradient flow (diffrax) instead")
    p.add_argument("--out", default="runs/train", help="output directory (default runs/train)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small network (width <= 64, depth <= 4; as the experiments' --quick) for a fast demo",
    )
    p.add_argument("--record-every", type=int, default=1, help="steps between records (default 1)")
    p.add_argument(
        "--rtol", type=float, default=1e-5, help="relative tolerance of --flow (default 1e-5)"
    )


def run(args: argparse.Namespace) -> int:
    import jax

    from rep_align.files import write_json
    from rep_align.plots import plot_trajectory
    from rep_align.presets import get_preset
    from rep_align.training import gradient_flow, train

    preset = get_preset(args.preset).trajectory_protocol()
    if args.quick:
        preset = preset.quick()
    if args.record_every < 1 or preset.epochs % args.record_every:
        raise ValueError(
            f"--record-every must be a positive divisor of {preset.epochs}, got {args.record_every}"
        )
    network = preset.config.network(gain=preset.gain)
    x, y = preset.config.data()
    key = jax.random.key(args.seed)
    method = "gradient flow" if args.flow else preset.optimizer
    print(
        f"{preset.name}: {preset.arch} {preset.activation}, width {preset.width}, "
        f"depth {preset.depth}, gain {preset.gain}, lr {preset.lr:g}, {preset.epochs} epochs, "
        f"{method}, seed {args.seed}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    if args.flow:
        if preset.optimizer != "sgd":
            print(f"note: --flow ignores optimizer {preset.optimizer!r}", file=sys.stderr)
        if not _have_tqdm():
            print("integrating (install tqdm for a progress meter)…", file=sys.stderr)
        traj = gradient_flow(
            network,
            x,
            y,
            key=key,
            lr=preset.lr,
            t_max=preset.epochs,
            save_every=args.record_every,
            rtol=args.rtol,
            progress=_have_tqdm(),  # diffrax's meter needs tqdm
        )
    else:
        traj = _train_with_bar(train, network, x, y, key, preset, args.record_every)
    traj = jax.block_until_ready(traj)
    seconds = time.perf_counter() - start

    os.makedirs(args.out, exist_ok=True)
    stem = f"{preset.name}_seed{args.seed}" + ("_flow" if args.flow else "")
    stem += "_quick" if args.quick else ""
    base = os.path.join(args.out, stem)
    traj.save(base + ".npz")
    fig = plot_trajectory(
        traj,
        layer=preset.layer,
        title=f"{preset.name} ({preset.arch}, {preset.activation}, P={preset.width}, "
        f"L={preset.depth}), seed {args.seed}, {method}: solid network",
    )
    fig.savefig(base + ".png", dpi=120)
    layer = preset.layer
    summary = {
        "preset": preset.describe(),
        "seed": args.seed,
        "method": method,
        "seconds": seconds,
        "final": {
            "loss": float(traj.loss[-1]),
            "h_layer": float(traj.h[-1, layer]),
            "y": float(traj.y[-1]),
            "w": float(traj.w[-1]),
        },
        "diverged": bool(traj.diverged),
        "diverged_step": int(traj.diverged_step),
        "n_steps": int(traj.n_steps),
        "solver_ok": bool(traj.solver_ok),
    }
    write_json(base + ".json", summary)
    f = summary["final"]
    print(
        f"done in {seconds:.1f} s: loss {f['loss']:.3g}, h[{layer}] {f['h_layer']:.4g}, "
        f"y {f['y']:.4g} (dy2 {preset.dy2}), w {f['w']:.3g}"
    )
    if summary["diverged"]:
        print(f"DIVERGED at step {summary['diverged_step']}", file=sys.stderr)
    if not summary["solver_ok"]:
        print(f"SOLVER FAILED after {summary['n_steps']} steps", file=sys.stderr)
    print(f"wrote {base}.npz, .png, .json", file=sys.stderr)
    return 0 if summary["solver_ok"] and not summary["diverged"] else 1


def _have_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class _StatusLines:
    """Fallback without tqdm: a status line about every 10 % of the run."""

    def __init__(self, total: int):
        self.total, self.n, self._next = total, 0, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix(self, loss: str, refresh: bool = False) -> None:
        self._loss = loss

    def update(self, k: int) -> None:
        self.n += k
        if self.n >= self._next:
            print(
                f"step {self.n}/{self.total}, loss {getattr(self, '_loss', '?')}", file=sys.stderr
            )
            self._next = self.n + max(1, self.total // 10)


def _train_with_bar(train, network, x, y, key, preset, record_every):
    """Run ``train`` with a progress bar (or status lines) fed from the compiled loop."""
    import jax

    if _have_tqdm():
        from tqdm import tqdm

        bar_cm = tqdm(total=preset.epochs, unit="step", desc="training", file=sys.stderr)
    else:
        bar_cm = _StatusLines(preset.epochs)
    with bar_cm as bar:

        def progress(step, loss):
            step = int(step)
            if step > bar.n:
                bar.set_postfix(loss=f"{float(loss):.3g}", refresh=False)
                bar.update(step - bar.n)

        traj = train(
            network,
            x,
            y,
            key=key,
            lr=preset.lr,
            steps=preset.epochs,
            optimizer=preset.optimizer,
            record_every=record_every,
            progress=progress,
        )
        traj = jax.block_until_ready(traj)
        bar.update(preset.epochs - bar.n)
    return traj
