"""rep_align.networks: architectures, initialisation, dropout, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align.networks import ACTIVATIONS, ARCHITECTURES, make_network

KEY = jax.random.key(0)


def _leaky(z):
    return np.where(z > 0, z, 0.01 * z)


def test_init_std_matches_xavier_gain():
    gain = 1.3
    net = make_network("mlp", in_dim=1, out_dim=1, width=500, depth=2, gain=gain)
    params = net.init(KEY)
    kernel = np.asarray(params["dense_1"]["kernel"])
    assert kernel.shape == (500, 500)
    expected = gain * np.sqrt(2.0 / (500 + 500))
    assert abs(kernel.std() / expected - 1) < 0.03
    assert abs(kernel.mean()) < 3 * expected / 500  # 3 sigma of the mean of 250k draws
    # Rectangular layer: fans differ.
    first = np.asarray(params["dense_0"]["kernel"])
    assert first.shape == (1, 500)
    assert abs(first.std() / (gain * np.sqrt(2.0 / 501)) - 1) < 0.1


def test_conv_init_fans_include_kernel_size():
    net = make_network("cnn", in_dim=1, out_dim=1, width=500, depth=3, gain=0.95)
    kernel = np.asarray(net.init(KEY)["conv_1"]["kernel"])
    assert kernel.shape == (11, 20, 20)
    expected = 0.95 * np.sqrt(2.0 / (20 * 11 + 20 * 11))
    assert abs(kernel.std() / expected - 1) < 0.05  # 4400 draws: ~1 % standard error


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_biases_zero(arch):
    net = make_network(arch, in_dim=2, out_dim=3, width=64, depth=3, gain=2.0)
    params = net.init(KEY)
    biases = [v for path, v in jax.tree_util.tree_leaves_with_path(params) if "bias" in str(path)]
    assert biases and all(np.all(np.asarray(b) == 0) for b in biases)


def test_traced_gain_scales_weights_without_recompiling():
    net = make_network("mlp", in_dim=1, out_dim=1, width=16, depth=2)
    gains = jnp.array([0.5, 1.0, 2.0])
    params = jax.vmap(lambda g: net.init(KEY, gain=g))(gains)
    unit = net.init(KEY, gain=1.0)
    for i, g in enumerate(np.asarray(gains)):
        np.testing.assert_allclose(
            params["dense_1"]["kernel"][i], g * unit["dense_1"]["kernel"], rtol=1e-6
        )


def test_same_key_same_bits_and_vmap_over_keys():
    net = make_network("resnet", in_dim=1, out_dim=1, width=32, depth=3)
    a, b = net.init(KEY), net.init(KEY)
    assert all(
        np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    keys = jax.random.split(KEY, 4)
    batched = jax.vmap(net.init)(keys)
    for i in range(4):
        single = net.init(keys[i])
        for u, v in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_array_equal(u[i], v)
    assert not np.array_equal(
        net.init(keys[0])["dense_1"]["kernel"], net.init(keys[1])["dense_1"]["kernel"]
    )


def _numpy_mlp(params, x, depth, act, resnet=False):
    hiddens = []
    a = np.asarray(x, np.float64)
    for layer in range(depth + 1):
        p = params[f"dense_{layer}"]
        a = a @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)
        if layer == depth:
            return a, hiddens
        a = act(a)
        if resnet and layer >= 2:
            a = a + hiddens[layer - 2]
        hiddens.append(a)


@pytest.mark.parametrize("arch", ["mlp", "resnet", "dropout"])
def test_forward_matches_numpy(arch):
    net = make_network(arch, in_dim=3, out_dim=2, width=24, depth=4, gain=1.2)
    params = net.init(KEY)
    # Non-zero biases so that the check covers them.
    params = jax.tree.map(lambda p: p + 0.1, params)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    out, hiddens = net.apply(params, x)
    ref_out, ref_hiddens = _numpy_mlp(params, x, 4, _leaky, resnet=arch == "resnet")
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    assert len(hiddens) == net.num_hidden == 4
    for h, r in zip(hiddens, ref_hiddens, strict=True):
        np.testing.assert_allclose(h, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations(name):
    z = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    ref = {
        "leaky_relu": _leaky,
        "relu": lambda v: np.maximum(v, 0),
        "tanh": np.tanh,
        "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
        "silu": lambda v: v / (1 + np.exp(-v)),
        "none": lambda v: v,
    }[name]
    np.testing.assert_allclose(ACTIVATIONS[name](z), ref(np.asarray(z)), rtol=1e-6, atol=1e-7)


def test_leaky_relu_derivative_at_zero_is_negative_slope():
    # PyTorch's convention; it matters on the two-point task, whose second input is 0.
    assert float(jax.grad(ACTIVATIONS["leaky_relu"])(0.0)) == pytest.approx(0.01)
    assert float(jax.grad(ACTIVATIONS["leaky_relu"])(1e-3)) == 1.0


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_cnn_shapes(depth):
    width, k = 64, 11
    net = make_network("cnn", in_dim=2, out_dim=3, width=width, depth=depth)
    params = net.init(KEY)
    out, hiddens = net.apply(params, jnp.ones((5, 2)))
    assert out.shape == (5, 3)
    assert net.num_hidden == depth + 2 == len(hiddens)
    final = width - (k - 1) * (depth + 1)
    assert hiddens[-1].shape == (5, final, 1)
    assert params["dense_1"]["kernel"].shape == (final, 3)
    assert [h.shape[1:] for h in hiddens] == list(net.hidden_shapes)
    lengths = [h.shape[1] for h in hiddens]
    assert lengths == [width - (k - 1) * i for i in range(depth + 2)]
    assert [h.shape[-1] for h in hiddens[1:]] == [20] * depth + [1]


def test_cnn_first_convolution_matches_numpy():
    net = make_network("cnn", in_dim=1, out_dim=1, width=40, depth=1, activation="none")
    params = net.init(KEY)
    x = jnp.array([[0.3], [-1.2]])
    _, hiddens = net.apply(params, x)
    signal = np.asarray(hiddens[0])  # (2, 40), affine layer, identity activation
    kernel = np.asarray(params["conv_0"]["kernel"])  # (11, 1, 20)
    # Cross-correlation without padding, as PyTorch's Conv1d.
    ref = np.stack(
        [
            [[signal[b, i : i + 11] @ kernel[:, 0, c] for c in range(20)] for i in range(30)]
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(hiddens[1], ref, rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    net = make_network("dropout", in_dim=2, out_dim=1, width=64, depth=3, dropout_rate=0.5)
    mlp = make_network("mlp", in_dim=2, out_dim=1, width=64, depth=3)
    params = net.init(KEY)
    x = jax.random.normal(jax.random.key(1), (8, 2))
    eval_out, eval_h = net.apply(params, x)
    mlp_out, _ = mlp.apply(params, x)
    np.testing.assert_array_equal(eval_out, mlp_out)
    # train=True without a key is an error, with a key it drops units.
    with pytest.raises(ValueError, match="key"):
        net.apply(params, x, train=True)
    k1, k2 = jax.random.split(jax.random.key(2))
    train1, h1 = net.apply(params, x, train=True, key=k1)
    train1b, _ = net.apply(params, x, train=True, key=k1)
    train2, _ = net.apply(params, x, train=True, key=k2)
    np.testing.assert_array_equal(train1, train1b)
    assert not np.allclose(train1, eval_out)
    assert not np.allclose(train1, train2)
    # Dropout acts before every affine layer, so the hidden activations change too.
    assert not np.allclose(h1[1], eval_h[1])
    # Keys are ignored when dropout is off.
    same, _ = net.apply(params, x, train=False, key=k1)
    np.testing.assert_array_equal(same, eval_out)


def test_dropout_rate_zero_is_the_mlp_in_training():
    net = make_network("dropout", in_dim=2, out_dim=1, width=16, depth=2, dropout_rate=0.0)
    assert not net.stochastic
    params = net.init(KEY)
    x = jnp.ones((3, 2))
    np.testing.assert_array_equal(net.apply(params, x, train=True)[0], net.apply(params, x)[0])


def test_network_is_hashable_and_immutable():
    a = make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2)
    b = make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2)
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.width = 3


def test_float64_parameters(x64):
    net = make_network("mlp", in_dim=1, out_dim=1, width=8, depth=2, dtype=jnp.float64)
    params = net.init(KEY)
    assert all(p.dtype == jnp.float64 for p in jax.tree.leaves(params))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(arch="transformer"), "arch"),
        (dict(activation="gelu"), "activation"),
        (dict(width=0), "width"),
        (dict(depth=-1), "depth"),
        (dict(in_dim=2.5), "in_dim"),
        (dict(out_dim=0), "out_dim"),
        (dict(gain=0.0), "gain"),
        (dict(gain=-1.0), "gain"),
        (dict(gain=float("nan")), "gain"),
        (dict(arch="dropout", dropout_rate=1.0), "dropout_rate"),
        (dict(arch="dropout", dropout_rate=-0.1), "dropout_rate"),
        (dict(arch="cnn", width=50, depth=4), "kernel_size=11"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(channels=0), "channels"),
        (dict(dtype=jnp.int32), "dtype"),
    ],
)
def test_validation(kwargs, match):
    args = dict(arch="mlp", in_dim=1, out_dim=1, width=8, depth=2)
    args.update(kwargs)
    arch = args.pop("arch")
    with pytest.raises(ValueError, match=match):
        make_network(arch, **args)


def test_cnn_minimum_width_is_accepted():
    # 10 · (depth + 1) + 1: the signal ends at length 1.
    net = make_network("cnn", in_dim=1, out_dim=1, width=51, depth=4)
    assert net.hidden_shapes[-1] == (1, 1)
    with pytest.raises(ValueError, match="width must be at least 51"):
        make_network("cnn", in_dim=1, out_dim=1, width=50, depth=4)


def test_init_rejects_bad_gain_and_apply_bad_shape():
    net = make_network("mlp", in_dim=2, out_dim=1, width=8, depth=1)
    with pytest.raises(ValueError, match="gain"):
        net.init(KEY, gain=0.0)
    with pytest.raises(ValueError, match="shape"):
        net.apply(net.init(KEY), jnp.ones((3, 5)))
