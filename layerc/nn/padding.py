"""Padding of a convolution's input, as torch's ``padding`` and ``padding_mode``:
``padding`` an int, one per spatial axis, ``"valid"`` or ``"same"`` (asymmetric
when the kernel's span ``dilation * (kernel - 1)`` is odd: the extra row goes
after, as torch);
``padding_mode`` ``zeros`` (a read outside the input reads zero: no stage of
its own), or ``reflect``, ``replicate``, ``circular``: a padded copy of the
input. Reflected and replicated, one stage, each element one read of the input
at a mirrored or clamped coordinate; circular, a stage per padded axis, each
element a select between reads shifted by one period.

Example (inside a spec's ``forward``)::

    y = pad(x, ((0, 0), (1, 2)), "reflect")     # [N, C, L] -> [N, C, L + 3]
"""
from __future__ import annotations

from ..compiler import ops
from .base import _is_int

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _reflect(src, size):
    # the mirror at both ends, the edge not repeated: |src| folds the start,
    # last - |last - .| the end (each width is less than the axis)
    last = size - 1
    return last - abs(last - abs(src))


def _replicate(src, size):
    return ops.index_min(ops.index_max(src, 0), size - 1)


# the coordinate of ``x`` that padded position ``src`` (counted from the
# input's start; negative before it) reads: a mirrored copy read at unit stride
# would read backwards, a clamped one the same element again and again
_SOURCES = {"reflect": _reflect, "replicate": _replicate}


def pad(x, pads, mode: str):
    """``x`` padded over its trailing ``len(pads)`` axes by ``pads``, ``(before,
    after)`` per axis, in ``mode`` (not ``zeros``: a zero-padded read needs no copy)."""
    first = len(x.shape) - len(pads)
    if mode == "circular":
        for k, (before, after) in enumerate(pads):
            if before or after:
                x = _wrap_axis(x, first + k, before, after)
        return x
    return _gathered(x, first, pads, _SOURCES[mode], f"pad_{mode}")


def _gathered(x, first: int, pads, source, name: str):
    """One stage whose every element is one read of ``x`` at ``source``'s
    coordinates: a gather, and its gradient sums each border element into the
    input element it copies."""
    shape = list(x.shape)
    for k, (before, after) in enumerate(pads):
        shape[first + k] = shape[first + k] + before + after

    def value(*index):
        coords = list(index[:first])
        for k, (before, after) in enumerate(pads):
            coords.append(source(index[first + k] - before, x.shape[first + k]) if before or after
                          else index[first + k])
        return x[tuple(coords)]
    return ops.compute(tuple(shape), _BY_RANK[len(shape)](value), name=name)


def _wrap_axis(x, axis: int, before: int, after: int):
    """``x`` padded along ``axis`` with its other end: a select between reads
    shifted by one period, each at unit stride (autodiff gathers from them)."""
    shape = list(x.shape)
    size = shape[axis]
    shape[axis] = size + before + after

    def value(*index):
        src = index[axis] - before

        def read(coord):
            return x[tuple(coord if k == axis else i for k, i in enumerate(index))]
        return ops.where(src < 0, read(src + size), ops.where(src >= size, read(src - size), read(src)))
    return ops.compute(tuple(shape), _BY_RANK[len(shape)](value), name="pad_circular")


# ``compute`` names its indices after its function's parameters: one function per rank
_BY_RANK = {1: lambda f: lambda a: f(a),
            2: lambda f: lambda c, a: f(c, a),
            3: lambda f: lambda n, c, a: f(n, c, a),
            4: lambda f: lambda n, c, a, b: f(n, c, a, b),
            5: lambda f: lambda n, c, a, b, d: f(n, c, a, b, d)}


def conv_padding(layer: str, padding, padding_mode: str, kernel: tuple, stride: tuple, dilation: tuple):
    """A convolution's ``padding`` argument as ``(mode, ((before, after), ...))``,
    checked as torch checks it; ValueError names the layer and the argument."""
    rank = len(kernel)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{layer}: padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    if padding == "valid":
        return padding_mode, ((0, 0),) * rank
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"{layer}: padding='same' needs stride 1, got stride={stride}")
        spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return padding_mode, tuple((span // 2, span - span // 2) for span in spans)
    values = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * rank
    if len(values) != rank or not all(_is_int(p) and p >= 0 for p in values):
        raise ValueError(f"{layer}: padding must be an integer >= 0 or {rank} of them, 'valid' or 'same', "
                         f"got {padding!r}")
    return padding_mode, tuple((int(p), int(p)) for p in values)


def check_padded_size(layer: str, mode: str, pads, sizes):
    """torch's limits: a reflection needs fewer padded elements than the axis
    has, a circular padding at most as many."""
    for (before, after), size in zip(pads, sizes):
        limit = size - 1 if mode == "reflect" else size if mode == "circular" else None
        if limit is not None and max(before, after) > limit:
            raise ValueError(f"{layer}: padding {(before, after)} in {mode} mode needs an input size of at least "
                             f"{max(before, after) + (mode == 'reflect')}, got {size}")
