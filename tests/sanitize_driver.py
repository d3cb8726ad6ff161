"""Run forward and backward of layer specs built with AddressSanitizer/UBSan.

Started by tests/test_codegen_safety.py in a process with the ASan runtime
preloaded; prints one JSON line: ``{"ran": [...], "skipped": {...}}``.
Usage: ``python tests/sanitize_driver.py [--own]`` (``--own``: only the specs here).
"""
from __future__ import annotations

import importlib
import json
import pathlib
import sys

import numpy as np

from layerc import Attr, Input, LayerSpec, Param, layer, ops
from layerc.compiler.cc import BuildOptions
from layerc.nn import conv1d, conv2d
from layers import Dense, PReLU

REPO = pathlib.Path(__file__).resolve().parents[1]


@layer
class Conv2dStride2Pad1:
    x = Input("N", "CI", "H", "W")
    w = Param("CO", "CI", "K", "K", init="normal")
    stride = Attr(2)
    pad = Attr(1)

    def forward(x, w, stride, pad):
        N, CI, H, W = x.shape
        CO, _, K, _ = w.shape
        ci, i, j = ops.reduce_axis(CI, "ci"), ops.reduce_axis(K, "i"), ops.reduce_axis(K, "j")
        HO, WO = (H + 2 * pad - K) // stride + 1, (W + 2 * pad - K) // stride + 1
        return ops.compute((N, CO, HO, WO), lambda n, co, h, v: ops.sum(
            x[n, ci, h * stride + i - pad, v * stride + j - pad] * w[co, ci, i, j], over=(ci, i, j)))


@layer
class GroupedPatchConv:
    """Channels past the GEMM threshold: packed patches, col2im at stride 2, groups as digits."""
    x = Input("N", 16, "H", "W")
    w = Param(16, 8, 3, 3, init="normal")

    def forward(x, w):
        return conv2d(x, w, None, stride=2, padding=1, groups=2)


@layer
class ShiftedConv2D:
    """Stride 1: the input, the output gradient and the weight gradient's taps
    read as shifted views of padded copies (compiler/shifted.py)."""
    x = Input("N", 16, "H", "W")
    w = Param(12, 16, 3, 3, init="normal")

    def forward(x, w):
        return conv2d(x, w, None, padding=1)


@layer
class PatchConv1D:
    x = Input("N", 9, "L")
    w = Param(10, 9, 5, init="normal")
    b = Param(10, init="normal")

    def forward(x, w, b):
        return conv1d(x, w, b, padding=2, dilation=2)


@layer
class SoftmaxCrossEntropy:
    logits = Input("N", "K")
    target = Input("N", "One", dtype="int64")

    def forward(logits, target):
        logp = ops.take_along_axis(ops.log_softmax(logits, axis=-1), target, axis=-1)
        return -ops.mean(logp)


@layer
class Norm:
    x = Input("N", "C")
    gamma = Param("C", init=1.5)

    def forward(x, gamma):
        mu = ops.mean(x, axis=-1, keepdims=True)
        var = ops.mean((x - mu) ** 2, axis=-1, keepdims=True)
        return (x - mu) / ops.sqrt(var + 1e-5) * gamma + ops.max(x, axis=-1, keepdims=True)


OWN = [PReLU, Dense, Conv2dStride2Pad1, GroupedPatchConv, ShiftedConv2D, PatchConv1D, SoftmaxCrossEntropy, Norm]


def discovered() -> list:
    """Layer specs defined by layerc.nn, the benchmarks and the examples."""
    specs = []
    modules = ["layerc.nn", "benchmarks.specs"]
    modules += [f"examples.custom_layers.{p.stem}" for p in sorted((REPO / "examples" / "custom_layers").glob("*.py"))
                if not p.name.startswith("_")]
    sys.path.insert(0, str(REPO))
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception:          # an example that needs what this machine lacks
            continue
        specs += [(f"{name}.{k}", v) for k, v in vars(module).items() if isinstance(v, LayerSpec)]
    return specs


# sizes: odd, not multiples of the vector width; batch 1 and 3; spatial sizes fit kernels
CANDIDATES = [dict(default=5, K=3), dict(default=6, K=3), dict(default=4, K=2), dict(default=8, K=3), dict(default=5, K=1)]


def run(spec: LayerSpec, batch: int, candidate: dict, rng) -> None:
    param_sizes = {d for _, t in spec.tensors if t.role in ("param", "buffer") for d in t.shape if isinstance(d, str)}
    value = {s: candidate.get(s, candidate["default"]) for s in spec.sizes}
    # sizes named like a batch run at 1 and 3; a size read only by inputs is free at run time
    for s in ("N", "B"):
        if s in value:
            value[s] = batch
    for s in ("One",):
        if s in value:
            value[s] = 1
    m = spec.build(options=BuildOptions(sanitize=True), dtype="float64",
                   **{s: v for s, v in value.items() if s in param_sizes})
    inputs = []
    for name, t in spec.tensors:
        if t.role not in ("input", "data", "index"):
            continue
        shape = tuple(d if isinstance(d, int) else value[d] for d in t.shape)
        if t.role == "index":
            # in range for every size >= 3, plus one out of range (reads zero, never memory)
            inputs.append(rng.integers(-1, 3, shape))
        else:
            inputs.append(rng.standard_normal(shape))
    # batch 3 writes every output a kernel can stream through its tiles
    m.set_stream_bytes(1 if batch == 3 else 0)
    y = m.forward(*inputs)
    outs = y if isinstance(y, tuple) else (y,)
    m.backward(*(np.ones(o.shape) for o in outs))
    m.set_stream_bytes(0)


def main() -> None:
    rng = np.random.default_rng(0)
    ran, skipped = [], {}
    specs = [(s.name, s) for s in OWN] + ([] if "--own" in sys.argv else discovered())
    for label, spec in specs:
        for batch in (1, 3):
            errors = []
            for candidate in CANDIDATES:
                try:
                    run(spec, batch, candidate, rng)
                    ran.append(f"{label}[N={batch}]")
                    break
                except Exception as exc:      # sizes this spec does not accept
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                skipped[f"{label}[N={batch}]"] = errors[0]
    print(json.dumps({"ran": ran, "skipped": skipped}))


if __name__ == "__main__":
    main()
