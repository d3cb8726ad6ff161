"""Dropout, as ``torch.nn.Dropout``: in training each element is zeroed with
probability ``p`` and the others scaled by ``1 / (1 - p)``; in eval mode (and
for ``p = 0``) it is the identity.

The mask is drawn in the generated C by a counter-based generator
(Philox-4x32-10, the op ``philox_uniform``, ``templates/philox.c.j2``): each
element's number is a function of the layer's seed, the call's number and the
element's position only, so a mask is the same on any number of threads and any
vector width, and the backward recomputes it from the key the forward was
called with (nothing saved). The seed is drawn from layerc's generator when the
layer is made (``layerc.manual_seed`` makes it reproducible) or given; each
training call takes the next call number.

Example::

    drop = Dropout(0.5, seed=7)
    y = drop(np.ones((4, 8), np.float32))       # zeros and 2.0s, about half each
    drop.eval()
    drop(np.ones((4, 8), np.float32))           # the input itself
"""
from __future__ import annotations

import numbers

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Input
from ..runtime.random import generator
from ..runtime.tensor import Tensor
from .base import _by_rank, _rank, _Stateless

# the generator's arguments are exact integers in float32: 16-bit words
WORD = 1 << 16


def dropout(x, key, columns, p):
    """``x`` with each element kept (scaled by ``1 / (1 - p)``) where its uniform
    number is at least ``p``, else zero. ``key`` is ``[4]``: the seed's low and
    high 16 bits, the call number's low and high 16 bits. An element's counter
    is (its last index, its row: the flat index of the others), each below 2**24
    for an exact count in float32. ``columns`` holds ``0, 1, ...`` along the last
    axis: the innermost loop reads its index as a float instead of converting
    the 64-bit loop index, which has no vector form below AVX-512 and would keep
    the loop scalar (the row is computed once per row, outside it)."""
    dims = x.shape
    scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)

    def value(*index):
        row = 0
        for i, d in zip(index[:-1], dims[:-1]):
            row = row * d + i
        u = ops.elementwise("philox_uniform", key[0], key[1], key[2], key[3], row, columns[index[-1]])
        return x[index] * ops.where(u >= p, scale, 0.0)
    return ops.compute(dims, _BY_RANK[len(dims)](value), name="dropout")


# ``compute`` names its indices after its function's parameters: one function per rank
_BY_RANK = {1: lambda f: lambda a: f(a), 2: lambda f: lambda a, b: f(a, b),
            3: lambda f: lambda a, b, c: f(a, b, c), 4: lambda f: lambda a, b, c, d: f(a, b, c, d),
            5: lambda f: lambda a, b, c, d, e: f(a, b, c, d, e),
            6: lambda f: lambda a, b, c, d, e, g: f(a, b, c, d, e, g)}


def _make(dims):
    class Spec:
        x = Input(*dims)
        key = Input(4, differentiable=False)
        columns = Input(dims[-1], differentiable=False)
        p = Attr(0.5)

        def forward(x, key, columns, p):
            return dropout(x, key, columns, p)
    return Spec


dropout_spec = _by_rank("Dropout", _make)


def dropout_key(seed: int, call: int, dtype) -> np.ndarray:
    """The ``key`` input of ``dropout``: seed and call number as 16-bit words."""
    return np.array([seed % WORD, seed // WORD % WORD, call % WORD, call // WORD % WORD], dtype=dtype)


class Dropout(_Stateless):
    """``torch.nn.Dropout(p=0.5)``: zeroes each element with probability ``p`` in
    training, scales the rest by ``1 / (1 - p)``; the identity in eval mode and at
    ``p = 0``; ``p = 1`` gives ``x * 0``; ``inplace`` is accepted as torch's (the
    output is a new array). ``seed`` (an int, 32 bits, a keyword) fixes the masks;
    by default it is drawn from layerc's generator. Masks follow the seed and the
    number of training calls made so far (``calls``), not the thread count.

    >>> Dropout(0.25, seed=1)(np.ones((2, 3), np.float32)).shape
    (2, 3)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, seed: int | None = None, dtype=None):
        super().__init__(dtype)
        # accepted as torch's: the output is always a new array (see activation._InPlace)
        self.inplace = bool(inplace)
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability between 0 and 1, got {p!r}")
        if seed is None:
            seed = int(generator().integers(0, 1 << 32))
        if not isinstance(seed, numbers.Integral) or not 0 <= seed < 1 << 32:
            raise ValueError(f"Dropout: seed must be an integer in [0, 2**32), got {seed!r}")
        self.p, self.seed, self.calls = float(p), int(seed), 0
        object.__setattr__(self, "_spec_bindings", {"p": self.p})
        object.__setattr__(self, "_identity", False)

    def _select(self, inputs):
        return dropout_spec(_rank(inputs)), {}

    def forward(self, x):
        if not self.training or self.p == 0.0:
            object.__setattr__(self, "_identity", True)
            return x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        object.__setattr__(self, "_identity", False)
        spec, _ = self._select((x,))
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        dtype = data.dtype if data.dtype in (np.float32, np.float64) else self.dtype
        module = self.compiled_module(spec, dtype=dtype)
        object.__setattr__(self, "_active", module)
        key = dropout_key(self.seed, self.calls, dtype)
        self.calls = (self.calls + 1) % (1 << 32)
        return module.forward(x, key, self._columns(data.shape[-1], dtype))

    def _columns(self, size: int, dtype) -> np.ndarray:
        columns = self.__dict__.get("_columns_array")
        if columns is None or columns.shape != (size,) or columns.dtype != dtype:
            columns = np.arange(size, dtype=dtype)
            object.__setattr__(self, "_columns_array", columns)
        return columns

    def backward(self, grad_output):
        """The input's gradient: ``grad_output`` through the latest forward's mask."""
        if self._identity:
            return grad_output if isinstance(grad_output, Tensor) else Tensor(np.asarray(grad_output))
        return super().backward(grad_output)

    def extra_repr(self):
        return f"p={self.p}"
