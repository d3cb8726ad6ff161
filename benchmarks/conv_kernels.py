"""Convolution kernels: layerc's ``Conv2D`` against PyTorch eager, forward and
forward + backward (input and weight gradients), float32, with numpy's sgemm
rate measured in the same run as the yardstick.

    python benchmarks/conv_kernels.py [--reps 15] [--rounds 3] [--only SUBSTRING] [--threads 2]

For each workload the steps of both frameworks run in turn, one at a time,
``--reps`` x ``--rounds`` times each (the order rotated each time, with a short
pause before each step so that the other framework's idle OpenMP threads have
stopped spinning). The table gives the median over all steps,
the ratio torch/layerc (>1: layerc is faster), layerc's GFLOP/s and that as a
share of numpy's sgemm rate (a 2048^3 float32 matmul, median). FLOPs: 2 per
multiply-add; forward + backward counts three convolutions' worth (forward,
input gradient, weight gradient). The last row is a 1-D convolution written by
hand in index notation (``ops.compute``) against the built-in ``Conv1D``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.specs import Conv1DIndexNotation  # noqa: E402

try:
    import torch
except ImportError:         # the table then shows layerc alone
    torch = None

# (name, in, out, kernel, stride, padding, groups, batch, height, width)
WORKLOADS = (
    ("3->32 3x3 p1 32x32 b64", 3, 32, 3, 1, 1, 1, 64, 32, 32),
    ("32->64 3x3 16x16 b64", 32, 64, 3, 1, 0, 1, 64, 16, 16),
    ("64->64 3x3 p1 56x56 b8", 64, 64, 3, 1, 1, 1, 8, 56, 56),
    ("64->64 3x3 p1 16x16 b16 (ResNet block)", 64, 64, 3, 1, 1, 1, 16, 16, 16),
    ("64->128 3x3 s2 p1 28x28 b16", 64, 128, 3, 2, 1, 1, 16, 28, 28),
    ("depthwise 32 3x3 p1 56x56 b8", 32, 32, 3, 1, 1, 32, 8, 56, 56),
    ("1x1 64->256 28x28 b16", 64, 256, 1, 1, 0, 1, 16, 28, 28),
)
# the 1-D convolution: in, out, kernel, padding, batch, length
CONV1D = (64, 64, 5, 2, 16, 512)
PAUSE_S = 0.005


def _seconds(step, reps: int) -> list:
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return samples


def _interleaved(steps: dict, reps: int, rounds: int) -> dict:
    """``{name: samples}``: ``rounds`` rounds; in each, every step runs ``reps``
    times in turn with the others (rotating order), so that the machine's drift
    (other users of its cores) falls on all of them alike."""
    for step in steps.values():          # warm-up: build, first-touch, plans
        step()
        step()
    samples = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds * reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(PAUSE_S)
            samples[name] += _seconds(steps[name], 1)
    return samples


def sgemm_rate(reps: int = 7) -> float:
    """numpy's float32 matmul rate at 2048^3, GFLOP/s (median)."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    b = a.T.copy()
    a @ b
    times = _seconds(lambda: a @ b, reps)
    return 2 * 2048 ** 3 / statistics.median(times) / 1e9


def conv2d_steps(cin, cout, k, stride, pad, groups, n, h, w):
    """``{(framework, part): step}`` for one Conv2D workload, and its forward FLOPs."""
    from layerc import nn
    from layerc.runtime.tensor import no_grad
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    layer = nn.Conv2D(cin, cout, k, stride=stride, padding=pad, groups=groups)
    y = layer(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)

    def lc_forward():
        with no_grad():
            layer(x)

    def lc_step():
        layer.zero_grad()
        layer(x)
        layer.backward(gy)

    steps = {("layerc", "forward"): lc_forward, ("layerc", "fwd+bwd"): lc_step}
    if torch is not None:
        ref = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
        tx, tg = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(gy)

        def torch_forward():
            with torch.no_grad():
                ref(tx)

        def torch_step():
            tx.grad = None
            ref.zero_grad(set_to_none=True)
            ref(tx).backward(tg)

        steps |= {("torch", "forward"): torch_forward, ("torch", "fwd+bwd"): torch_step}
    ho, wo = y.shape[2:]
    return steps, 2.0 * n * cout * ho * wo * (cin // groups) * k * k


def conv1d_steps(cin, cout, k, pad, n, length):
    """The built-in Conv1D against the same convolution written with ``ops.compute``."""
    from layerc import nn
    from layerc.runtime.tensor import no_grad

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cin, length)).astype(np.float32)
    builtin = nn.Conv1D(cin, cout, k, padding=pad, bias=False)
    hand = Conv1DIndexNotation.build(C=cin, O=cout, K=k, pad=pad)
    hand.weight.data[...] = builtin.weight.data
    gy = rng.standard_normal(builtin(x).shape).astype(np.float32)
    np.testing.assert_allclose(hand(x).numpy(), builtin(x).numpy(), rtol=1e-4, atol=1e-4)
    steps = {}
    for name, module in (("Conv1D", builtin), ("ops.compute", hand)):
        def forward(module=module):
            with no_grad():
                module(x)

        def step(module=module):
            module.zero_grad()
            module(x)
            module.backward(gy)
        steps |= {(name, "forward"): forward, (name, "fwd+bwd"): step}
    return steps, 2.0 * n * cout * length * cin * k


def _row(name, samples, flops, peak, base, other):
    """One table line per part: medians (ms), other/base ratio, base's GFLOP/s and share of sgemm."""
    lines = []
    for part, factor in (("forward", 1), ("fwd+bwd", 3)):
        ours = statistics.median(samples[(base, part)])
        theirs = statistics.median(samples[(other, part)]) if (other, part) in samples else float("nan")
        rate = factor * flops / ours / 1e9
        lines.append(f"| {name} | {part} | {ours * 1e3:8.2f} | {theirs * 1e3:8.2f} | {theirs / ours:5.2f} | "
                     f"{rate:6.1f} | {rate / peak:4.0%} |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(args.threads)
    peak = sgemm_rate()
    print(f"numpy sgemm 2048^3: {peak:.1f} GFLOP/s; torch {torch.__version__ if torch else 'absent'}, "
          f"{args.threads} threads")
    print("| workload | part | layerc ms | torch ms | torch/layerc | GFLOP/s | of sgemm |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, *shape in WORKLOADS:
        if args.only in name:
            steps, flops = conv2d_steps(*shape)
            samples = _interleaved(steps, args.reps, args.rounds)
            print("\n".join(_row(name, samples, flops, peak, "layerc", "torch")), flush=True)
    if args.only in "conv1d":
        steps, flops = conv1d_steps(*CONV1D)
        samples = _interleaved(steps, args.reps, args.rounds)
        print("| (columns: ops.compute ms, Conv1D ms, Conv1D/ops.compute) | | | | | | |")
        print("\n".join(_row("conv1d 64->64 k5 p2 L512 b16, ops.compute vs Conv1D", samples, flops, peak,
                             "ops.compute", "Conv1D")), flush=True)


if __name__ == "__main__":
    main()
