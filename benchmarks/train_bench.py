"""Case 3: network training, rep_align ``train`` against a plain PyTorch eager loop.

Both sides run the paper's ``default`` two-point network (leaky-ReLU MLP, 20 hidden layers
of width 500, Xavier-normal gain 1, zero biases), float32, full-batch plain gradient
descent on 0.5·mse at lr 0.005 (the trajectory protocol: the preset's lr/2 for 2 × 3,000
steps), recording the loss and the pair observables h (every hidden layer), y, w, m at
every step from the training forward pass.

- rep_align: ``train`` (one run), compiled ahead of time (``lower().compile()``, the same
  program), and ``train_ensemble`` (the runs split over the host devices, on a CPU large
  networks one at a time; its compile time is the first call minus the median of the
  timed calls). Compile times are reported separately; every call ends in
  ``block_until_ready``.
- PyTorch (CPU; optional: skipped with a note if it is not importable): the loop a
  researcher would write, ``torch.nn.functional.linear`` layers, ``torch.optim.SGD``, the
  records stacked as tensors each step, with the faster of 1 thread and PyTorch's default
  (chosen on a short run). Its parameters are copied from rep_align's initialisation of the
  same seed, so both sides compute the same trajectory. Before the timings count, both
  sides' single runs and ensembles are run in float64 from the same parameters for
  ``check_steps`` steps and their records must agree (max deviation below ``AGREE`` of
  each series' scale); in the timed float32 runs the two sides drift apart through
  amplified rounding, which is reported (``float32_drift``, see ``AGREE``). Ensembles: a
  Python loop over seeds and ``torch.func.vmap`` of the gradient over stacked parameters;
  the faster counts. PyTorch has no compilation, so its speed per step does not depend on
  the number of steps; long runs are timed on a prefix (``torch_steps``), stated in the
  results.

Hardware limits (see ``step_model``): each step of an SGD run on two points streams every
weight several times and does little arithmetic per byte, and vmapping seeds does not raise
that ratio, so the runs are memory-bound. The achieved bytes/s is compared with the
machine's STREAM-style copy bandwidth and the achieved FLOP/s with its float32 matmul peak.

Standalone: ``python -m benchmarks.train_bench [--quick]`` prints the result as JSON.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import block, roofline_bound
from rep_align.data import two_points
from rep_align.networks import make_network
from rep_align.training import train, train_ensemble

SIZES = {
    "full": dict(
        width=500,
        depth=20,
        lr=0.005,
        steps=6000,
        repeats=3,
        torch_steps=6000,
        torch_repeats=2,
        check_steps=300,
        seeds=(8, 32),
        ensemble_steps=500,
        ensemble_repeats=2,
        torch_ensemble_steps=100,
        # width × depth, rep_align against PyTorch eager (and torch.compile on a subset)
        sweep=(
            (128, 20),
            (256, 20),
            (500, 20),
            (1000, 20),
            (2000, 20),
            (500, 2),
            (500, 5),
            (500, 10),
            (500, 40),
        ),
        sweep_steps=600,
        sweep_torch_steps=60,
        sweep_compile=((128, 20), (1000, 20), (500, 5)),
        breakdown_steps=500,
    ),
    "quick": dict(
        width=128,
        depth=6,
        lr=0.005,
        steps=300,
        repeats=2,
        torch_steps=100,
        torch_repeats=1,
        check_steps=50,
        seeds=(4,),
        ensemble_steps=100,
        ensemble_repeats=1,
        torch_ensemble_steps=20,
        sweep=((64, 4), (128, 6)),
        sweep_steps=50,
        sweep_torch_steps=10,
        sweep_compile=((64, 4),),
        breakdown_steps=20,
    ),
}

#: Largest deviation between the two sides' records in float64 (``check_steps`` steps from
#: the same parameters), relative to each series' largest absolute value, for the timings
#: to count: both sides must compute the same thing. The timed runs are float32, where the
#: two sides' different summation orders give rounding differences that these dynamics
#: amplify (the second point sits on the leaky-ReLU kink at initialisation, and units cross
#: kinks at slightly different steps): from ~1e-5 after 10 steps to several % after a few
#: hundred, as much as descent at lr and at lr/2 differ (flow_bench). That float32 drift is
#: reported for information; in float64 the two sides agree to ~1e-12.
AGREE = 1e-8

_OBS = ("loss", "h", "y", "w", "m")


def step_model(width: int, depth: int, n_points: int = 2, itemsize: int = 4) -> dict:
    """Bytes and FLOPs of one SGD step of one network (in_dim = out_dim = 1).

    Bytes that must move: every weight is read by the forward pass and again by the
    backward pass (to propagate the error to the layer below), and every updated weight is
    written once: 3 × the parameter bytes. The gradient of a weight is an outer product of
    two short vectors and need never reach memory if the update is fused into the backward
    pass; the activations (n_points × width per layer, written forward and read backward)
    are counted but are < 1 % here. ``as_executed``: what an implementation that
    materialises the gradient moves, 6 × the parameter bytes (forward read, backward read,
    gradient write, then the update reads weight and gradient and writes the weight).

    FLOPs: 2 per multiply-add; forward 2·n·W, backward 4·n·W (input and weight gradients),
    with W the number of weights and n the number of points.
    """
    dims = [1] + [width] * depth + [1]
    weights = sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True))
    params = weights + sum(dims[1:])
    acts = 2 * n_points * width * depth
    return dict(
        params=params,
        param_bytes=itemsize * params,
        # What must stay resident for one network: its parameters and activations.
        working_set_bytes=itemsize * (params + acts),
        must_move_bytes=itemsize * (3 * params + acts),
        as_executed_bytes=itemsize * (6 * params + acts),
        flops=6 * n_points * weights,
    )


def _against_limits(
    steps_per_s: float, model: dict, limits: dict | None, resident: int | None = None
) -> dict:
    """Achieved bytes/s and FLOP/s, and the fractions of the bounds they reach.

    ``fraction_of_bandwidth_bound``: against the main-memory copy bandwidth (the figure of
    earlier tables). ``roofline``: against the bound that applies, the measured bandwidth
    at this case's working set (``resident`` bytes that stay in use between steps: one
    network's, or all of an ensemble's when they run together) and the compute peak
    (``benchmarks.common.roofline_bound``).
    """
    out = dict(
        bytes_per_s=steps_per_s * model["must_move_bytes"],
        flops_per_s=steps_per_s * model["flops"],
    )
    if limits and "curve" in limits:
        ws = model["working_set_bytes"] if resident is None else resident
        bound = roofline_bound(
            ws,
            model["must_move_bytes"],
            model["flops"],
            limits["curve"],
            limits["matmul_f32"]["best_gflops"],
        )
        out["roofline"] = dict(
            bound,
            working_set_bytes=ws,
            fraction=steps_per_s / bound["steps_per_s"],
        )
    if limits:
        bw = limits["memory_bandwidth"]["best_gbs"] * 1e9
        peak = limits["matmul_f32"]["best_gflops"] * 1e9
        out.update(
            fraction_of_bandwidth_bound=out["bytes_per_s"] / bw,
            fraction_of_bandwidth_bound_as_executed=steps_per_s * model["as_executed_bytes"] / bw,
            fraction_of_matmul_peak=out["flops_per_s"] / peak,
        )
    return out


def _records(traj) -> dict:
    return {k: np.asarray(getattr(traj, k)) for k in _OBS}


def _growth(a: dict, b: dict, n: int) -> dict:
    """Deviation over the first m records for a few m up to n: how the float32 drift grows."""
    return {str(m): _deviation(a, b, m) for m in sorted({10, 100, 1000, n}) if m <= n}


def _deviation(a: dict, b: dict, n: int) -> float:
    """Largest |a − b| over the first n records, relative to each series' scale."""
    worst = 0.0
    for k in _OBS:
        x, y = (v if k == "h" else v[..., None] for v in (a[k], b[k]))  # (..., T, series)
        x, y = x[..., :n, :], y[..., :n, :]
        scale = np.max(np.abs(x), axis=-2, keepdims=True) + 1e-30
        worst = max(worst, float(np.max(np.abs(x - y) / scale)))
    return worst


