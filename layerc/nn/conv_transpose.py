"""Transposed convolutions: ``conv_transpose`` (a spec function in index
notation), ``ConvTranspose1D`` and ``ConvTranspose2D``, torch's arguments and
weight layout ``[in, out/groups, *kernel]``.

The forward is the gather form of a convolution's input gradient: each output
element sums the input elements whose window covers it,

    y[n, o, h] = bias[o] + sum_{c, i} x[n, c, (h + p - i*d) / s] * weight[c, o, i]
                           where s divides h + p - i*d,

so every output element is owned by one loop iteration. Autodiff derives a
backward from it, but reads through ``(h + p - i*d) / s`` differentiate as
scatters; the spec's own backward says what they are, convolutions (the
input's gradient a strided convolution, the weight's a convolution's weight
gradient), which run as GEMMs over patches. Tests check it against the
derived backward (``checked=True``) and finite differences.
"""
from __future__ import annotations

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Input, Param
from ..layers import layer
from ..runtime.init import initialize
from .base import SpecLayer, _counts, _grouped_channels, _tuple
from .conv import conv


def transposed_size(size, k, s, p, d, output_padding):
    """torch's output length of a transposed convolution."""
    return (size - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


# ``compute`` names its indices after its function's parameters: one function
# per number of spatial axes, of the grouped output [N, G, O/G, ...] and of the
# grouped weight gradient [G, C/G, O/G, *kernel]
_GROUPED = {1: lambda f: lambda n, g, og, w: f(n, g, og, (w,)),
            2: lambda f: lambda n, g, og, h, w: f(n, g, og, (h, w))}
_KERNEL = {1: lambda f: lambda g, c, og, i: f(g, c, og, (i,)),
           2: lambda f: lambda g, c, og, i, j: f(g, c, og, (i, j))}
_COPY = {3: lambda y: lambda n, c, w: y[n, c, w], 4: lambda y: lambda n, c, h, w: y[n, c, h, w]}


def conv_transpose(x, weight, bias, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transposed convolution over the trailing 1 or 2 axes of ``x``;
    ``weight`` is ``[C, O/groups, *kernel]``, ``bias`` ``[O]`` or None."""
    rank = len(x.shape) - 2
    N, C, *size = x.shape
    _, OG, *kernel = weight.shape
    stride, padding, output_padding, dilation = (_tuple(v, rank) for v in
                                                 (stride, padding, output_padding, dilation))
    out = [transposed_size(n, k, s, p, d, q)
           for n, k, s, p, d, q in zip(size, kernel, stride, padding, dilation, output_padding)]
    CG = int(C) // groups
    c = ops.reduce_axis(CG, "c")
    taps = [ops.reduce_axis(k, name) for k, name in zip(kernel, ("i", "j")[-rank:])]

    def value(n, g, og, at):
        sources = [a + p - t * d for a, t, p, d in zip(at, taps, padding, dilation)]
        term = x[(n, g * CG + c, *(src // s for src, s in zip(sources, stride)))] * weight[(g * CG + c, og, *taps)]
        # only the taps whose input position is a whole number of strides away
        for src, s in zip(sources, stride):
            if s > 1:
                term = ops.where(ops.equal(src % s, 0), term, 0.0)
        total = ops.sum(term, over=(c, *taps))
        return total if bias is None else bias[g * OG + og] + total

    y = ops.compute((N, groups, OG, *out), _GROUPED[rank](value), name="convT")
    return y.reshape(N, int(OG) * groups, *out)


def conv_transpose_grads(grad_output, x, weight, stride, padding, dilation, groups) -> dict:
    """The gradients of ``conv_transpose`` as convolutions: the input's is the
    convolution of the output's gradient with the same weight (``[C, O/groups,
    *kernel]`` is a convolution weight from O to C channels), the weight's the
    convolution's weight gradient with the roles of input and output swapped."""
    rank = len(x.shape) - 2
    N, C, *size = x.shape
    _, OG, *kernel = weight.shape
    stride, padding, dilation = (_tuple(v, rank) for v in (stride, padding, dilation))
    grad_x = conv(grad_output, weight, None, stride, padding, dilation, groups)
    # ((H - 1) * s + output_padding) // s + 1 rows: H itself, written as x's size
    grad_x = ops.compute(x.shape, _COPY[rank + 2](grad_x), name="convT_grad_x")
    CG = int(C) // groups
    n = ops.reduce_axis(N, "n")
    rows = [ops.reduce_axis(d, name) for d, name in zip(size, ("a", "b")[-rank:])]

    def value(g, c, og, at):
        reads = [r * s + t * d - p for r, t, s, d, p in zip(rows, at, stride, dilation, padding)]
        return ops.sum(x[(n, g * CG + c, *rows)] * grad_output[(n, g * int(OG) + og, *reads)], over=(n, *rows))
    grad_weight = ops.compute((groups, CG, OG, *kernel), _KERNEL[rank](value), name="convT_grad_weight")
    return {"x": grad_x, "weight": grad_weight.reshape(C, OG, *kernel)}


