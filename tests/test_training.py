"""rep_align.training (descent and flow), presets and the ``rep-align train`` command."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _tracing import CompileLog

from rep_align import training
from rep_align.cli import main
from rep_align.data import two_points, xor
from rep_align.networks import make_network
from rep_align.observables import pair_observables
from rep_align.presets import (
    TWO_POINT_PRESETS,
    XOR_PRESETS,
    get_preset,
    get_xor_preset,
)
from rep_align.training import Trajectory, gradient_flow, train

KEY = jax.random.key(0)
X, Y = two_points()
NET = make_network("mlp", in_dim=1, out_dim=1, width=16, depth=3)


def _max_rel(a, b):
    """max_t |a − b| / max_t |b|: relative to the observable's scale, so zero crossings
    of w do not blow it up."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _python_descent(network, params, x, y, lr, steps):
    """Oracle: an unjitted Python loop of plain gradient descent; observables per step."""
    grad = jax.grad(lambda p: training.loss_fn(p, network, x, y)[0])
    records = []
    for _ in range(steps + 1):
        loss, (out, hiddens) = training.loss_fn(params, network, x, y)
        obs = pair_observables(x, y, out, hiddens)
        records.append((float(loss), np.asarray(obs.h), float(obs.y), float(obs.w)))
        g = grad(params)
        params = jax.tree.map(lambda p, d: p - lr * d, params, g)
    return records


# ----------------------------------------------------------------------------- train


