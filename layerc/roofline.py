"""A per-kernel roofline: each generated function of a layer (forward,
backward) timed, with the bytes it must move and the flops it must do counted
from the programs that run (after fusion), against this machine's limits.

The cost model (a lower bound, what the roof is measured against):

- flops: per stage, its points (the product of its axes' and reduction
  axes' extents) times the arithmetic ops of its body (each distinct op node
  once, as the C computes common subexpressions once: ``+ - * /``, functions,
  comparisons, selects; not ops on indices alone, such as padding guards, nor a
  select on those), plus one per point for a reduction's accumulate. A
  matrix product counts 2 per multiply-add; a sum started at a value (a bias
  added into a product) counts that value's ops once per output element.
- bytes: compulsory traffic: every tensor the function reads, once, and every
  output it writes, once; a stage kept in a workspace (not fused away) is
  written once and read once. Re-reads out of cache are not counted.

The roof of a kernel is ``max(bytes / bandwidth, flops / peak)`` seconds;
its share is that over the measured time. Limits: an OpenMP triad (STREAM's
convention, 3 arrays counted; the faster of plain and streaming stores) and
numpy's sgemm at 1024^3 (the fastest of each), probed once per machine and
thread count and kept in the layerc cache as a record (JSON, checked before
use; ``layerc show --perf --reprobe`` measures again, ``layerc cache clear``
forgets it).

Example::

    report = measure(PReLU, {"C": 256, "N": 4096})
    print(format_report(report))
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np

from .compiler import ir, store
from .compiler.build import compile_c
from .compiler.cprint import render
from .compiler.records import read_record, write_record
from .compiler.schedule import starting_value

FLAG_BELOW = 0.5          # kernels under this share of their roof are flagged
TRIAD_N = 16 * 1024 * 1024
SGEMM_SIZE = 1024
LIMITS_DIR = store.RECORDS_DIR     # with the other records: ``layerc cache verify`` checks it, ``clear`` removes it
_TRIAD_CDEF = """void lc_probe_triad(int64_t n, float *a, const float *b, const float *c, float s);
void lc_probe_triad_streamed(int64_t n, float *a, const float *b, const float *c, float s);"""


@dataclass(frozen=True)
class Cost:
    flops: float
    bytes: float


# ---------------------------------------------------------------- counting


def _ops(body) -> int:
    """Arithmetic on data in ``body``: ops on index values alone (range guards,
    masks) are addressing, and a select on such a mask is a bound of the loops
    or of a packed operand, not work on the data; neither is counted."""
    data, count = set(), 0
    for e in ir.postorder(body):
        if isinstance(e, ir.Load) or isinstance(e, ir.Call) and any(a in data for a in e.args):
            data.add(e)
            if isinstance(e, ir.Call) and not (e.op == "select" and e.args[0] not in data):
                count += 1
    return count


def _size(shape: tuple, sizes: dict) -> int:
    return math.prod(ir.ievaluate(d, sizes) for d in shape)


def program_cost(p: ir.Program, sizes: dict, itemsize: int) -> Cost:
    """Flops and compulsory bytes of one call of ``p`` at ``sizes`` (see the module docstring)."""
    flops = 0
    for s in p.stages:
        points = _size(tuple(a.extent for a in s.all_axes), sizes)
        start, rest = starting_value(s)       # a sum started at a value: that value once per output
        if start is not None:
            flops += _size(s.shape, sizes) * _ops(start)
        flops += points * (_ops(rest) + (1 if s.reduce is not None else 0))
    read = set()
    for s in p.stages:
        read |= ir.tensors_read(s.body)
    stages = {s.name for s in p.stages}
    kept = set(p.outputs) | {stage for _, stage in p.updates}
    elements = sum(_size(t.shape, sizes) for t in p.tensors if t.name in read and t.name not in stages)
    for s in p.stages:
        elements += _size(s.shape, sizes) * (1 if s.name in kept else 2)
    return Cost(float(flops), float(elements * itemsize))


# ---------------------------------------------------------------- the machine


def machine_key(threads: int) -> str:
    """What the limits depend on: the CPU, its count, the threads, numpy's BLAS."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    from .runtime.blas import gemm_functions
    found = gemm_functions()
    text = json.dumps(["machine limits", cpu, os.cpu_count(), threads, found.path if found else "", np.__version__])
    return hashlib.sha256(text.encode()).hexdigest()


