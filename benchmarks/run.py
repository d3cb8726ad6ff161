"""``layerc bench``: forward+backward steady-state timings of the issue-5
workloads for layerc, hand-written numpy and PyTorch eager, side by side, with
the machine's limits measured in the same run.

    python -m benchmarks.run [--quick] [--json] [--only SUBSTRING] [--no-build-times]
    python -m benchmarks.run --load-times [--load-reps 9] [--only SUBSTRING]

Each framework's step runs in a fresh process (so no framework's idle threads
compete with the next), warmed up, then repeated until ``--seconds`` of samples
(at least ``--min-reps``); the table shows the median and min per framework, layerc's
ratio to the fastest other framework (>1: layerc is faster), layerc's achieved
GB/s (memory-bound workloads) or GFLOP/s (contractions), and that as a fraction
of the limit probed in this run: an OpenMP triad (STREAM convention, 3 arrays
counted) for bandwidth, numpy's sgemm for flops.

``--load-times`` times only the warm load of each workload's layers (issue 5:
under 20 ms): the build once to fill the cache (the one in use, or
``$LAYERC_CACHE_DIR``), then ``--load-reps`` new processes timing ``Spec.build(...)``
alone, median and min.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .workloads import WORKLOADS, torch

FRAMEWORKS = ("layerc", "numpy", "torch")

_TRIAD_C = """
#include <stdint.h>
#include <omp.h>
void lc_probe_triad(int64_t n, float *restrict a, const float *restrict b, const float *restrict c, float s) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}
"""
_TRIAD_CDEF = "void lc_probe_triad(int64_t n, float *a, const float *b, const float *c, float s);"


def time_step(fn, seconds: float, min_reps: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= 2000:
            break
    return {"median": statistics.median(samples), "min": min(samples), "reps": len(samples)}


def probe_bandwidth(seconds: float) -> float:
    """GB/s of an OpenMP triad over 64 MB arrays (3 arrays counted)."""
    from compiler.build import compile_c
    lib = compile_c(_TRIAD_C, _TRIAD_CDEF, name="bench_probe").lib
    n = 16 * 1024 * 1024
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    ffi = compile_c(_TRIAD_C, _TRIAD_CDEF, name="bench_probe").ffi

    def ptr(x):
        return ffi.cast("float *", x.ctypes.data)

    pa, pb, pc = ptr(a), ptr(b), ptr(c)
    t = time_step(lambda: lib.lc_probe_triad(n, pa, pb, pc, 0.5), seconds, 10)
    return 3 * a.nbytes / t["min"] / 1e9


def probe_sgemm(seconds: float) -> float:
    """GFLOP/s of numpy's float32 matmul at 1024³."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), np.float32)
    b = a.copy()
    t = time_step(lambda: a @ b, seconds, 10)
    return 2 * 1024 ** 3 / t["min"] / 1e9


def build_times(build: str, reps: int = 2) -> dict:
    """Cold build (the layer not in LAYERC_CACHE_DIR) and warm load (new
    process, cache hit), each timed inside a fresh process around
    ``Spec.build(...)`` only. The cache starts empty but for layerc's one-time
    entries, made by building another layer first (``specs.Prime``): the
    compiled templates and the digest of layerc's own sources, made once per
    layerc version, are not part of any one layer's build."""
    code = ("import time; from benchmarks.specs import *; t = time.perf_counter(); "
            f"{build}; print(time.perf_counter() - t)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cold, warm = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, LAYERC_CACHE_DIR=cache)
            subprocess.run([sys.executable, "-c", "from benchmarks.specs import Prime; Prime.build()"],
                           env=env, cwd=root, capture_output=True, text=True, check=True)
            for into in (cold, warm):
                out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                                     capture_output=True, text=True, check=True)
                into.append(float(out.stdout.strip().splitlines()[-1]))
    return {"cold_build_s": statistics.median(cold), "warm_load_s": statistics.median(warm)}


