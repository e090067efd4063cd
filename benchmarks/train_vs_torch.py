"""rep_align's compiled ``train`` against a plain PyTorch eager loop, same work, same machine.

Both sides: the paper's ``default`` two-point network (leaky-ReLU MLP, 20 hidden layers of
width 500, Xavier-normal gain 1, zero biases), float32, full-batch plain gradient descent
on 0.5·mse at lr 0.005 for 6,000 steps, recording the loss and the pair observables h (all
20 layers), y, w, m at every step from the training forward pass. Protocol (STYLE.md): the
JAX side is compiled ahead of time (``lower().compile()``, timed and reported separately)
and run once untimed, PyTorch warms up for 50 steps; every timed run ends with
``block_until_ready`` (JAX) or on a host copy (PyTorch, CPU); several repeats, median and
ratio reported. On a shared machine, run it when idle: PyTorch's intra-op threads degrade
badly when the cores are oversubscribed (``--torch-threads 1`` is steadier).

Run: ``python benchmarks/train_vs_torch.py [--steps 6000] [--repeats 3]``. Needs the
``bench`` extra (``torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from rep_align.data import two_points
from rep_align.networks import make_network
from rep_align.training import train


def time_jax(args: argparse.Namespace) -> tuple[float, list[float], float]:
    x, y = two_points()
    net = make_network("mlp", in_dim=1, out_dim=1, width=args.width, depth=args.depth)
    run = jax.jit(lambda key: train(net, x, y, key=key, lr=args.lr, steps=args.steps))

    t0 = time.perf_counter()
    compiled = run.lower(jax.random.key(0)).compile()  # ahead of time: compile alone
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.key(0)))  # first execution, untimed
    times = []
    for seed in range(1, args.repeats + 1):
        t0 = time.perf_counter()
        traj = jax.block_until_ready(compiled(jax.random.key(seed)))
        times.append(time.perf_counter() - t0)
    return compile_s, times, float(traj.loss[-1])


def time_torch(args: argparse.Namespace) -> tuple[list[float], float]:
    import torch

    def build(seed: int) -> torch.nn.ModuleList:
        torch.manual_seed(seed)
        dims = [1] + [args.width] * args.depth + [1]
        layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        for layer in layers:
            torch.nn.init.xavier_normal_(layer.weight, gain=1.0)
            torch.nn.init.zeros_(layer.bias)
        return layers

    def forward(layers, x):
        hiddens = []
        a = x
        for i, layer in enumerate(layers):
            a = layer(a)
            if i < len(layers) - 1:
                a = torch.nn.functional.leaky_relu(a, 0.01)
                hiddens.append(a)
        return a, hiddens

    x_np, y_np = (np.array(a) for a in two_points())
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    dy = y[1] - y[0]

    def run(seed: int, steps: int) -> float:
        layers = build(seed)
        opt = torch.optim.SGD(layers.parameters(), lr=args.lr)
        records = []
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            out, hiddens = forward(layers, x)
            loss = 0.5 * torch.mean((out - y) ** 2)
            loss.backward()
            opt.step()
            with torch.no_grad():
                h = torch.stack([torch.sum((hl[1] - hl[0]) ** 2) for hl in hiddens])
                d_out = out[1] - out[0]
                y_obs = torch.sum(d_out**2)
                w = y_obs - torch.dot(dy, d_out)
                m = torch.sum(((out[0] + out[1]) - (y[0] + y[1])) ** 2) / 4
                records.append(torch.cat([loss.detach()[None], h, torch.stack([y_obs, w, m])]))
        return float(torch.stack(records)[-1, 0])

    run(0, 50)  # warm-up: allocator, kernels
    times = []
    for seed in range(1, args.repeats + 1):
        t0 = time.perf_counter()
        last = run(seed, args.steps)
        times.append(time.perf_counter() - t0)
    return times, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="PyTorch intra-op threads (default 0: PyTorch's own choice)",
    )
    args = parser.parse_args()

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"default preset: depth {args.depth}, width {args.width}, lr {args.lr}, "
        f"{args.steps} steps, record every step, {args.repeats} repeats"
    )
    compile_s, jax_times, jax_loss = time_jax(args)
    jax_med = statistics.median(jax_times)
    print(
        f"rep_align train: compile {compile_s:.2f} s (not in the run times); "
        f"runs {', '.join(f'{t:.2f}' for t in jax_times)} s; median {jax_med:.2f} s "
        f"({args.steps / jax_med:.0f} steps/s); final loss {jax_loss:.3g}"
    )
    torch_times, torch_loss = time_torch(args)
    torch_med = statistics.median(torch_times)
    print(
        f"pytorch eager:   runs {', '.join(f'{t:.2f}' for t in torch_times)} s; "
        f"median {torch_med:.2f} s ({args.steps / torch_med:.0f} steps/s); "
        f"final loss {torch_loss:.3g}"
    )
    print(f"ratio pytorch / rep_align (run time): {torch_med / jax_med:.2f}")


if __name__ == "__main__":
    main()
