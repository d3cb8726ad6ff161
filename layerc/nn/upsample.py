"""``Upsample`` (torch.nn.Upsample, nearest) and ``UpsamplingNearest2d``: each
output element the input element at ``floor(dst * in / out)`` of every spatial
axis, on ``[N, C, L]`` or ``[N, C, H, W]``. One spec per input rank, input size
and output size. The gradient sums each output's gradient into the element it
copied.

Example::

    y = Upsample(scale_factor=2)(np.ones((2, 3, 4, 5), np.float32))    # [2, 3, 8, 10]
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from ..compiler import ops
from ..compiler.spec import Input
from .assemble import assemble
from .base import _is_int, _rank, _Stateless
from .padding import _BY_RANK

MODES = ("nearest",)


def upsample_nearest(x, sizes: tuple):
    """``x`` ``[N, C, *in]`` resized to ``[N, C, *sizes]`` by nearest neighbour:
    output position ``d`` of an axis reads position ``(d * in) // out``
    (torch's ``floor(d * in / out)``, in exact integer arithmetic, the ratio in
    lowest terms)."""
    n, c, *spatial = x.shape
    # in lowest terms: an integer scale reads d // s, whose gradient gathers s
    # outputs an element, where (d * 63) // 126 left it a scatter (a 2x upsample
    # of width 63 ran 0.45x torch's time)
    ratios = [(int(size) // math.gcd(int(size), out), out // math.gcd(int(size), out))
              for size, out in zip(spatial, sizes)]

    def element(*index):
        sources = [(d * a) // b if a != 1 else d // b for d, (a, b) in zip(index[2:], ratios)]
        return x[(index[0], index[1], *sources)]
    return ops.compute((n, c, *sizes), _BY_RANK[2 + len(sizes)](element), name="upsample_nearest")


@functools.lru_cache(maxsize=None)
def upsample_spec(sizes_in: tuple, sizes_out: tuple):
    """The nearest-neighbour spec from spatial sizes ``sizes_in`` to ``sizes_out``."""
    spatial = ("H", "W")[-len(sizes_in):] if len(sizes_in) <= 2 else None
    declared = {"x": Input("N", "C", *spatial)}
    tag = "_".join(map(str, sizes_in + sizes_out))
    return assemble(f"UpsampleNearest{len(sizes_in)}D_{tag}", declared,
                    lambda t: upsample_nearest(t["x"], sizes_out))


class Upsample(_Stateless):
    """``torch.nn.Upsample(size=None, scale_factor=None, mode="nearest")`` on
    ``[N, C, L]`` or ``[N, C, H, W]``: ``size`` (an int, or one per spatial axis)
    or an integer ``scale_factor`` (one, or one per axis) sets the output's
    spatial sizes; mode ``"nearest"`` (the others raise ValueError). Compiled once
    per input size.

    >>> Upsample(scale_factor=2)(np.arange(2, dtype=np.float32).reshape(1, 1, 2)).numpy()
    array([[[0., 0., 1., 1.]]], dtype=float32)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, dtype=None):
        super().__init__(dtype)
        name = type(self).__name__
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size and scale_factor")
        if align_corners is not None:
            raise ValueError(f"{name}: align_corners only applies to the interpolating modes, not {mode!r}")
        values = size if size is not None else scale_factor
        values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
        wanted = "positive integers" if size is not None else "positive whole numbers"
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 and float(v).is_integer()
                   for v in values):
            raise ValueError(f"{name}: {'size' if size is not None else 'scale_factor'} must be {wanted}, "
                             f"got {values if len(values) > 1 else values[0]!r}")
        if size is not None and not all(_is_int(v) for v in values):
            raise ValueError(f"{name}: size must be positive integers, got {size!r}")
        self.size = tuple(int(v) for v in values) if size is not None else None
        self.scale_factor = tuple(int(v) for v in values) if scale_factor is not None else None
        self.mode = mode

    def _select(self, inputs):
        rank, name = _rank(inputs), type(self).__name__
        if rank not in (3, 4):
            raise ValueError(f"{name}: input must be [N, C, L] or [N, C, H, W], got rank {rank}")
        spatial = tuple(int(v) for v in np.shape(getattr(inputs[0], "data", inputs[0]))[2:])
        given = self.size if self.size is not None else self.scale_factor
        if len(given) not in (1, len(spatial)):
            raise ValueError(f"{name}: {'size' if self.size else 'scale_factor'} has {len(given)} values for "
                             f"{len(spatial)} spatial axes")
        given = given * len(spatial) if len(given) == 1 else given
        sizes = given if self.size is not None else tuple(s * f for s, f in zip(spatial, given))
        if math.prod(spatial) == 0:
            raise ValueError(f"{name}: input has an empty spatial axis, shape {spatial}")
        # the input's sizes bound: the source's ratio is reduced at build time
        return upsample_spec(spatial, sizes), dict(zip(("H", "W")[-len(spatial):], spatial))

    def extra_repr(self):
        given = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{given}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``torch.nn.UpsamplingNearest2d(size=None, scale_factor=None)``: ``Upsample``
    in mode ``"nearest"`` on ``[N, C, H, W]``."""

    def __init__(self, size=None, scale_factor=None, dtype=None):
        super().__init__(size, scale_factor, "nearest", dtype=dtype)
