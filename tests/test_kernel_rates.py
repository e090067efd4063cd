"""rep_align.kernel_rates: effective rates from tangent kernels (docs/theory.md §8), and the
kernel-rates experiment (experiments.kernel_rates, experiments.preset_kernels)."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from rep_align import kernel_rates as kr
from rep_align import ntk, theory, training
from rep_align.networks import make_network


def _net(arch, *, activation="tanh", out_dim=2, depth=3):
    if arch == "cnn":
        return make_network(
            "cnn",
            in_dim=2,
            out_dim=out_dim,
            width=10,
            depth=2,
            kernel_size=3,
            channels=2,
            activation=activation,
            dtype=jnp.float64,
        )
    return make_network(
        arch,
        in_dim=2,
        out_dim=out_dim,
        width=5,
        depth=depth,
        activation=activation,
        dtype=jnp.float64,
    )


def _random_params(net, seed=0):
    """Parameters with non-zero biases (init has zero biases, which hides bias terms)."""
    p = net.init(jax.random.key(seed), gain=1.3)
    leaves, tree = jax.tree.flatten(p)
    keys = jax.random.split(jax.random.key(seed + 100), len(leaves))
    leaves = [
        v + 0.3 * jax.random.normal(k, v.shape, v.dtype) for v, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(tree, leaves)


def _data(n=3, in_dim=2, out_dim=2, seed=1):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, (n, in_dim), jnp.float64)
    y = jax.random.normal(k2, (n, out_dim), jnp.float64)
    return x, y


ARCHS = ("mlp", "resnet", "cnn", "dropout")


# ------------------------------------------------------------------- the split


@pytest.mark.parametrize("arch", ARCHS)
def test_split_is_what_the_hidden_layer_depends_on(x64, arch):
    net = _net(arch)
    p = _random_params(net)
    x, _ = _data()
    # one gradient per hidden layer, all in one compiled call (leading axis: the layer)
    grads = jax.jit(
        jax.jacrev(lambda q: jnp.stack([jnp.sum(jnp.sin(h)) for h in net.apply(q, x)[1]]))
    )(p)
    for layer in range(net.num_hidden):
        enc, dec = kr.encoder_decoder_split(net, layer)
        assert set(enc) | set(dec) == set(p) and not set(enc) & set(dec)
        grad = jax.tree.map(lambda g, k=layer: g[k], grads)
        for name in dec:
            assert all(np.all(g == 0) for g in jax.tree.leaves(grad[name])), (layer, name)
        for name in enc:
            assert any(np.any(g != 0) for g in jax.tree.leaves(grad[name])), (layer, name)


def test_split_rejects_a_layer_outside_the_network():
    net = _net("mlp", depth=3)
    with pytest.raises(ValueError, match="layer"):
        kr.encoder_decoder_split(net, 3)


# ----------------------------------------------------------------- the kernels


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("chunk", [1, 4])
def test_encoder_kernel_is_the_ntk_of_the_difference(x64, arch, chunk):
    net = _net(arch)
    p = _random_params(net)
    x, _ = _data()
    layer, (a, b) = 1, (2, 0)
    k = np.asarray(ntk.empirical_ntk(net, p, x, output=layer))  # (n, n, F, F)
    want = k[a, a] + k[b, b] - k[a, b] - k[b, a]
    got = np.asarray(
        kr.encoder_difference_kernel(net, p, x, layer=layer, pair=(a, b), chunk_size=chunk)
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_kernel_against_jacfwd_of_the_decoder_parameters(x64, arch):
    net = _net(arch)
    p = _random_params(net)
    x, _ = _data()
    layer, (a, b) = 1, (0, 2)
    enc, dec = kr.encoder_decoder_split(net, layer)
    flat, unravel = ravel_pytree({k: p[k] for k in dec})

    def delta_out(theta):
        out, _ = net.apply({**{k: p[k] for k in enc}, **unravel(theta)}, x)
        return out[b] - out[a]

    j = np.asarray(jax.jacfwd(delta_out)(flat))
    got = np.asarray(kr.decoder_difference_kernel(net, p, x, layer=layer, pair=(a, b)))
    np.testing.assert_allclose(got, j @ j.T, rtol=1e-12)


@pytest.mark.parametrize("arch", ["mlp", "resnet", "dropout"])
def test_decoder_jacobian_against_the_bias_gradient(x64, arch):
    # With h_l = act(z_l) (+ a skip that does not depend on b_l), dŷ/db_l = D_y·act'(z_l):
    # an oracle for the decoder's Jacobian that never runs the decoder from h.
    net = _net(arch, depth=4)
    p = _random_params(net)
    x, _ = _data()
    pair = (1, 2)
    for layer in range(net.num_hidden - 1):
        oracle = []
        for n in pair:

            def out_n(bias, n=n, name=f"dense_{layer}"):
                q = {**p, name: {**p[name], "bias": bias}}
                return net.apply(q, x)[0][n]

            jb = jax.jacrev(out_n)(p[f"dense_{layer}"]["bias"])  # (out, F)
            z = (net.apply(p, x)[1][layer - 1] if layer else x) @ p[f"dense_{layer}"]["kernel"]
            z = z + p[f"dense_{layer}"]["bias"]
            oracle.append(jb / (1.0 - np.tanh(np.asarray(z[n])) ** 2))
        got = kr.decoder_jacobian(net, p, x, layer=layer, pair=pair)
        np.testing.assert_allclose(got, 0.5 * (oracle[0] + oracle[1]), rtol=1e-10)


def test_decoder_jacobian_is_not_offered_for_the_cnn(x64):
    net = _net("cnn")
    with pytest.raises(ValueError, match="arch"):
        kr.decoder_jacobian(net, _random_params(net), _data()[0], layer=1)


@pytest.mark.parametrize("arch", ARCHS)
def test_rates_are_the_kernel_pieces(x64, arch):
    net = _net(arch)
    p = _random_params(net)
    x, y = _data()
    layer, pair, lr = 1, (0, 2), 0.03
    r = kr.kernel_rates(net, p, x, y, layer=layer, pair=pair, lr=lr, chunk_size=3)
    k_h = np.asarray(kr.encoder_difference_kernel(net, p, x, layer=layer, pair=pair))
    k_y = np.asarray(kr.decoder_difference_kernel(net, p, x, layer=layer, pair=pair))
    out, hid = net.apply(p, x)
    dh = np.asarray(hid[layer][2] - hid[layer][0]).ravel()
    dyh = np.asarray(out[2] - out[0])
    h = dh @ dh
    d_out, dx2 = net.out_dim, float(np.sum((x[2] - x[0]) ** 2))
    np.testing.assert_allclose(float(r.h), h, rtol=1e-13)
    np.testing.assert_allclose(float(r.y), dyh @ dyh, rtol=1e-13)
    np.testing.assert_allclose(float(r.dx2), dx2, rtol=1e-13)
    np.testing.assert_allclose(float(r.kappa_h), dh @ k_h @ dh / h, rtol=1e-11)
    np.testing.assert_allclose(float(r.kappa_h_trace), np.trace(k_h) / dh.size, rtol=1e-11)
    np.testing.assert_allclose(float(r.kappa_y), np.trace(k_y) / d_out, rtol=1e-11)
    scale = lr / (2 * d_out)
    np.testing.assert_allclose(float(r.eta_h), scale * float(r.kappa_h) / dx2, rtol=1e-13)
    np.testing.assert_allclose(float(r.eta_y), scale * float(r.kappa_y) / h, rtol=1e-13)
    assert 0 < float(r.bias_share_h) < 1 and 0 < float(r.bias_share_y) < 1
    if arch == "cnn":
        assert np.isnan(float(r.alignment)) and np.isnan(float(r.eta_h_decoder))
        return
    d_y = np.asarray(kr.decoder_jacobian(net, p, x, layer=layer, pair=pair))
    want = np.trace(d_y @ k_h @ d_y.T) / np.sum(d_y**2)
    np.testing.assert_allclose(float(r.kappa_h_decoder), want, rtol=1e-11)
    align = np.linalg.norm(d_y @ dh) / (np.linalg.norm(d_y) * np.sqrt(h))
    np.testing.assert_allclose(float(r.alignment), align, rtol=1e-11)


def test_bias_share_from_a_kernel_without_biases(x64):
    net = _net("mlp", activation="tanh")
    p = _random_params(net)
    x, y = _data()
    layer, pair = 1, (0, 1)
    r = kr.kernel_rates(net, p, x, y, layer=layer, pair=pair, lr=0.1)
    enc, dec = kr.encoder_decoder_split(net, layer)
    out, hid = net.apply(p, x)
    dh = hid[layer][1] - hid[layer][0]

    def weights_only(names, f):
        # f of the kernel leaves only: the biases are held fixed
        w = {k: p[k]["kernel"] for k in names}
        g = jax.grad(lambda w: f({**p, **{k: {**p[k], "kernel": w[k]} for k in names}}))(w)
        return sum(float(jnp.sum(v**2)) for v in jax.tree.leaves(g))

    kw_h = weights_only(
        enc, lambda q: jnp.dot(net.apply(q, x)[1][layer][1] - net.apply(q, x)[1][layer][0], dh)
    )
    kw_y = sum(
        weights_only(dec, lambda q, i=i: net.apply(q, x)[0][1, i] - net.apply(q, x)[0][0, i])
        for i in range(net.out_dim)
    )
    h = float(jnp.sum(dh**2))
    np.testing.assert_allclose(1 - float(r.bias_share_h), kw_h / h / float(r.kappa_h), rtol=1e-10)
    np.testing.assert_allclose(
        1 - float(r.bias_share_y), kw_y / net.out_dim / float(r.kappa_y), rtol=1e-10
    )


# ------------------------------------------------- the exact case, (8.8) and (8.9)


def _two_layer(in_dim, out_dim, width, *, gain=0.3, seed=0, aligned=False):
    """Two-layer linear network, zero biases, symmetric pair: x_b = −x_a, y*_b = −y*_a."""
    net = make_network(
        "mlp",
        in_dim=in_dim,
        out_dim=out_dim,
        width=width,
        depth=1,
        activation="none",
        dtype=jnp.float64,
    )
    p = net.init(jax.random.key(seed), gain=gain)
    k1, k2, k3 = jax.random.split(jax.random.key(seed + 7), 3)
    # |Δx| = |Δy*| = 1
    xa = jax.random.normal(k1, (in_dim,), jnp.float64)
    xa = 0.5 * xa / jnp.linalg.norm(xa)
    ya = jax.random.normal(k2, (out_dim,), jnp.float64)
    ya = 0.5 * ya / jnp.linalg.norm(ya)
    x, y = jnp.stack([xa, -xa]), jnp.stack([ya, -ya])
    if aligned:
        # decoder reading the hidden layer only along Δh = W1ᵀΔx: the theory's invariant set
        dh = (x[1] - x[0]) @ p["dense_0"]["kernel"]
        c = 0.05 * jax.random.normal(k3, (out_dim,), jnp.float64)
        p = {**p, "dense_1": {**p["dense_1"], "kernel": jnp.outer(dh / jnp.linalg.norm(dh), c)}}
    return net, p, x, y


@pytest.mark.parametrize(
    "in_dim,out_dim,width,aligned",
    [(1, 1, 1, False), (3, 1, 8, False), (2, 3, 6, False), (3, 2, 9, True)],
)
def test_two_layer_linear_rates_are_exact(x64, in_dim, out_dim, width, aligned):
    net, p, x, y = _two_layer(in_dim, out_dim, width, aligned=aligned)
    lr = 0.07
    r = kr.kernel_rates(net, p, x, y, layer=0, lr=lr)
    want = lr / (2 * out_dim)  # docs/theory.md (8.8)
    for name in ("eta_h", "eta_y", "eta_h_trace", "eta_h_decoder"):
        np.testing.assert_allclose(float(getattr(r, name)), want, rtol=1e-13, err_msg=name)
    assert float(r.bias_share_h) == 0.0 and float(r.bias_share_y) == 0.0
    assert abs(float(r.m)) < 1e-30  # the mean error is zero
    # the network's own velocity: dh/dt is (2.1) at these rates for any decoder, and dy/dt
    # is (8.9), which is (2.2) when the decoder is aligned with Δh
    v = np.asarray(kr.flow_velocity(net, p, x, y, layer=0, lr=lr))
    z = jnp.stack([r.h, r.y, r.w])
    th = np.asarray(theory.vector_field(z, eta_h=r.eta_h, eta_y=r.eta_y, dx2=r.dx2, dy2=r.dy2))
    np.testing.assert_allclose(v[0], th[0], rtol=1e-12)
    w2 = np.asarray(p["dense_1"]["kernel"]).T  # D_y, (out, F)
    dyh = np.asarray(net.apply(p, x)[0][1] - net.apply(p, x)[0][0])
    e = dyh - np.asarray(y[1] - y[0])
    dy_dt = -want * (float(r.h) * float(r.w) + float(r.dx2) * dyh @ w2 @ w2.T @ e)
    np.testing.assert_allclose(v[1], dy_dt, rtol=1e-12)
    if aligned:
        np.testing.assert_allclose(float(r.alignment), 1.0, rtol=1e-12)
        np.testing.assert_allclose(v, th, rtol=1e-11)
    elif width > 1:
        assert float(r.alignment) < 0.99
        assert abs(v[1] - th[1]) > 1e-3 * abs(v[1])  # off the invariant set (2.2) is not exact


def test_theory_at_kernel_rates_reproduces_gradient_flow(x64):
    """Acceptance: two-layer linear network, zero biases, symmetric pair, gradient flow;
    the theory integrated at the kernel rates follows the network's h, y, w."""
    out_dim = 2
    net, p, x, y = _two_layer(3, out_dim, 10, gain=0.2, seed=3, aligned=True)
    lr = 0.1
    r = kr.kernel_rates(net, p, x, y, layer=0, lr=lr)
    np.testing.assert_allclose([float(r.eta_h), float(r.eta_y)], lr / (2 * out_dim), rtol=1e-13)
    # (compiling diffrax for the network and the theory is most of this test's time)
    traj = training.gradient_flow(
        net, x, y, lr=lr, t_max=600.0, save_every=6.0, params=p, rtol=1e-10, atol=1e-12
    )
    assert bool(traj.solver_ok)
    z_net = np.stack([np.asarray(traj.h[:, 0]), np.asarray(traj.y), np.asarray(traj.w)], -1)
    z_th = np.asarray(
        theory.solve(
            z_net[0],
            traj.times,
            eta_h=r.eta_h,
            eta_y=r.eta_y,
            dx2=r.dx2,
            dy2=r.dy2,
            rtol=1e-10,
            atol=1e-12,
        )
    )
    # the run learns: y goes from near 0 to dy2, h moves by a large factor
    assert z_net[-1, 1] > 0.99 * float(r.dy2) and z_net[0, 1] < 0.05 * float(r.dy2)
    assert z_net[-1, 0] > 3 * z_net[0, 0]
    scale = np.abs(z_net).max(axis=0)
    np.testing.assert_allclose(z_th / scale, z_net / scale, atol=1e-8)