# ----------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _to_torch(torch, params, depth: int, batched: bool):
    """rep_align's parameter pytree as PyTorch (weight (out, in), bias) tensors."""
    ws, bs = [], []
    for i in range(depth + 1):
        k = np.asarray(params[f"dense_{i}"]["kernel"])
        b = np.asarray(params[f"dense_{i}"]["bias"])
        k = np.swapaxes(k, -1, -2)
        ws.append(torch.tensor(np.ascontiguousarray(k), requires_grad=not batched))
        bs.append(torch.tensor(b, requires_grad=not batched))
    return ws, bs


def _torch_forward(torch, ws, bs, x):
    hiddens = []
    a = x
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        a = torch.nn.functional.linear(a, w, b)
        if i < len(ws) - 1:
            a = torch.nn.functional.leaky_relu(a, 0.01)
            hiddens.append(a)
    return a, hiddens


def _torch_observe(torch, loss, out, hiddens, y):
    """The records of one step, from the training forward pass (docs/theory.md §1)."""
    dy = y[1] - y[0]
    d_out = out[1] - out[0]
    y_obs = torch.sum(d_out**2)
    return torch.cat(
        [
            loss.reshape(1),
            torch.stack([torch.sum((h[1] - h[0]) ** 2) for h in hiddens]),
            torch.stack([y_obs, y_obs - torch.sum(dy * d_out)]),
            (torch.sum(((out[0] + out[1]) - (y[0] + y[1])) ** 2) / 4).reshape(1),
        ]
    )


