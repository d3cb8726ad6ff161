"""Convolutions: ``conv`` (a spec function in index notation), ``Conv1D`` and ``Conv2D``."""
from __future__ import annotations

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Input, Param
from ..layers import layer
from ..runtime.init import initialize
from ..runtime.tensor import Tensor
from .base import SpecLayer, _counts, _grouped_channels, _tuple
from .padding import check_padded_size, conv_padding, pad


@layer
class Conv1DSpec:
    """1-D convolution (cross-correlation, as torch) in index notation::

        y[n, o, w] = bias[o] + sum_{c, j} x[n, g(o)*CG + c, w*s + j*d - p] * weight[o, c, j]

    with ``g(o)`` the group of output channel ``o``; reads outside the
    sequence are zero (the padding). See ``conv``. ``build(bias=False)`` drops the bias."""
    x = Input("N", "C", "L")
    weight = Param("O", "CG", "K", init="fan_in_uniform")
    bias = Param("O", init="zeros", optional=True)
    stride = Attr((1,))
    padding = Attr((0,))
    dilation = Attr((1,))
    groups = Attr(1)

    def forward(x, weight, bias, stride, padding, dilation, groups):
        return conv(x, weight, bias, stride, padding, dilation, groups)


@layer
class Conv2DSpec:
    """2-D convolution (cross-correlation, as torch) in index notation::

        y[n, o, h, w] = bias[o] + sum_{c, i, j} x[n, g(o)*CG + c, h*sh + i*dh - ph, w*sw + j*dw - pw]
                                                * weight[o, c, i, j]

    with ``g(o)`` the group of output channel ``o``. Reads outside the image are
    zero (the padding). Grouped convolutions compute ``[N, G, O/G, Ho, Wo]`` so
    that every read is affine, then merge the two channel axes. ``build(bias=False)``
    drops the bias."""
    x = Input("N", "C", "H", "W")
    weight = Param("O", "CG", "KH", "KW", init="fan_in_uniform")
    bias = Param("O", init="zeros", optional=True)
    stride = Attr((1, 1))
    padding = Attr((0, 0))
    dilation = Attr((1, 1))
    groups = Attr(1)

    def forward(x, weight, bias, stride, padding, dilation, groups):
        return conv(x, weight, bias, stride, padding, dilation, groups)


# ``compute`` names its indices after its function's parameters: one function
# per number of spatial axes, dense ([N, O, ...]) and grouped ([N, G, O/G, ...])
_DENSE = {1: lambda f: lambda n, o, w: f(n, o, (w,)),
          2: lambda f: lambda n, o, h, w: f(n, o, (h, w))}
_GROUPED = {1: lambda f: lambda n, g, og, w: f(n, g, og, (w,)),
            2: lambda f: lambda n, g, og, h, w: f(n, g, og, (h, w))}


