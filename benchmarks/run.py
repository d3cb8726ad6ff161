"""``layerc bench``: forward+backward steady-state timings of layerc's layers, a
user's index-notation contraction and whole training steps, against PyTorch
(eager and torch.compile) and hand-written numpy, with the machine's limits
measured in the same run.

    python -m benchmarks.run [--quick] [--only conv [--only pool]] [--list] [--json | --markdown] [--save FILE]
                             [--report FILE]
                             [--compile auto|all|none] [--threads 2] [--no-build-times]
                             [--seconds S] [--min-reps N] [--rounds R]
    python -m benchmarks.run --load-times [--load-reps 9] [--only SUBSTRING]

Each framework's steps run in a process of its own, kept for the whole run (so
no framework's idle threads compete with another's steps), every one with
``--threads`` threads (OpenMP and OpenBLAS through the environment,
``torch.set_num_threads``). The processes load a workload together: each builds
its data, warms up (the torch.compile one first compiles, timed apart as
"compile s") and waits on its stdin; then, for ``--rounds`` rounds (the order rotated each round), each in
turn times its step for a slice of ``--seconds``/rounds (at least
``--min-reps``/rounds steps) while the others wait idle. The machine's speed
drifts (noisy neighbours), and interleaving spreads that drift over all
frameworks alike instead of letting it fall between one framework's run and the
next. The table shows the median and min over the samples of all rounds per
framework; each peer's median over layerc's ("vs torch", "vs comp": > 1, layerc
is faster) and the fastest peer's ("vs best"); layerc's achieved GB/s
(memory-bound workloads) or GFLOP/s (contractions), and that as a fraction of
the limit probed in this run: an OpenMP triad (STREAM convention, 3 arrays
counted; the faster of plain and streaming stores) for bandwidth, numpy's sgemm
(2048^3, median) for flops. The load average is read at the start and the end.

``--load-times`` times only the warm load of each workload's layers (its aim:
under 20 ms): the build once to fill the cache (the one in use, or
``$LAYERC_CACHE_DIR``), then ``--load-reps`` new processes timing ``Spec.build(...)``
alone, median and min.
"""
from __future__ import annotations

import argparse
import gc
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

from . import cold_builds
from .common import COMPILED
from .measure import MAX_REPS, ROOT, SGEMM_SIZE, WARMUP, build_times, load_times, probe_bandwidth, probe_sgemm, \
    sample, summarize
from .report import format_markdown, format_table
from .workloads import WORKLOADS, torch

FRAMEWORKS = ("layerc", "numpy", "torch", COMPILED)
STEP_TIMEOUT_S = 120.0    # a step process silent this long is stuck: the slowest build
                          # plus warm-up, or slice, takes well under a minute
COMPILE_TIMEOUT_S = 900.0  # torch.compile's first call: 30 s seen with a cold cache, more when busy
THREADS = 2

def serve_step(workload: str, framework: str, quick: bool) -> None:
    """The step process (``--step WORKLOAD FRAMEWORK``) of one framework: load the
    workload (build it, warm its step up, report it: one JSON line), then serve
    the commands read from stdin, one JSON line each, until stdin closes: time a
    slice (reply: the samples), or load another workload (``{"workload": name}``,
    which drops the one before). Between commands it is idle, blocked on that read."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)              # stray output (print, a compiler's) goes to stderr, not into a reply
    fn = _load(workload, framework, quick, replies)
    for line in sys.stdin:
        command = json.loads(line)
        if "workload" in command:
            fn = None          # the previous workload's data goes before the next is made
            gc.collect()
            fn = _load(command["workload"], framework, quick, replies)
            continue
        # untimed: wakes this process's thread pools, asleep while the others ran,
        # and lets the last one's threads, spinning for a moment after its slice, go to sleep
        fn()
        _reply(replies, sample(fn, command["seconds"], command["min_reps"], command["max_reps"]))


def _load(workload: str, framework: str, quick: bool, replies):
    """Build ``workload``, warm up ``framework``'s step and report; returns the step (or None)."""
    steps = next(w for w in WORKLOADS if w.name == workload).make(quick)
    info = {"note": steps.note, "bytes": steps.bytes, "flops": steps.flops, "build": steps.build}
    fn = _compiled_step(steps, info) if framework == COMPILED else getattr(steps, framework)
    if fn is not None:
        for _ in range(WARMUP):
            fn()
    _reply(replies, {**info, "step": fn is not None})
    return fn


