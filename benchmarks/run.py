"""``layerc bench``: forward+backward steady-state timings of the issue-5
workloads for layerc, hand-written numpy and PyTorch eager, side by side, with
the machine's limits measured in the same run.

    python -m benchmarks.run [--quick] [--json] [--only SUBSTRING] [--no-build-times]
                             [--seconds S] [--min-reps N] [--rounds R]
    python -m benchmarks.run --load-times [--load-reps 9] [--only SUBSTRING]

Each framework's step runs in a process of its own (so no framework's idle
threads compete with another's steps). The three processes of a workload start
together, each builds its data, warms up and waits on its stdin; then, for
``--rounds`` rounds (the order rotated each round), each in turn times its step
for a slice of ``--seconds``/rounds (at least ``--min-reps``/rounds steps) while
the others wait idle. The machine's speed drifts (noisy neighbours), and
interleaving spreads that drift over all frameworks alike instead of letting it
fall between one framework's run and the next. The table shows the median and
min over the samples of all rounds per framework, layerc's ratio to the fastest
other framework (>1: layerc is faster; the median over rounds of that round's
ratio of medians, see ``speedup``), layerc's achieved GB/s (memory-bound
workloads) or GFLOP/s (contractions), and that as a fraction of the limit probed
in this run: an OpenMP triad (STREAM convention, 3 arrays counted; the faster
of plain and streaming stores) for bandwidth, numpy's sgemm for flops.

``--load-times`` times only the warm load of each workload's layers (issue 5:
under 20 ms): the build once to fill the cache (the one in use, or
``$LAYERC_CACHE_DIR``), then ``--load-reps`` new processes timing ``Spec.build(...)``
alone, median and min.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .workloads import WORKLOADS, torch

FRAMEWORKS = ("layerc", "numpy", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 3                # untimed steps before the first slice
MAX_REPS = 2000           # samples per framework and workload, at most
STEP_TIMEOUT_S = 120.0    # a step process silent this long is stuck: the slowest build
                          # plus warm-up, or slice, takes well under a minute

_TRIAD_C = """
#include <stdint.h>
#include <omp.h>
void lc_probe_triad(int64_t n, float *restrict a, const float *restrict b, const float *restrict c, float s) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}
/* the same with non-temporal stores, as layerc writes large outputs (n a multiple
   of 64, a 16-byte aligned) */
