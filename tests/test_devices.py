"""Host devices: importing changes nothing, ``use_host_devices`` and its opt-outs, and work
split over devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from rep_align import data, devices, networks, training

_FORCE4 = "--xla_force_host_platform_device_count=4"
_PROBE = textwrap.dedent(
    """
    import json, sys
    import jax
    if sys.argv[1] == "init-first":
        jax.numpy.zeros(1)  # initialises the backend: too late to change the device count
    import rep_align  # changes nothing
    if sys.argv[1] != "import-only":
        rep_align.devices.use_host_devices()  # sets the host device count, if it still can
    print(json.dumps(len(jax.devices())))
    """
)


def _devices_in_fresh_process(env: dict, mode: str = "plain") -> int:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", devices.ENV_VAR)
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env={**base, "JAX_PLATFORMS": "cpu", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.split()[-1])


@pytest.mark.parametrize(
    ("env", "mode", "expected"),
    [
        ({devices.ENV_VAR: "3"}, "plain", 3),
        ({devices.ENV_VAR: "0"}, "plain", 1),
        ({devices.ENV_VAR: "off"}, "plain", 1),
        # an explicit XLA setting wins over rep_align's
        ({"XLA_FLAGS": _FORCE4, devices.ENV_VAR: "3"}, "plain", 4),
        ({"JAX_NUM_CPU_DEVICES": "2", devices.ENV_VAR: "3"}, "plain", 2),
        # too late: JAX's backend was initialised before the call
        ({devices.ENV_VAR: "3"}, "init-first", 1),
        # importing the package alone changes nothing
        ({devices.ENV_VAR: "3"}, "import-only", 1),
        ({}, "import-only", 1),
    ],
)
def test_use_host_devices_unless_told_otherwise(env, mode, expected):
    assert _devices_in_fresh_process(env, mode) == expected


def test_default_is_one_device_per_usable_core():
    cores = devices.usable_cores()
    assert _devices_in_fresh_process({}) == max(cores, 1)


def test_bad_setting_is_named(monkeypatch):
    monkeypatch.setenv(devices.ENV_VAR, "many")
    with pytest.raises(ValueError, match=devices.ENV_VAR):
        devices.use_host_devices()


def test_use_after_initialisation_changes_nothing():
    jax.devices()
    assert devices.use_host_devices(5) is None


def test_vmap_over_devices_matches_vmap_on_forced_devices(tmp_path):
    # Five members over three devices: padded to six, the padding dropped again.
    script = textwrap.dedent(
        """
        from rep_align.devices import use_host_devices, vmap_over_devices
        use_host_devices()  # REP_ALIGN_HOST_DEVICES=3
        import jax, jax.numpy as jnp, numpy as np
        assert len(jax.local_devices()) == 3
        def fn(key, scale, pair):
            a, b = pair
            return {"x": jax.random.normal(key, (4,)) * scale + a, "y": b * scale}
        keys = jax.random.split(jax.random.key(0), 5)
        args = (keys, jnp.arange(5.0), (jnp.ones(5), jnp.arange(5.0) ** 2))
        want = jax.vmap(fn)(*args)
        for batch_size in (None, 1, 2):
            got = vmap_over_devices(fn, batch_size=batch_size)(*args)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-6)
                assert got[k].shape == want[k].shape
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env[devices.ENV_VAR] = "3"
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "ok"


@pytest.mark.parametrize("vmap_size", ["auto", None, 1, 2])
def test_train_ensemble_matches_a_loop_of_train(vmap_size):
    net = networks.make_network("mlp", in_dim=1, out_dim=1, width=12, depth=3)
    x, y = data.two_points()
    keys = jax.random.split(jax.random.key(3), 3)
    lrs = np.array([0.01, 0.02, 0.05])
    ens = training.train_ensemble(
        net, x, y, keys=keys, lr=lrs, steps=30, gain=1.2, vmap_size=vmap_size
    )
    assert ens.h.shape == (3, 31, 3)
    for i in range(3):
        one = training.train(net, x, y, key=keys[i], lr=lrs[i], steps=30, gain=1.2)
        for field in ("loss", "h", "y", "w", "m"):
            np.testing.assert_allclose(
                getattr(ens, field)[i], getattr(one, field), rtol=2e-5, atol=1e-7
            )
    from _tracing import CompileLog  # JAX's compile log: the library keeps no trace counters

    log = CompileLog().start()
    training.train_ensemble(net, x, y, keys=keys, lr=0.03, steps=30, gain=1.1, vmap_size=vmap_size)
    assert log.stop().traced == log.compiled == []  # same shapes: nothing traced or compiled


def test_train_ensemble_validates_before_tracing():
    net = networks.make_network("mlp", in_dim=1, out_dim=1, width=4, depth=1)
    x, y = data.two_points()
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="lr"):
        training.train_ensemble(net, x, y, keys=keys, lr=[0.1, -1.0], steps=2)
    with pytest.raises(ValueError, match="gain"):
        training.train_ensemble(net, x, y, keys=keys, lr=0.1, gain=[1.0, 1.0, 1.0], steps=2)
    with pytest.raises(ValueError, match="keys"):
        training.train_ensemble(net, x, y, keys=jax.random.key(0), lr=0.1, steps=2)


def test_theory_groups_on_two_devices_match_independent_solves():
    # theory.solve spreads stiffness-sorted groups over the devices from one thread per
    # device; the x64 setting of the caller must reach those threads.
    script = textwrap.dedent(
        """
        from rep_align import theory
        from rep_align.devices import use_host_devices
        use_host_devices()  # REP_ALIGN_HOST_DEVICES=2
        import jax, numpy as np
        assert len(jax.local_devices()) == 2
        rng = np.random.default_rng(0)
        n = 3000
        h0 = 10 ** rng.uniform(-3, 0, n)
        y0 = h0 * 10 ** rng.uniform(-2, 1, n)
        kw = dict(eta_h=10 ** rng.uniform(-4, -3, n), eta_y=10 ** rng.uniform(-3, -2, n),
                  dx2=rng.uniform(0.5, 1.5, n), dy2=rng.uniform(0.2, 1.0, n))
        z0 = np.stack([h0, y0, y0 * rng.uniform(-1, 1, n)], -1)
        ts = np.linspace(0.0, 2000.0, 6)
        with jax.enable_x64(True):
            assert theory.solve_group_count(n) == 2
            grouped, info = theory.solve(z0, ts, full_output=True, **kw)
            single = theory.solve(z0, ts, batch="vmap", **kw)
        assert grouped.dtype == np.float64 and bool(np.all(info.success))
        scale = np.max(np.abs(single), axis=1, keepdims=True)
        assert np.max(np.abs(np.asarray(grouped) - single) / scale) < 1e-6
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env[devices.ENV_VAR] = "2"
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "ok"
