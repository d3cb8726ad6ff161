"""Basic indexing of traced tensors (``x[:, 1:3]``, ``x[..., ::-1]``,
``x[0]``, ``x[None]``) and the layout ops that cut, join and pad tensors:
``pad``, ``flip``, ``roll``, ``concatenate``, ``stack``.

Each lowers to stages of the core IR that read their sources at affine
coordinates (``start + step*i``), choosing between pieces with selects where a
coordinate map is piecewise (a reflection, a wrap, the pieces of a
concatenation). Autodiff needs no rule of its own: it solves each affine read
for the source coordinate and gathers, so every gradient here is race-free.

Example (inside a spec's ``forward``)::

    y = x[:, 1:-1:2]                                   # a strided slice
    z = ops.concatenate([x, ops.flip(x, axis=1)], axis=1)
    p = ops.pad(x, ((0, 0), (2, 2)), mode="reflect")   # numpy's pad widths
"""
from __future__ import annotations

import numbers

import numpy as np

from . import ir
from .ir import Axis, Call, Const, IConst, IndexValue, IVar, Load, Stage, format_iexpr
from .trace import Index, TensorExpr, current_builder, normalize_axes, reshape, shape_str


def _is_index_key(k) -> bool:
    return isinstance(k, (slice, type(None), type(Ellipsis)))


def _integer_like(k) -> bool:
    if isinstance(k, Index):
        return not ir.ivars(k.expr)
    return isinstance(k, numbers.Integral) and not isinstance(k, bool)


def is_basic_indexing(key: tuple, rank: int) -> bool:
    """Whether ``x[key]`` is numpy's basic indexing (a tensor) rather than an
    element read of index notation, which takes an index expression or an
    integer for every axis (``x[n, c, h*s + i]``, ``w[0, 1]``). Keys neither
    takes (a list, a tensor) go to basic indexing, which says what it takes."""
    if not all(isinstance(k, Index) or _integer_like(k) for k in key):
        return True
    return len(key) < rank and all(_integer_like(k) for k in key)


def _layout_stage(x: TensorExpr, hint: str, shape, body_of) -> TensorExpr:
    """A stage over ``shape`` whose body ``body_of(out)`` builds from the output's index variables."""
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    out = [IVar(a.name) for a in axes]
    b = x.builder
    return b.add_stage(Stage(b.fresh(hint), tuple(shape), axes, body_of(out)))


def _less(a, bound):
    return Call("lt", (IndexValue(ir.as_iexpr(a)), IndexValue(ir.as_iexpr(bound))))


def _read_at(x: TensorExpr, out: list, axis: int, coordinate) -> Load:
    """``x`` read at the output's coordinates, but for ``coordinate`` along ``axis``."""
    index = list(out[:x.ndim])
    index[axis] = ir.as_iexpr(coordinate)
    return Load(x.name, tuple(index))


# ---------------------------------------------------------------- basic indexing


def basic_index(x: TensorExpr, key: tuple) -> TensorExpr:
    """``x[key]`` with numpy's basic indexing: slices (bounds clip as numpy's;
    any nonzero step), integers (which drop their axis), ``...`` and ``None``.
    An empty result is a SpecError."""
    b = x.builder
    if x.integer:
        raise b.error(f"{x.name} is an integer (index) tensor: it can index, but cannot be sliced")
    shape, coordinates = [], []      # coordinates: of x, as functions of the output position
    axis = 0
    entries = _expanded(x, key)
    for entry in entries:
        if entry is None:
            shape.append(IConst(1))
            continue
        if isinstance(entry, slice):
            start, step, extent = _slice_bounds(x, axis, entry)
            out = len(shape)
            shape.append(extent)
            coordinates.append(lambda v, start=start, step=step, out=out: ir.iadd(start, ir.imul(step, v[out])))
        else:
            coordinates.append(lambda v, c=_integer_coordinate(x, axis, entry): c)
        axis += 1
    if all(isinstance(e, slice) and e == slice(None) for e in entries):
        return x      # x[:] and x[...] are x
    return _layout_stage(x, "slice", shape, lambda v: Load(x.name, tuple(c(v) for c in coordinates)))


def _expanded(x: TensorExpr, key: tuple) -> list:
    """``key`` with ``...`` (or the axes left out at the end) spelled as ``:``."""
    b = x.builder
    for k in key:
        if not (_is_index_key(k) or _integer_like(k)):
            raise b.error(_unsupported_key(x, k))
    if sum(1 for k in key if k is Ellipsis) > 1:
        raise b.error(f"{x.name}{shape_str(x._shape)} indexed with more than one '...'")
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > x.ndim:
        raise b.error(f"{x.name}{shape_str(x._shape)} has rank {x.ndim} but is indexed with {consumed} indices")
    fill = [slice(None)] * (x.ndim - consumed)
    if Ellipsis not in key:
        return list(key) + fill
    at = key.index(Ellipsis)
    return list(key[:at]) + fill + list(key[at + 1:])