def load_times(build: str, reps: int) -> dict:
    """Warm load in new processes (cache hit), timed around ``Spec.build(...)``
    only, after one build that fills the cache in use."""
    code = ("import time; from benchmarks.specs import *; t = time.perf_counter(); "
            f"{build}; print(time.perf_counter() - t)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    samples = []
    for k in range(reps + 1):
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
        if k:
            samples.append(float(out.stdout.strip().splitlines()[-1]))
    return {"warm_load_s": statistics.median(samples), "warm_load_min_s": min(samples), "reps": reps}


def time_framework(w, framework: str, args) -> dict:
    """Time one framework's step of one workload (in this process)."""
    steps = w.make(args.quick)
    fn = {"layerc": steps.layerc, "numpy": steps.numpy, "torch": steps.torch}[framework]
    out = {"note": steps.note, "bytes": steps.bytes, "flops": steps.flops, "build": steps.build}
    if fn is not None:
        out["timing"] = time_step(fn, args.seconds, args.min_reps)
    return out


def _isolated(args, *extra) -> dict:
    """Run this script in a fresh process: each framework's threads (OpenMP
    pools, BLAS threads) idle-spinning after its own calls would otherwise steal
    the cores from the next framework timed."""
    command = [sys.executable, "-m", "benchmarks.run", "--seconds", str(args.seconds),
               "--min-reps", str(args.min_reps), *(["--quick"] if args.quick else []), *extra]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark step {extra} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_workload(w, args, limits) -> dict:
    row = {"workload": w.name}
    for name in FRAMEWORKS:
        result = _isolated(args, "--step", w.name, name)
        row["note"] = result["note"]
        if "timing" in result:
            row[name] = result["timing"]
    if "layerc" not in row:
        return row
    steps = argparse.Namespace(**{k: result[k] for k in ("bytes", "flops", "build")})
    best_other = min((row[f]["median"] for f in ("numpy", "torch") if f in row), default=None)
    t = row["layerc"]["median"]
    if best_other:
        row["speedup_vs_fastest_other"] = best_other / t
    if steps.bytes:
        row["GB/s"] = steps.bytes / t / 1e9
        row["fraction_of_limit"] = row["GB/s"] / limits["triad_GBps"]
    elif steps.flops:
        row["GFLOP/s"] = steps.flops / t / 1e9
        row["fraction_of_limit"] = row["GFLOP/s"] / limits["sgemm_GFLOPps"]
    if args.build_times and steps.build:
        row.update(build_times(steps.build))
    return row


def _ms(row, f):
    return f"{row[f]['median'] * 1e3:8.2f} / {row[f]['min'] * 1e3:7.2f}" if f in row else f"{'—':>18}"


def format_table(rows, limits) -> str:
    head = (f"{'workload':32} {'layerc med/min ms':>18} {'numpy med/min ms':>18} {'torch med/min ms':>18} "
            f"{'vs best':>8} {'rate':>14} {'of limit':>8} {'cold s':>7} {'warm ms':>8}")
    lines = [f"machine limits (this run): triad {limits['triad_GBps']:.1f} GB/s, "
             f"numpy sgemm {limits['sgemm_GFLOPps']:.1f} GFLOP/s, threads {limits['threads']}", head,
             "-" * len(head)]
    for r in rows:
        if "layerc" not in r:
            lines.append(f"{r['workload']:32} {r.get('note', '')}")
            continue
        rate = (f"{r['GB/s']:7.1f} GB/s" if "GB/s" in r else
                f"{r['GFLOP/s']:6.1f} GFLOP/s" if "GFLOP/s" in r else "")
        frac = f"{r['fraction_of_limit'] * 100:7.0f}%" if "fraction_of_limit" in r else f"{'':8}"
        vs = f"{r['speedup_vs_fastest_other']:7.2f}x" if "speedup_vs_fastest_other" in r else f"{'':8}"
        cold = f"{r['cold_build_s']:7.2f}" if "cold_build_s" in r else f"{'':7}"
        warm = f"{r['warm_load_s'] * 1e3:8.1f}" if "warm_load_s" in r else f"{'':8}"
        lines.append(f"{r['workload']:32} {_ms(r, 'layerc')} {_ms(r, 'numpy')} {_ms(r, 'torch')} "
                     f"{vs} {rate:>14} {frac} {cold} {warm}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="layerc bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter timing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--only", default="", help="run workloads whose name contains this")
    parser.add_argument("--seconds", type=float, default=None, help="sampling time per step")
    parser.add_argument("--min-reps", type=int, default=None)
    parser.add_argument("--no-build-times", dest="build_times", action="store_false",
                        help="skip cold-build and warm-load measurements")
    parser.add_argument("--load-times", action="store_true",
                        help="only the warm load of each workload's layers (new process, cache hit)")
    parser.add_argument("--load-reps", type=int, default=9, help="new processes per workload for --load-times")
    parser.add_argument("--step", nargs=2, metavar=("WORKLOAD", "FRAMEWORK"), help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 1.5
    if args.min_reps is None:
        args.min_reps = 5 if args.quick else 20
    threads = os.cpu_count() or 1
    if torch is not None:
        torch.set_num_threads(threads)
    if args.step:
        workload = next(w for w in WORKLOADS if w.name == args.step[0])
        print(json.dumps(time_framework(workload, args.step[1], args)))
        return 0
    if args.probe:
        print(json.dumps({"triad_GBps": probe_bandwidth(args.seconds), "sgemm_GFLOPps": probe_sgemm(args.seconds),
                          "threads": threads}))
        return 0
    if args.load_times:
        rows = []
        for w in WORKLOADS:
            if args.only.lower() in w.name.lower():
                build = w.make(args.quick).build
                rows.append({"workload": w.name, "build": build, **load_times(build, args.load_reps)})
        if args.json:
            print(json.dumps({"rows": rows}, indent=1))
        else:
            for r in rows:
                print(f"{r['workload']:32} warm load median {r['warm_load_s'] * 1e3:6.1f} ms  "
                      f"min {r['warm_load_min_s'] * 1e3:6.1f} ms  ({r['reps']} processes)")
        return 0
    limits = _isolated(args, "--probe")
    rows = []
    for w in WORKLOADS:
        if args.only.lower() in w.name.lower():
            rows.append(run_workload(w, args, limits))
            if not args.json:
                print(f"  done: {w.name}", file=sys.stderr)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": getattr(torch, "__version__", None), "quick": args.quick}
    if args.json:
        print(json.dumps({"meta": meta, "limits": limits, "rows": rows}, indent=1))
    else:
        print(format_table(rows, limits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