typedef float v4 __attribute__((vector_size(16)));
void lc_probe_triad_streamed(int64_t n, float *restrict a, const float *restrict b, const float *restrict c,
                             float s) {
    #pragma omp parallel
    {
        #pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n; i += 64) {
            float tile[64] __attribute__((aligned(64)));
            #pragma omp simd
            for (int64_t k = 0; k < 64; ++k) tile[k] = b[i + k] + s * c[i + k];
            for (int64_t k = 0; k < 64; k += 4) __builtin_ia32_movntps(a + i + k, *(const v4 *)(tile + k));
        }
        __builtin_ia32_sfence();
    }
}
"""
_TRIAD_CDEF = """void lc_probe_triad(int64_t n, float *a, const float *b, const float *c, float s);
void lc_probe_triad_streamed(int64_t n, float *a, const float *b, const float *c, float s);"""


def sample(fn, seconds: float, min_reps: int, max_reps: int = MAX_REPS) -> list[float]:
    """Durations (s) of calls of ``fn``, repeated for ``seconds`` and at least
    ``min_reps`` times, but at most ``max_reps`` times."""
    samples = []
    start = time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= max_reps:
            break
    return samples


def summarize(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "reps": len(samples)}


def time_step(fn, seconds: float, min_reps: int, warmup: int = WARMUP) -> dict:
    for _ in range(warmup):
        fn()
    return summarize(sample(fn, seconds, min_reps))


def probe_bandwidth(seconds: float) -> float:
    """GB/s of an OpenMP triad over 64 MB arrays (3 arrays counted), the
    faster of plain stores (which read each line before writing it) and
    streaming stores."""
    from layerc.compiler.build import compile_c
    probe = compile_c(_TRIAD_C, _TRIAD_CDEF, name="bench_probe")
    lib, ffi = probe.lib, probe.ffi
    n = 16 * 1024 * 1024
    a, b, c = (np.ones(n, np.float32) for _ in range(3))

    def ptr(x):
        return ffi.cast("float *", x.ctypes.data)

    pa, pb, pc = ptr(a), ptr(b), ptr(c)
    best = min(time_step(lambda: triad(n, pa, pb, pc, 0.5), seconds / 2, 10)["min"]
               for triad in (lib.lc_probe_triad, lib.lc_probe_triad_streamed))
    return 3 * a.nbytes / best / 1e9


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
    cold, warm = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, LAYERC_CACHE_DIR=cache)
            subprocess.run([sys.executable, "-c", "from benchmarks.specs import Prime; Prime.build()"],
                           env=env, cwd=ROOT, capture_output=True, text=True, check=True)
            for into in (cold, warm):
                out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                     capture_output=True, text=True, check=True)
                into.append(float(out.stdout.strip().splitlines()[-1]))
    return {"cold_build_s": statistics.median(cold), "warm_load_s": statistics.median(warm)}


def load_times(build: str, reps: int) -> dict:
    """Warm load in new processes (cache hit), timed around ``Spec.build(...)``
    only, after one build that fills the cache in use."""
    code = ("import time; from benchmarks.specs import *; t = time.perf_counter(); "
            f"{build}; print(time.perf_counter() - t)")
    samples = []
    for k in range(reps + 1):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        if k:
            samples.append(float(out.stdout.strip().splitlines()[-1]))
    return {"warm_load_s": statistics.median(samples), "warm_load_min_s": min(samples), "reps": reps}


def serve_step(w, framework: str, quick: bool) -> None:
    """The step process (``--step WORKLOAD FRAMEWORK``): build the workload, warm
    its step up, report the workload (one JSON line), then time one slice per
    command read from stdin (one JSON line of samples each) until stdin closes.
    Between slices it is idle, blocked on that read."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)              # stray output (print, a compiler's) goes to stderr, not into a reply
    steps = w.make(quick)
    fn = getattr(steps, framework)
    if fn is not None:
        for _ in range(WARMUP):
            fn()
    _reply(replies, {"note": steps.note, "bytes": steps.bytes, "flops": steps.flops, "build": steps.build,
                     "step": fn is not None})
    if fn is None:
        return
    for line in sys.stdin:
        command = json.loads(line)
        # untimed: wakes this process's thread pools, asleep while the others ran,
        # and lets the last one's threads, spinning for a moment after its slice, go to sleep
        fn()
        _reply(replies, sample(fn, command["seconds"], command["min_reps"], command["max_reps"]))


def _reply(replies, message) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


