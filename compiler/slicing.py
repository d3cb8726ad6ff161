"""The layout ops that join, reverse and pad tensors: ``pad``, ``flip``,
``roll``, ``concatenate``, ``stack`` (slicing itself, ``x[:, 1:3]``, is
``compiler/indexing.py``).

Each lowers to stages of the core IR that read their sources at affine
coordinates (``start + step*i``), choosing between pieces with selects where a
coordinate map is piecewise (a reflection, a wrap, the pieces of a
concatenation). Autodiff needs no rule of its own: it solves each affine read
for the source coordinate and gathers, so every gradient here is race-free.

Example (inside a spec's ``forward``)::

    z = ops.concatenate([x, ops.flip(x, axis=1)], axis=1)
    p = ops.pad(x, ((0, 0), (2, 2)), mode="reflect")   # numpy's pad widths
"""
from __future__ import annotations

import numpy as np

from . import ir
from .ir import Call, Const, IConst, IndexValue, Load, format_iexpr
from .indexing import layout_stage, shape_str
from .trace import TensorExpr, current_builder, normalize_axes, reshape


def _less(a, bound):
    return Call("lt", (IndexValue(ir.as_iexpr(a)), IndexValue(ir.as_iexpr(bound))))


def _read_at(x: TensorExpr, out: list, axis: int, coordinate) -> Load:
    """``x`` read at the output's coordinates, but for ``coordinate`` along ``axis``."""
    index = list(out[:x.ndim])
    index[axis] = ir.as_iexpr(coordinate)
    return Load(x.name, tuple(index))


# ---------------------------------------------------------------- flip and roll


def flip(x: TensorExpr, axis=None) -> TensorExpr:
    """``x`` reversed along ``axis`` (an int, several, or None for every axis), as ``numpy.flip``."""
    axes = normalize_axes(x, axis, "flip")

    def body(out):
        index = [ir.isub(ir.isub(d, 1), v) if k in axes else v for k, (v, d) in enumerate(zip(out, x._shape))]
        return Load(x.name, tuple(index))
    return layout_stage(x, "flip", x._shape, body)


def roll(x: TensorExpr, shift, axis=None) -> TensorExpr:
    """``x`` shifted cyclically by ``shift`` along ``axis``, as ``numpy.roll``:
    ``shift`` and ``axis`` may be ints or sequences of them; with ``axis=None``
    the flattened tensor is rolled."""
    if axis is None:
        flat = reshape(x, (-1,))
        return reshape(roll(flat, shift, 0), x._shape)
    shifts, axes = np.broadcast_arrays(np.asarray(shift, dtype=object), np.asarray(axis, dtype=object))
    total: dict = {}
    for s, a in zip(shifts.reshape(-1), axes.reshape(-1)):
        a = normalize_axes(x, int(a), "roll")[0]
        total[a] = total.get(a, 0) + int(s)
    for a, s in sorted(total.items()):
        x = _roll_axis(x, a, s)
    return x


def _roll_axis(x: TensorExpr, axis: int, shift: int) -> TensorExpr:
    """``y[i] = x[i - s]`` for ``i >= s``, else ``x[i - s + size]`` (``s = shift mod size``)."""
    size = x._shape[axis]
    s = IConst(shift % size.value) if isinstance(size, IConst) else ir.imod(IConst(shift), size)
    if s == IConst(0):
        return x

    def body(out):
        i = out[axis]
        wrapped = _read_at(x, out, axis, ir.iadd(ir.isub(i, s), size))
        return Call("select", (_less(i, s), wrapped, _read_at(x, out, axis, ir.isub(i, s))))
    return layout_stage(x, "roll", x._shape, body)


# ---------------------------------------------------------------- concatenate and stack


