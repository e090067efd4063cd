"""Epoch-based training (training.train_epochs) and many-point runs (experiments.points:
RunConfigs with record="points", trained and stored by the sweep engine)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align import data, sweep
from rep_align.config import RunConfig
from rep_align.experiments.points import (
    PointsRun,
    load_snapshots,
    points_spec,
    points_store,
    run_points,
    train_points,
)
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
    store = points_store(runs, tmp_path)
    assert len(lines) == 1 and len(sweep.load_results(store)) == 3
    again = train_points(runs[::-1], tmp_path, progress=lines.append)
    assert len(lines) == 1  # nothing trained the second time
    for a, b in zip(first, again[::-1], strict=True):
        np.testing.assert_array_equal(a["hidden"], b["hidden"])
    arrays, settings = load_snapshots(store, runs[2].run_id)
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


def _xor_runs(n, **settings):
    base = PointsRun(
        task="xor", width=8, depth=3, activation="relu", epochs=20, record_every=5, layer=1
    ).replace(**settings)
    mixed = [(0, 1.0, 0.1), (1, 0.8, 0.05), (2, 1.3, 0.1), (3, 1.0, 0.2), (4, 0.9, 0.07)]
    return [base.replace(seed=s, gain=g, lr=lr) for s, g, lr in mixed[:n]]


@pytest.mark.parametrize("settings", [{}, {"dtype": "float64", "batch_size": 3, "probe": (2, 0)}])
def test_points_runs_are_train_epochs_in_blocks_of_four(tmp_path, settings):
    """Oracle: the runs' list cut into blocks of 4 (4 + 1 here), each block one
    jit(vmap(train_epochs)) call, written out directly; the engine's records are those bits."""
    runs = _xor_runs(5, **settings)
    records = train_points(runs, tmp_path, progress=lambda line: None)
    first = runs[0]
    x, y = data.xor()
    net = make_network(
        "mlp", in_dim=2, out_dim=1, width=8, depth=3, activation="relu", dtype=first.dtype
    )
    probe = np.asarray(first.probe) if first.probe else None

    def one(seed, gain, lr):
        return train_epochs(
            net,
            x,
            y,
            key=jax.random.key(seed),
            lr=lr,
            gain=gain,
            epochs=20,
            layer=1,
            batch_size=first.batch_size or None,
            record_every=5,
            probe=probe,
        )

    with jax.enable_x64(first.dtype == "float64"):
        for start in (0, 4):
            block = runs[start : start + 4]
            snaps = jax.jit(jax.vmap(one))(
                jnp.asarray([r.seed for r in block], jnp.uint32),
                jnp.asarray([r.gain for r in block], net.dtype),
                jnp.asarray([r.lr for r in block], net.dtype),
            ).to_numpy()
            for i, rec in enumerate(records[start : start + 4]):
                assert rec.keys() == snaps.keys()
                for k in rec:
                    assert rec[k].dtype == snaps[k][i].dtype, k
                    np.testing.assert_array_equal(rec[k], snaps[k][i], err_msg=k)


def test_points_run_is_a_run_config_with_its_own_settings():
    run = PointsRun(task="blobs", epochs=10, record_every=5, probe=[3, 1])
    assert isinstance(run, RunConfig) and run.record == "points" and run.probe == (3, 1)
    assert run.data_dims == (27, 1) and run.n_points == 1800
    # A points run's id is the hash of its settings, none of the pair runs' among them.
    assert "steps" not in run.canonical() and run.canonical()["epochs"] == 10
    assert run.run_id == RunConfig(**run.changes()).run_id
    assert run.replace(seed=1).run_id != run.run_id
    # Shared settings, traced ones apart: one compiled group.
    assert run.replace(seed=3, gain=2.0, lr=0.5).static_key == run.static_key
    assert run.replace(probe=(1,)).static_key != run.static_key
    for bad, match in [
        (dict(steps=10), "steps"),
        (dict(epochs=0), "epochs"),
        (dict(record_every=3), "record_every"),
        (dict(probe=(1800,)), "probe"),
        (dict(batch_size=2000), "batch_size"),
        (dict(mnist_source="/data"), "mnist_source"),
        (dict(method="flow"), "method"),
        (dict(task="two_points"), "task"),
    ]:
        with pytest.raises(ValueError, match=match):
            run.replace(**bad)
    with pytest.raises(ValueError, match="epochs"):
        RunConfig(task="xor", epochs=5)  # a pair run's length is steps
    with pytest.raises(ValueError, match="task"):
        RunConfig(task="blobs")


def test_task_shapes_without_loading_match_the_data():
    for task in ("xor", "blobs", "hierarchy"):
        x, y = data.task_data(task)
        assert x.dtype == np.float64 and (x.shape[1], y.shape[1]) == data.task_dims(task)
        assert len(x) == data.task_size(task)
    # The values are the float32 datasets' (what the experiments have always trained on).
    blobs = data.context_blobs(dtype=jnp.float32)
    np.testing.assert_array_equal(data.task_data("blobs")[0], np.asarray(blobs.x))
    assert data.task_size("mnist") == 5000 and data.task_size("mnist", "/some/dir") is None


def test_points_list_is_a_spec_that_round_trips_through_toml(tmp_path):
    runs = _xor_runs(3) + [PointsRun(task="hierarchy", epochs=4, probe=(0, 5))]
    spec = points_spec(runs + runs[:1])  # duplicates are trained once
    assert spec.runs() == runs and spec.num_runs == 4 and spec.runs_per_device == 4
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    again = sweep.load_spec(tmp_path / "spec.toml")
    assert again == spec and again.spec_hash == spec.spec_hash and again.runs() == runs
    assert "[[per_run]]" in spec.to_toml()
    assert dataclasses.replace(spec, max_chunk=8).runs() == runs
    with pytest.raises(ValueError, match="not both"):
        sweep.SweepSpec(axes={"seed": [0, 1]}, per_run=runs)
    with pytest.raises(ValueError, match="repeats run 0"):
        sweep.SweepSpec(per_run=[runs[0], runs[0]])
    with pytest.raises(ValueError, match="fit"):
        sweep.SweepSpec(per_run=runs, fit=True)
    with pytest.raises(ValueError, match="run 1 of per_run"):
        sweep.SweepSpec(per_run=[{"width": 8}, {"width": -1}])
    with pytest.raises(ValueError, match="points"):
        points_spec([RunConfig()])


def test_run_points_reports_what_it_trained(tmp_path):
    runs = _xor_runs(2)
    first = run_points(runs, tmp_path, progress=lambda line: None)
    assert (first.report.completed, first.report.skipped) == (2, 0)
    again = run_points(runs, tmp_path, progress=lambda line: None)
    assert (again.report.completed, again.report.skipped) == (0, 2)
    assert again.store == first.store == points_store(runs, tmp_path)
    res = sweep.load_results(first.store)
    assert list(res.table["record"]) == ["points", "points"]
    np.testing.assert_array_equal(res.table["loss_final"], [r["loss"][-1] for r in first.records])
    with pytest.raises(ValueError, match="snapshots"):
        res.trajectories(res.table["group"][0])
