"""The two-point ``default`` preset, XOR and the context blobs at full size through the
experiment driver, compared with ``reproduction/reproduce_full/summary.json``.

Usage: ``python reproduction/check_full.py OUT`` (from the repository root).

Runs ``two_points`` (full settings, the ``default`` preset only), ``xor`` and ``blobs`` (full
settings) into ``OUT/<name>/`` with one run store ``OUT/store``, labels the headlines as
``rep-align reproduce --full`` does, and prints every value, spread, n or verdict that
differs from the committed full-size summary, then a count. About 15 minutes on a 2-core
CPU.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from rep_align.devices import use_host_devices

use_host_devices()

from rep_align import experiments  # noqa: E402
from rep_align.experiments.reproduce import label  # noqa: E402

JOBS = (("two_points", {"presets": ("default",)}), ("xor", None), ("blobs", None))


def main(out: str) -> int:
    out = Path(out)
    repo = Path(__file__).resolve().parents[1]
    ref = json.loads((repo / "reproduction/reproduce_full/summary.json").read_text())["stages"]
    total = bad = 0
    for name, changes in JOBS:
        exp = experiments.get(name)
        got = experiments.run(exp, out / name, quick=False, changes=changes, store=out / "store")
        heads = {h.name: h for h in label(exp, got.headlines, out)}
        for old in ref[name]["headlines"]:
            new = heads.get(old["name"])
            if new is None:
                print(f"{name}: {old['name']!r} not in the new run")
                continue
            for k in ("value", "spread", "n", "agrees"):
                a, b = old.get(k), getattr(new, k)
                a = math.nan if a is None and k in ("value", "spread") else a
                nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                total += 1
                if not (a == b or (nan and math.isnan(b))):
                    bad += 1
                    print(f"{name}: {old['name']!r} {k}: old {a!r} new {b!r}")
        trained = got.summary["runs_trained"]
        print(f"{name}: {got.status}, {got.seconds} s, runs trained {trained}", flush=True)
    print(f"{total} fields compared, {bad} differ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
