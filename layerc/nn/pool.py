"""Pooling: ``MaxPool2D``, ``AvgPool2D`` (padding, dilation, ceil_mode,
count_include_pad, divisor_override, as torch), ``AdaptiveAvgPool2D`` and
``AdaptiveMaxPool2D``, with their spec functions."""
from __future__ import annotations

import math

from ..compiler import ops
from ..compiler.spec import Attr, Input
from ..layers import layer
from ..runtime.tensor import Tensor
from .base import _count, _counts, _pair, _rank, _Stateless


def pooled_size(size, k, s, p, d=1, ceil_mode=False):
    """torch's output length of a pooling window: with ``ceil_mode`` the last
    window may hang over the end, but must start inside the input or its left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-int(span) // s) + 1           # the size is bound (an int) under ceil_mode
    return out - 1 if (out - 1) * s >= int(size) + p else out


def _window(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Output shape, reduction indices and ``at(h, w) -> (rows, cols, inside)``:
    the window's input coordinates and whether they lie in the image (None when
    every window does: no padding, no ceil_mode)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(v) for v in (kernel_size, stride, padding, dilation))
    shape = (N, C, pooled_size(H, kh, sh, ph, dh, ceil_mode), pooled_size(W, kw, sw, pw, dw, ceil_mode))
    i, j = ops.reduce_axis(kh, "i"), ops.reduce_axis(kw, "j")
    padded = ceil_mode or ph or pw

    def at(h, w):
        r, c = h * sh + i * dh - ph, w * sw + j * dw - pw
        inside = (r >= 0) * (r < H) * (c >= 0) * (c < W) if padded else None
        return r, c, inside
    return shape, (i, j), at


def max_pool2d(x, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """Max over windows; padding reads -inf (never the maximum), as torch's."""
    shape, over, at = _window(x, kernel_size, stride, padding, dilation, ceil_mode)

    def value(n, c, h, w):
        r, col, inside = at(h, w)
        v = x[n, c, r, col]
        return ops.max(v if inside is None else ops.where(inside, v, -math.inf), over=over)
    return ops.compute(shape, value, name="maxpool")


def avg_pool2d(x, kernel_size, stride, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over windows (zero padding); the divisor as torch's ``avg_pool2d``."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = (_pair(v) for v in (kernel_size, stride, padding))
    shape, over, at = _window(x, kernel_size, stride, padding, 1, ceil_mode)

    def count(o, s, p, k, size):
        # torch: the window clipped to the padded input, then (unless
        # count_include_pad) to the input itself
        start = o * s - p
        end = ops.minimum(start + k, size + p)
        if count_include_pad:
            return end - start
        return ops.minimum(end, size) - ops.maximum(start, 0)

    def scale(h, w):
        if divisor_override:
            return 1.0 / divisor_override
        if count_include_pad and not ceil_mode:
            return 1.0 / (kh * kw)         # every window lies inside the padded input
        return 1.0 / (count(h, sh, ph, kh, H) * count(w, sw, pw, kw, W))

    # scaled inside the sum: one pass over the window, not a second over the output
    return ops.compute(shape, lambda n, c, h, w: ops.sum(
        x[n, c, at(h, w)[0], at(h, w)[1]] * scale(h, w), over=over), name="avgpool")


def adaptive_windows(size: int, out: int) -> tuple:
    """torch's adaptive windows of ``size`` cut into ``out``: window ``o`` is
    ``[floor(o*size/out), ceil((o+1)*size/out))``; their largest length."""
    return max(-(-(o + 1) * size // out) - o * size // out for o in range(out))


def _adaptive(x, output_size, kind):
    """Adaptive pooling over bound input sizes: a plain pool when the windows
    tile the input, else windows of the largest length. A mean's are masked
    past each one's end; a maximum's read the window's last row (column)
    again there instead: a repeated element changes no maximum, nor which
    element is the first maximal (its copy comes later in row-major order),
    and the reads stay inside the input with no test (``min`` with the
    window's end bounds each coordinate: the loops load unconditionally)."""
    N, C, H, W = x.shape
    (oh, ow), (H, W) = output_size, (int(H), int(W))
    if H % oh == 0 and W % ow == 0:
        k = (H // oh, W // ow)
        return max_pool2d(x, k, k) if kind == "max" else avg_pool2d(x, k, k)
    i, j = ops.reduce_axis(adaptive_windows(H, oh), "i"), ops.reduce_axis(adaptive_windows(W, ow), "j")

    def bounds(o, size, out):
        return (o * size) // out, ((o + 1) * size + out - 1) // out

    def value(n, c, h, w):
        (r0, r1), (c0, c1) = bounds(h, H, oh), bounds(w, W, ow)
        if kind == "max":
            return ops.max(x[n, c, ops.index_min(r0 + i, r1 - 1), ops.index_min(c0 + j, c1 - 1)], over=(i, j))
        inside = (i < r1 - r0) * (j < c1 - c0)
        return ops.sum(ops.where(inside, x[n, c, r0 + i, c0 + j], 0.0) / ((r1 - r0) * (c1 - c0)), over=(i, j))
    return ops.compute((N, C, oh, ow), value, name=f"adaptive{kind}")


def adaptive_avg_pool2d(x, output_size):
    return _adaptive(x, _pair(output_size), "avg")


def adaptive_max_pool2d(x, output_size):
    return _adaptive(x, _pair(output_size), "max")


@layer
class MaxPool2DSpec:
    """Max over ``kernel_size`` windows; the gradient goes to the first maximal
    element of each window (row-major), or its first NaN."""
    x = Input("N", "C", "H", "W")
    kernel_size = Attr((2, 2))
    stride = Attr((2, 2))
    padding = Attr((0, 0))
    dilation = Attr((1, 1))
    ceil_mode = Attr(False)

    def forward(x, kernel_size, stride, padding, dilation, ceil_mode):
        return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)


@layer
class AvgPool2DSpec:
    """Mean over ``kernel_size`` windows."""
    x = Input("N", "C", "H", "W")
    kernel_size = Attr((2, 2))
    stride = Attr((2, 2))
    padding = Attr((0, 0))
    ceil_mode = Attr(False)
    count_include_pad = Attr(True)
    divisor_override = Attr(0)

    def forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@layer
class AdaptiveAvgPool2DSpec:
    """Mean over torch's adaptive windows (H and W bound: one build per input size)."""
    x = Input("N", "C", "H", "W")
    output_size = Attr((1, 1))

    def forward(x, output_size):
        return adaptive_avg_pool2d(x, output_size)


@layer
class AdaptiveMaxPool2DSpec:
    """Max over torch's adaptive windows (H and W bound: one build per input size)."""
    x = Input("N", "C", "H", "W")
    output_size = Attr((1, 1))

    def forward(x, output_size):
        return adaptive_max_pool2d(x, output_size)


def _image(layer, inputs):
    if _rank(inputs) != 4:
        raise ValueError(f"{type(layer).__name__}: input must be [N, C, H, W], got rank {_rank(inputs)}")
    x = inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0]
    return x.shape


class _Pool2D(_Stateless):
    _spec = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, dtype=None):
        super().__init__(dtype)
        name = type(self).__name__
        self.kernel_size = _counts(name, "kernel_size", kernel_size)
        self.stride = _counts(name, "stride", stride) if stride is not None else self.kernel_size
        self.padding = _counts(name, "padding", padding, least=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel_size "
                             f"{self.kernel_size}")
        self.ceil_mode = bool(ceil_mode)
        object.__setattr__(self, "_spec_bindings", {"kernel_size": self.kernel_size, "stride": self.stride,
                                                    "padding": self.padding, "ceil_mode": self.ceil_mode})

    def _select(self, inputs):
        _, _, H, W = _image(self, inputs)
        sizes = zip((H, W), self.kernel_size, self.stride, self.padding, self._dilation())
        if any(pooled_size(n, k, s, p, d, self.ceil_mode) < 1 for n, k, s, p, d in sizes):
            raise ValueError(f"{type(self).__name__}: input [N, C, {H}, {W}] is smaller than the window "
                             f"({self.extra_repr()})")
        # ceil_mode's last window depends on the size itself: built per input size
        return type(self)._spec, ({"H": H, "W": W} if self.ceil_mode else {})

    def _dilation(self):
        return (1, 1)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxPool2D(_Pool2D):
    """``torch.nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1,
    ceil_mode=False)`` (stride defaults to the kernel size; padding reads -inf).

    >>> MaxPool2D(3, stride=2, padding=1)(np.ones((1, 2, 7, 7), np.float32)).shape
    (1, 2, 4, 4)
    """
    _spec = MaxPool2DSpec

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, dtype=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, dtype)
        self.dilation = _counts(type(self).__name__, "dilation", dilation)
        self._spec_bindings["dilation"] = self.dilation

    def _dilation(self):
        return self.dilation

    def extra_repr(self):
        return super().extra_repr() + f", dilation={self.dilation}"