def test_train_matches_python_loop():
    params = NET.init(KEY)
    traj = train(NET, X, Y, key=KEY, lr=0.05, steps=12, params=params)
    ref = _python_descent(NET, params, X, Y, 0.05, 12)
    assert traj.times.shape == (13,) and traj.h.shape == (13, 3)
    np.testing.assert_array_equal(traj.times, np.arange(13))
    np.testing.assert_allclose(traj.loss, [r[0] for r in ref], rtol=1e-5)
    np.testing.assert_allclose(traj.h, np.stack([r[1] for r in ref]), rtol=1e-5)
    np.testing.assert_allclose(traj.y, [r[2] for r in ref], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(traj.w, [r[3] for r in ref], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(traj.dx2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(traj.dy2, 0.5, rtol=1e-6)
    assert not traj.diverged and int(traj.diverged_step) == -1 and int(traj.n_steps) == 12


def test_record_every_gives_the_same_records():
    every = train(NET, X, Y, key=KEY, lr=0.05, steps=60, record_every=1)
    sparse = train(NET, X, Y, key=KEY, lr=0.05, steps=60, record_every=15)
    np.testing.assert_array_equal(sparse.times, [0, 15, 30, 45, 60])
    for field in ("loss", "h", "y", "w", "m"):
        np.testing.assert_allclose(
            getattr(sparse, field), getattr(every, field)[::15], rtol=1e-6, atol=1e-9
        )


def test_final_params_and_last_record_agree():
    traj, params = train(NET, X, Y, key=KEY, lr=0.05, steps=40, return_params=True)
    loss, (out, hiddens) = training.loss_fn(params, NET, X, Y)
    obs = pair_observables(X, Y, out, hiddens)
    np.testing.assert_allclose(traj.loss[-1], loss, rtol=1e-6)
    np.testing.assert_allclose(traj.h[-1], obs.h, rtol=1e-6)
    assert float(traj.loss[-1]) < 0.2 * float(traj.loss[0])


def test_same_key_same_bits():
    a = train(NET, X, Y, key=KEY, lr=0.05, steps=30)
    b = train(NET, X, Y, key=KEY, lr=0.05, steps=30)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)
    c = train(NET, X, Y, key=jax.random.key(1), lr=0.05, steps=30)
    assert not np.array_equal(a.h, c.h)


def test_vmap_over_8_seeds_equals_loop():
    keys = jax.random.split(jax.random.key(7), 8)
    batched = jax.vmap(lambda k: train(NET, X, Y, key=k, lr=0.05, steps=50, record_every=5))(keys)
    assert batched.h.shape == (8, 11, 3) and batched.diverged.shape == (8,)
    for i in range(8):
        single = train(NET, X, Y, key=keys[i], lr=0.05, steps=50, record_every=5)
        for u, v in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(u[i], v, rtol=1e-5, atol=1e-7)


def test_vmap_over_gain_lr_and_geometry():
    lrs = jnp.array([0.01, 0.05])
    gains = jnp.array([0.5, 1.5])
    dx2s = jnp.array([0.5, 1.5])

    def run(lr, gain, dx2):
        x, y = two_points(dx2=dx2)
        return train(NET, x, y, key=KEY, lr=lr, gain=gain, steps=20, record_every=10)

    batched = jax.vmap(run)(lrs, gains, dx2s)
    np.testing.assert_allclose(batched.dx2, dx2s, rtol=1e-6)
    for i in range(2):
        single = run(float(lrs[i]), float(gains[i]), float(dx2s[i]))
        np.testing.assert_allclose(batched.h[i], single.h, rtol=1e-5)
        np.testing.assert_allclose(batched.y[i], single.y, rtol=1e-5, atol=1e-7)


def test_compiles_once_for_new_values():
    net = make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2)
    train(net, X, Y, key=KEY, lr=0.01, steps=10)
    x2, y2 = two_points(dx2=0.3, dy2=0.9)
    with CompileLog() as log:
        train(net, x2, y2, key=jax.random.key(5), lr=0.02, steps=10)
        train(net, X, Y, key=KEY, lr=jnp.float32(0.03), gain=1.7, steps=10)
        train(net, X, Y, key=KEY, lr=0.01, steps=10, gain=0.3)
    assert log.traced == [] and log.compiled == []
    with CompileLog() as log:
        train(net, X, Y, key=KEY, lr=0.01, steps=20)  # a new number of steps is a new shape
    assert log.traced.count("_train_core") == 1 and log.compiled.count("_train_core") == 1


def test_absurd_learning_rate_is_flagged():
    traj = train(NET, X, Y, key=KEY, lr=1e4, steps=50)
    assert bool(traj.diverged)
    step = int(traj.diverged_step)
    assert 0 < step <= 50
    assert np.all(np.isfinite(traj.loss[:step]))
    for field in ("loss", "h", "y", "w", "m"):
        assert np.all(np.isnan(getattr(traj, field)[step:]))
    # A batch survives one diverging member.
    both = jax.vmap(lambda lr: train(NET, X, Y, key=KEY, lr=lr, steps=50))(jnp.array([0.05, 1e4]))
    np.testing.assert_array_equal(both.diverged, [False, True])
    assert np.all(np.isfinite(both.h[0]))


def test_dropout_training_differs_but_records_are_deterministic():
    drop = make_network("dropout", in_dim=1, out_dim=1, width=32, depth=3, dropout_rate=0.2)
    plain = dataclasses.replace(drop, dropout_rate=0.0)
    params = drop.init(KEY)
    a = train(drop, X, Y, key=KEY, lr=0.05, steps=20, params=params)
    b = train(plain, X, Y, key=KEY, lr=0.05, steps=20, params=params)
    # Step 0 is recorded without dropout; afterwards the dropout updates differ.
    np.testing.assert_allclose(a.h[0], b.h[0], rtol=1e-6)
    assert not np.allclose(a.h[-1], b.h[-1])
    c = train(drop, X, Y, key=jax.random.key(9), lr=0.05, steps=20, params=params)
    assert not np.allclose(a.h[-1], c.h[-1])  # another dropout key


def test_minibatches():
    x, y = xor()
    net = make_network("mlp", in_dim=2, out_dim=1, width=16, depth=2, activation="relu")
    full = train(net, x, y, key=KEY, lr=0.05, steps=30)
    # One batch of all points is full-batch descent, whatever the shuffle.
    whole = train(net, x, y, key=KEY, lr=0.05, steps=30, batch_size=4)
    np.testing.assert_allclose(whole.loss, full.loss, rtol=1e-5)
    halves = train(net, x, y, key=KEY, lr=0.05, steps=30, batch_size=2)
    again = train(net, x, y, key=KEY, lr=0.05, steps=30, batch_size=2)
    other = train(net, x, y, key=jax.random.key(3), lr=0.05, steps=30, batch_size=2)
    np.testing.assert_array_equal(halves.loss, again.loss)
    assert not np.allclose(halves.loss, full.loss)
    assert not np.allclose(halves.loss[1:], other.loss[1:])
    np.testing.assert_allclose(halves.loss[0], full.loss[0], rtol=1e-6)  # full-data records


def test_adam_and_optax_transformations():
    by_name = train(NET, X, Y, key=KEY, lr=1e-3, steps=20, optimizer="adam")
    by_object = train(NET, X, Y, key=KEY, lr=None, steps=20, optimizer=optax.adam(1e-3))
    by_factory = train(NET, X, Y, key=KEY, lr=1e-3, steps=20, optimizer=optax.adam)
    np.testing.assert_allclose(by_name.h, by_object.h, rtol=1e-6)
    np.testing.assert_allclose(by_name.h, by_factory.h, rtol=1e-6)
    sgd = train(NET, X, Y, key=KEY, lr=1e-3, steps=20)
    assert not np.allclose(by_name.h, sgd.h)


def test_progress_callback():
    seen = []
    traj = train(
        NET, X, Y, key=KEY, lr=0.05, steps=40, record_every=2, progress=lambda s, l: seen.append(s)
    )
    jax.block_until_ready(traj)
    jax.effects_barrier()
    assert seen and max(int(s) for s in seen) == 40


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lr=0.0), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=None), "lr"),
        (dict(steps=-1), "steps"),
        (dict(record_every=0), "record_every"),
        (dict(steps=10, record_every=3), "divide"),
        (dict(pair=(0, 0)), "pair"),
        (dict(pair=(0, 2)), "pair"),
        (dict(batch_size=3), "batch_size"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(optimizer=optax.sgd(0.1)), "lr must be None"),
        (dict(gain=-2.0), "gain"),
        (dict(gain=1.0, params={}), "params or gain"),
    ],
)
def test_train_validation(kwargs, match):
    args = dict(key=KEY, lr=0.01, steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(NET, X, Y, **args)


def test_train_rejects_bad_data_shapes():
    with pytest.raises(ValueError, match="x must have shape"):
        train(NET, jnp.ones((2, 3)), Y, key=KEY, lr=0.01, steps=1)
    with pytest.raises(ValueError, match="y must have shape"):
        train(NET, X, jnp.ones((3, 1)), key=KEY, lr=0.01, steps=1)


# ------------------------------------------------------------------------------ flow


def test_flow_agrees_with_small_lr_descent():
    # The default MLP (leaky ReLU, gain 1), reduced to width 32 and depth 4. dx2 = 0.81
    # keeps the second input off 0: with dx2 = 1 every pre-activation of that point starts
    # on the kink, where the flow is not unique (see gradient_flow's docstring).
    net = make_network("mlp", in_dim=1, out_dim=1, width=32, depth=4)
    x, y = two_points(dx2=0.81)
    lr, steps = 1e-3, 5000
    gd = train(net, x, y, key=KEY, lr=lr, steps=steps, record_every=50)
    flow = gradient_flow(net, x, y, key=KEY, lr=lr, t_max=steps, save_every=50)
    assert bool(flow.solver_ok) and not bool(flow.diverged)
    np.testing.assert_array_equal(flow.times, gd.times)
    assert float(gd.loss[-1]) < 0.05 * float(gd.loss[0])  # it did learn
    for layer in range(4):
        assert _max_rel(flow.h[:, layer], gd.h[:, layer]) < 0.01
    assert _max_rel(flow.y, gd.y) < 0.01
    assert _max_rel(flow.w, gd.w) < 0.01
    # The same comparison at a large learning rate fails: the check has teeth.
    coarse = train(net, x, y, key=KEY, lr=lr * 40, steps=steps // 40, record_every=1)
    flow40 = gradient_flow(net, x, y, key=KEY, lr=lr * 40, t_max=steps // 40, save_every=1)
    assert _max_rel(flow40.w, coarse.w) > 0.01


def test_two_layer_linear_flow_conserves_balance(x64):
    # For ŷ = W2 (W1 x + b1) + b2 under gradient flow, [W1 b1][W1 b1]ᵀ − W2ᵀW2 is conserved
    # (the bias is a weight on a constant input; with b1 = 0 throughout it is W1W1ᵀ − W2ᵀW2).
    net = make_network(
        "mlp", in_dim=3, out_dim=2, width=6, depth=1, activation="none", dtype=jnp.float64
    )
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    y = jax.random.normal(jax.random.key(2), (5, 2), jnp.float64)

    def balance(params):
        w1 = jnp.concatenate([params["dense_0"]["kernel"].T, params["dense_0"]["bias"][:, None]], 1)
        w2 = params["dense_1"]["kernel"].T
        return w1 @ w1.T - w2.T @ w2

    params = net.init(KEY)
    traj, final = gradient_flow(
        net, x, y, params=params, lr=0.1, t_max=300, rtol=1e-10, atol=1e-12, return_params=True
    )
    assert bool(traj.solver_ok)
    assert float(traj.loss[-1]) < 0.5 * float(traj.loss[0])  # the weights moved
    c0, c1 = balance(params), balance(final)
    drift = float(jnp.linalg.norm(c1 - c0) / jnp.linalg.norm(c0))
    assert drift < 1e-6
    # Gradient descent at a finite learning rate does not conserve it.
    _, gd_final = train(net, x, y, key=KEY, lr=0.1, steps=300, params=params, return_params=True)
    assert float(jnp.linalg.norm(balance(gd_final) - c0) / jnp.linalg.norm(c0)) > 1e-4


def test_flow_vmap_and_compiles_once():
    net = make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2, activation="tanh")
    gradient_flow(net, X, Y, key=KEY, lr=0.05, t_max=20, save_every=5)
    with CompileLog() as log:
        gradient_flow(net, X, Y, key=jax.random.key(4), lr=0.07, t_max=20, save_every=5, gain=0.8)
    assert log.traced == [] and log.compiled == []
    with CompileLog() as log:  # more save times are a new shape: the check can fail
        gradient_flow(net, X, Y, key=KEY, lr=0.05, t_max=25, save_every=5)
    assert "_flow_core" in log.traced and "_flow_core" in log.compiled
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: gradient_flow(net, X, Y, key=k, lr=0.05, t_max=20, save_every=5))(
        keys
    )
    single = gradient_flow(net, X, Y, key=keys[1], lr=0.05, t_max=20, save_every=5)
    np.testing.assert_allclose(batched.h[1], single.h, rtol=1e-4)
    assert batched.solver_ok.shape == (3,)


def test_flow_solver_failure_is_flagged():
    traj = gradient_flow(NET, X, Y, key=KEY, lr=0.05, t_max=100, save_every=10, max_steps=30)
    assert not bool(traj.solver_ok)
    assert int(traj.n_steps) == 30
    # Saves reached before the failure are kept, the others are NaN (not diffrax's inf).
    assert np.isfinite(traj.loss[0]) and np.isnan(traj.loss[-1]) and np.isnan(traj.h[-1]).all()
    assert not bool(traj.diverged)


def test_flow_custom_save_times():
    ts = jnp.array([0.0, 2.5, 10.0])
    traj = gradient_flow(NET, X, Y, key=KEY, lr=0.05, ts=ts)
    np.testing.assert_array_equal(traj.times, ts)
    gd = train(NET, X, Y, key=KEY, lr=0.05, steps=1)
    np.testing.assert_allclose(traj.h[0], gd.h[0], rtol=1e-6)  # same initialisation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(t_max=None), "ts or t_max"),
        (dict(ts=jnp.array([0.0, 1.0])), "ts or t_max"),
        (dict(key=None), "key"),
        (dict(t_max=10, save_every=3), "multiple"),
        (dict(lr=0.0), "lr"),
        (dict(rtol=-1.0), "rtol"),
        (dict(max_steps=0), "max_steps"),
    ],
)
def test_flow_validation(kwargs, match):
    args = dict(key=KEY, lr=0.01, t_max=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gradient_flow(NET, X, Y, **args)


# ------------------------------------------------------------------------ Trajectory


def test_trajectory_save_load_round_trip(tmp_path):
    traj = train(NET, X, Y, key=KEY, lr=0.05, steps=10)
    path = tmp_path / "run.npz"
    traj.save(str(path))
    back = Trajectory.load(str(path))
    for field in dataclasses.fields(Trajectory):
        u, v = np.asarray(getattr(traj, field.name)), getattr(back, field.name)
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)
    # Batched runs save the same way.
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: train(NET, X, Y, key=k, lr=0.05, steps=10))(keys)
    batched.save(str(tmp_path / "batch.npz"))
    back = Trajectory.load(str(tmp_path / "batch.npz"))
    assert back.h.shape == (3, 11, 3)
    np.testing.assert_array_equal(back.y, batched.y)
    # A file that is not a Trajectory is refused.
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a saved"):
        Trajectory.load(str(tmp_path / "other.npz"))


