"""Measuring: a step's durations (``sample``, ``time_step``), the machine's
limits in this run (an OpenMP triad for bandwidth, numpy's sgemm for flops),
and a layer's cold build and warm load in fresh processes."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 3                # untimed steps before the first slice
MAX_REPS = 2000           # samples per framework and workload, at most
SGEMM_SIZE = 2048


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
    """GB/s of an OpenMP triad over 64 MB arrays (``layerc.roofline.probe_bandwidth``)."""
    from layerc.roofline import probe_bandwidth as probe
    return probe(seconds)


def probe_sgemm(seconds: float, size: int = SGEMM_SIZE) -> float:
    """GFLOP/s of numpy's float32 matmul at ``size``^3, over the median of at least 7 products."""
    a = np.random.default_rng(0).standard_normal((size, size), np.float32)
    b = a.copy()
    t = time_step(lambda: a @ b, seconds, 7)
    return 2 * size ** 3 / t["median"] / 1e9


def build_times(build: str, reps: int = 2) -> dict:
    """Cold build (the layer not in LAYERC_CACHE_DIR) and warm load (new
    process, cache hit), each timed inside a fresh process around
    ``Spec.build(...)`` only. The cache starts empty but for layerc's one-time
    entries, made by building another layer first (``specs.Prime``): the C
    compiler's ``--version``, asked once per compiler binary, and the gemm's
    object file, compiled once for every layer, are not part of any one
    layer's build."""
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


def kernel_share(step, reps: int = 200, warmup: int = WARMUP) -> dict:
    """How much of ``step`` (a zero-argument call) is the compiled kernels'
    own time: every kernel call of a ``LayerModule`` (``_run``) and every
    optimizer driver call (``MultiApply``) is timed while ``step`` runs ``reps``
    times. ``{"step_s", "kernels_s", "python_share", "by_kernel": {name: s}}``
    (medians over the steps; the rest of the step is the Python of the tape,
    the modules and the optimizer, plus the timers' own cost)."""
    from layerc import optim_kernels
    from layerc.runtime.module import LayerModule
    spent: dict = {}
    run = LayerModule._run

    def timed(self, function, args):
        t0 = time.perf_counter()
        try:
            return run(self, function, args)
        finally:
            spent[self.name] = spent.get(self.name, 0.0) + time.perf_counter() - t0

    def timed_driver(name, driver):
        def call(*args):
            t0 = time.perf_counter()
            try:
                return driver(*args)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        return call

    for _ in range(warmup):
        step()                             # builds the optimizer's drivers
    drivers = [(key, apply, apply._driver) for key, apply in optim_kernels._multi.items()]
    LayerModule._run = timed
    for key, apply, driver in drivers:
        apply._driver = timed_driver(f"optimizer {key[0]}", driver)
    steps, kernels, by_kernel = [], [], {}
    try:
        for _ in range(reps):
            spent.clear()
            t0 = time.perf_counter()
            step()
            steps.append(time.perf_counter() - t0)
            kernels.append(sum(spent.values()))
            for name, s in spent.items():
                by_kernel.setdefault(name, []).append(s)
    finally:
        LayerModule._run = run
        for _, apply, driver in drivers:
            apply._driver = driver
    shares = [1 - k / s for k, s in zip(kernels, steps)]
    return {"step_s": statistics.median(steps), "kernels_s": statistics.median(kernels),
            "python_share": statistics.median(shares),
            "by_kernel": {name: statistics.median(v) for name, v in by_kernel.items()}}