def test_mean_error_term_of_the_hidden_velocity(x64):
    # docs/theory.md (8.1): with a mean error ē the pair's hidden difference also moves by
    # −(lr/(2 d_out)) J_Δ J_Σᵀ D_yᵀ ē, which the rate estimate leaves out. For a two-layer
    # linear network J_Δ J_Σᵀ = (Δx·Σx) I (the biases cancel in J_Δ), D_y = W2ᵀ.
    net, p, _, _ = _two_layer(2, 2, 5)
    p = _random_params(net, seed=4)  # non-zero biases
    x, y = _data(n=2, in_dim=2, out_dim=2, seed=5)  # not symmetric: ē ≠ 0
    lr = 0.05
    out, hid = net.apply(p, x)
    dh = np.asarray(hid[0][1] - hid[0][0])
    e = np.asarray((out[1] - out[0]) - (y[1] - y[0]))
    e_mean = np.asarray((out[0] + out[1] - y[0] - y[1]) / 2)
    dx, sx = np.asarray(x[1] - x[0]), np.asarray(x[1] + x[0])
    w2 = np.asarray(p["dense_1"]["kernel"])  # (F, out)
    d_dh = -(lr / (2 * 2)) * ((dx @ sx) * w2 @ e_mean + 0.5 * (dx @ dx) * w2 @ e)
    v = np.asarray(kr.flow_velocity(net, p, x, y, layer=0, lr=lr))
    np.testing.assert_allclose(v[0], 2 * dh @ d_dh, rtol=1e-12)
    assert abs((dx @ sx) * dh @ w2 @ e_mean) > 0.1 * abs(0.5 * (dx @ dx) * dh @ w2 @ e)


