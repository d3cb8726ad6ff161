"""numpy's basic indexing of traced tensors: ``x[:, 1:3]``, ``x[..., ::-1]``,
``x[0]``, ``x[None]``. ``TensorExpr.__getitem__`` (``compiler/trace.py``)
comes here when a key is not an element read of index notation; this module
imports nothing of the tracer, which imports it.

A key comes in with each ``Index`` already its index expression. A slice
becomes a read at ``start + step*i`` (bounds clipped into the axis, as
numpy's), an integer a fixed coordinate (its axis dropped), ``None`` a new
axis of size 1: one stage, whose gradient autodiff gathers.

Example::

    >>> from layerc.compiler.trace import Builder
    >>> from layerc.compiler.ir import ISym, format_stage
    >>> b = Builder("Demo")
    >>> with b.active():
    ...     x = b.declare("x", (ISym("N"), IConst(6)), "input")
    ...     y = x[:, 5:0:-2]
    >>> print(format_stage(b.stages[-1]))
    slice_0[i0, i1] = x[i0, -2 * i1 + 5]
"""
from __future__ import annotations

import numbers

from . import ir
from .ir import Axis, IConst, IVar, Load, Stage, format_iexpr


def shape_str(shape) -> str:
    return "(" + ", ".join(format_iexpr(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def layout_stage(x, hint: str, shape, body_of):
    """A stage over ``shape`` whose body ``body_of(out)`` builds from the
    output's index variables, added by ``x``'s builder (a traced tensor)."""
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    out = [IVar(a.name) for a in axes]
    b = x.builder
    return b.add_stage(Stage(b.fresh(hint), tuple(shape), axes, body_of(out)))


# an Index of the tracer arrives as its expression
IEXPR = (ir.IConst, ir.IVar, ir.ISym, ir.IBin, ir.ILoad)


def _is_index_key(k) -> bool:
    return isinstance(k, (slice, type(None), type(Ellipsis)))


def _integer_like(k) -> bool:
    """An int, or an index expression without loop indices (a size)."""
    if isinstance(k, IEXPR):
        return not ir.ivars(k)
    return isinstance(k, numbers.Integral) and not isinstance(k, bool)


def _text(k) -> str:
    return format_iexpr(k) if isinstance(k, IEXPR) else repr(k)


def is_basic_indexing(key: tuple, rank: int) -> bool:
    """Whether ``x[key]`` is numpy's basic indexing (a tensor) rather than an
    element read of index notation, which takes an index expression or an
    integer for every axis (``x[n, c, h*s + i]``, ``w[0, 1]``). Keys neither
    takes (a list, a float) go to basic indexing, which says what it takes."""
    if not all(isinstance(k, IEXPR) or _integer_like(k) for k in key):
        return True
    return len(key) < rank and all(_integer_like(k) for k in key)


def basic_index(x, key: tuple):
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
    return layout_stage(x, "slice", shape, lambda v: Load(x.name, tuple(c(v) for c in coordinates)))


def _expanded(x, key: tuple) -> list:
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


def _unsupported_key(x, k) -> str:
    what = f"{x.name}{shape_str(x._shape)} indexed with {_text(k)}"
    if isinstance(k, IEXPR):
        return f"{what}: index-notation indices and slices do not mix; use ops.compute"
    return f"{what}: layerc takes slices, integers, '...' and None (numpy's basic indexing)"


def _bound(x, k, what: str):
    """A slice bound or step as an int (or None)."""
    if k is None or (isinstance(k, numbers.Integral) and not isinstance(k, bool)):
        return k
    if isinstance(k, IConst):
        return k.value
    raise x.builder.error(f"{x.name}{shape_str(x._shape)}: the slice {what} {_text(k)} is not a number "
                          "at build time; bind the sizes it depends on")


def _slice_text(s: slice) -> str:
    parts = ["" if v is None else _text(v) for v in (s.start, s.stop)]
    return ":".join(parts) + ("" if s.step is None else f":{_text(s.step)}")


def _slice_bounds(x, axis: int, s: slice) -> tuple:
    """``(start, step, extent)`` of a slice of ``x`` along ``axis``, its bounds
    clipped into the axis as numpy's are."""
    size, b = x._shape[axis], x.builder
    step = _bound(x, s.step, "step")
    step = 1 if step is None else step
    where = f"{x.name}{shape_str(x._shape)}[{_slice_text(s)}] along axis {axis}"
    if step == 0:
        raise b.error(f"{where}: the slice step is 0")
    stop = None if s.stop == size and step > 0 else s.stop       # x[:x.shape[1]]
    start, stop = _bound(x, s.start, "start"), _bound(x, stop, "stop")
    if not isinstance(size, IConst):
        if start is not None or stop is not None:
            raise b.error(f"{where}: the size {format_iexpr(size)} is free at build time, so only ':' and "
                          f"'::step' slice it; bind it (build({format_iexpr(size)}=...)) to slice {_slice_text(s)}")
        first = IConst(0) if step > 0 else ir.isub(size, 1)
        return first, step, ir.ifloordiv(ir.iadd(size, abs(step) - 1), abs(step))
    picked = range(*slice(start, stop, step).indices(size.value))
    if not picked:
        raise b.error(f"{where}: the slice is empty (axis size {size.value}); layerc tensors are never empty")
    return IConst(picked.start), step, IConst(len(picked))


def _integer_coordinate(x, axis: int, k):
    """An integer index along ``axis`` (negative from the end), range-checked where the size is bound."""
    size = x._shape[axis]
    k = k if isinstance(k, IEXPR) else IConst(int(k))
    if not isinstance(k, IConst):
        return k
    if isinstance(size, IConst):
        if not -size.value <= k.value < size.value:
            raise x.builder.error(f"{x.name}{shape_str(x._shape)}: index {k.value} is out of range "
                                  f"for axis {axis} of size {size.value}")
        return IConst(k.value % size.value)
    return ir.iadd(size, k.value) if k.value < 0 else k


__all__ = ["shape_str", "layout_stage", "is_basic_indexing", "basic_index"]