def _unpack(rec: np.ndarray, depth: int) -> dict:
    return dict(
        loss=rec[..., 0],
        h=rec[..., 1 : 1 + depth],
        y=rec[..., 1 + depth],
        w=rec[..., 2 + depth],
        m=rec[..., 3 + depth],
    )


def torch_train(torch, params, x, y, lr: float, steps: int, depth: int) -> dict:
    """The plain eager loop: records at steps 0 … steps−1, taken before each update."""
    ws, bs = _to_torch(torch, params, depth, batched=False)
    opt = torch.optim.SGD(ws + bs, lr=lr)
    recs = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        out, hiddens = _torch_forward(torch, ws, bs, x)
        loss = 0.5 * torch.mean((out - y) ** 2)
        loss.backward()
        opt.step()
        with torch.no_grad():
            recs.append(_torch_observe(torch, loss.detach(), out.detach(), hiddens, y))
    return _unpack(torch.stack(recs).numpy(), depth)


def torch_compiled_forward(torch):
    """``torch.compile`` (inductor, the CPU default) of the loss and the records from the
    parameters; AOTAutograd compiles its backward too. One function object per network
    shape and dtype (dynamo recompiles on a new shape)."""
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)

    def forward(ws, bs, x, y):
        out, hiddens = _torch_forward(torch, ws, bs, x)
        loss = 0.5 * torch.mean((out - y) ** 2)
        return loss, _torch_observe(torch, loss, out, hiddens, y)

    return torch.compile(forward, dynamic=False)


def torch_train_compiled(torch, params, x, y, lr: float, steps: int, depth: int, forward) -> dict:
    """The eager loop with the forward (and so its backward) from ``torch_compiled_forward``
    and a foreach SGD update; records at steps 0 … steps−1, before each update."""
    ws, bs = _to_torch(torch, params, depth, batched=False)
    opt = torch.optim.SGD(ws + bs, lr=lr, foreach=True)
    recs = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, rec = forward(ws, bs, x, y)
        loss.backward()
        opt.step()
        recs.append(rec.detach())
    return _unpack(torch.stack(recs).numpy(), depth)


def torch_train_vmap(torch, params, x, y, lr: float, steps: int, depth: int) -> dict:
    """Seeds batched with ``torch.func.vmap`` over stacked parameters (leading seed axis)."""
    from torch.func import grad_and_value, vmap

    ws, bs = _to_torch(torch, params, depth, batched=True)

    def loss_fn(ws, bs):
        out, hiddens = _torch_forward(torch, ws, bs, x)
        loss = 0.5 * torch.mean((out - y) ** 2)
        return loss, _torch_observe(torch, loss, out, hiddens, y)

    step = vmap(grad_and_value(loss_fn, argnums=(0, 1), has_aux=True))
    flat = ws + bs
    recs = []
    for _ in range(steps):
        (gw, gb), (_, rec) = step(ws, bs)
        torch._foreach_add_(flat, list(gw) + list(gb), alpha=-lr)
        recs.append(rec)
    return _unpack(torch.stack(recs, dim=1).numpy(), depth)


def _pick_threads(torch, fn, candidates) -> int:
    """Set PyTorch's intra-op threads to whichever of ``candidates`` runs ``fn`` fastest
    (after a warm-up call each).

    With matrices this small, PyTorch's parallel kernels can cost more in thread
    synchronisation than they gain, especially on a busy machine.
    """
    best, best_t = candidates[0], float("inf")
    for threads in candidates:
        torch.set_num_threads(threads)
        fn()  # warm-up: allocator, kernels
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        if t < best_t:
            best, best_t = threads, t
    torch.set_num_threads(best)
    return best