# ------------------------------------------------------------------- the API


def test_one_compilation_for_new_parameter_values(x64):
    net, p, x, y = _two_layer(2, 1, 4)
    kr.kernel_rates(net, p, x, y, layer=0, lr=0.1)
    before = kr._rates_core._cache_size()
    p2 = jax.tree.map(lambda v: v + 0.1, p)
    kr.kernel_rates(net, p2, 1.5 * x, y, layer=0, lr=0.2)
    assert kr._rates_core._cache_size() == before


def test_vmaps_over_parameter_sets(x64):
    net = _net("mlp")
    ps = [_random_params(net, seed=s) for s in range(3)]
    x, y = _data()
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *ps)
    many = jax.vmap(
        lambda q: kr._rates_core(
            q,
            x,
            y,
            jnp.asarray(0.1),
            network=net,
            layer=1,
            pair=(0, 1),
            chunk=2,
            trace=True,
            decoder=True,
        )
    )(stacked)
    for i, q in enumerate(ps):
        one = kr.kernel_rates(net, q, x, y, layer=1, lr=0.1, chunk_size=2)
        np.testing.assert_allclose(float(many.eta_h[i]), float(one.eta_h), rtol=1e-12)
        np.testing.assert_allclose(float(many.eta_y[i]), float(one.eta_y), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(layer=3), "layer"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(pair=(0, 0)), "pair"),
        (dict(trace=1), "trace"),
    ],
)
def test_bad_arguments(kwargs, match):
    net = make_network("mlp", in_dim=2, out_dim=1, width=3, depth=3)
    p = net.init(jax.random.key(0))
    x, y = jnp.ones((2, 2)), jnp.ones((2, 1))
    args = dict(layer=1, lr=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        kr.kernel_rates(net, p, x, y, **args)


def test_bad_params_and_network():
    net = make_network("mlp", in_dim=2, out_dim=1, width=3, depth=3)
    p = net.init(jax.random.key(0))
    x, y = jnp.ones((2, 2)), jnp.ones((2, 1))
    with pytest.raises(ValueError, match="params"):
        kr.kernel_rates(net, {k: p[k] for k in ("dense_0", "dense_1")}, x, y, layer=0, lr=0.1)
    with pytest.raises(ValueError, match="network"):
        kr.kernel_rates("mlp", p, x, y, layer=0, lr=0.1)
    with pytest.raises(ValueError, match="x must"):
        kr.kernel_rates(net, p, jnp.ones((2, 3)), y, layer=0, lr=0.1)


# ------------------------------------------------------------- the experiment


def _short(name, steps=20):
    from rep_align.experiments.two_points import protocol_preset

    return protocol_preset(name, quick=False).replace(epochs=steps, record_every=10)


@pytest.fixture(scope="module")
def engine_two_layer(tmp_path_factory):
    """h0, y0 of seeds 0, 1, 3 of the two_layer preset as the sweep engine draws them (a
    short run of the preset: the initial network does not depend on the run's length)."""
    from rep_align.experiments.common import train_seeds

    preset = _short("two_layer")
    seeds = [0, 1, 3]
    runs = train_seeds(preset.config, seeds, root=tmp_path_factory.mktemp("store"), name="short")
    layer = preset.config.layer_index
    h0 = np.asarray(runs.records["h"])[:, 0, layer]
    y0 = np.asarray(runs.records["y"])[:, 0]
    return {s: (float(h0[i]), float(y0[i])) for i, s in enumerate(seeds)}


def _fitted_rows(engine, seeds=(0, 1)):
    """Per-seed rows as ``two_points.analyse_preset`` gives them, for the two_layer preset:
    the initial records from the sweep engine, and fitted rates (inputs here, not
    results)."""
    return [
        dict(
            seed=s,
            eta_h=0.001 * (i + 1),
            eta_y=0.002,
            h0=engine[s][0],
            y0=engine[s][1],
            h_final=0.1,
            h_inf_theory=0.11,
            converged=i == 0,
        )
        for i, s in enumerate(seeds)
    ]


def test_initial_params_are_the_sweep_engines(engine_two_layer):
    from rep_align.experiments import preset_kernels as pk

    preset = _short("two_layer")
    cfg = preset.config
    x, _ = cfg.data()
    for seed, (h0, y0) in engine_two_layer.items():
        out, hid = cfg.network().apply(pk.initial_params(preset, seed), x)
        dh = hid[cfg.layer_index][1] - hid[cfg.layer_index][0]
        np.testing.assert_allclose(float(jnp.sum(dh**2)), h0, rtol=1e-6)
        np.testing.assert_allclose(float(jnp.sum((out[1] - out[0]) ** 2)), y0, rtol=1e-5)


def test_kernel_rates_against_fitted_rows(engine_two_layer):
    from rep_align.experiments import kernel_rates as ex
    from rep_align.experiments.two_points import protocol_preset
    from rep_align.files import jsonable

    preset = protocol_preset("two_layer", quick=False)
    res = ex.preset_kernel_rates(preset, _fitted_rows(engine_two_layer), trace_seeds=1)
    entry = jsonable(res)
    lr = preset.lr
    for i, row in enumerate(entry["seeds"]):
        # a two-layer linear network: η_h = η_y = lr/2 at any weights (biases cancel in Δ)
        np.testing.assert_allclose([row["eta_h"], row["eta_y"]], lr / 2, rtol=1e-12)
        np.testing.assert_allclose(row["ratio_h"], row["eta_h"] / (0.001 * (i + 1)), rtol=1e-12)
        np.testing.assert_allclose(row["ratio_y"], row["eta_y"] / 0.002, rtol=1e-12)
        np.testing.assert_allclose(row["h0"], row["h0_record"], rtol=1e-6)
        want = theory.final_distance(
            row["h0"], row["y0"], eta_h=lr / 2, eta_y=lr / 2, dx2=1.0, dy2=0.5
        )
        np.testing.assert_allclose(row["h_inf_kernel"], float(want), rtol=1e-5)
    # the trace estimate for the first seed only; NaN is written as null
    assert entry["seeds"][0]["eta_h_trace"] is not None and entry["seeds"][1]["eta_h_trace"] is None
    np.testing.assert_allclose(entry["seeds"][0]["eta_h_trace"], lr / 2, rtol=1e-12)
    # summary over converged seeds only (seed 0 here)
    np.testing.assert_allclose(
        entry["summary"]["ratio_h"], entry["seeds"][0]["ratio_h"], rtol=1e-12
    )
    assert entry["summary"]["n_converged"] == 1
    assert res.note == ""
    depth = jsonable(ex.depth_kernel_rates(preset, 3, [dict(layer=0, eta_h=0.01, eta_y=0.04)]))
    layers = depth["layers"]
    assert [r["layer"] for r in layers] == [0] and depth["seed"] == 3
    np.testing.assert_allclose(layers[0]["h0"], engine_two_layer[3][0], rtol=1e-6)
    np.testing.assert_allclose(layers[0]["ratio_y"], lr / 2 / 0.04, rtol=1e-12)


def test_motion_of_a_two_layer_linear_network(monkeypatch):
    from rep_align.experiments import preset_kernels as pk

    preset = _short("two_layer", steps=400)
    mot = pk.kernel_motion(preset, 0, segments=4, fitted=dict(eta_h=1e-3, eta_y=2e-3))
    rows = mot.rows
    assert [r["step"] for r in rows] == [0, 100, 200, 300, 400]
    # its kernel rates stay lr/2 while its tangent kernel moves
    lr = preset.lr
    np.testing.assert_allclose([r["eta_h"] for r in rows], lr / 2, rtol=1e-9)
    np.testing.assert_allclose([r["eta_y"] for r in rows], lr / 2, rtol=1e-9)
    assert rows[0]["ntk_distance"] == 0.0 and rows[-1]["ntk_distance"] > 1e-3
    assert rows[-1]["h"] != rows[0]["h"]
    # descent's mean dh per step over the first record interval, against a direct run
    cfg = preset.config
    x, y = cfg.data()
    traj = training.train(
        cfg.network(),
        x,
        y,
        key=jax.random.key(0),
        lr=cfg.lr,
        steps=cfg.record_every,
        params=pk.initial_params(preset, 0),
        record_every=cfg.record_every,
    )
    h = np.asarray(traj.h[:, cfg.layer_index], np.float64)
    np.testing.assert_allclose(
        rows[0]["dh_dt_descent"], (h[1] - h[0]) / cfg.record_every, rtol=1e-6
    )
    assert np.isnan(rows[-1]["dh_dt_descent"])
    # no cache: a second call trains again and gives the same rows
    again = pk.kernel_motion(preset, 0, segments=4)
    assert [r["eta_h"] for r in again.rows] == [r["eta_h"] for r in rows]
    assert np.isnan(again.rows[0]["dh_dt_fit"])
    with pytest.raises(ValueError, match="segments"):
        pk.kernel_motion(preset, 0, segments=3)
    with pytest.raises(ValueError, match="SGD"):
        pk.motion_segment(_short("adam", steps=400), 4)


# ----------------------------------------------- the declaration, through the driver


def test_settings_are_the_two_point_experiments_runs():
    from rep_align.experiments import depth, two_points
    from rep_align.experiments import kernel_rates as ex
    from rep_align.presets import TWO_POINT_PRESETS

    quick, full = ex.settings(True), ex.settings(False)
    # as the former reproduce stage ran: quick the default preset, no motion; full all
    assert quick.presets == ("default",) and quick.motion == ()
    assert full.presets == tuple(TWO_POINT_PRESETS)
    assert full.motion == ("default", "linear", "two_layer") and full.segments == 12
    for q, s in ((True, quick), (False, full)):
        assert s.seeds == two_points.settings(q).seeds
        assert (s.depth_preset, s.depth_seed) == (depth.settings(q).preset, depth.settings(q).seed)
    assert (quick.seeds, full.seeds) == (4, 3)
    assert ex.EXPERIMENT.ours and ex.EXPERIMENT.checks_for(full) == []


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(presets=("nope",)), "presets"),
        (dict(presets=()), "presets"),
        (dict(motion=("nope",)), "motion"),
        (dict(motion=("adam",)), "SGD"),
        (dict(motion=("default",), segments=7), "segments"),
        (dict(seeds=0), "seeds"),
        (dict(trace_seeds=-1), "trace_seeds"),
        (dict(depth_seed=4), "depth_seed"),
        (dict(depth_preset="nope"), "depth_preset"),
    ],
)
def test_bad_settings(change, match):
    import dataclasses

    from rep_align.experiments import kernel_rates as ex

    with pytest.raises(ValueError, match=match):
        dataclasses.replace(ex.settings(True), **change)