def _compiled_step(steps, info: dict):
    """The torch.compile step, compiled by its first call (timed into
    ``info["compile_s"]``, never into the step's time); None, with the error in
    ``info["compile_error"]``, where it has none or torch.compile fails here."""
    if steps.torch_compile is None:
        return None
    try:
        start = time.perf_counter()
        fn = steps.torch_compile()
        fn()
        info["compile_s"] = time.perf_counter() - start
        return fn
    except Exception as exc:      # a peer that does not work here is reported, not fatal
        info["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return None


def _reply(replies, message) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


class StepProcess:
    """One framework's steps in a process of its own (``serve_step``), so that no
    framework's idle threads compete with another's steps: ``workload`` first,
    others after it (``load``); driven by JSON lines over its stdin and stdout,
    each answer awaited at most ``timeout`` seconds. A failure raises
    RuntimeError with the process's stderr."""

    def __init__(self, workload: str, framework: str, quick: bool, timeout: float = STEP_TIMEOUT_S,
                 threads: int = THREADS):
        self.label = f"{workload!r} {framework}"
        self.timeout = timeout
        self.first_timeout = max(timeout, COMPILE_TIMEOUT_S) if framework == COMPILED else timeout
        self.stderr = tempfile.TemporaryFile()     # a file: a pipe nobody reads could fill and block the child
        self.pending = b""
        command = [sys.executable, "-m", "benchmarks.run", "--step", workload, framework,
                   "--threads", str(threads), *(["--quick"] if quick else [])]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, bufsize=0, env=thread_environment(threads))

    def load(self, workload: str) -> None:
        """Make the process drop its workload and build ``workload`` (then ``ready``)."""
        self.label = f"{workload!r} {self.label.rsplit(' ', 1)[-1]}"
        self._send({"workload": workload})

    def ready(self) -> dict:
        """The workload's note, bytes, flops and build, whether this framework
        has a step ("step"), and torch.compile's "compile_s" (or "compile_error"),
        once the process has built and warmed up."""
        return self._receive(self.first_timeout)

    def time_slice(self, seconds: float, min_reps: int, max_reps: int) -> list[float]:
        self._send({"seconds": seconds, "min_reps": min_reps, "max_reps": max_reps})
        return self._receive()

    def _send(self, command: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        except BrokenPipeError:
            raise self._failure("exited") from None

    def _receive(self, timeout: float | None = None):
        """The next JSON line on the process's stdout (read unbuffered, so that
        select sees every byte not yet taken)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            readable, _, _ = select.select([self.proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not readable:
                raise self._failure(f"gave no answer within {timeout:g} s")
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


def thread_environment(threads: int) -> dict:
    """This process's environment with ``threads`` threads for OpenMP (layerc's
    kernels) and OpenBLAS (numpy's, and layerc's BLAS calls)."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))


def frameworks_of(w, compile_mode: str) -> list[str]:
    """The frameworks timed for ``w``: torch.compile only where ``compile_mode``
    is "all", or "auto" and the workload asks for it (it costs seconds each)."""
    wanted = {"all": True, "auto": w.compile, "none": False}[compile_mode]
    return [f for f in w.frameworks
            if (f != COMPILED or wanted) and (f not in ("torch", COMPILED) or torch is not None)]


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


class StepPool:
    """The step processes of a run, one per framework, each started at the first
    workload that needs it and kept for the next ones (a process start, importing
    torch, costs seconds). Use as a context manager: leaving it ends them all, and
    kills them on an error (KeyboardInterrupt too: no process may outlive the run)."""

    def __init__(self, quick: bool, threads: int = THREADS):
        self.quick, self.threads, self.processes = quick, threads, {}

    def ready(self, workload: str, frameworks) -> dict:
        """Load ``workload`` in each of ``frameworks``' processes (they build and
        warm up at once, untimed); their infos by framework."""
        for name in frameworks:
            if name in self.processes:
                self.processes[name].load(workload)
            else:
                self.processes[name] = StepProcess(workload, name, self.quick, threads=self.threads)
        return {name: self.processes[name].ready() for name in frameworks}

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        for p in self.processes.values():
            if kind is not None:
                p.kill()
            p.close()


