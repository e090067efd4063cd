"""Compare the headlines of two ``rep-align reproduce`` summaries, number by number.

Usage: ``python reproduction/compare_summaries.py OLD/summary.json NEW/summary.json``

Prints every headline field (value, spread, n, verdict, comparability, criterion) that
differs, headlines present in one summary only, and notes that differ; timings are not
compared. Exact float equality: a refactor that preserves behaviour gives no line but the
count.
"""

from __future__ import annotations

import json
import math
import sys

FIELDS = ("value", "spread", "n", "agrees", "comparable", "criterion")


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def main(old_path: str, new_path: str) -> int:
    old, new = (json.load(open(p)) for p in (old_path, new_path))
    bad = total = 0
    for stage, o in old["stages"].items():
        n = new["stages"].get(stage)
        if n is None:
            print(f"{stage}: missing in the new summary")
            bad += 1
            continue
        if o["status"] != n["status"]:
            print(f"{stage}: status {o['status']} -> {n['status']}")
            bad += 1
        oh = {h["name"]: h for h in o["headlines"]}
        nh = {h["name"]: h for h in n["headlines"]}
        for name in sorted(oh.keys() | nh.keys()):
            if name not in nh or name not in oh:
                print(f"{stage}: headline {name!r} only in the {'old' if name in oh else 'new'}")
                bad += 1
                continue
            for k in FIELDS:
                total += 1
                if not _same(oh[name].get(k), nh[name].get(k)):
                    print(f"{stage}: {name!r} {k}: {oh[name].get(k)!r} -> {nh[name].get(k)!r}")
                    bad += 1
            a, b = oh[name].get("note"), nh[name].get("note")
            if a != b:
                print(f"{stage}: {name!r} note: {a!r} -> {b!r}")
    print(f"{total} fields compared, {bad} differ")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
