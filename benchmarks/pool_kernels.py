"""Max and average pooling, layerc against PyTorch eager: forward and
forward+backward medians, float32, both on ``--threads`` threads (default 2).

    python benchmarks/pool_kernels.py [--seconds S] [--rounds R] [--only SUBSTRING]

Each case runs layerc and torch in turn, ``--rounds`` times, each for a slice
of ``--seconds``/rounds; a case's time is the median over all its samples, and
its ratio the median over rounds of that round's torch/layerc ratio (> 1:
layerc is faster). The machine drifts (shared cores): interleaving spreads the
drift over both alike. The fastest sample of each is shown too: on a busy
machine a step that waits for a thread the scheduler gave away is no
measure of the kernel.

GB/s counts the least traffic a step must move: forward reads x and writes y;
forward+backward also reads dy and writes dx (a max pool's backward must look
at x or at saved positions too, which is not counted). ``copy`` is a large
numpy copy in the same run (read + write counted, 256 MB: main memory); the
pools' tensors (2 to 8 MB) may sit in a large last-level cache, so a pool can
run above it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

CASES = (
    # (input shape, kernel, stride)
    ((64, 32, 32, 32), 2, 2),
    ((8, 64, 56, 56), 2, 2),
    ((8, 64, 56, 56), 3, 2),
    ((16, 16, 27, 27), 3, 2),
)
WARMUP = 3


def copy_bandwidth(megabytes: int = 256, reps: int = 7) -> float:
    """GB/s of ``np.copyto`` on arrays far larger than the caches (read + write)."""
    src = np.ones(megabytes << 18, np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / min(times) / 1e9


def steps(kind: str, shape: tuple, kernel: int, stride: int):
    """``{(framework, "fwd" | "fwd+bwd"): step}`` and the bytes each must move."""
    import torch
    import torch.nn.functional as F

    from layerc import nn

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, np.float32)
    layer = (nn.MaxPool2D if kind == "max" else nn.AvgPool2D)(kernel, stride=stride)
    y = layer(x).numpy()
    gy = rng.standard_normal(y.shape, np.float32)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
    xg = xt.clone().requires_grad_()

    def layerc_both():
        layer(x)
        layer.backward(gy)

    def torch_both():
        pool(xg, kernel, stride).backward(gyt)
        xg.grad = None

    forward_bytes = x.nbytes + y.nbytes
    return {("layerc", "fwd"): lambda: layer(x), ("torch", "fwd"): lambda: pool(xt, kernel, stride),
            ("layerc", "fwd+bwd"): layerc_both, ("torch", "fwd+bwd"): torch_both}, \
        {"fwd": forward_bytes, "fwd+bwd": 2 * forward_bytes}


def time_slice(step, seconds: float) -> list:
    samples, stop = [], time.perf_counter() + seconds
    while time.perf_counter() < stop or len(samples) < 3:
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return samples


def measure(table: dict, pass_: str, seconds: float, rounds: int) -> dict:
    """Median seconds per framework and the median per-round torch/layerc ratio."""
    samples = {"layerc": [], "torch": []}
    ratios = []
    for r in range(rounds):
        order = ("layerc", "torch") if r % 2 == 0 else ("torch", "layerc")
        medians = {}
        for framework in order:
            step = table[(framework, pass_)]
            for _ in range(WARMUP):
                step()
            got = time_slice(step, seconds / rounds)
            samples[framework] += got
            medians[framework] = statistics.median(got)
        ratios.append(medians["torch"] / medians["layerc"])
    return ({f: statistics.median(s) for f, s in samples.items()} | {f"{f} min": min(s) for f, s in samples.items()}
            | {"ratio": statistics.median(ratios)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per case, pass and framework")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    torch.set_num_threads(args.threads)

    copy = copy_bandwidth()
    print(f"numpy copy: {copy:.1f} GB/s (read + write); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'case':34} {'pass':8} {'layerc ms':>10} {'torch ms':>10} {'ratio':>6} {'layerc GB/s':>12} {'of copy':>8}"
          f" {'min: layerc':>12} {'torch':>8} {'ratio':>6}")
    for kind in ("max", "avg"):
        for shape, kernel, stride in CASES:
            name = f"{kind}pool k{kernel} s{stride} {list(shape)}"
            if args.only not in name:
                continue
            table, traffic = steps(kind, shape, kernel, stride)
            for pass_ in ("fwd", "fwd+bwd"):
                got = measure(table, pass_, args.seconds, args.rounds)
                rate = traffic[pass_] / got["layerc"] / 1e9
                print(f"{name:34} {pass_:8} {got['layerc'] * 1e3:10.3f} {got['torch'] * 1e3:10.3f} "
                      f"{got['ratio']:6.2f} {rate:12.1f} {rate / copy:8.0%} {got['layerc min'] * 1e3:12.3f} "
                      f"{got['torch min'] * 1e3:8.3f} {got['torch min'] / got['layerc min']:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
