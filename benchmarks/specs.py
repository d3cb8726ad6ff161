"""Layer specs of the benchmark workloads.

Where an example under ``examples/custom_layers/`` defines the same layer, the
spec is imported from the example file (by path, as ``tests/test_examples.py``
does), so the benchmark times what the examples show and there is one copy to
keep right. The specs written here are the ones that differ from the examples
on purpose (each says why) or that have no example."""
from __future__ import annotations

import importlib.util
import pathlib

from layerc import Attr, Input, Param, layer, ops

_EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "custom_layers"


def _example(name: str):
    """Import examples/custom_layers/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"layerc_example_{name}", _EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- from the examples

# PReLU on [N, C, ...] (run here on [N, C]: its variant for an empty ...), one
# alpha per feature: build with C = K = features.
PReLU2D = _example("prelu_activation").PReLUND
# y = x @ weight.T + bias, weight [O, I].
LinearSpec = _example("linear").LinearSpec
# self-attention with q/k/v/out projections (with bias); build with causal=False.
MultiHeadAttentionSpec = _example("attention_layer").MultiHeadAttentionSpec

_depthwise = _example("depthwise_separable_conv")
# the composed block (layerc.nn Conv2D/BatchNorm2D/ReLU) and the one-spec version
DepthwiseSeparableConv = _depthwise.DepthwiseSeparableConv
FusedDepthwiseSeparableConv = _depthwise.FusedDepthwiseSeparableConv
DepthwiseSeparableConvSpec = _depthwise.DepthwiseSeparableConvSpec


def build_depthwise_separable(in_channels, out_channels, kernel_size, padding=0):
    """The composed block with all its kernels compiled (for the build-time
    measurement): the layerc.nn layers compile on first call, so run one tiny
    forward and backward (batch and image sizes are free, nothing recompiles at
    the benchmark's sizes)."""
    import numpy as np
    block = DepthwiseSeparableConv(in_channels, out_channels, kernel_size, padding=padding)
    size = kernel_size + 1
    y = block.forward(np.zeros((2, in_channels, size, size), np.float32))
    block.backward(np.ones(y.shape, np.float32))
    return block


# ---------------------------------------------------------------- the benchmark's own


@layer
class Scaled:
    """Differs from examples/custom_layers/scaled_layer.py on purpose: one scale
    per feature, ``s[C]`` (a broadcast multiply whose gradient is a column sum
    over N), which is what the workload's numpy and torch steps compute; the
    example's ``ScaledLayerSpec`` has one scalar scale (a full reduction)."""
    x = Input("N", "C")
    s = Param("C", init=1.0)

    def forward(x, s):
        return x * s


@layer
class FocalLoss:
    """Differs from examples/custom_layers/focal_loss.py: no ``alpha`` factor,
    gamma fixed at 2 (a square, not a pow of an attribute), targets ``[N, 1]``
    read with ``take_along_axis`` rather than ``[N]`` by a gather; the workload's
    numpy and torch steps compute exactly this."""
    logits = Input("N", "K")
    target = Input("N", 1, dtype="int64")

    def forward(logits, target):
        logp = ops.take_along_axis(ops.log_softmax(logits, axis=-1), target, axis=-1)
        p = ops.exp(logp)
        return ops.mean(-((1 - p) ** 2) * logp)


@layer
class SoftmaxCrossEntropy:
    """No example defines it."""
    logits = Input("N", "K")
    target = Input("N", 1, dtype="int64")

    def forward(logits, target):
        logp = ops.take_along_axis(ops.log_softmax(logits, axis=-1), target, axis=-1)
        return -ops.mean(logp)


@layer
class Conv1DIndexNotation:
    """A 1-D convolution (stride 1, zero padding ``pad``) as a user writes it in
    index notation (docs/spec.md's ``Conv1D``, its weight named as torch's
    ``Conv1d.weight``); the benchmark sets it beside the built-in ``Conv2D``
    with a 1-high kernel on a 1-high input, which computes the same."""
    x = Input("N", "C", "L")
    weight = Param("O", "C", "K", init="fan_in_uniform")
    pad = Attr(0)

    def forward(x, weight, pad):
        N, C, L = x.shape
        O, _, K = weight.shape
        c, k = ops.reduce_axis(C, "c"), ops.reduce_axis(K, "k")
        return ops.compute((N, O, L + 2 * pad - K + 1), lambda n, o, l: ops.sum(
            x[n, c, l + k - pad] * weight[o, c, k], over=(c, k)))


@layer
class Prime:
    """Built before each cold-build timing, so that layerc's one-time cache
    entries exist and the timed build is the layer's own: the C compiler's
    ``--version`` (asked once per compiler binary) and the float32 gemm's
    object file (compiled once for every library that multiplies matrices,
    ~0.6 s of gcc: ``pipeline.gemm_object``)."""
    x = Input("N", 64)
    weight = Param(64, 64, init="normal")

    def forward(x, weight):
        return x @ weight.T


# the built-in LayerNorm and Conv2D as `layerc show benchmarks/specs.py:NAME --perf` reads them
# (benchmarks/RESULTS.md's roofline reports)
from layerc.nn import Conv2DSpec  # noqa: E402
from layerc.nn.norm import layer_norm_spec  # noqa: E402

LayerNorm = layer_norm_spec(1)
