"""Checks on every array before it reaches compiled code.

Nothing reaches C unless it has the module's dtype in native byte order, is
C-contiguous and aligned (other layouts are copied, never reinterpreted), has
the declared rank, and agrees with every other argument on each symbolic size.

Example::

    >>> sizes = {}
    >>> a = check_array("PReLU", "x", np.zeros((2, 3), np.float32), ("N", 3), np.float32, sizes)
    >>> sizes
    {'N': 2}
"""
from __future__ import annotations

import numpy as np

from .record import describe, evaluate

# elements above this would overflow 64-bit index arithmetic: the kernels'
# int64 element offsets and the byte offsets (8 bytes an element) derived from them
MAX_ELEMENTS = 2 ** 60


def check_array(layer: str, arg: str, value, shape: tuple, dtype, sizes: dict, integer: bool = False,
                cast: bool = False) -> np.ndarray:
    """Return ``value`` as an array fit for C, binding free sizes into ``sizes``.

    Raises ``TypeError`` for a wrong dtype (unless ``cast``) and ``ValueError``
    for a wrong rank or size, naming the layer, the argument and both shapes."""
    from .tensor import Tensor
    if isinstance(value, Tensor):
        value = value.data
    want = np.dtype(np.int64) if integer else np.dtype(dtype)
    if isinstance(value, np.generic):
        value = np.asarray(value)       # a numpy scalar keeps its dtype: checked like an array
    if not isinstance(value, np.ndarray):
        if not isinstance(value, (list, tuple, int, float)) or isinstance(value, bool):
            raise TypeError(f"{layer}: argument {arg} must be a numpy array or Tensor, got {type(value).__name__}")
        # Python numbers carry no precision of their own: they take the module's dtype.
        # Anything else in the list (strings, None, objects) is refused, never parsed.
        array = np.asarray(value)
        if array.dtype.kind not in ("iu" if integer else "iuf"):
            raise TypeError(f"{layer}: argument {arg} must hold {'integers' if integer else 'numbers'}, "
                            f"got a {type(value).__name__} of {array.dtype}")
        value = array.astype(want)
    if value.dtype.kind == "u" and integer and value.size and value.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{layer}: argument {arg} holds indices beyond the int64 range")
    if value.dtype != want:
        lossless = integer and value.dtype.kind in "iu" and value.dtype.isnative
        if not (cast or lossless) or value.dtype.kind not in "iuf":
            raise TypeError(f"{layer}: argument {arg} has dtype {value.dtype.str} ({value.dtype}), expected "
                            f"{want} in native byte order" + ("" if integer else
                            "; convert it (x.astype(np.%s)) or build the layer for that dtype" % want.name))
        value = value.astype(want)
    if value.ndim != len(shape):
        raise ValueError(f"{layer}: argument {arg} has shape {value.shape} (rank {value.ndim}), "
                         f"expected rank {len(shape)}: {describe(shape, sizes)}")
    for axis, (d, actual) in enumerate(zip(shape, value.shape)):
        if isinstance(d, str) and d not in sizes:
            sizes[d] = int(actual)
            continue
        try:
            expected = evaluate(d, sizes)
        except KeyError:
            continue
        if expected != actual:
            raise ValueError(f"{layer}: argument {arg} has shape {value.shape}, expected {describe(shape, sizes)} "
                             f"(axis {axis} is {actual}, expected {expected})")
    if value.size > MAX_ELEMENTS:
        raise ValueError(f"{layer}: argument {arg} has {value.size} elements, more than 64-bit indexing allows")
    if not (value.flags.c_contiguous and value.flags.aligned):
        value = np.array(value, order="C", copy=True)   # a documented copy, never a reinterpretation
    return value


def check_output(layer: str, arg: str, out, shape: tuple, dtype, inputs) -> np.ndarray:
    """A caller-supplied output buffer: exact shape and dtype, C-contiguous,
    writable, and not overlapping any input."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{layer}: out= for {arg} must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.dtype(dtype):
        raise TypeError(f"{layer}: out= for {arg} has dtype {out.dtype.str} ({out.dtype}), "
                        f"expected {np.dtype(dtype)} in native byte order")
    if out.shape != tuple(shape):
        raise ValueError(f"{layer}: out= for {arg} has shape {out.shape}, expected {tuple(shape)}")
    if not (out.flags.c_contiguous and out.flags.writeable and out.flags.aligned):
        raise ValueError(f"{layer}: out= for {arg} must be C-contiguous, aligned and writable")
    for name, a in inputs:
        if np.shares_memory(out, a):
            raise ValueError(f"{layer}: out= for {arg} overlaps the input {name}")
    return out


def check_total_size(layer: str, name: str, shape: tuple) -> None:
    if any(int(d) < 0 for d in shape):
        raise ValueError(f"{layer}: {name} would have shape {shape}, with a negative size: "
                         "the inputs are too small for this layer (e.g. smaller than a kernel)")
    total = 1
    for d in shape:
        total *= int(d)
    if total > MAX_ELEMENTS:
        raise ValueError(f"{layer}: {name} would have shape {shape} ({total} elements), "
                         f"more than the {MAX_ELEMENTS} that 64-bit index arithmetic allows")


def _inside(values: np.ndarray, low: int, high: int) -> bool:
    """Whether every value lies in ``[low, high)``; from 0, one reduction: seen as
    unsigned, a negative value is above every index."""
    if low == 0 and values.dtype.kind == "i":
        return bool(values.view(values.dtype.str.replace("i", "u", 1)).max() < high)
    return bool(values.min() >= low and values.max() < high)


def check_indices(layer: str, ranges: tuple, arrays: dict, sizes: dict) -> None:
    """Every integer input read as an index lies in its range (``LayerRecord.index_ranges``):
    else an ``IndexError`` naming the layer, the input, the first bad position and its value.
    One or two reductions per input; a read out of range would give zero, a plausible wrong result."""
    for name, offset, extent in ranges:
        values = arrays[name]
        if values.size == 0:
            continue
        low, high = -offset, evaluate(extent, sizes) - offset
        if _inside(values, low, high):
            continue
        bad = np.flatnonzero((values < low) | (values >= high))[0]
        position = tuple(int(i) for i in np.unravel_index(bad, values.shape))
        raise IndexError(f"{layer}: {name}{list(position)} = {values.reshape(-1)[bad]} is out of range: "
                         f"{name} indexes {high - low} entries, so its values must lie in [{low}, {high})")
