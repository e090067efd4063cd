"""What the experiment commands share: printing an outcome's headlines."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


def print_headlines(headlines: Sequence[Any]) -> None:
    """One line per headline: name, value ± spread (n), verdict and criterion
    (``rep_align.report``'s wording)."""
    from rep_align import report

    rows = [dataclasses.asdict(h) for h in headlines]
    if not rows:
        return
    name_w = max(len(r["name"]) for r in rows)
    value_w = max(len(report.measured(r)) for r in rows)
    for r in rows:
        crit = f"  [{r['criterion']}]" if r.get("criterion") else ""
        print(f"{r['name']:<{name_w}}  {report.measured(r):>{value_w}}  {report.verdict(r)}{crit}")