def _valid(limits) -> bool:
    return (isinstance(limits, dict) and set(limits) == {"triad_GBps", "sgemm_GFLOPps", "threads"}
            and all(isinstance(limits[k], (int, float)) and math.isfinite(limits[k]) and limits[k] > 0
                    for k in limits))


def machine_limits(threads: int | None = None, probe_seconds: float = 1.0, reprobe: bool = False) -> dict:
    """``{"triad_GBps", "sgemm_GFLOPps", "threads"}`` of this machine, probed
    once and then read from the cache (a record that fails the checks is
    probed again; ``reprobe``: probe anyway, e.g. once the machine is quiet)."""
    threads = int(threads or os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    folder, key = store.root() / LIMITS_DIR, machine_key(threads)
    payload = None if reprobe else read_record(folder, key)
    if payload is not None:
        try:
            limits = json.loads(payload)
        except ValueError:
            limits = None
        if _valid(limits):
            return limits
    limits = {"triad_GBps": probe_bandwidth(probe_seconds), "sgemm_GFLOPps": probe_sgemm(probe_seconds),
              "threads": threads}
    write_record(folder, key, json.dumps(limits).encode(), layer="machine limits")
    return limits


def best_time(fn, seconds: float, min_reps: int = 5) -> dict:
    """Median and min (s) of calls of ``fn`` (after 3 untimed), for ``seconds`` and at least ``min_reps`` calls."""
    for _ in range(3):
        fn()
    samples, start = [], time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return {"median": statistics.median(samples), "min": min(samples)}


def probe_bandwidth(seconds: float) -> float:
    """GB/s of an OpenMP triad over 64 MB arrays (3 arrays counted), the faster
    of plain stores (which read each line before writing it) and streaming stores."""
    probe = compile_c(render("triad.c.j2"), _TRIAD_CDEF, name="bench_probe")
    lib, ffi = probe.lib, probe.ffi
    a, b, c = (np.ones(TRIAD_N, np.float32) for _ in range(3))
    pa, pb, pc = (ffi.cast("float *", x.ctypes.data) for x in (a, b, c))
    best = min(best_time(lambda: triad(TRIAD_N, pa, pb, pc, 0.5), seconds / 2, 10)["min"]
               for triad in (lib.lc_probe_triad, lib.lc_probe_triad_streamed))
    return 3 * a.nbytes / best / 1e9


def probe_sgemm(seconds: float, size: int = SGEMM_SIZE) -> float:
    """GFLOP/s of numpy's float32 matmul at ``size``^3, the fastest of at least
    7 products (a roof: the best the machine gave, as the triad's)."""
    a = np.random.default_rng(0).standard_normal((size, size), np.float32)
    b = a.copy()
    return 2 * size ** 3 / best_time(lambda: a @ b, seconds, 7)["min"] / 1e9


# ---------------------------------------------------------------- measuring a layer


def kernel_calls(module, inputs: list) -> dict:
    """``{role: () -> None}``: each compiled function of ``module`` (a
    ``LayerModule``) called on ``inputs`` through its call plan, the arrays
    fixed (the backward on output gradients of ones), so that a call costs the
    kernel and a few microseconds of cffi."""
    module.forward(*inputs)
    module.forward(*inputs)             # the second call takes the planned path
    context = module._last
    plan, pointers = context["plan"], dict(context["pointers"])
    calls = {"forward": lambda: module._run_plan(plan.forward, pointers)}
    if "backward" in plan.backwards:
        grads = [np.ones(shape, module.dtype) for _, shape in plan.grads]
        for (name, _), g in zip(plan.grads, grads):
            pointers[name] = module._ffi.from_buffer(module._float_array_type, g)

        def backward(kept=grads):          # the gradients live as long as the call
            module._run_plan(plan.backwards["backward"], pointers, None)
        calls["backward"] = backward
    return calls


def measure(spec, bindings: dict, inputs: dict | None = None, seconds: float = 0.5,
            limits: dict | None = None, reprobe: bool = False) -> dict:
    """The roofline report of ``spec`` built at ``bindings`` (every size bound,
    the batch too): ``{"layer", "limits", "kernels": [row per function]}``.
    ``inputs``: arrays by name (integer index inputs); the others are drawn
    from a normal distribution."""
    module = spec.build(**bindings)
    low = module.compiled
    sizes = {k: v for k, v in bindings.items() if k in spec.sizes}
    rng = np.random.default_rng(0)
    arrays = []
    for t in module._inputs:
        given = (inputs or {}).get(t.name)
        shape = tuple(ir.ievaluate(d, sizes) for d in low.traced.decl(t.name).shape)
        arrays.append(np.ascontiguousarray(given) if given is not None else
                      rng.standard_normal(shape).astype(module.dtype))
    limits = limits or machine_limits(reprobe=reprobe)
    programs = {"forward": low.forward, "backward": low.backward}
    rows = []
    for role, call in kernel_calls(module, arrays).items():
        cost = program_cost(programs[role], sizes, module.dtype.itemsize)
        rows.append(roofline_row(f"{spec.name}.{role}", cost, best_time(call, seconds)["median"], limits))
    return {"layer": spec.name, "bindings": bindings, "limits": limits, "kernels": rows}


def roofline_row(name: str, cost: Cost, seconds: float, limits: dict) -> dict:
    """One kernel against the roof: rates, shares of each limit, and of the roof."""
    bandwidth, peak = limits["triad_GBps"] * 1e9, limits["sgemm_GFLOPps"] * 1e9
    roof = max(cost.bytes / bandwidth, cost.flops / peak)
    return {"kernel": name, "seconds": seconds, "bytes": cost.bytes, "flops": cost.flops,
            "GBps": cost.bytes / seconds / 1e9, "GFLOPps": cost.flops / seconds / 1e9,
            "of_bandwidth": cost.bytes / seconds / bandwidth, "of_peak": cost.flops / seconds / peak,
            "bound": "memory" if cost.bytes / bandwidth >= cost.flops / peak else "compute",
            "of_roof": roof / seconds, "flag": roof / seconds < FLAG_BELOW}


def format_report(report: dict) -> str:
    """The report as a table; kernels under half their roof marked ``<-- under 50%``."""
    limits = report["limits"]
    lines = [f"{report['layer']} at " + " ".join(f"{k}={v}" for k, v in report["bindings"].items()),
             f"roofs: triad {limits['triad_GBps']:.1f} GB/s, sgemm {limits['sgemm_GFLOPps']:.1f} GFLOP/s "
             f"({limits['threads']} threads)",
             f"{'kernel':36} {'time us':>9} {'MB':>8} {'MFLOP':>9} {'GB/s':>7} {'of bw':>6} "
             f"{'GFLOP/s':>8} {'of peak':>7} {'bound':>7} {'of roof':>7}"]
    for r in report["kernels"]:
        lines.append(f"{r['kernel']:36} {r['seconds'] * 1e6:9.1f} {r['bytes'] / 1e6:8.3f} {r['flops'] / 1e6:9.3f} "
                     f"{r['GBps']:7.1f} {r['of_bandwidth']:6.0%} {r['GFLOPps']:8.1f} {r['of_peak']:7.0%} "
                     f"{r['bound']:>7} {r['of_roof']:7.0%}" + ("  <-- under 50%" if r["flag"] else ""))
    return "\n".join(lines)