def check_float64(torch, width: int, depth: int, lr: float, steps: int, seeds: int) -> dict:
    """Both sides' single runs, and their ensembles of ``seeds`` (``train_ensemble`` against
    the PyTorch loop and ``torch.func.vmap``), in float64 from the same parameters: the
    largest deviation of the records over ``steps`` steps."""
    with jax.enable_x64(True):
        net = make_network("mlp", in_dim=1, out_dim=1, width=width, depth=depth, dtype=jnp.float64)
        x, y = two_points(dtype=jnp.float64)
        xt, yt = (torch.tensor(np.asarray(a)) for a in (x, y))
        keys = jax.random.split(jax.random.key(2), seeds)
        params = jax.vmap(lambda k: train(net, x, y, key=k, lr=lr, steps=0, return_params=True)[1])(
            keys
        )
        one = jax.tree_util.tree_map(lambda a: a[0], params)
        single = _records(train(net, x, y, key=keys[0], lr=lr, steps=steps))
        ens = _records(train_ensemble(net, x, y, keys=keys, lr=lr, steps=steps))
        loop = torch_train(torch, one, xt, yt, lr, steps, depth)
        vmapped = torch_train_vmap(torch, params, xt, yt, lr, steps, depth)
        compiled = torch_train_compiled(
            torch, one, xt, yt, lr, steps, depth, torch_compiled_forward(torch)
        )
    dev = dict(
        single_run=_deviation(single, loop, steps),
        single_run_compiled=_deviation(single, compiled, steps),
        ensemble_loop=_deviation({k: v[0] for k, v in ens.items()}, loop, steps),
        ensemble_vmap=_deviation(ens, vmapped, steps),
    )
    return dict(steps=steps, seeds=seeds, deviation=dev, agrees=max(dev.values()) < AGREE)


def _time_torch(repeats: int, fn, *args) -> tuple[dict, dict]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return dict(median=statistics.median(times), min=min(times), max=max(times)), out


# ----------------------------------------------------------------------------------------
# The case
# ----------------------------------------------------------------------------------------


def _timed_jax(fn, repeats: int, warmup: bool = True) -> tuple[dict, object]:
    """Median, min, max of ``repeats`` calls; with ``warmup``, compile = first − median."""
    first = None
    if warmup:
        t0 = time.perf_counter()
        out = block(fn())
        first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = block(fn())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    compile_s = None if first is None else max(first - med, 0.0)
    return dict(median=med, min=min(times), max=max(times), compile=compile_s), out


