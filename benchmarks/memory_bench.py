"""Does the sweep's memory estimate hold? ``sweep.estimate_run_bytes`` against XLA's own
allocation plan and the process's peak memory, for three network sizes.

For each size a chunk of k runs is compiled exactly as the sweep engine compiles it (one
vmapped call of whole runs) and measured two ways:

- XLA's buffer assignment of the compiled program (``Compiled.memory_analysis()``:
  arguments + outputs + temporaries, the bytes the program holds at its peak), per run;
- the peak resident memory of a fresh process that runs the chunk once
  (``ru_maxrss``), minus the peak of the same process before it (imports, data, the compiled
  program), per run.

``python -m benchmarks.memory_bench [--out DIR]`` writes ``DIR/memory.json`` and prints a
table. The estimate is meant to be an upper bound that sizes chunks, not an exact count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SIZES = ((64, 4), (256, 8), (500, 20))
RUNS = 8
STEPS, RECORD = 600, 10

_CHILD = r"""
import json, resource, sys
import numpy as np
import jax
from rep_align.config import RunConfig
from rep_align.sweep.engine import estimate_run_bytes
from rep_align.sweep.runner import GroupRunner, traced_inputs

width, depth, runs, steps, record = (int(v) for v in sys.argv[1:6])
cfg = RunConfig(width=width, depth=depth, steps=steps, record_every=record)
runs_cfg = [cfg.replace(seed=s) for s in range(runs)]
inputs = traced_inputs(runs_cfg, cfg.dtype)
runner = GroupRunner(cfg, jax.local_devices()[:1], per_block=runs)
fn = runner.function(None)
compiled = fn.lower({k: v for k, v in inputs.items()}).compile()
stats = compiled.memory_analysis()
plan = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
jax.block_until_ready(fn(inputs))  # compile and run once: the baseline includes the program
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
jax.block_until_ready(fn(inputs))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(
    estimate_per_run=estimate_run_bytes(cfg),
    xla_plan_per_run=plan / runs,
    xla_temp_per_run=stats.temp_size_in_bytes / runs,
    rss_growth_per_run=max(after - before, 0) / runs,
    rss_peak=after,
)))
"""


def measure(width: int, depth: int, runs: int = RUNS) -> dict:
    """Estimate vs measured bytes per run for one size (in a fresh process)."""
    env = dict(os.environ, REP_ALIGN_HOST_DEVICES="0")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(width), str(depth), str(runs), str(STEPS), str(RECORD)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return dict(width=width, depth=depth, runs=runs, steps=STEPS, **row)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    rows = [measure(w, d) for w, d in SIZES]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "memory.json"), "w") as fh:
        json.dump(dict(rows=rows), fh, indent=1)
    print(
        f"{'size':>8} {'estimate':>10} {'XLA plan':>10} {'ratio':>6} {'RSS growth':>11}  (MiB/run)"
    )
    for r in rows:
        mib = 2**20
        print(
            f"{r['width']:>4}x{r['depth']:<3} {r['estimate_per_run'] / mib:10.2f} "
            f"{r['xla_plan_per_run'] / mib:10.2f} "
            f"{r['estimate_per_run'] / r['xla_plan_per_run']:6.2f} "
            f"{r['rss_growth_per_run'] / mib:11.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