@pytest.fixture
def tiny(monkeypatch):
    """Every preset at width ≤ 64, depth ≤ 4 and 2000 steps (the experiment's presets are
    otherwise the paper's); the shallow preset over one seed, along training in 4 segments."""
    from rep_align.experiments import two_points
    from rep_align.presets import get_preset

    def small(name, *, quick):
        preset = get_preset(name).trajectory_protocol().quick()
        return preset.replace(epochs=2000, record_every=10)

    monkeypatch.setattr(two_points, "protocol_preset", small)
    return dict(presets=("shallow",), seeds=1, motion=("shallow",), segments=4)


def test_run_resume_and_figures(tiny, tmp_path):
    from rep_align.experiments import _driver
    from rep_align.experiments import kernel_rates as ex

    change = tiny | dict(depth_preset="shallow")
    first = _driver.run(ex.EXPERIMENT, tmp_path / "a", quick=True, changes=change)
    assert first.ok and first.summary["runs_trained"] == 1
    assert set(first.summary["figures"]) == {"kernel_rates.png", "kernel_motion.png"}
    result = first.summary["result"]
    entry = result["presets"]["shallow"]
    (row,) = entry["seeds"]
    assert row["converged"] and row["h0"] == pytest.approx(row["h0_record"], rel=1e-6)
    # the decoder of the read-out layer is the last affine layer: η_y = lr/2 exactly
    assert row["eta_y"] == pytest.approx(entry["config"]["lr"] / 2, rel=1e-12)
    layers = result["depth"]["layers"]
    assert [r["layer"] for r in layers] == [0, 1]
    # the read-out layer's per-layer fit is the preset's fit of the same record
    assert layers[1]["eta_h_fit"] == pytest.approx(row["eta_h_fit"], rel=1e-6)
    motion = result["motion"]["shallow"]
    assert motion["fitted"] == dict(eta_h=row["eta_h_fit"], eta_y=row["eta_y_fit"])
    assert [r["step"] for r in motion["rows"]] == [0, 500, 1000, 1500, 2000]
    # headlines of the default and two_layer presets only, reported without a check
    assert first.headlines == ()
    # killed after training: the store holds the run; nothing is retrained and the
    # recomputed run along training is the same
    (tmp_path / "a" / "summary.json").unlink()
    again = _driver.run(ex.EXPERIMENT, tmp_path / "a", quick=True, changes=change)
    assert again.summary["runs_trained"] == 0 and not again.reused
    assert again.summary["result"] == result
    # a second preset on the same store: only its runs are trained
    more = dict(change, presets=("shallow", "two_layer"), motion=())
    other = _driver.run(
        ex.EXPERIMENT, tmp_path / "b", quick=True, changes=more, store=tmp_path / "a" / "store"
    )
    assert other.summary["runs_trained"] == 1
    assert other.summary["result"]["presets"]["shallow"] == entry
    heads = other.headlines
    assert [h.name for h in heads] == [
        "two_layer: η_h kernel / fitted",
        "two_layer: η_y kernel / fitted",
        "two_layer: h∞ from init-time kernel rates",
    ]
    n = other.summary["result"]["presets"]["two_layer"]["summary"]["n_converged"]
    assert all(h.agrees is None and h.criterion == "" and h.n == n for h in heads)


