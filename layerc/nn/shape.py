"""Layers that only rearrange: ``Flatten``, and ``Unflatten`` (a reshape on the tape, no kernel)."""
from __future__ import annotations

import functools
import math

import numpy as np

from ..compiler.spec import Input
from ..layers import layer
from ..runtime.module import Module
from ..runtime.tensor import Tensor
from .assemble import assemble
from .base import _DIMS, _MAX_RANK, _is_int, _rank, _Stateless


@layer
class FlattenSpec:
    """``[N, ...] -> [N, prod(...)]``: the ``...`` axes stay collapsed into one,
    and the output is the input as it is, so the runtime hands out a view of the
    input and runs no kernel (``LayerRecord.views``)."""
    x = Input("N", ...)
    collapse_ellipsis = True

    def forward(x):
        return x


@functools.lru_cache(maxsize=None)
def flatten_spec(rank: int, start: int, end: int):
    """Axes ``start..end`` (both counted from 0, ``end`` included) of a rank-``rank``
    input collapsed into one: a reshape, copied by a kernel of its own."""
    dims = _DIMS[:rank]

    def body(t):
        x = t["x"]
        merged = 1
        for size in x.shape[start:end + 1]:
            merged = merged * size
        return x.reshape(*x.shape[:start], merged, *x.shape[end + 1:])
    return assemble(f"Flatten{rank}D_{start}_{end}", {"x": Input(*dims)}, body)


class Flatten(_Stateless):
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)``: axes ``start_dim`` to
    ``end_dim`` (negative: counted from the end) collapsed into one. By default
    ``[N, d1, d2, ...] -> [N, d1*d2*...]``, a view of the input where numpy can
    make one (a C-contiguous input), and ``[N] -> [N, 1]`` (where torch refuses).

    >>> Flatten(0, 1)(np.ones((2, 3, 4), np.float32)).shape
    (6, 4)
    """

    def __init__(self, start_dim=1, end_dim=-1, dtype=None):
        super().__init__(dtype)
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def _select(self, inputs):
        rank = _rank(inputs)
        if (self.start_dim, self.end_dim) == (1, -1) and rank >= 1:
            return FlattenSpec, {}      # [N] too: its empty ... is one axis of size 1, [N, 1]
        start, end = (d + rank if d < 0 else d for d in (self.start_dim, self.end_dim))
        if not (0 <= start < rank and 0 <= end < rank and start <= end):
            raise ValueError(f"Flatten: start_dim={self.start_dim} and end_dim={self.end_dim} must name axes "
                             f"of the input, in order; got an input of rank {rank}")
        if rank > _MAX_RANK:
            raise ValueError(f"Flatten: input rank must be 1..{_MAX_RANK} unless flattening from axis 1 to "
                             f"the last, got {rank}")
        return flatten_spec(rank, start, end), {}

    def extra_repr(self):
        return "" if (self.start_dim, self.end_dim) == (1, -1) else \
            f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """``torch.nn.Unflatten(dim, unflattened_size)``: axis ``dim`` split into
    ``unflattened_size`` (one entry may be -1: what the others leave). A view of
    the input where numpy can make one, as torch's, and no kernel: a reshape on
    the tape, its gradient the gradient reshaped back.

    >>> Unflatten(1, (2, -1))(np.ones((3, 8), np.float32)).shape
    (3, 2, 4)
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)) or not all(_is_int(s) for s in unflattened_size):
            raise ValueError(f"Unflatten: unflattened_size must be a tuple of integers, got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(s) for s in unflattened_size)
        if self.unflattened_size.count(-1) > 1 or any(s < -1 for s in self.unflattened_size):
            raise ValueError(f"Unflatten: unflattened_size takes sizes >= 0 and at most one -1, "
                             f"got {unflattened_size!r}")
        object.__setattr__(self, "_input_shape", None)

    def _shape(self, shape: tuple) -> tuple:
        rank = len(shape)
        axis = self.dim + rank if self.dim < 0 else self.dim
        if not 0 <= axis < rank:
            raise ValueError(f"Unflatten: dim={self.dim} is not an axis of an input of rank {rank}")
        known = math.prod(s for s in self.unflattened_size if s != -1)
        sizes = tuple(shape[axis] // known if s == -1 and known else s for s in self.unflattened_size)
        if math.prod(sizes) != shape[axis] or (-1 in self.unflattened_size and not known):
            raise ValueError(f"Unflatten: unflattened_size {self.unflattened_size} does not split axis {self.dim} "
                             f"of size {shape[axis]}")
        return shape[:axis] + sizes + shape[axis + 1:]

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        object.__setattr__(self, "_input_shape", x.shape)
        return x.reshape(self._shape(x.shape))

    def backward(self, grad_output):
        """The gradient of the latest forward's input: ``grad_output`` reshaped back."""
        g = grad_output.data if isinstance(grad_output, Tensor) else np.asarray(grad_output)
        return Tensor(g.reshape(self._input_shape))

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