def conv(x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
    """The convolution over the trailing 1 or 2 axes of ``x`` (``[N, C, L]``
    or ``[N, C, H, W]``) as a spec function, callable from any spec's
    ``forward``; ``weight`` is ``[O, C/groups, *kernel]``, ``bias`` ``[O]`` or None."""
    rank = len(x.shape) - 2
    x, pads = _padded(x, padding, rank)
    N, _, *size = x.shape
    O, CG, *kernel = weight.shape
    stride, dilation = (_tuple(v, rank) for v in (stride, dilation))
    padding = [before for before, _ in pads]
    out = [(n + before + after - d * (k - 1) - 1) // s + 1
           for n, k, s, (before, after), d in zip(size, kernel, stride, pads, dilation)]
    c = ops.reduce_axis(CG, "c")
    taps = [ops.reduce_axis(k, name) for k, name in zip(kernel, ("i", "j")[-rank:])]

    def window(n, channel, o, at):
        coords = [a * s + t * d - p for a, t, s, d, p in zip(at, taps, stride, dilation, padding)]
        return ops.sum(x[(n, channel, *coords)] * weight[(o, c, *taps)], over=(c, *taps))

    def with_bias(o, value):
        return value if bias is None else bias[o] + value

    OG = int(O) // groups
    if groups == 1 or OG == 1:
        # dense, or one output channel per group (depthwise): channel o reads
        # x's o*CG + c, affine, so no group axis and no reshape (which kept
        # the bias's sum out of a depthwise convolution's loops: a pass more)
        return ops.compute((N, O, *out), _DENSE[rank](lambda n, o, at: with_bias(
            o, window(n, c if groups == 1 else o * CG + c, o, at))), name="conv")
    y = ops.compute((N, groups, OG, *out), _GROUPED[rank](lambda n, g, og, at: with_bias(
        g * OG + og, window(n, g * CG + c, g * OG + og, at))), name="gconv")
    return y.reshape(N, O, *out)


conv1d = conv2d = conv


def _padded(x, padding, rank: int):
    """The input to convolve and its zero padding, ``(before, after)`` per axis:
    ``padding`` is an int, ``rank`` ints, or ``(mode, pairs)`` (``conv_padding``'s);
    a mode other than ``zeros`` pads ``x`` itself (``padding.pad``)."""
    if isinstance(padding, (tuple, list)) and padding and isinstance(padding[0], str):
        mode, pairs = padding
        if mode != "zeros":
            return pad(x, pairs, mode), ((0, 0),) * rank
        return x, tuple(pairs)
    return x, tuple((p, p) for p in _tuple(padding, rank))


class _Conv(SpecLayer):
    """``torch.nn.Conv1d``/``Conv2d``-compatible convolution (the subclasses
    set the spatial rank, the spec and the kernel's size names)."""

    RANK, SPEC, KERNEL, SPATIAL = 0, None, (), ()

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(dtype)
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = _grouped_channels(name, in_channels, out_channels,
                                                                             groups)
        self.kernel_size = _counts(name, "kernel_size", kernel_size, rank=self.RANK)
        self.stride = _counts(name, "stride", stride, rank=self.RANK)
        self.dilation = _counts(name, "dilation", dilation, rank=self.RANK)
        self.padding_mode, pads = conv_padding(name, padding, padding_mode, self.kernel_size, self.stride,
                                               self.dilation)
        # torch's: "same" stays a string; otherwise one int per axis
        self.padding = padding if isinstance(padding, str) else tuple(before for before, _ in pads)
        # the spec's padding: ints while zero-padded and symmetric (one build for both spellings)
        spec_padding = self.padding if self.padding_mode == "zeros" and not isinstance(padding, str) \
            else (self.padding_mode, pads)
        self.has_bias = bool(bias)
        self._declare(self.SPEC, bias=self.has_bias, C=self.in_channels, O=self.out_channels,
                      CG=self.in_channels // self.groups, **dict(zip(self.KERNEL, self.kernel_size)),
                      stride=self.stride, padding=spec_padding, dilation=self.dilation, groups=self.groups)
        if bias:
            fan_in = self.in_channels // self.groups * int(np.prod(self.kernel_size))
            self.bias.data[...] = initialize("uniform", (self.out_channels,), np.float64) / np.sqrt(fan_in)

    def _select(self, inputs):
        if not inputs or self.padding_mode == "zeros":
            return self.SPEC, {}
        sizes = np.shape(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0])[2:]
        check_padded_size(type(self).__name__, *self._spec_bindings["padding"], sizes)
        # a padded copy built per input size: its mirrored, clamped or wrapped reads
        # turn at constant places, each stretch a loop of its own (Conv2D 32->32
        # reflect at [16,32,27,27]: forward + backward 8% faster)
        return self.SPEC, self._per_size(dict(zip(self.SPATIAL, sizes)))

    def extra_repr(self):
        mode = f", padding_mode={self.padding_mode!r}" if self.padding_mode != "zeros" else ""
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, dilation={self.dilation}, groups={self.groups}, bias={self.has_bias}"
                + mode)


class Conv1D(_Conv):
    """``torch.nn.Conv1d``-compatible 1-D convolution on ``[N, C, L]``;
    ``weight`` is ``[out, in/groups, k]``. Batch and length stay free at run time
    (with a ``padding_mode`` other than zeros, its first 8 lengths build per size).

    >>> Conv1D(4, 8, 3, padding=1)(np.ones((2, 4, 10), np.float32)).shape
    (2, 8, 10)
    """

    RANK, SPEC, KERNEL, SPATIAL = 1, Conv1DSpec, ("K",), ("L",)


class Conv2D(_Conv):
    """``torch.nn.Conv2d``-compatible 2-D convolution on ``[N, C, H, W]``;
    ``weight`` is ``[out, in/groups, kh, kw]``, ``groups=in_channels`` is depthwise.
    Batch and image sizes stay free at run time (with a ``padding_mode`` other
    than zeros, its first 8 image sizes build per size)."""

    RANK, SPEC, KERNEL, SPATIAL = 2, Conv2DSpec, ("KH", "KW"), ("H", "W")