def test_cli(request, tmp_path, capsys):
    from rep_align.cli import kernel_rates as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)  # its help quotes the full settings: before the tiny presets
    request.getfixturevalue("tiny")
    out = tmp_path / "cli"
    args = parser.parse_args(
        ["--quick", "--presets", "two_layer", "--seeds", "1", "--motion", "--trace-seeds", "0"]
        + ["--no-depth", "--out", str(out)]
    )
    assert cli.changes(args) == dict(
        presets=("two_layer",), seeds=1, motion=(), trace_seeds=0, depth_preset=None
    )
    assert cli.run(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    result = summary["result"]
    assert list(result["presets"]) == ["two_layer"] and result["motion"] == {}
    assert result["depth"] is None
    assert result["presets"]["two_layer"]["seeds"][0]["eta_h_trace"] is None
    assert "two_layer: η_h kernel / fitted" in capsys.readouterr().out


@pytest.mark.slow
def test_experiment_at_the_paper_size(tmp_path):
    # a paper-size preset trained and fitted, its depth profile fitted from the same
    # stored run (~2 min)
    from rep_align.experiments import _driver
    from rep_align.experiments import kernel_rates as ex

    change = dict(presets=("shallow",), seeds=1, depth_preset="shallow")
    first = _driver.run(ex.EXPERIMENT, tmp_path, quick=True, changes=change).summary["result"]
    row = first["presets"]["shallow"]["seeds"][0]
    assert row["h0"] == pytest.approx(row["h0_record"], rel=1e-6)
    layers = first["depth"]["layers"]
    assert [r["layer"] for r in layers] == [0, 1]
    # the read-out layer's per-layer fit is the preset's fit of the same record
    assert layers[1]["eta_h_fit"] == pytest.approx(row["eta_h_fit"], rel=1e-6)
    # the decoder of the read-out layer is the last affine layer: η_y = lr/2 exactly
    assert row["eta_y"] == pytest.approx(first["presets"]["shallow"]["config"]["lr"] / 2, rel=1e-12)
    (tmp_path / "summary.json").unlink()
    second = _driver.run(ex.EXPERIMENT, tmp_path, quick=True, changes=change)
    assert second.summary["runs_trained"] == 0
    assert second.summary["result"]["presets"] == first["presets"]
