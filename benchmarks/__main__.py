"""``python -m benchmarks [--quick] [--out DIR] [--only CASE ...]``, from the repository root.

Runs every benchmark case side by side on this machine and writes ``DIR/results.json``
(machine description, library versions, every figure with median and spread, and for each
case when it ran, the load average before and after, and the hardware limits it was
compared with) plus one PNG per case. ``--quick`` shrinks every case so the whole run takes
a few minutes; it is a smoke test, not a measurement. ``--only`` reruns some cases and keeps
the other cases' figures already in ``DIR/results.json``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback

# case name -> module under benchmarks/ with run(quick) -> dict and plot(result, path)
CASES = {
    "theory": "theory_bench",
    "fit": "fit_bench",
    "train": "train_bench",
    "flow": "flow_bench",
    "scaling": "scaling_bench",
    "cores": "cores_bench",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", default="benchmarks/results", help="output directory")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    # One JAX host device per core (rep_align.devices), which only works before anything
    # initialises JAX's backend (machine_info lists the devices).
    from rep_align.devices import use_host_devices

    use_host_devices()
    from benchmarks.common import (
        CURVE_SIZES,
        bandwidth_curve,
        machine_info,
        matmul_peak,
        memory_bandwidth,
    )

    results: dict = {"quick": args.quick, "machine": machine_info()}
    path = os.path.join(args.out, "results.json")
    if args.only and os.path.exists(path):
        # Rerunning some cases: keep the others' figures (each case records its own
        # time, load and limits).
        with open(path) as f:
            previous = json.load(f)
        if previous.get("quick") == args.quick:
            results = {**previous, **results}
    print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores", flush=True)
    results["limits"] = {
        "memory_bandwidth": memory_bandwidth(64 * 2**20 if args.quick else 512 * 2**20),
        "matmul_f32": matmul_peak(1024 if args.quick else 2048),
        # Bandwidth by working set (L2, L3, main memory): the roofline's ceilings.
        "curve": bandwidth_curve(
            (2**18, 2**22, 2**26) if args.quick else CURVE_SIZES,
            samples=2 if args.quick else 3,
            target_bytes=2e8 if args.quick else 4e9,
        ),
    }
    print(
        f"limits: copy {results['limits']['memory_bandwidth']['best_gbs']:.1f} GB/s, "
        f"f32 matmul {results['limits']['matmul_f32']['best_gflops']:.0f} GFLOP/s",
        flush=True,
    )
    failed = []
    for name in args.only or list(CASES):
        module = importlib.import_module(f"benchmarks.{CASES[name]}")
        print(f"[{name}]", flush=True)
        t0 = time.perf_counter()
        context = dict(
            started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            commit=_commit(),
            load_before=os.getloadavg(),
            limits=results["limits"],
        )
        try:
            res = module.run(quick=args.quick, **_extra(module, results))
        except Exception:  # one broken case must not lose the others' figures
            traceback.print_exc()
            failed.append(name)
            results[name] = {"error": traceback.format_exc(limit=3)}
            continue
        res["wall_seconds"] = time.perf_counter() - t0
        res["context"] = dict(context, load_after=os.getloadavg())
        results[name] = res
        module.plot(res, os.path.join(args.out, f"{name}.png"))
        _write(results, args.out)
    _write(results, args.out)
    print(f"wrote {path}")
    return 1 if failed else 0


def _commit() -> str | None:
    # the code a case's figures belong to: git commit, "+dirty" with uncommitted changes
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _extra(module, results: dict) -> dict:
    # cases that compare against the hardware limits take them as keyword arguments
    import inspect

    params = inspect.signature(module.run).parameters
    return {"limits": results["limits"]} if "limits" in params else {}


def _write(results: dict, out: str) -> None:
    path = os.path.join(out, "results.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, default=float)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
