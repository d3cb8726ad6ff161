"""Parameter initializers, by name (as in a spec's ``Param(init=...)``).

Example::

    >>> w = initialize("xavier", (4, 3), np.float64)
    >>> w.shape
    (4, 3)
"""
from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .random import generator


def fans(shape, fan_in=None, fan_out=None):
    """Fan-in and fan-out as for linear (``[out, in]``) and convolution
    (``[out, in, *kernel]``) weights."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    default_in = shape[1] * receptive if len(shape) > 1 else (shape[0] if shape else 1)
    default_out = shape[0] * receptive if len(shape) > 1 else (shape[0] if shape else 1)
    return fan_in or default_in, fan_out or default_out


# a parameter this large is drawn in chunks of this size, by threads at once (numpy
# fills an array without holding the GIL): a 1024 x 1024 weight takes 10-14 ms in a
# new process here, not 17-28
CHUNK = 1 << 18
PIECE = 1 << 15


def _drawn(shape, rng, fill, dtype):
    """An array of ``shape`` and ``dtype`` filled by ``fill(generator, out)``
    (float64 values, rounded to ``dtype``): at once when small, else chunk by
    chunk from generators seeded by ``rng``, on threads, each rounding its own
    chunk. The values depend on the size and the seed only, not on the threads."""
    size = math.prod(shape)
    out = np.empty(size, dtype)

    def draw(generator, chunk):
        if chunk.dtype == np.float64:
            fill(generator, chunk)
            return
        # drawn piece by piece (the same sequence) into a small float64 array that
        # stays in cache: no large temporary to fault in, no separate rounding pass
        values = np.empty(min(chunk.size, PIECE))
        for start in range(0, chunk.size, PIECE):
            piece = values[:min(PIECE, chunk.size - start)]
            fill(generator, piece)
            chunk[start:start + piece.size] = piece

    if size <= CHUNK:
        draw(rng, out)
        return out.reshape(shape)
    chunks = [out[start:start + CHUNK] for start in range(0, size, CHUNK)]
    seeds = rng.integers(0, 2 ** 63, size=len(chunks))
    with ThreadPoolExecutor(min(len(chunks), os.cpu_count() or 1)) as pool:
        list(pool.map(lambda seed, chunk: draw(np.random.default_rng(seed), chunk), seeds, chunks))
    return out.reshape(shape)


def _normal(std):
    def fill(rng, out):
        rng.standard_normal(out=out)
        out *= std
    return fill


def _uniform(bound):
    def fill(rng, out):
        rng.random(out=out)
        out *= 2 * bound
        out -= bound
    return fill


def _named(init: str, shape, fan_in, fan_out):
    """A constant (zeros, ones: no draw), or the ``fill(generator, out)`` of a
    random initializer."""
    fi, fo = fans(shape, fan_in, fan_out)
    table = {
        "zeros": 0.0,
        "ones": 1.0,
        "normal": _normal(1.0),
        "uniform": _uniform(1.0),
        "xavier": _normal(math.sqrt(2.0 / (fi + fo))),
        "glorot": _normal(math.sqrt(2.0 / (fi + fo))),
        "xavier_uniform": _uniform(math.sqrt(6.0 / (fi + fo))),
        "kaiming": _normal(math.sqrt(2.0 / fi)),
        "he": _normal(math.sqrt(2.0 / fi)),
        "kaiming_uniform": _uniform(math.sqrt(6.0 / fi)),
        # torch.nn's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        "fan_in_uniform": _uniform(1.0 / math.sqrt(fi) if fi else 0.0),
    }
    if init not in table:
        raise ValueError(f"unknown initializer {init!r}; choose one of {', '.join(sorted(table))}, "
                         "a number, or a callable (shape, rng) -> array")
    return table[init]


def initialize(init, shape, dtype, fan_in=None, fan_out=None) -> np.ndarray:
    """A fresh array of ``shape`` and ``dtype`` from an initializer spec."""
    shape = tuple(int(d) for d in shape)
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        return np.full(shape, init, dtype=dtype)
    if isinstance(init, str):
        named = _named(init, shape, fan_in, fan_out)
        if isinstance(named, float):
            return np.full(shape, named, dtype=dtype)
        return _drawn(shape, generator(), named, np.dtype(dtype))
    values = np.asarray(init(shape, generator()), dtype=dtype)
    if values.shape != shape:
        raise ValueError(f"initializer returned shape {values.shape}, expected {shape}")
    return np.ascontiguousarray(values)