class AvgPool2D(_Pool2D):
    """``torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, divisor_override=None)`` (stride defaults to the kernel size).

    >>> AvgPool2D(2, count_include_pad=False, padding=1)(np.ones((1, 1, 3, 3), np.float32)).numpy()[0, 0]
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    """
    _spec = AvgPool2DSpec

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, dtype=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, dtype)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = (0 if divisor_override is None else
                                 _count(type(self).__name__, "divisor_override", divisor_override))
        self._spec_bindings.update(count_include_pad=self.count_include_pad,
                                   divisor_override=self.divisor_override)

    def extra_repr(self):
        return (super().extra_repr() + f", count_include_pad={self.count_include_pad}"
                + (f", divisor_override={self.divisor_override}" if self.divisor_override else ""))


class _AdaptivePool2D(_Stateless):
    _spec = None

    def __init__(self, output_size, dtype=None):
        super().__init__(dtype)
        self.output_size = _counts(type(self).__name__, "output_size", output_size)
        object.__setattr__(self, "_spec_bindings", {"output_size": self.output_size})

    def _select(self, inputs):
        _, _, H, W = _image(self, inputs)
        if H < 1 or W < 1:
            raise ValueError(f"{type(self).__name__}: input [N, C, {H}, {W}] is empty")
        return type(self)._spec, {"H": H, "W": W}

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2D(_AdaptivePool2D):
    """``torch.nn.AdaptiveAvgPool2d(output_size)``: the mean over window ``i``
    of rows ``[floor(i*H/out), ceil((i+1)*H/out))`` (and so for columns).
    Compiled once per input size (H, W); ``AdaptiveAvgPool2D(1)`` is global pooling.

    >>> AdaptiveAvgPool2D(1)(np.ones((2, 3, 5, 7), np.float32)).shape
    (2, 3, 1, 1)
    """
    _spec = AdaptiveAvgPool2DSpec


class AdaptiveMaxPool2D(_AdaptivePool2D):
    """``torch.nn.AdaptiveMaxPool2d(output_size)`` (no ``return_indices``); windows as
    ``AdaptiveAvgPool2D``'s, the gradient to each window's first maximum."""
    _spec = AdaptiveMaxPool2DSpec
