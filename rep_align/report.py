"""The report of ``rep-align reproduce``: Markdown, and one self-contained HTML page.

``report_markdown(summary)`` writes, from a ``summary.json`` (``experiments.reproduce``),
an overview table and one section per experiment: its claim, its settings, each headline
with its verdict and where the bound comes from, its figures. ``report_html`` renders that
Markdown with markdown-it-py (CommonMark plus tables) and embeds every figure as a base64
PNG, so the page can be mailed or archived alone. ``results_table`` is the compact table of
headlines with a criterion that the README quotes.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rep_align.files import dumps_json

__all__ = ["report_html", "report_markdown", "results_table", "verdict"]


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}" if math.isfinite(x) else "—"
    return str(x)


def verdict(h: Mapping[str, Any]) -> str:
    """A headline's verdict in words: "agrees", "disagrees", "reported" (no check) or "not
    comparable" (a quick number too far from the full-size one)."""
    if not h.get("comparable", True):
        return "not comparable"
    if h.get("agrees") is None:
        return "reported"
    return "agrees" if h["agrees"] else "disagrees"


def measured(h: Mapping[str, Any]) -> str:
    """The headline's value with its spread and count, e.g. "0.995 ± 0.002 (n = 4)"."""
    v = h.get("value")
    if v is None:
        return "—"
    text = _fmt(v)
    sd = h.get("spread")
    if isinstance(sd, float) and math.isfinite(sd):
        text += f" ± {sd:.2g}"
    if h.get("n", 1) > 1:
        text += f" (n = {h['n']})"
    return text


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def report_markdown(summary: Mapping[str, Any]) -> str:
    """The report as Markdown (figures linked by paths relative to the summary's
    directory)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# rep_align: the paper reproduced ({summary['mode']} mode)",
        "",
        f"Written {now}. Each section: the claim, what was measured here (mean ± standard "
        "deviation over seeds, n = how many), and whether it agrees. Criteria are this "
        "project's reading of the paper's figures (docs/theory.md §7); each says where its "
        "bound comes from.",
        "",
        *_provenance_lines(summary),
        "| experiment | status | time (s) | headline | measured | criterion | verdict |",
        "|---|---|---:|---|---|---|---|",
    ]
    for name, rec in summary["stages"].items():
        heads = rec.get("headlines") or [None]
        for i, h in enumerate(heads):
            first = i == 0
            row = [
                name if first else "",
                rec["status"] if first else "",
                _fmt(rec.get("seconds")) if first else "",
                h["name"] if h else "—",
                measured(h) if h else "",
                h.get("criterion", "") if h else "",
                verdict(h) if h else "",
            ]
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    for name, rec in summary["stages"].items():
        lines += ["", f"## {rec.get('title') or name}", ""]
        if rec.get("claim"):
            who = "This project's claim" if rec.get("ours") else "Paper's claim"
            lines += [f"**{who}.** {rec['claim']}", ""]
        settings = dumps_json(rec.get("settings"), ensure_ascii=False)
        lines += [f"**Settings.** `{settings}`", ""]
        if rec["status"] == "failed":
            lines += ["**Failed.**", "", "```", (rec.get("error") or "").rstrip(), "```"]
            continue
        for h in rec.get("headlines", []):
            note = f" ({h['note']})" if h.get("note") else ""
            crit = f" [{h['criterion']}]" if h.get("criterion") else ""
            src = f" Bound: {h['source']}." if h.get("source") else ""
            lines.append(f"- {h['name']}: {measured(h)}{crit} — {verdict(h)}{note}.{src}")
        for fig in rec.get("figures", []):
            lines += ["", f"![{fig}]({fig})"]
    return "\n".join(lines) + "\n"


def _provenance_lines(summary: Mapping[str, Any]) -> list[str]:
    p = summary.get("provenance")
    if not p:
        return []
    versions = ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items() if v)
    dev = p.get("devices") or {}
    machine = p.get("machine") or {}
    return [
        f"Code at commit `{p.get('commit') or 'unknown'}` ({versions}; Python {p.get('python')}),"
        f" on {dev.get('count')} {dev.get('platform')} device(s) of a {machine.get('cores')}-core"
        f" {machine.get('processor')} machine; started {p.get('started')}, "
        f"{_fmt(summary.get('seconds'))} s in all; command `{' '.join(p.get('command') or [])}`.",
        "",
    ]


def report_html(summary: Mapping[str, Any], root: str | Path) -> str:
    """The report as one HTML page, figures embedded (``root``: the directory the
    figure paths are relative to)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(report_markdown(summary))
    root = Path(root)
    for tok in tokens:
        for child in tok.children or ():
            if child.type != "image":
                continue
            path = root / str(child.attrGet("src"))
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                child.attrSet("src", f"data:image/png;base64,{data}")
                child.attrSet("style", "max-width:100%")
    body = md.renderer.render(tokens, md.options, {})
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto}"
    )
    title = html.escape(f"rep_align report ({summary['mode']})")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>\n{body}</body></html>\n"
    )


def results_table(summary: Mapping[str, Any]) -> str:
    """A compact Markdown table of a ``summary.json`` (one row per headline with a
    criterion, or labelled not comparable): experiment, measured, criterion, verdict. The
    README's results table is this function's output for a stated run."""
    lines = [
        "| experiment | measured | paper's claim (our criterion) | verdict |",
        "|---|---|---|---|",
    ]
    for name, rec in summary["stages"].items():
        if rec["status"] != "ok":
            lines.append(f"| {name} | failed | | |")
            continue
        for h in rec["headlines"]:
            if not h.get("criterion") and h.get("comparable", True):
                continue
            lines.append(
                f"| {name} | {_cell(h['name'])}: {measured(h)} | "
                f"{_cell(h.get('criterion') or '—')} | {verdict(h)} |"
            )
    return "\n".join(lines) + "\n"