class StepProcess:
    """One framework's step of one workload in a process of its own (``serve_step``),
    so that no framework's idle threads compete with another's steps; driven by
    JSON lines over its stdin and stdout, each answer awaited at most ``timeout``
    seconds. A failure raises RuntimeError with the process's stderr."""

    def __init__(self, workload: str, framework: str, quick: bool, timeout: float = STEP_TIMEOUT_S):
        self.label = f"{workload!r} {framework}"
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile()     # a file: a pipe nobody reads could fill and block the child
        self.pending = b""
        command = [sys.executable, "-m", "benchmarks.run", "--step", workload, framework,
                   *(["--quick"] if quick else [])]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, bufsize=0)

    def ready(self) -> dict:
        """The workload's note, bytes, flops and build, and whether this framework
        has a step ("step"), once the process has built and warmed up."""
        return self._receive()

    def time_slice(self, seconds: float, min_reps: int, max_reps: int) -> list[float]:
        command = {"seconds": seconds, "min_reps": min_reps, "max_reps": max_reps}
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        except BrokenPipeError:
            raise self._failure("exited") from None
        return self._receive()

    def _receive(self):
        """The next JSON line on the process's stdout (read unbuffered, so that
        select sees every byte not yet taken)."""
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.pending:
            readable, _, _ = select.select([self.proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not readable:
                raise self._failure(f"gave no answer within {self.timeout:g} s")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise self._failure("exited")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)

    def _failure(self, what: str) -> RuntimeError:
        self.kill()
        self.stderr.seek(0)
        stderr = self.stderr.read().decode(errors="replace")
        return RuntimeError(f"benchmark step {self.label} {what} (exit code {self.proc.returncode}):\n{stderr}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """End the process: at the end of its stdin it exits."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc.stdout.close()
        self.stderr.close()


def interleave(processes: dict, rounds: int, seconds: float, min_reps: int) -> dict[str, list[list[float]]]:
    """Time each process's step in ``rounds`` slices of ``seconds / rounds``, one
    process at a time, so that a drift of the machine's speed falls on all of them
    alike; the order rotates each round (no process always first, or always right
    after the same one). Returns each process's samples per round."""
    names = list(processes)
    per_round = {name: [] for name in names}
    slice_reps = math.ceil(min_reps / rounds), MAX_REPS // rounds
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            per_round[name].append(processes[name].time_slice(seconds / rounds, *slice_reps))
    return per_round


def time_workload(w, args) -> tuple[dict, dict]:
    """Time one workload's frameworks: their step processes start together (they
    build and warm up at once, untimed), then take turns (``interleave``). Returns
    the workload's note, bytes, flops and build, and per framework with a step the
    median and min over the samples of all rounds, and each round's median (the
    drift the rounds spread over all frameworks, in the JSON output)."""
    processes = {}
    try:
        for name in FRAMEWORKS:
            processes[name] = StepProcess(w.name, name, args.quick)
        infos = {name: p.ready() for name, p in processes.items()}
        stepping = {name: p for name, p in processes.items() if infos[name]["step"]}
        per_round = interleave(stepping, args.rounds, args.seconds, args.min_reps) if stepping else {}
    except BaseException:      # KeyboardInterrupt too: no process may outlive the run
        for p in processes.values():
            p.kill()
        raise
    finally:
        for p in processes.values():
            p.close()
    timings = {name: {**summarize([t for one in slices for t in one]),
                      "round_medians": [statistics.median(one) for one in slices]}
               for name, slices in per_round.items()}
    return infos["layerc"], timings


def _isolated(args, *extra) -> dict:
    """Run this script in a fresh process (the probe: its OpenMP and BLAS threads
    must not stay around to steal the cores from the steps timed next)."""
    command = [sys.executable, "-m", "benchmarks.run", "--seconds", str(args.seconds),
               "--min-reps", str(args.min_reps), *(["--quick"] if args.quick else []), *extra]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark {extra} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def speedup(layerc_rounds: list[float], others_rounds: list[list[float]]) -> float:
    """The median over rounds of the fastest other framework's median over
    layerc's, both of that round: the machine's speed changes between rounds
    (seen: 1.8x within a run), and a ratio of medians pooled over all rounds
    would compare one framework's fast rounds with another's slow ones.

    >>> speedup([1.0, 2.0, 1.0], [[3.0, 5.0, 2.0], [2.5, 6.0, 4.0]])
    2.5
    """
    ratios = [min(other[r] for other in others_rounds) / mine for r, mine in enumerate(layerc_rounds)]
    return statistics.median(ratios)


def run_workload(w, args, limits) -> dict:
    info, timings = time_workload(w, args)
    row = {"workload": w.name, "note": info["note"], **timings}
    if "layerc" not in row:
        return row
    steps = argparse.Namespace(**{k: info[k] for k in ("bytes", "flops", "build")})
    others = [row[f]["round_medians"] for f in ("numpy", "torch") if f in row]
    t = row["layerc"]["median"]
    if others:
        row["speedup_vs_fastest_other"] = speedup(row["layerc"]["round_medians"], others)
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
    parser.add_argument("--seconds", type=float, default=None,
                        help="sampling time per framework and workload, over all rounds")
    parser.add_argument("--min-reps", type=int, default=None,
                        help="timed steps per framework and workload, at least, over all rounds")
    parser.add_argument("--rounds", type=int, default=6,
                        help="slices per framework, taken in turns (the order rotated each round)")
    parser.add_argument("--no-build-times", dest="build_times", action="store_false",
                        help="skip cold-build and warm-load measurements")
    parser.add_argument("--load-times", action="store_true",
                        help="only the warm load of each workload's layers (new process, cache hit)")
    parser.add_argument("--load-reps", type=int, default=9, help="new processes per workload for --load-times")
    parser.add_argument("--step", nargs=2, metavar=("WORKLOAD", "FRAMEWORK"), help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= MAX_REPS:
        parser.error(f"--rounds must be between 1 and {MAX_REPS}")
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 1.5
    if args.min_reps is None:
        args.min_reps = 5 if args.quick else 20
    threads = os.cpu_count() or 1
    if torch is not None:
        torch.set_num_threads(threads)
    if args.step:
        workload = next(w for w in WORKLOADS if w.name == args.step[0])
        serve_step(workload, args.step[1], args.quick)
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