def concatenate(tensors, axis: int = 0) -> TensorExpr:
    """The tensors joined along an existing ``axis``, as ``numpy.concatenate``.
    Each output element reads one piece: a chain of selects on its position
    along ``axis`` (the other pieces' reads are skipped by their range guards)."""
    tensors = _joined("concatenate", tensors)
    first = tensors[0]
    if first.ndim == 0:
        raise first.builder.error("concatenate: the tensors have rank 0; use ops.stack")
    axis = normalize_axes(first, axis, "concatenate")[0]
    _same_shapes("concatenate", tensors, skip=axis)
    pieces = [t for t in tensors if t._shape[axis] != IConst(0)] or tensors[:1]
    if len(pieces) == 1:
        return pieces[0]
    ends, total = [], IConst(0)
    for t in pieces:
        total = ir.iadd(total, t._shape[axis])
        ends.append(total)
    shape = first._shape[:axis] + (total,) + first._shape[axis + 1:]

    def body(out):
        starts = [IConst(0)] + ends[:-1]
        reads = [_read_at(t, out, axis, ir.isub(out[axis], start)) for t, start in zip(pieces, starts)]
        chosen = reads[-1]
        for read, end in zip(reversed(reads[:-1]), reversed(ends[:-1])):
            chosen = Call("select", (_less(out[axis], end), read, chosen))
        return chosen
    return layout_stage(first, "concat", shape, body)


def stack(tensors, axis: int = 0) -> TensorExpr:
    """The tensors (of one shape) joined along a new ``axis``, as ``numpy.stack``."""
    tensors = _joined("stack", tensors)
    first = tensors[0]
    _same_shapes("stack", tensors)
    if not -first.ndim - 1 <= axis <= first.ndim:
        raise first.builder.error(f"stack: axis {axis} is out of range for tensors of rank {first.ndim}")
    axis %= first.ndim + 1
    shape = first._shape[:axis] + (IConst(1),) + first._shape[axis:]
    return concatenate([reshape(t, shape) for t in tensors], axis)


def _joined(what: str, tensors) -> list:
    b = current_builder()
    if isinstance(tensors, TensorExpr) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise b.error(f"{what}: give a non-empty list of tensors, e.g. ops.{what}([a, b], axis=1)")
    for t in tensors:
        if not isinstance(t, TensorExpr):
            raise b.error(f"{what}: {t!r} is not a tensor")
        if t.integer:
            raise b.error(f"{what}: {t.name} is an integer (index) tensor; it can only be used to index")
    return list(tensors)