def time_workload(w, args, pool: StepPool | None = None) -> tuple[dict, dict]:
    """Time one workload's frameworks: their step processes (``pool``'s, or new
    ones ended after) load it together, then take turns (``interleave``). Returns
    the workload's note, bytes, flops and build (and torch.compile's compile time),
    and per framework with a step the median and min over the samples of all
    rounds, and each round's median (the drift the rounds spread over all
    frameworks, in the JSON output)."""
    if pool is None:
        with StepPool(args.quick, getattr(args, "threads", THREADS)) as own:
            return time_workload(w, args, own)
    infos = pool.ready(w.name, frameworks_of(w, getattr(args, "compile", "auto")))
    stepping = {name: pool.processes[name] for name in infos if infos[name]["step"]}
    per_round = interleave(stepping, args.rounds, args.seconds, args.min_reps) if stepping else {}
    timings = {name: {**summarize([t for one in slices for t in one]),
                      "round_medians": [statistics.median(one) for one in slices]}
               for name, slices in per_round.items()}
    for t in timings.values():
        # how far the machine's speed drifted under this framework: the slowest round over the fastest
        t["spread"] = max(t["round_medians"]) / min(t["round_medians"])
    info = dict(infos["layerc"])
    info.update((k, v) for k, v in infos.get(COMPILED, {}).items() if k.startswith("compile_"))
    return info, timings