def run(quick: bool = False, limits: dict | None = None, size: dict | None = None) -> dict:
    """The case at the sizes of ``SIZES`` (or ``size``: the same keys, plus optionally
    ``torch_threads`` to fix PyTorch's threads instead of picking the faster of 1 and its
    default)."""
    size = SIZES["quick" if quick else "full"] if size is None else size
    width, depth, lr = size["width"], size["depth"], size["lr"]
    model = step_model(width, depth)
    x, y = two_points()
    net = make_network("mlp", in_dim=1, out_dim=1, width=width, depth=depth)
    torch = _torch()
    out: dict = {"settings": dict(size, agree=AGREE), "model": model, "rows": []}
    if torch is None:
        out["torch"] = "not installed: PyTorch columns skipped (pip install -e '.[bench]')"
    else:
        default = torch.get_num_threads()
        out["torch"] = dict(version=torch.__version__, default_threads=default)
        fixed = size.get("torch_threads")
        candidates = [fixed] if fixed else sorted({1, default})
        xt, yt = (torch.tensor(np.asarray(a)) for a in (x, y))
        out["check_float64"] = check_float64(torch, width, depth, lr, size["check_steps"], 2)
        print(f"  train check (float64): {out['check_float64']}", flush=True)

    def initial(keys):
        return jax.vmap(lambda k: train(net, x, y, key=k, lr=lr, steps=0, return_params=True)[1])(
            keys
        )

    # --- single run ----------------------------------------------------------------------
    steps = size["steps"]
    key = jax.random.key(0)
    # ``train`` is itself one jitted call; compiling it ahead of time (the same program)
    # times the compilation alone and spares a full untimed run.
    t0 = time.perf_counter()
    compiled = jax.jit(lambda k: train(net, x, y, key=k, lr=lr, steps=steps)).lower(key).compile()
    compile_s = time.perf_counter() - t0
    t, traj = _timed_jax(lambda: compiled(key), size["repeats"], warmup=False)
    t["compile"] = compile_s
    rate = steps / t["median"]
    row: dict = dict(
        case="single run",
        runs=1,
        steps=steps,
        rep_align=dict(
            seconds=t["median"],
            min=t["min"],
            max=t["max"],
            compile_seconds=t["compile"],
            network_steps_per_s=rate,
            **_against_limits(rate, model, limits),
        ),
    )
    if torch is not None:
        params = jax.tree_util.tree_map(lambda a: a[0], initial(key[None]))
        n = min(size["torch_steps"], steps)
        threads = _pick_threads(
            torch,
            lambda: torch_train(torch, params, xt, yt, lr, 30, depth),
            candidates,
        )
        out["torch"]["threads"] = threads
        ours = _records(traj)

        def torch_row(timing, rec, **extra):
            trate = n / timing["median"]
            return dict(
                steps_timed=n,
                seconds=timing["median"],
                min=timing["min"],
                max=timing["max"],
                **extra,
                network_steps_per_s=trate,
                float32_drift=_growth(ours, rec, n),
                **_against_limits(trate, model, limits),
            )

        row["torch"] = torch_row(
            *_time_torch(size["torch_repeats"], torch_train, torch, params, xt, yt, lr, n, depth)
        )
        row["ratio"] = rate / row["torch"]["network_steps_per_s"]
        # torch.compile: compile (first call) timed apart, then the same loop.
        forward = torch_compiled_forward(torch)
        t0 = time.perf_counter()
        torch_train_compiled(torch, params, xt, yt, lr, 2, depth, forward)
        compile_t = time.perf_counter() - t0
        row["torch_compile"] = torch_row(
            *_time_torch(
                size["torch_repeats"],
                torch_train_compiled,
                *(torch, params, xt, yt, lr, n, depth, forward),
            ),
            compile_seconds=compile_t,
        )
        row["ratio_compile"] = rate / row["torch_compile"]["network_steps_per_s"]
    out["rows"].append(row)
    _print(row)

    # --- ensembles -----------------------------------------------------------------------
    steps = size["ensemble_steps"]
    for seeds in size["seeds"]:
        keys = jax.random.split(jax.random.key(1), seeds)
        t, traj = _timed_jax(
            lambda keys=keys: train_ensemble(net, x, y, keys=keys, lr=lr, steps=steps),
            size["ensemble_repeats"],
        )
        rate = seeds * steps / t["median"]
        row = dict(
            case=f"ensemble of {seeds}",
            runs=seeds,
            steps=steps,
            rep_align=dict(
                seconds=t["median"],
                min=t["min"],
                max=t["max"],
                compile_seconds=t["compile"],
                devices=jax.local_device_count(),
                network_steps_per_s=rate,
                **_against_limits(rate, model, limits, _ensemble_resident(model, seeds)),
            ),
        )
        if torch is not None:
            params = initial(keys)
            n = min(size["torch_ensemble_steps"], steps)
            ours = _records(traj)
            variants = {}
            # Loop: the runs one after another.
            per_seed = [jax.tree_util.tree_map(lambda a, i=i: a[i], params) for i in range(seeds)]
            tt, recs = _time_torch(
                1,
                lambda ps, n: [torch_train(torch, p, xt, yt, lr, n, depth) for p in ps],
                per_seed,
                n,
            )
            variants["loop"] = (tt, _stack(recs))
            vmap_threads = _pick_threads(
                torch,
                lambda p=params: torch_train_vmap(torch, p, xt, yt, lr, 3, depth),
                candidates,
            )
            variants["torch.func.vmap"] = _time_torch(
                1, torch_train_vmap, torch, params, xt, yt, lr, n, depth
            )
            torch.set_num_threads(out["torch"]["threads"])
            forward = torch_compiled_forward(torch)
            torch_train_compiled(torch, per_seed[0], xt, yt, lr, 2, depth, forward)  # compile
            variants["torch.compile loop"] = _time_torch(
                1,
                lambda ps, n, fwd=forward: _stack(
                    [torch_train_compiled(torch, p, xt, yt, lr, n, depth, fwd) for p in ps]
                ),
                per_seed,
                n,
            )
            row["torch"] = {}
            for name, (tt, rec) in variants.items():
                trate = seeds * n / tt["median"]
                row["torch"][name] = dict(
                    steps_timed=n,
                    seconds=tt["median"],
                    network_steps_per_s=trate,
                    float32_drift=_growth(ours, rec, n),
                    threads=vmap_threads if name == "torch.func.vmap" else out["torch"]["threads"],
                    # vmap keeps every network's weights in use at once
                    **_against_limits(
                        trate,
                        model,
                        limits,
                        seeds * model["working_set_bytes"] if name == "torch.func.vmap" else None,
                    ),
                )
            best = max(row["torch"], key=lambda k: row["torch"][k]["network_steps_per_s"])
            row["torch_best"] = best
            row["ratio"] = rate / row["torch"][best]["network_steps_per_s"]
        out["rows"].append(row)
        _print(row)

    # --- width × depth sweep ---------------------------------------------------------------
    out["sweep"] = []
    for sweep_width, sweep_depth in size.get("sweep", ()):
        row = _sweep_case(
            sweep_width,
            sweep_depth,
            lr,
            size,
            (sweep_width, sweep_depth) in size.get("sweep_compile", ()),
            torch,
            limits,
        )
        out["sweep"].append(row)
        _print(row)

    # --- where the single run's step goes ---------------------------------------------------
    out["breakdown"] = step_breakdown(
        width, depth, steps=size.get("breakdown_steps", 500), repeats=size["repeats"]
    )
    print(
        "  train breakdown (µs per step): "
        + ", ".join(
            f"{k} {v['us_per_step']:.0f} ({v['gbs']:.0f} GB/s)"
            for k, v in out["breakdown"].items()
            if isinstance(v, dict)
        ),
        flush=True,
    )
    return out


