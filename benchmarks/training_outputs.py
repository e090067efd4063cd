"""Every output of 52 small training configurations, saved to compare two versions of the
code bit for bit (for changes meant to preserve behaviour).

    python -m benchmarks.training_outputs OLD.npz   # at the old commit
    python -m benchmarks.training_outputs NEW.npz   # at the new one
    python -m benchmarks.training_outputs --compare OLD.npz NEW.npz

Covers float32 and float64; MLP and ResNet (SGD, Adam, mini-batches of 2 and 4, full batch
of 8, record intervals 1 and 5, a vmapped ensemble, ``train_epochs`` with SGD and Adam on
batches of 3), dropout and CNN.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
from rep_align.data import two_points  # noqa: E402
from rep_align.networks import make_network  # noqa: E402
from rep_align.training import train, train_ensemble, train_epochs  # noqa: E402


def compare(old: str, new: str) -> int:
    a, b = np.load(old), np.load(new)
    if set(a) != set(b):
        print("different sets of outputs")
        return 1
    bad = [k for k in a if a[k].tobytes() != b[k].tobytes()]
    print(f"{len(a)} outputs compared, {len(bad)} differ" + (f": {bad[:10]}" if bad else ""))
    return 1 if bad else 0


if sys.argv[1] == "--compare":
    sys.exit(compare(sys.argv[2], sys.argv[3]))
out = {}
rng = np.random.default_rng(0)
x8 = rng.normal(size=(8, 3))
y8 = rng.normal(size=(8, 2))


def save(name, res, fields=("loss", "h", "y", "w", "m", "diverged_step")):
    records, params = res
    for f in fields:
        out[f"{name}/{f}"] = np.asarray(getattr(records, f))
    for i, leaf in enumerate(jax.tree_util.tree_leaves(params)):
        out[f"{name}/p{i}"] = np.asarray(leaf)


for dt in (jnp.float32, jnp.float64):
    x, y = two_points(dtype=dt)
    X, Y = jnp.asarray(x8, dt), jnp.asarray(y8, dt)
    for arch in ("mlp", "resnet"):
        net = make_network(arch, in_dim=1, out_dim=1, width=40, depth=4, dtype=dt)
        net3 = make_network(arch, in_dim=3, out_dim=2, width=40, depth=4, dtype=dt)
        k = jax.random.key(1)
        for re in (1, 5):
            save(
                f"{dt.__name__}/{arch}/sgd/re{re}",
                train(net, x, y, key=k, lr=0.05, steps=100, record_every=re, return_params=True),
            )
            save(
                f"{dt.__name__}/{arch}/adam/re{re}",
                train(
                    net,
                    x,
                    y,
                    key=k,
                    lr=1e-3,
                    steps=100,
                    optimizer="adam",
                    record_every=re,
                    return_params=True,
                ),
            )
            for bs in (2, 4, 8):
                save(
                    f"{dt.__name__}/{arch}/mb{bs}/re{re}",
                    train(
                        net3,
                        X,
                        Y,
                        key=k,
                        lr=0.05,
                        steps=100,
                        batch_size=bs if bs < 8 else None,
                        record_every=re,
                        return_params=True,
                    ),
                )
            save(
                f"{dt.__name__}/{arch}/mb4adam/re{re}",
                train(
                    net3,
                    X,
                    Y,
                    key=k,
                    lr=1e-3,
                    steps=100,
                    batch_size=4,
                    optimizer="adam",
                    record_every=re,
                    return_params=True,
                ),
            )
        save(
            f"{dt.__name__}/{arch}/ens",
            train_ensemble(
                net, x, y, keys=jax.random.split(k, 3), lr=0.05, steps=100, return_params=True
            ),
        )
        for opt, lr in (("sgd", 0.05), ("adam", 1e-3)):
            res = train_epochs(
                net3,
                X,
                Y,
                key=k,
                lr=lr,
                epochs=20,
                layer=2,
                optimizer=opt,
                batch_size=3,
                record_every=2,
                return_params=True,
            )
            fields = ("epochs", "loss", "accuracy", "hidden", "outputs", "diverged_epoch")
            save(f"{dt.__name__}/{arch}/epochs_{opt}", res, fields)
    drop = make_network("dropout", in_dim=1, out_dim=1, width=40, depth=4, dtype=dt)
    save(f"{dt.__name__}/dropout", train(drop, x, y, key=k, lr=0.05, steps=100, return_params=True))
    cnn = make_network("cnn", in_dim=1, out_dim=1, width=48, depth=3, dtype=dt)
    save(f"{dt.__name__}/cnn", train(cnn, x, y, key=k, lr=0.05, steps=50, return_params=True))
np.savez(sys.argv[1], **out)
print(len(out), "arrays")