def _same_shapes(what: str, tensors: list, skip: int | None = None):
    first = tensors[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(k != skip and d != e for k, (d, e) in enumerate(zip(t._shape, first._shape))):
            along = "" if skip is None else f" but along axis {skip}"
            raise first.builder.error(f"{what}: {t.name}{shape_str(t._shape)} and {first.name}"
                                      f"{shape_str(first._shape)} must have the same shape{along}")


# ---------------------------------------------------------------- pad


def pad(x: TensorExpr, pad_width, mode: str = "constant", value: float = 0.0) -> TensorExpr:
    """``x`` padded as ``numpy.pad``: ``pad_width`` is numpy's (an int for
    every side, a ``(before, after)`` pair for every axis, or one pair per
    axis). ``mode`` is "constant" (``value``), "reflect" (mirrored without
    the edge, as numpy's and torch's; each width must be less than its axis)
    or "replicate" (the edge repeated: numpy's "edge")."""
    b = x.builder
    if mode not in PAD_MODES:
        raise b.error(f"pad: mode={mode!r}; it is one of {', '.join(sorted(PAD_MODES))}")
    if mode != "constant" and value != 0.0:
        raise b.error(f"pad: value={value!r} is for mode='constant', not {mode!r}")
    widths = _pad_widths(x, pad_width)
    if not any(before or after for before, after in widths):
        return x
    return PAD_MODES[mode](x, widths, value)


def _pad_widths(x: TensorExpr, pad_width) -> list:
    """numpy's pad widths, broadcast to one ``(before, after)`` pair of ints per axis."""
    b = x.builder
    try:
        array = np.asarray(pad_width)
        if array.dtype.kind not in "iu":
            raise ValueError("not integers")
        pairs = np.broadcast_to(array, (x.ndim, 2))
    except ValueError:
        raise b.error(f"pad: pad_width={pad_width!r} for {x.name}{shape_str(x._shape)}; give an int, a "
                      f"(before, after) pair, or {x.ndim} such pairs (numpy's pad widths)") from None
    if (pairs < 0).any():
        raise b.error(f"pad: pad_width={pad_width!r} has a negative width")
    return [(int(before), int(after)) for before, after in pairs]


def _pad_constant(x: TensorExpr, widths: list, value: float) -> TensorExpr:
    shape = tuple(ir.iadd(d, before + after) for d, (before, after) in zip(x._shape, widths))

    def body(out):
        read = Load(x.name, tuple(ir.isub(v, before) for v, (before, _) in zip(out, widths)))
        if value == 0.0:
            return read      # a read outside the tensor is zero
        inside = None
        for v, d, (before, after) in zip(out, x._shape, widths):
            if before or after:
                cond = Call("mul", (Call("ge", (IndexValue(v), Const(float(before)))),
                                    _less(v, ir.iadd(d, before))))
                inside = cond if inside is None else Call("mul", (inside, cond))
        return Call("select", (inside, read, Const(float(value))))
    return layout_stage(x, "pad", shape, body)


def _pad_replicate(x: TensorExpr, widths: list, value: float) -> TensorExpr:
    for axis, (before, after) in enumerate(widths):
        if before or after:
            x = _pad_axis(x, axis, before, after, _replicated)
    return x


def _pad_reflect(x: TensorExpr, widths: list, value: float) -> TensorExpr:
    for axis, (before, after) in enumerate(widths):
        if not (before or after):
            continue
        size = x._shape[axis]
        if not isinstance(size, IConst) or max(before, after) >= size.value:
            raise x.builder.error(
                f"pad: mode='reflect' pads {x.name}{shape_str(x._shape)} along axis {axis} by "
                f"({before}, {after}); each width must be less than the axis size {format_iexpr(size)}"
                + ("" if isinstance(size, IConst) else ", which must be bound at build time"))
        x = _pad_axis(x, axis, before, after, _reflected)
    return x


def _replicated(x: TensorExpr, axis: int, before: int):
    """The reads before and after ``x`` along ``axis``: its first and last
    slices, taken as stages of their own so the gradient sums into them along
    the axis once (not once per element of ``x``)."""
    size = x._shape[axis]
    first, last = _edge(x, axis, IConst(0)), _edge(x, axis, ir.isub(size, 1))
    return (lambda out: _read_at(first, out, axis, IConst(0)),
            lambda out: _read_at(last, out, axis, IConst(0)))


def _reflected(x: TensorExpr, axis: int, before: int):
    """The mirrored reads: ``x[before - i]`` and ``x[2*(size - 1) + before - i]``."""
    size = x._shape[axis]
    return (lambda out: _read_at(x, out, axis, ir.isub(IConst(before), out[axis])),
            lambda out: _read_at(x, out, axis, ir.isub(ir.iadd(ir.imul(2, ir.isub(size, 1)), before), out[axis])))


def _edge(x: TensorExpr, axis: int, coordinate) -> TensorExpr:
    shape = x._shape[:axis] + (IConst(1),) + x._shape[axis + 1:]
    return layout_stage(x, "edge", shape, lambda out: _read_at(x, out, axis, coordinate))


def _pad_axis(x: TensorExpr, axis: int, before: int, after: int, sides) -> TensorExpr:
    """``x`` padded along one axis: the reads ``sides`` gives before and after it."""
    size = x._shape[axis]
    read_before, read_after = sides(x, axis, before)
    shape = x._shape[:axis] + (ir.iadd(size, before + after),) + x._shape[axis + 1:]

    def body(out):
        i = out[axis]
        chosen = _read_at(x, out, axis, ir.isub(i, before))
        if after:
            chosen = Call("select", (_less(i, ir.iadd(size, before)), chosen, read_after(out)))
        if before:
            chosen = Call("select", (_less(i, before), read_before(out), chosen))
        return chosen
    return layout_stage(x, "pad", shape, body)


PAD_MODES = {"constant": _pad_constant, "reflect": _pad_reflect, "replicate": _pad_replicate}


__all__ = ["pad", "flip", "roll", "concatenate", "stack"]
