"""Markdown tables of a results file: ``python -m benchmarks.table [DIR/results.json]``.

Prints the summary tables that ``benchmarks/README.md`` shows, from the figures in
``results.json`` (default ``benchmarks/results/results.json``), so that the README's numbers
are copied from one run and not retyped.
"""

from __future__ import annotations

import json
import sys


def _g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _load(context: dict | None) -> str:
    if not context:
        return ""
    before, after = context["load_before"][0], context["load_after"][0]
    commit = f" at {context['commit']}" if context.get("commit") else ""
    return (
        f"(load average {before:.2f} before, {after:.2f} after; started "
        f"{context['started']}{commit})"
    )


def machine(r: dict) -> list[str]:
    m, lim = r["machine"], r["limits"]
    v = m["versions"]
    return [
        f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; JAX devices: "
        f"{', '.join(m['jax_devices'])}",
        f"- jax {v['jax']}, jaxlib {v['jaxlib']}, diffrax {v['diffrax']}, scipy {v['scipy']}, "
        f"torch {v['torch']}, numpy {v['numpy']}; Python {m['python']}",
        f"- STREAM-style copy: {lim['memory_bandwidth']['best_gbs']:.1f} GB/s (best of 5, "
        f"{lim['memory_bandwidth']['copy_bytes'] / 2**20:.0f} MiB moved per copy); float32 "
        f"matmul through XLA: {lim['matmul_f32']['best_gflops']:.0f} GFLOP/s "
        f"(n = {lim['matmul_f32']['n']})",
    ]