def _sweep_case(width, depth, lr, size, with_compile, torch, limits) -> dict:
    """One width × depth: rep_align's single run against PyTorch eager (and compile)."""
    model = step_model(width, depth)
    x, y = two_points()
    net = make_network("mlp", in_dim=1, out_dim=1, width=width, depth=depth)
    key = jax.random.key(0)
    steps = size["sweep_steps"]
    t0 = time.perf_counter()
    compiled = jax.jit(lambda k: train(net, x, y, key=k, lr=lr, steps=steps)).lower(key).compile()
    compile_s = time.perf_counter() - t0
    t, _ = _timed_jax(lambda: compiled(key), 3, warmup=False)
    rate = steps / t["median"]
    row: dict = dict(
        width=width,
        depth=depth,
        model=model,
        rep_align=dict(
            seconds=t["median"],
            compile_seconds=compile_s,
            network_steps_per_s=rate,
            **_against_limits(rate, model, limits),
        ),
    )
    if torch is None:
        return row
    params = train(net, x, y, key=key, lr=lr, steps=0, return_params=True)[1]
    xt, yt = (torch.tensor(np.asarray(a)) for a in (x, y))
    n = size["sweep_torch_steps"]
    torch_train(torch, params, xt, yt, lr, 2, depth)  # warm-up
    tt, _ = _time_torch(2, torch_train, torch, params, xt, yt, lr, n, depth)
    trate = n / tt["median"]
    row["torch"] = dict(
        seconds=tt["median"], network_steps_per_s=trate, **_against_limits(trate, model, limits)
    )
    row["ratio"] = rate / trate
    if with_compile:
        forward = torch_compiled_forward(torch)
        t0 = time.perf_counter()
        torch_train_compiled(torch, params, xt, yt, lr, 2, depth, forward)
        c_s = time.perf_counter() - t0
        tc, _ = _time_torch(2, torch_train_compiled, torch, params, xt, yt, lr, n, depth, forward)
        crate = n / tc["median"]
        row["torch_compile"] = dict(
            seconds=tc["median"],
            compile_seconds=c_s,
            network_steps_per_s=crate,
            **_against_limits(crate, model, limits),
        )
        row["ratio_compile"] = rate / crate
    return row