def _isolated(args, *extra) -> dict:
    """Run this script in a fresh process (the probe: its OpenMP and BLAS threads
    must not stay around to steal the cores from the steps timed next)."""
    command = [sys.executable, "-m", "benchmarks.run", "--seconds", str(args.seconds),
               "--min-reps", str(args.min_reps), "--threads", str(args.threads),
               *(["--quick"] if args.quick else []), *extra]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=thread_environment(args.threads))
    if out.returncode != 0:
        raise RuntimeError(f"benchmark {extra} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_workload(w, args, limits, pool: StepPool | None = None) -> dict:
    info, timings = time_workload(w, args, pool)
    row = {"workload": w.name, "note": info["note"], **timings,
           **{k: v for k, v in info.items() if k.startswith("compile_")}, "load_1min": os.getloadavg()[0]}
    if "layerc" not in row:
        return row
    row["spread"] = max(t["spread"] for t in timings.values())
    steps = argparse.Namespace(**{k: info[k] for k in ("bytes", "flops", "build")})
    peers = [f for f in FRAMEWORKS[1:] if f in row]
    t = row["layerc"]["median"]
    if peers:
        # each peer's median over layerc's, the times the table shows. Not the median
        # of per-round ratios: a burst of load that slows a few rounds of one framework's
        # fast step costs those rounds few of its samples, but whole rounds of ratios
        row["vs"] = {f: row[f]["median"] / t for f in peers}
        row["speedup_vs_fastest_other"] = min(row["vs"].values())
    row["bytes"], row["flops"] = steps.bytes, steps.flops      # for the report's roofline column
    if steps.bytes:
        row["GB/s"] = steps.bytes / t / 1e9
        row["fraction_of_limit"] = row["GB/s"] / limits["triad_GBps"]
    elif steps.flops:
        row["GFLOP/s"] = steps.flops / t / 1e9
        row["fraction_of_limit"] = row["GFLOP/s"] / limits["sgemm_GFLOPps"]
    if args.build_times and steps.build:
        row.update(build_times(steps.build))
    return row


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="layerc bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (batch / 4), shorter timing")
    parser.add_argument("--only", action="append", default=[], metavar="WORDS",
                        help="run the workloads whose name or tag contains WORDS (case-insensitive; repeat "
                             "for several; tags: layers, conv, pool, norm, activation, contraction, training)")
    parser.add_argument("--list", action="store_true", help="list the workloads (after --only) and exit")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table (for RESULTS.md)")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON results to FILE")
    parser.add_argument("--report", metavar="FILE", help="print the results saved in FILE (--save) again, "
                                                          "as a table or --markdown; time nothing")
    parser.add_argument("--compile", choices=("auto", "all", "none"), default="auto",
                        help="time torch.compile on the workloads that ask for it (auto: training steps, "
                             "the index-notation pair, one convolution), on all, or on none")
    parser.add_argument("--threads", type=int, default=THREADS, help="threads of every framework")
    parser.add_argument("--seconds", type=float, default=None,
                        help="sampling time per framework and workload, over all rounds")
    parser.add_argument("--min-reps", type=int, default=None,
                        help="timed steps per framework and workload, at least, over all rounds")
    parser.add_argument("--rounds", type=int, default=6,
                        help="slices per framework, taken in turns (the order rotated each round)")
    parser.add_argument("--no-build-times", dest="build_times", action="store_false",
                        help="skip cold-build and warm-load measurements")
    parser.add_argument("--cold-builds", type=int, default=0, metavar="RUNS",
                        help="also time each built-in layer's cold build against jax.jit's compile of the "
                             "same computation, new processes, median of RUNS (benchmarks/cold_builds.py)")
    parser.add_argument("--load-times", action="store_true",
                        help="only the warm load of each workload's layers (new process, cache hit)")
    parser.add_argument("--load-reps", type=int, default=9, help="new processes per workload for --load-times")
    parser.add_argument("--step", nargs=2, metavar=("WORKLOAD", "FRAMEWORK"), help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= MAX_REPS:
        parser.error(f"--rounds must be between 1 and {MAX_REPS}")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 1.5
    if args.min_reps is None:
        args.min_reps = 5 if args.quick else 12
    args.patterns = [p.lower() for p in args.only]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if torch is not None:
        torch.set_num_threads(args.threads)
    selected = [w for w in WORKLOADS if w.matches(args.patterns)]
    if args.step:
        serve_step(*args.step, args.quick)
    elif args.probe:
        print(json.dumps({"triad_GBps": probe_bandwidth(args.seconds), "sgemm_GFLOPps": probe_sgemm(args.seconds),
                          "sgemm_size": SGEMM_SIZE, "threads": args.threads}))
    elif args.list:
        for w in selected:
            print(f"{w.name:44} {' '.join(frameworks_of(w, args.compile))}")
    elif args.load_times:
        print_load_times(selected, args)
    elif args.report:
        with open(args.report) as f:
            print_results(json.load(f), args)
    else:
        bench(selected, args)
    return 0


def print_load_times(workloads, args) -> None:
    rows = []
    for w in workloads:
        build = w.make(args.quick).build
        if build:
            rows.append({"workload": w.name, "build": build, **load_times(build, args.load_reps)})
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return
    for r in rows:
        print(f"{r['workload']:32} warm load median {r['warm_load_s'] * 1e3:6.1f} ms  "
              f"min {r['warm_load_min_s'] * 1e3:6.1f} ms  ({r['reps']} processes)")


def bench(workloads, args) -> None:
    """Probe the machine, time ``workloads``, print the table (or JSON)."""
    load = {"start": os.getloadavg()}
    started = time.perf_counter()
    limits = _isolated(args, "--probe")
    rows = []
    with StepPool(args.quick, args.threads) as pool:
        for w in workloads:
            rows.append(run_workload(w, args, limits, pool))
            if not args.json:
                print(f"  done: {w.name}", file=sys.stderr)
    load["end"] = os.getloadavg()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": getattr(torch, "__version__", None), "quick": args.quick, "threads": args.threads,
            "compile": args.compile, "load": load, "wall_s": time.perf_counter() - started}
    results = {"meta": meta, "limits": limits, "rows": rows}
    if args.cold_builds:
        results["cold_builds"] = cold_builds.run(args.cold_builds)
    if args.save:
        with open(args.save, "w") as f:
            json.dump(results, f, indent=1)
    print_results(results, args)


def print_results(results: dict, args) -> None:
    if args.json:
        print(json.dumps(results, indent=1))
        return
    form = format_markdown if args.markdown else format_table
    print(form(results["rows"], results["limits"], results["meta"]))
    if results.get("cold_builds"):
        print("\n" + cold_builds.format_rows(results["cold_builds"]))


if __name__ == "__main__":
    sys.exit(main())