def theory(c: dict) -> list[str]:
    out = [
        "| N | rep_align s | traj/s | stacked s | vmap s | × SciPy RK45 loop | "
        "× SciPy Radau loop |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in c["rows"]:
        a = row["auto"]
        st = _g(row["stacked"]["seconds"]) if "stacked" in row else "–"
        vm = _g(row["vmap"]["seconds"]) if "vmap" in row else "–"
        out.append(
            f"| {row['n']:,} | {_g(a['seconds'])} | {_g(a['traj_per_s'])} | {st} | {vm} | "
            f"{row['ratio_vs_RK45']:.0f} | {row['ratio_vs_Radau']:.0f} |"
        )
    s, ra = c["scipy"], c["rep_align_sample"]
    out.append("")
    out.append(
        f"SciPy per trajectory (sample of {s['RK45']['sample']}): RK45 "
        f"{1e3 * s['RK45']['seconds_per_traj']:.2f} ms, Radau "
        f"{1e3 * s['Radau']['seconds_per_traj']:.2f} ms. Failures against the DOP853 "
        f"reference (rtol 1e-12): RK45 {s['RK45']['failures']} "
        f"({s['RK45']['silent_wrong']} silently wrong, {s['RK45']['failures_opposing']} with "
        f"opposing outputs), Radau {s['Radau']['failures']}, rep_align {ra['failures']} "
        f"of {ra['sample']}."
    )
    return out


def fit(c: dict) -> list[str]:
    out = [
        "| runs N | rep_align s per call | s per run | compile s | SciPy s per run | ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in c["rows"]:
        r = row["rep_align"]
        out.append(
            f"| {row['n']:,} | {_g(r['median_s'])} | {_g(r['per_run_s'])} | "
            f"{r['compile_s']:.1f} | {_g(row['scipy_seconds_per_run'])} | {row['ratio']:.0f} |"
        )
    a = c["agreement"]
    out.append("")
    out.append(
        f"Agreement on the {a['runs_compared']} runs both fitted, |log(rep_align/SciPy)|: "
        f"η_h median {_g(a['rep_align_vs_scipy_log_eta_h']['median'], 2)}, max "
        f"{_g(a['rep_align_vs_scipy_log_eta_h']['max'], 2)}; η_y median "
        f"{_g(a['rep_align_vs_scipy_log_eta_y']['median'], 2)}, max "
        f"{_g(a['rep_align_vs_scipy_log_eta_y']['max'], 2)}. Against the true rates: "
        f"rep_align η_h median {_g(a['rep_align_vs_truth_log_eta_h']['median'], 2)}, SciPy "
        f"{_g(a['scipy_vs_truth_log_eta_h']['median'], 2)}. SciPy: "
        f"{c['scipy']['solves_per_run']:.0f} solves per run, {c['scipy']['converged']} of "
        f"{c['scipy']['runs']} converged; rep_align converged "
        f"{a['rep_align_converged']} of {c['rows'][-1]['n']}."
    )
    return out


def _best(ra: dict) -> str:
    # the fraction of the bound reached by the fastest repeat, where the repeats are known
    if not ra.get("min"):
        return ""
    return f"{100 * ra['fraction_of_bandwidth_bound'] * ra['seconds'] / ra['min']:.0f}; "


def _roof(entry: dict) -> str:
    r = entry.get("roofline")
    return f"{100 * r['fraction']:.0f}" if r else "–"


def _curve(c: dict) -> list[str]:
    curve = c.get("context", {}).get("limits", {}).get("curve")
    if not curve:
        return []
    caches = curve["caches"]
    cells = ", ".join(
        f"{s / 2**20:g} MiB {a:.0f} ({b:.0f})"
        for s, a, b in zip(
            curve["sizes"], curve["xla_triad_gbs"], curve["numpy_copy_gbs"], strict=True
        )
    )
    sizes = ", ".join(
        f"{k} {caches[k] / 2**20:g} MiB"
        + (" per core" if caches.get(f"{k}_shared_by") == 1 else "")
        for k in ("L1", "L2", "L3")
        if k in caches
    )
    return [
        f"Bandwidth by working set in this run, GB/s, XLA triad on all cores (NumPy copy on "
        f"one core): {cells}. Caches: {sizes}.",
        "",
    ]


def train(c: dict) -> list[str]:
    out = _curve(c) + [
        "| case | steps timed | rep_align net-steps/s | PyTorch eager (variant) | × eager | "
        "torch.compile | × compile | bound: level, GB/s, steps/s | rep_align % of it | "
        "% of main-memory copy bound |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in c["rows"]:
        ra = row["rep_align"]
        if "torch_best" in row:
            eager = {k: v for k, v in row["torch"].items() if k != "torch.compile loop"}
            best = max(eager, key=lambda k: eager[k]["network_steps_per_s"])
            t = eager[best]
            variant = f"{best}, {t['threads']} thr"
            comp = row["torch"].get("torch.compile loop")
        elif "torch" in row:
            t = row["torch"]
            variant = f"loop, {c['torch']['threads']} thr"
            comp = row.get("torch_compile")
        else:
            t, variant, comp = None, "–", None
        tcol = f"{t['network_steps_per_s']:.4g} ({variant})" if t else "–"
        rate = ra["network_steps_per_s"]
        xe = f"{rate / t['network_steps_per_s']:.2f}" if t else "–"
        ccol = f"{comp['network_steps_per_s']:.4g}" if comp else "–"
        xc = f"{rate / comp['network_steps_per_s']:.2f}" if comp else "–"
        steps = f"{row['steps']:,} / {t['steps_timed']:,}" if t else f"{row['steps']:,}"
        r = ra.get("roofline")
        bound = f"{r['level']}, {r['bandwidth_gbs']:.0f}, {r['steps_per_s']:.4g}" if r else "–"
        out.append(
            f"| {row['case']} | {steps} | {rate:.4g} | {tcol} | {xe} | {ccol} | {xc} | "
            f"{bound} | {_roof(ra)} | {100 * ra['fraction_of_bandwidth_bound']:.0f} |"
        )
    m = c["model"]
    out.append("")
    if "check_float64" in c:
        ch = c["check_float64"]
        dev = ", ".join(f"{k} {v:.1e}" for k, v in ch["deviation"].items())
        drift = c["rows"][0].get("torch", {}).get("float32_drift", {})
        out.append(
            f"Same computation: in float64, {ch['steps']} steps from the same parameters, "
            f"largest deviation of the records {dev} (agree: {ch['agrees']}). In the timed "
            f"float32 single run the two sides drift apart through amplified rounding: "
            + ", ".join(f"{v:.1e} after {k} steps" for k, v in drift.items())
            + "."
        )
        out.append("")
    first = c["rows"][0]
    extra = (
        f", torch.compile {first['torch_compile']['compile_seconds']:.1f} s"
        if "torch_compile" in first
        else ""
    )
    out.append(
        f"Per network-step: {m['params']:,} parameters ({m['param_bytes'] / 1e6:.1f} MB), "
        f"working set {m['working_set_bytes'] / 1e6:.1f} MB, "
        f"{m['must_move_bytes'] / 1e6:.1f} MB that must move (the bound's bytes), "
        f"{m['flops'] / 1e6:.1f} MFLOP. Compile: single run "
        f"{first['rep_align']['compile_seconds']:.1f} s{extra}."
    )
    if c.get("sweep"):
        out += [
            "",
            "| depth × width | MB moved / step | level | bound steps/s | rep_align steps/s "
            "| % of bound | PyTorch eager | × eager | torch.compile | × compile |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in c["sweep"]:
            ra, r = row["rep_align"], row["rep_align"].get("roofline", {})
            t, comp = row.get("torch"), row.get("torch_compile")
            rate = ra["network_steps_per_s"]
            head = (
                f"| {row['depth']} × {row['width']} | {row['model']['must_move_bytes'] / 1e6:.3g} "
                f"| {r.get('level', '–')} | {r.get('steps_per_s', float('nan')):.4g} "
                f"| {rate:.4g} | {_roof(ra)} "
            )
            for peer in (t, comp):
                if peer:
                    prate = peer["network_steps_per_s"]
                    head += f"| {prate:.4g} | {rate / prate:.2f} "
                else:
                    head += "| – | – "
            out.append(head + "|")
    b = c.get("breakdown")
    if b:
        parts = [(k, v) for k, v in b.items() if isinstance(v, dict)]
        out += [
            "",
            f"Where the single run's step goes ({b['layers']} hidden {b['width']} × "
            f"{b['width']} layers, each part timed alone in a compiled loop of {b['steps']} "
            "iterations): "
            + "; ".join(f"{k} {v['us_per_step']:.0f} µs ({v['gbs']:.0f} GB/s)" for k, v in parts)
            + ".",
        ]
    return out


def flow(c: dict) -> list[str]:
    out = [
        f"| network | dx2 | descent s ({c['settings']['steps']:,} steps) | descent lr vs lr/2 "
        "| rtol | flow s | "
        "solver steps | reached t | max deviation | within 1 % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in c["rows"]:
        d = row["descent"]
        gap = max(d["deviation_lr_vs_half_lr"].values())
        for i, f in enumerate(row["flow"]):
            head = (
                f"{row['depth']}×{row['width']} {row.get('activation', 'leaky_relu')} | "
                f"{row['dx2']} | {_g(d['seconds'])} | {gap:.2g}"
                if i == 0
                else " | | |"
            )
            out.append(
                f"| {head} | {f['rtol']:g} | {_g(f['seconds'])} | {f['solver_steps']:,} | "
                f"{f['reached']:g} | {f['deviation'] and max(f['deviation'].values()):.2g} | "
                f"{'yes' if f['agrees'] else 'no'} |"
            )
    return out


def scaling(c: dict) -> list[str]:
    out = [
        "| axis | values | µs per step | exponent (all) | exponent (upper half) | local |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, e in c["axes"].items():
        vals = ", ".join(f"{r[name]:,}" for r in e["rows"])
        us = ", ".join(f"{1e6 * r['seconds_per_step']:.3g}" for r in e["rows"])
        up = e["time"].get("upper_half", {}).get("exponent")
        local = ", ".join(f"{k:.2f}" for k in e["time"]["local"])
        out.append(
            f"| {name} | {vals} | {us} | {e['time']['all']['exponent']:.2f} | "
            f"{'–' if up is None else f'{up:.2f}'} | {local} |"
        )
    d = c["axes"]["depth"]
    comp = ", ".join(f"{r['compile_seconds']:.2g}" for r in d["rows"])
    out.append(
        f"| compile vs depth | {', '.join(str(r['depth']) for r in d['rows'])} | {comp} s | "
        f"{d['compile']['all']['exponent']:.2f} | "
        f"{d['compile'].get('upper_half', {}).get('exponent', float('nan')):.2f} | "
        f"{', '.join(f'{k:.2f}' for k in d['compile']['local'])} |"
    )
    return out


def cores(c: dict) -> list[str]:
    names = list(c["environments"])
    out = [
        "| workload | " + " | ".join(f"{n}: s (cores busy)" for n in names) + " | speed-up |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for row in c["rows"]:
        cells = [f"{_g(row[n]['seconds'])} ({row[n]['busy_cores']:.2f})" for n in names]
        speedup = row["n devices"]["speedup"]
        out.append(f"| {row['workload']} | " + " | ".join(cells) + f" | {speedup:.2f} |")
    return out


def main(path: str = "benchmarks/results/results.json") -> None:
    with open(path) as f:
        r = json.load(f)
    lines = ["## Machine", ""] + machine(r)
    for name, fn in [
        ("theory", theory),
        ("fit", fit),
        ("train", train),
        ("flow", flow),
        ("scaling", scaling),
        ("cores", cores),
    ]:
        if name in r and "error" not in r[name]:
            lines += ["", f"## {name} {_load(r[name].get('context'))}", ""] + fn(r[name])
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