def step_breakdown(width: int = 500, depth: int = 20, steps: int = 500, repeats: int = 5) -> dict:
    """Where one SGD step's time goes: the step's parts timed alone, in compiled loops of
    ``steps`` iterations (float32, two points, the default preset's shapes).

    - ``forward_dots``: the hidden layers' (2 × P) @ (P × P) dots and activations, the
      pattern of the forward pass (the contraction runs over the kernel's rows).
    - ``backward_dots``: as many (2 × P) @ (P × P)ᵀ dots, the pattern of the backward pass
      (δ times the transposed kernel: the contraction runs over the kernel's columns, which
      XLA hands to a different, slower kernel than the forward's).
    - ``update``: the fused elementwise update of every kernel (read and write once).
    - ``step``: ``train``'s whole step, records included.

    Each part's bytes per iteration give its achieved GB/s, to compare with the triad
    bandwidth at the same working set.

    Returns:
        ``{part: {"us_per_step", "bytes_per_step", "gbs"}}`` plus ``"layers"``.
    """
    key = jax.random.key(0)
    kernels = [
        jax.random.normal(jax.random.fold_in(key, i), (width, width)) / np.sqrt(width)
        for i in range(depth - 1)
    ]
    a0 = jnp.ones((2, width), jnp.float32)
    k_bytes = 4 * width * width * len(kernels)

    def act(z):
        return jnp.where(z > 0, z, 0.01 * z)

    def dots(ks, a, backward):
        # forward: a @ k from the first layer up; backward: δ @ kᵀ from the last layer down
        def body(a, _):
            h = a
            for k in ks[::-1] if backward else ks:
                h = act(h @ (k.T if backward else k))
            return a + 1e-3 * h, None

        return jax.lax.scan(body, a, None, length=steps)[0]

    def update(ks, a):
        # the fused update's pattern: every kernel plus a rank-2 outer product of vectors
        # that change each iteration (so nothing is hoisted out of the loop)
        def body(carry, _):
            ks, a = carry
            ks = [
                k + (-1e-6) * (a[1][:, None] * a[0][None, :] + a[0][:, None] * a[1][None, :])
                for k in ks
            ]
            return (ks, a * 0.999), None

        return jax.lax.scan(body, (ks, a), None, length=steps)[0]

    out: dict = {"layers": len(kernels), "width": width, "steps": steps}
    for name, fn, moved in (
        ("forward_dots", functools.partial(dots, backward=False), k_bytes),
        ("backward_dots", functools.partial(dots, backward=True), k_bytes),
        ("update", update, 2 * k_bytes),
    ):
        f = jax.jit(fn)
        t, _ = _timed_jax(lambda f=f: f(kernels, a0), repeats)
        us = t["median"] / steps * 1e6
        out[name] = dict(us_per_step=us, bytes_per_step=moved, gbs=moved / (us * 1e-6) / 1e9)
    x, y = two_points()
    net = make_network("mlp", in_dim=1, out_dim=1, width=width, depth=depth)
    compiled = (
        jax.jit(lambda k: train(net, x, y, key=k, lr=0.005, steps=steps)).lower(key).compile()
    )
    t, _ = _timed_jax(lambda: compiled(key), repeats, warmup=False)
    model = step_model(width, depth)
    us = t["median"] / steps * 1e6
    out["step"] = dict(
        us_per_step=us,
        bytes_per_step=model["must_move_bytes"],
        gbs=model["must_move_bytes"] / (us * 1e-6) / 1e9,
    )
    return out


