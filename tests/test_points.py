"""Epoch-based training (training.train_epochs) and cached multi-point runs
(experiments.points)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align import data
from rep_align.experiments.points import PointsRun, load_snapshots, train_points
from rep_align.networks import make_network
from rep_align.training import train, train_epochs


def _net(**kw):
    args = dict(in_dim=2, out_dim=1, width=16, depth=3, activation="relu", gain=1.0)
    args.update(kw)
    return make_network("mlp", **args)


def test_full_batch_epochs_are_the_steps_of_train():
    net = _net()
    x, y = data.xor()
    key = jax.random.key(3)
    traj, p1 = train(net, x, y, key=key, lr=0.05, steps=40, record_every=10, return_params=True)
    snaps, p2 = train_epochs(
        net, x, y, key=key, lr=0.05, epochs=40, layer=1, record_every=10, return_params=True
    )
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(traj.loss), np.asarray(snaps.loss))
    assert snaps.hidden.shape == (5, 4, 16) and snaps.outputs.shape == (5, 4, 1)
    np.testing.assert_array_equal(np.asarray(snaps.epochs), [0, 10, 20, 30, 40])
    # Recorded hidden distances match the pair observable h of train at that layer.
    h = np.asarray(snaps.hidden)
    np.testing.assert_allclose(
        ((h[:, 0] - h[:, 1]) ** 2).sum(-1), np.asarray(traj.h)[:, 1], rtol=1e-5
    )


def test_minibatch_epoch_keeps_the_last_batch_and_matches_a_hand_loop():
    """Batches of 3 from 7 points: steps on 3, 3 and the remaining 1, per epoch, in the
    order of the epoch's permutation; checked against a plain Python loop (float64)."""
    with jax.enable_x64(True):
        net = _net(dtype=jnp.float64, in_dim=3)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(7, 3))
        y = rng.normal(size=(7, 1))
        key = jax.random.key(5)
        snaps, final = train_epochs(
            net, x, y, key=key, lr=0.1, epochs=2, layer=0, batch_size=3, return_params=True
        )
        from rep_align.training import loss_fn, split_run_key

        init_key, shuffle_key, _ = split_run_key(key)
        params = net.init(init_key)
        for epoch in range(2):
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), 7))
            for idx in (perm[0:3], perm[3:6], perm[6:7]):
                g = jax.grad(lambda p, idx=idx: loss_fn(p, net, x[idx], y[idx])[0])(params)
                params = jax.tree.map(lambda p, gg: p - 0.1 * gg, params, g)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(final), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
        # drop_last skips the single leftover point: different parameters.
        _, dropped = train_epochs(
            net,
            x,
            y,
            key=key,
            lr=0.1,
            epochs=2,
            layer=0,
            batch_size=3,
            drop_last=True,
            return_params=True,
        )
        assert not np.allclose(
            np.asarray(jax.tree.leaves(dropped)[0]), np.asarray(jax.tree.leaves(final)[0])
        )


def test_accuracy_and_probe():
    net = make_network("mlp", in_dim=4, out_dim=3, width=8, depth=2, gain=1.0)
    x = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    y = np.eye(3)[[0, 1, 2, 0, 0, 1]]
    snaps = train_epochs(net, x, y, key=jax.random.key(0), lr=0.1, epochs=2, layer=-1, probe=[4, 1])
    out = np.asarray(net.apply(net.init(jax.random.split(jax.random.key(0), 3)[0]), x)[0])
    np.testing.assert_allclose(np.asarray(snaps.outputs[0]), out[[4, 1]], rtol=1e-5, atol=1e-7)
    assert float(snaps.accuracy[0]) == pytest.approx(np.mean(out.argmax(1) == y.argmax(1)))


def test_bad_arguments_are_refused():
    net = _net()
    x, y = data.xor()
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="record_every"):
        train_epochs(net, x, y, key=k, lr=0.1, epochs=5, layer=0, record_every=2)
    with pytest.raises(ValueError, match="layer"):
        train_epochs(net, x, y, key=k, lr=0.1, epochs=5, layer=3)
    with pytest.raises(ValueError, match="batch_size"):
        train_epochs(net, x, y, key=k, lr=0.1, epochs=5, layer=0, batch_size=5)
    with pytest.raises(ValueError, match="probe"):
        train_epochs(net, x, y, key=k, lr=0.1, epochs=5, layer=0, probe=[0, 4])
    with pytest.raises(ValueError, match="layer"):
        PointsRun(task="xor", depth=2, layer=5)
    with pytest.raises(ValueError, match="task"):
        PointsRun(task="cifar")


def test_cached_runs_are_stored_and_not_retrained(tmp_path):
    runs = [
        PointsRun(
            task="xor",
            width=8,
            depth=2,
            activation="relu",
            lr=0.1,
            epochs=20,
            record_every=10,
            layer=1,
            seed=s,
            gain=g,
        )
        for s, g in ((0, 1.0), (1, 1.0), (0, 2.0))
    ]
    lines = []
    first = train_points(runs, tmp_path, progress=lines.append)
    assert len(lines) == 1 and len(list(tmp_path.glob("*.npz"))) == 3
    again = train_points(runs[::-1], tmp_path, progress=lines.append)
    assert len(lines) == 1  # nothing trained the second time
    for a, b in zip(first, again[::-1], strict=True):
        np.testing.assert_array_equal(a["hidden"], b["hidden"])
    arrays, settings = load_snapshots(tmp_path / f"{runs[2].run_id}.npz")
    assert settings["gain"] == 2.0 and arrays["hidden"].shape == (3, 4, 8)
    # A run alone gives the record it had in its block.
    alone = train_points([runs[1]], tmp_path / "alone", progress=lines.append)[0]
    np.testing.assert_array_equal(alone["hidden"], first[1]["hidden"])


def test_hierarchy_targets_encode_the_tree():
    x, y = data.hierarchy(levels=2)
    y = np.asarray(y)
    assert x.shape == (4, 4) and y.shape == (4, 7)
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(d, [[0, 2, 4, 4], [2, 0, 4, 4], [4, 4, 0, 2], [4, 4, 2, 0]])