def _unsupported_key(x: TensorExpr, k) -> str:
    what = f"{x.name}{shape_str(x._shape)} indexed with {k!r}"
    if isinstance(k, TensorExpr):
        return f"{what}: to read along an axis at integer indices use ops.take_along_axis"
    if isinstance(k, Index):
        return f"{what}: index-notation indices and slices do not mix; use ops.compute"
    return f"{what}: layerc takes slices, integers, '...' and None (numpy's basic indexing)"


def _bound(x: TensorExpr, k, what: str):
    """A slice bound or step as an int (or None)."""
    if k is None or (isinstance(k, numbers.Integral) and not isinstance(k, bool)):
        return k
    if isinstance(k, Index) and isinstance(k.expr, IConst):
        return k.expr.value
    raise x.builder.error(f"{x.name}{shape_str(x._shape)}: the slice {what} {k!r} is not a number "
                          "at build time; bind the sizes it depends on")


def _slice_text(s: slice) -> str:
    parts = ["" if v is None else repr(v) for v in (s.start, s.stop)]
    return ":".join(parts) + ("" if s.step is None else f":{s.step!r}")


def _slice_bounds(x: TensorExpr, axis: int, s: slice) -> tuple:
    """``(start, step, extent)`` of a slice of ``x`` along ``axis``, its bounds
    clipped into the axis as numpy's are."""
    size, b = x._shape[axis], x.builder
    step = _bound(x, s.step, "step")
    step = 1 if step is None else step
    where = f"{x.name}{shape_str(x._shape)}[{_slice_text(s)}] along axis {axis}"
    if step == 0:
        raise b.error(f"{where}: the slice step is 0")
    stop = None if isinstance(s.stop, Index) and s.stop.expr == size and step > 0 else s.stop
    start, stop = _bound(x, s.start, "start") if s.start is not None else None, _bound(x, stop, "stop")
    if not isinstance(size, IConst):
        if start is not None or stop is not None:
            raise b.error(f"{where}: the size {format_iexpr(size)} is free at build time, so only ':' "
                          f"and '::step' slice it; bind it (build({format_iexpr(size)}=...)) to slice {_slice_text(s)}")
        first = IConst(0) if step > 0 else ir.isub(size, 1)
        return first, step, ir.ifloordiv(ir.iadd(size, abs(step) - 1), abs(step))
    picked = range(*slice(start, stop, step).indices(size.value))
    if not picked:
        raise b.error(f"{where}: the slice is empty (axis size {size.value}); layerc tensors are never empty")
    return IConst(picked.start), step, IConst(len(picked))


def _integer_coordinate(x: TensorExpr, axis: int, k):
    """An integer index along ``axis`` (negative from the end), range-checked where the size is bound."""
    size = x._shape[axis]
    k = k.expr if isinstance(k, Index) else IConst(int(k))
    if not isinstance(k, IConst):
        return k
    if isinstance(size, IConst):
        if not -size.value <= k.value < size.value:
            raise x.builder.error(f"{x.name}{shape_str(x._shape)}: index {k.value} is out of range "
                                  f"for axis {axis} of size {size.value}")
        return IConst(k.value % size.value)
    return ir.iadd(size, k.value) if k.value < 0 else k


# ---------------------------------------------------------------- flip and roll


def flip(x: TensorExpr, axis=None) -> TensorExpr:
    """``x`` reversed along ``axis`` (an int, several, or None for every axis), as ``numpy.flip``."""
    axes = normalize_axes(x, axis, "flip")

    def body(out):
        index = [ir.isub(ir.isub(d, 1), v) if k in axes else v for k, (v, d) in enumerate(zip(out, x._shape))]
        return Load(x.name, tuple(index))
    return _layout_stage(x, "flip", x._shape, body)


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
    return _layout_stage(x, "roll", x._shape, body)


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
    return _layout_stage(first, "concat", shape, body)


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
    return _layout_stage(x, "pad", shape, body)


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
    return _layout_stage(x, "edge", shape, lambda out: _read_at(x, out, axis, coordinate))


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
    return _layout_stage(x, "pad", shape, body)


PAD_MODES = {"constant": _pad_constant, "reflect": _pad_reflect, "replicate": _pad_replicate}


__all__ = ["basic_index", "is_basic_indexing", "pad", "flip", "roll", "concatenate", "stack"]