# --------------------------------------------------------------------------- presets


def test_presets_table():
    assert len(TWO_POINT_PRESETS) == 19
    d = get_preset("default")
    assert (d.arch, d.activation, d.gain, d.lr, d.width, d.depth, d.epochs, d.layer) == (
        "mlp",
        "leaky_relu",
        1.0,
        0.01,
        500,
        20,
        3000,
        10,
    )
    assert get_preset("skip").arch == "resnet"
    assert get_preset("adam").optimizer == "adam"
    assert get_preset("gain_1.6").lr == 3e-6
    assert get_preset("cnn").depth == 10 and get_preset("cnn").layer == 5
    assert get_preset("two_layer").depth == 1 and get_preset("two_layer").layer == 0
    protocol = d.trajectory_protocol()
    assert protocol.lr == 0.005 and protocol.epochs == 6000 and d.lr == 0.01
    with pytest.raises(ValueError, match="unknown two-point preset 'nope'"):
        get_preset("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.lr = 1.0


def test_presets_build_valid_networks():
    for p in TWO_POINT_PRESETS.values():
        net = make_network(
            p.arch,
            in_dim=p.in_dim,
            out_dim=p.out_dim,
            width=p.width,
            depth=p.depth,
            activation=p.activation,
            gain=p.gain,
        )
        assert 0 <= p.layer < net.num_hidden


def test_xor_presets():
    assert set(XOR_PRESETS) == {"rich", "intermediate", "lazy", "shallow"}
    rich = get_xor_preset("rich")
    assert (rich.gain, rich.lr, rich.epochs, rich.activation) == (0.85, 0.015, 3000, "relu")
    assert rich.half_mse_lr == pytest.approx(0.03)
    shallow = get_xor_preset("shallow")
    assert (shallow.depth, shallow.layer, shallow.gain) == (1, 0, 0.0015)
    with pytest.raises(ValueError, match="unknown XOR preset"):
        get_xor_preset("default")


# ------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("extra", [[], ["--flow", "--record-every", "100"]])
def test_cli_train_quick(tmp_path, capsys, extra):
    status = main(["train", "--preset", "default", "--quick", "--out", str(tmp_path), *extra])
    assert status == 0
    stem = "default_seed0" + ("_flow" if extra else "") + "_quick"
    traj = Trajectory.load(str(tmp_path / f"{stem}.npz"))
    assert traj.times[-1] == 6000  # trajectory protocol: 2 × 3000 epochs
    assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / f"{stem}.json").read_text())
    assert summary["preset"]["lr"] == 0.005 and summary["preset"]["layer"] == 2
    assert abs(summary["final"]["y"] - 0.5) < 0.01
    assert "done in" in capsys.readouterr().out


def test_cli_train_unknown_preset(capsys):
    assert main(["train", "--preset", "nope"]) == 2
    assert "unknown two-point preset" in capsys.readouterr().err