def _ensemble_resident(model: dict, seeds: int) -> int:
    """Bytes ``train_ensemble`` keeps in use at once on a CPU with its defaults: runs are
    vmapped in groups of max(1, 1 MiB // parameter bytes), one group per device, and
    networks over 8 MiB run on one device (see its docstring)."""
    group = min(seeds, max(1, 2**20 // model["param_bytes"]))
    devices = 1 if model["param_bytes"] > 8 * 2**20 else min(jax.local_device_count(), seeds)
    return group * devices * model["working_set_bytes"]


def _stack(recs: list[dict]) -> dict:
    return {k: np.stack([r[k] for r in recs]) for k in _OBS}


def _print(row: dict) -> None:
    if "case" not in row:  # a sweep row
        msg = (
            f"  train sweep {row['depth']}×{row['width']}: rep_align "
            f"{row['rep_align']['network_steps_per_s']:.4g} steps/s, "
            f"{100 * row['rep_align'].get('roofline', {}).get('fraction', float('nan')):.0f} % "
            f"of the {row['rep_align'].get('roofline', {}).get('level', '?')} bound"
        )
        for k in ("torch", "torch_compile"):
            if k in row:
                msg += f"; {k} {row[k]['network_steps_per_s']:.4g}"
        print(msg, flush=True)
        return
    ra = row["rep_align"]
    msg = (
        f"  train {row['case']}: rep_align {ra['network_steps_per_s']:.4g} network-steps/s "
        f"(compile {ra['compile_seconds']:.1f} s"
    )
    if "fraction_of_bandwidth_bound" in ra:
        msg += f", {100 * ra['fraction_of_bandwidth_bound']:.0f} % of the bandwidth bound"
    msg += ")"
    if "ratio" in row:
        t = row["torch"] if "torch_best" not in row else row["torch"][row["torch_best"]]
        msg += (
            f"; PyTorch {t['network_steps_per_s']:.4g} ({row.get('torch_best', 'loop')}, "
            f"float32 drift {max(t['float32_drift'].values()):.1e}); ratio x{row['ratio']:.2f}"
        )
    print(msg, flush=True)


def plot(result: dict, path: str) -> None:
    """Left: network-steps/s per case, rep_align against PyTorch's variants. Right: the
    roofline by working set: the measured bandwidth curve (XLA triad, all cores; NumPy
    copy, one core) with the cache sizes, and every case at (working set, bytes it must
    move per second)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, (ax, rf) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    xs = np.arange(len(rows))
    ax.bar(
        xs - 0.27, [r["rep_align"]["network_steps_per_s"] for r in rows], 0.27, label="rep_align"
    )
    if all("ratio" in r for r in rows):
        best = [
            r["torch"]["network_steps_per_s"]
            if "torch_best" not in r
            else r["torch"][r["torch_best"]]["network_steps_per_s"]
            for r in rows
        ]
        ax.bar(xs, best, 0.27, label="PyTorch eager (best variant)")
        comp = [
            r["torch_compile"]["network_steps_per_s"]
            if "torch_compile" in r
            else r.get("torch", {}).get("torch.compile loop", {}).get("network_steps_per_s", 0)
            for r in rows
        ]
        ax.bar(xs + 0.27, comp, 0.27, label="torch.compile")
    roof = rows[0]["rep_align"].get("roofline")
    if roof:
        ax.axhline(
            roof["steps_per_s"],
            ls=":",
            color="k",
            label=f"bound at its working set ({roof['level']})",
        )
    ax.set_xticks(xs, [r["case"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("network-steps / s")
    s = result["settings"]
    ax.set_title(f"training, MLP {s['depth']}×{s['width']}, observables every step")
    ax.legend(frameon=False, fontsize="small", loc="lower left")

    limits = result.get("limits") or result.get("context", {}).get("limits") or {}
    curve = limits.get("curve")
    if curve:
        sizes = np.asarray(curve["sizes"], float)
        rf.plot(sizes, curve["xla_triad_gbs"], "k-", label="XLA triad, all cores (the bound)")
        rf.plot(sizes, curve["numpy_copy_gbs"], "k--", label="NumPy copy, one core")
        for level in ("L2", "L3"):
            if level in curve["caches"]:
                cap = curve["caches"][level]
                if curve["caches"].get(f"{level}_shared_by", 1) == 1:
                    cap *= os.cpu_count() or 1
                rf.axvline(cap, color="0.7", lw=0.8)
                rf.text(
                    cap,
                    max(curve["xla_triad_gbs"]),
                    level,
                    fontsize="small",
                    ha="right",
                    va="top",
                )
    points = [(r["case"], r["rep_align"]) for r in rows]
    points += [(f"{r['depth']}×{r['width']}", r["rep_align"]) for r in result.get("sweep", [])]
    for label, ra in points:
        if "roofline" not in ra:
            continue
        ws, gbs = ra["roofline"]["working_set_bytes"], ra["bytes_per_s"] / 1e9
        rf.plot(ws, gbs, "o", color="C0")
        rf.annotate(label, (ws, gbs), fontsize=6, xytext=(3, -8), textcoords="offset points")
    for r in result.get("sweep", []):
        if "torch" in r and "roofline" in r["torch"]:
            rf.plot(
                r["torch"]["roofline"]["working_set_bytes"],
                r["torch"]["bytes_per_s"] / 1e9,
                "x",
                color="C1",
            )
    rf.plot([], [], "o", color="C0", label="rep_align (bytes that must move / s)")
    rf.plot([], [], "x", color="C1", label="PyTorch eager, sweep")
    rf.set_xscale("log", base=2)
    rf.set_yscale("log")
    rf.set_xlabel("working set (bytes resident)")
    rf.set_ylabel("GB/s")
    rf.set_title("roofline by working set: measured bandwidth and each case")
    rf.legend(frameon=False, fontsize="x-small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    from benchmarks.common import matmul_peak, memory_bandwidth

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--breakdown", metavar="JSON", help="only time the step's parts (step_breakdown)"
    )
    args = parser.parse_args()
    if args.breakdown:
        res = dict(breakdown=step_breakdown(), load=os.getloadavg(), started=time.ctime())
        with open(args.breakdown, "w") as f:
            json.dump(res, f, indent=1)
        print(json.dumps(res, indent=1))
        raise SystemExit
    lim = dict(memory_bandwidth=memory_bandwidth(), matmul_f32=matmul_peak())
    print(json.dumps(run(args.quick, lim), indent=1, default=float))
