"""The benchmark's results as text: a terminal table (median / min per
framework) and a markdown table (medians) to paste into benchmarks/RESULTS.md.

Both take the rows and limits ``run.py`` makes: per framework ``median`` and
``min`` (s), ``vs`` (each peer's time over layerc's, > 1: layerc is faster),
``speedup_vs_fastest_other``, ``GB/s`` or ``GFLOP/s`` with ``fraction_of_limit``,
and where measured ``compile_s``, ``cold_build_s``, ``warm_load_s``; ``spread``,
the slowest round's median over the fastest's, of the framework that drifted most
(the machine is shared: a spread far above 1 says the row's times are unsteady);
``roof``, layerc's step against its roofline (``roof_share``), ``!`` under 50%.
Per kernel: ``layerc show --perf FILE:NAME --sizes ...`` (layerc/roofline.py).
"""
from __future__ import annotations

from .common import COMPILED

PEERS = ("numpy", "torch", COMPILED)
ROOF_FLAG = 0.5           # steps under this share of their roofline are marked
NAME_WIDTH = 44


def header(limits: dict, meta: dict) -> str:
    load = meta.get("load", {})
    loads = ", ".join(f"{when} {' '.join(f'{v:.2f}' for v in values)}" for when, values in load.items())
    return (f"machine limits (this run): triad {limits['triad_GBps']:.1f} GB/s, numpy sgemm "
            f"{limits['sgemm_GFLOPps']:.1f} GFLOP/s ({limits.get('sgemm_size', 1024)}^3, median), "
            f"threads {limits['threads']}" + (f"; load average (1, 5, 15 min): {loads}" if loads else ""))


def _rate(r) -> str:
    return (f"{r['GB/s']:7.1f} GB/s" if "GB/s" in r else
            f"{r['GFLOP/s']:6.1f} GFLOP/s" if "GFLOP/s" in r else "")


def roof_share(row, limits) -> float | None:
    """The layerc step's share of its roofline: ``max(bytes / triad, flops /
    sgemm)`` over its median (layerc/roofline.py's model, with the workload's
    own count of bytes or flops); None when the workload counts neither."""
    if "layerc" not in row:
        return None
    bytes_, flops = row.get("bytes") or 0.0, row.get("flops") or 0.0
    if not bytes_ and not flops:
        return row.get("fraction_of_limit")
    roof = max(bytes_ / (limits["triad_GBps"] * 1e9), flops / (limits["sgemm_GFLOPps"] * 1e9))
    return roof / row["layerc"]["median"]


def _roof(row, limits, width=6) -> str:
    """The roof share, ``!`` marking a step under half its roof."""
    share = roof_share(row, limits)
    if share is None:
        return f"{'':{width}}"
    return f"{share * 100:{width - 2}.0f}%" + ("!" if share < ROOF_FLAG else " ")


def _ratio(value, width=7) -> str:
    return f"{value:{width}.2f}x" if value is not None else f"{'':{width + 1}}"


def _ms(row, f) -> str:
    return f"{row[f]['median'] * 1e3:8.2f} / {row[f]['min'] * 1e3:7.2f}" if f in row else f"{'—':>18}"


def format_table(rows, limits, meta=None) -> str:
    head = (f"{'workload':{NAME_WIDTH}} {'layerc med/min ms':>18} {'numpy med/min ms':>18} "
            f"{'torch med/min ms':>18} {'compile med/min ms':>18} {'vs best':>8} {'vs torch':>8} "
            f"{'vs comp':>8} {'rate':>14} {'of limit':>8} {'roof':>6} {'comp s':>7} {'cold s':>7} {'warm ms':>8} {'spread':>6}")
    lines = [header(limits, meta or {}), head, "-" * len(head)]
    for r in rows:
        if "layerc" not in r:
            lines.append(f"{r['workload']:{NAME_WIDTH}} {r.get('note', '')}")
            continue
        vs = r.get("vs", {})
        frac = f"{r['fraction_of_limit'] * 100:7.0f}%" if "fraction_of_limit" in r else f"{'':8}"
        comp = (f"{r['compile_s']:7.1f}" if "compile_s" in r else
                f"{'failed':>7}" if "compile_error" in r else f"{'':7}")
        cold = f"{r['cold_build_s']:7.2f}" if "cold_build_s" in r else f"{'':7}"
        warm = f"{r['warm_load_s'] * 1e3:8.1f}" if "warm_load_s" in r else f"{'':8}"
        lines.append(f"{r['workload']:{NAME_WIDTH}} {_ms(r, 'layerc')} {_ms(r, 'numpy')} {_ms(r, 'torch')} "
                     f"{_ms(r, COMPILED)} {_ratio(r.get('speedup_vs_fastest_other'))} "
                     f"{_ratio(vs.get('torch'))} {_ratio(vs.get(COMPILED))} {_rate(r):>14} {frac} {_roof(r, limits)} "
                     f"{comp} {cold} {warm} {r.get('spread', 0):6.1f}")
    return "\n".join(lines)


MARKDOWN_COLUMNS = ("workload", "layerc ms", "torch ms", "torch.compile ms", "numpy ms", "torch / layerc",
                    "compile / layerc", "vs best", "rate", "of limit", "roof", "compile s", "cold s", "warm ms", "spread")


def _md_ms(row, f) -> str:
    return f"{row[f]['median'] * 1e3:.3g}" if f in row else "—"


def _md_ratio(value) -> str:
    """A ratio, bold where layerc is the slower (< 1)."""
    if value is None:
        return "—"
    return f"**{value:.2f}x**" if value < 1 else f"{value:.2f}x"


def format_markdown(rows, limits, meta=None) -> str:
    """A markdown table; ratios below 1 (layerc slower than that peer) in bold."""
    lines = [header(limits, meta or {}), "", "| " + " | ".join(MARKDOWN_COLUMNS) + " |",
             "|" + "|".join("---" if c == "workload" else "---:" for c in MARKDOWN_COLUMNS) + "|"]
    for r in rows:
        if "layerc" not in r:
            lines.append(f"| {r['workload']} | {r.get('note', '')} |" + " |" * (len(MARKDOWN_COLUMNS) - 2))
            continue
        vs = r.get("vs", {})
        frac = f"{r['fraction_of_limit'] * 100:.0f}%" if "fraction_of_limit" in r else ""
        comp = f"{r['compile_s']:.1f}" if "compile_s" in r else "failed" if "compile_error" in r else ""
        cells = [r["workload"], _md_ms(r, "layerc"), _md_ms(r, "torch"), _md_ms(r, COMPILED), _md_ms(r, "numpy"),
                 _md_ratio(vs.get("torch")), _md_ratio(vs.get(COMPILED)),
                 _md_ratio(r.get("speedup_vs_fastest_other")), _rate(r).strip(), frac,
                 _roof(r, limits).strip(), comp,
                 f"{r['cold_build_s']:.2f}" if "cold_build_s" in r else "",
                 f"{r['warm_load_s'] * 1e3:.1f}" if "warm_load_s" in r else "",
                 f"{r['spread']:.1f}" if "spread" in r else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