def _spec(rank: int, with_bias: bool):
    """The spec of a transposed convolution of ``rank`` spatial axes."""
    spatial = ("L",) if rank == 1 else ("H", "W")
    kernel = ("K",) if rank == 1 else ("KH", "KW")

    class Spec:
        x = Input("N", "C", *spatial)
        weight = Param("C", "OG", *kernel, init="fan_in_uniform")
        if with_bias:
            bias = Param("O", init="zeros")
        stride = Attr((1,) * rank)
        padding = Attr((0,) * rank)
        output_padding = Attr((0,) * rank)
        dilation = Attr((1,) * rank)
        groups = Attr(1)

        if with_bias:
            def forward(x, weight, bias, stride, padding, output_padding, dilation, groups):
                return conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation)

            def backward(grad_output, x, weight, stride, padding, dilation, groups):
                grads = conv_transpose_grads(grad_output, x, weight, stride, padding, dilation, groups)
                return {**grads, "bias": ops.sum(grad_output, axis=(0, *range(2, rank + 2)))}
        else:
            def forward(x, weight, stride, padding, output_padding, dilation, groups):
                return conv_transpose(x, weight, None, stride, padding, output_padding, groups, dilation)

            def backward(grad_output, x, weight, stride, padding, dilation, groups):
                return conv_transpose_grads(grad_output, x, weight, stride, padding, dilation, groups)

    Spec.__name__ = Spec.__qualname__ = f"ConvTranspose{rank}D{'' if with_bias else 'NoBias'}Spec"
    Spec.__doc__ = f"{rank}-D transposed convolution in index notation (see ``conv_transpose``)."
    return layer(Spec)


ConvTranspose1DSpec, ConvTranspose1DNoBiasSpec = _spec(1, True), _spec(1, False)
ConvTranspose2DSpec, ConvTranspose2DNoBiasSpec = _spec(2, True), _spec(2, False)


class _ConvTranspose(SpecLayer):
    """``torch.nn.ConvTranspose1d``/``ConvTranspose2d``-compatible (the subclasses
    set the spatial rank, the specs and the kernel's size names)."""

    RANK, SPECS, KERNEL = 0, (None, None), ()

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, dtype=np.float32):
        super().__init__(dtype)
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = _grouped_channels(name, in_channels, out_channels,
                                                                             groups)
        self.kernel_size = _counts(name, "kernel_size", kernel_size, rank=self.RANK)
        self.stride = _counts(name, "stride", stride, rank=self.RANK)
        self.padding = _counts(name, "padding", padding, least=0, rank=self.RANK)
        self.output_padding = _counts(name, "output_padding", output_padding, least=0, rank=self.RANK)
        self.dilation = _counts(name, "dilation", dilation, rank=self.RANK)
        if any(q >= max(s, d) for q, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller than stride "
                             f"{self.stride} or dilation {self.dilation}")
        self.has_bias = bool(bias)
        self._declare(self._select(())[0], C=self.in_channels, O=self.out_channels,
                      OG=self.out_channels // self.groups, **dict(zip(self.KERNEL, self.kernel_size)),
                      stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                      dilation=self.dilation, groups=self.groups)
        if bias:
            fan_in = self.out_channels // self.groups * int(np.prod(self.kernel_size))
            self.bias.data[...] = initialize("uniform", (self.out_channels,), np.float64) / np.sqrt(fan_in)

    def _select(self, inputs):
        return self.SPECS[0 if self.has_bias else 1], {}

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}, groups={self.groups}, "
                f"bias={self.has_bias}, dilation={self.dilation}")


class ConvTranspose1D(_ConvTranspose):
    """``torch.nn.ConvTranspose1d``-compatible on ``[N, C, L]``; ``weight`` is
    ``[in, out/groups, k]``.

    >>> ConvTranspose1D(4, 2, 3, stride=2)(np.ones((1, 4, 5), np.float32)).shape
    (1, 2, 11)
    """

    RANK, SPECS, KERNEL = 1, (ConvTranspose1DSpec, ConvTranspose1DNoBiasSpec), ("K",)


class ConvTranspose2D(_ConvTranspose):
    """``torch.nn.ConvTranspose2d``-compatible on ``[N, C, H, W]``; ``weight`` is
    ``[in, out/groups, kh, kw]``. Output size ``(H - 1) * stride - 2 * padding +
    dilation * (kernel - 1) + output_padding + 1``; batch and image sizes stay free.

    >>> ConvTranspose2D(8, 4, 4, stride=2, padding=1)(np.ones((2, 8, 5, 5), np.float32)).shape
    (2, 4, 10, 10)
    """

    RANK, SPECS, KERNEL = 2, (ConvTranspose2DSpec, ConvTranspose2DNoBiasSpec), ("KH", "KW")
