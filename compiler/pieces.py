"""A pointwise stage's innermost loop cut into pieces where its index tests
do not change (a concatenation, a stack, a padding or their gradients), and
where no ``min``/``max`` of its variable in a coordinate changes argument (a
reflected or replicated padding, and the scatter of its gradient).

The gradient of an attention's fused ``[q | k | v]`` projection reads, at each
column ``j`` of its 1152, one of three head-split tensors at ``(j - 768) // 64``,
``(j - 768) % 64``, each read under its range test. As one loop, every column
computes all three reads, guarded, their divisions in 64-bit lanes. Cut at the
tests' bounds (0, 384, 768, 1152), each piece's tests are constants: one read
is left, and the reads' coordinates lie in their tensors there, so they need
no guard (``schedule.Window``: a piece is a nest over its part of the loop).

A reflected read ``x[L - |L - |v - p||]`` turns at ``v = p`` and
``v = p + L``: between the turns it is ``x[p - v]``, ``x[v - p]`` and
``x[2L + p - v]``, each a line the loop reads without ``min``/``max`` or a
guard; a scatter through it adds each stretch in turn, in SIMD lanes where
its target moves with the loop.

In: a nest of ``schedule.plan_program`` and the program's shapes. Out: the
nests that run it instead, one per piece, or the nest alone where its tests
and turns have no constant places inside its loop, or it is not a plain
pointwise nest or scatter.

Example::

    nests = cut_into_pieces(nest, shapes)
"""
from __future__ import annotations

import dataclasses

from . import ir
from .ir import Call, Const, IConst, IVar
from .collapse import Collapsed
from .schedule import Loop, Window, _conjuncts, _interval, _settle, explicit_zeros, index_in_range
from .shapes import flatten
from .simplify import simplify_expr

# a loop is cut into at most this many pieces (each is a nest of its own in the C)
MAX_PIECES = 8
COMPARISONS = {"ge": lambda lo, hi: (lo >= 0, hi < 0), "gt": lambda lo, hi: (lo > 0, hi <= 0),
               "lt": lambda lo, hi: (hi < 0, lo >= 0), "le": lambda lo, hi: (hi <= 0, lo > 0)}


def cut_into_pieces(nest, shapes: dict) -> tuple:
    """``nest`` as nests over the pieces of its innermost loop (see the module docstring)."""
    s = nest.stage
    if nest.kind == "scatter":
        return _scatter_pieces(nest, shapes)
    if (nest.kind != "inner" or nest.shared or nest.group or s.reduce is not None or s.scatter_index is not None
            or nest.window is not None or nest.terms is not None or nest.across or not nest.loops
            or (nest.collapsed is not None and (nest.collapsed.merged or nest.collapsed.split))):
        return (nest,)
    loop = nest.loops[-1]
    if not isinstance(loop.extent, IConst):
        return (nest,)
    guarded, extents = {}, {a.name: a.extent for a in s.all_axes}
    body = explicit_zeros(s, shapes, guarded)
    tests = [c for c in ir.postorder(body) if _test(c) is not None and loop.var in ir.ivars_of_expr(c)]
    cuts = _kinks(body, loop.var, {b for c in tests for b in _bounds(c, loop.var) if 0 < b < loop.extent.value},
                  loop.extent.value)
    if not cuts or len(cuts) >= MAX_PIECES:
        return (nest,)
    ends = [0] + cuts + [loop.extent.value]
    pieces = []
    for start, stop in zip(ends, ends[1:]):
        decided = {c: _decided(c, loop.var, start, stop) for c in tests}
        held = frozenset(c for c, value in decided.items() if value)
        failed = frozenset(c for c, value in decided.items() if value is False)
        piece = simplify_expr(_unfolded(_settle(body, held, failed), loop.var, start, stop)[0])
        in_range = frozenset(e for e, cond in guarded.items() if set(_conjuncts(cond)) <= held) | \
            _inside(piece, loop.var, start, stop, shapes, extents)
        pieces.append(_divided(nest, piece, start, stop, in_range, held) or
                      dataclasses.replace(nest, window=Window(piece, (IConst(start),), (IConst(stop),), (),
                                                              in_range, held)))
    return tuple(pieces)


def _scatter_pieces(nest, shapes: dict) -> tuple:
    """A scatter (a mirrored padding's gradient) over the stretches of its
    innermost loop where its target's coordinates are lines: on each, the
    target moves with the loop, and where it moves, no two iterations add
    into one element, so the loop is marked for SIMD. The first piece zeroes
    the output; the others add on. The nest alone where its target leaves
    its tensor on some piece, or it has no turns."""
    s, loop = nest.stage, nest.loops[-1] if nest.loops else None
    if loop is None or not isinstance(loop.extent, IConst) or nest.collapsed is not None or nest.window is not None:
        return (nest,)
    cuts = _kinks(s.body, loop.var, set(), loop.extent.value, s.scatter_index)
    if not cuts or len(cuts) >= MAX_PIECES:
        return (nest,)
    extents = {a.name: a.extent for a in s.all_axes}
    ends, pieces = [0] + cuts + [loop.extent.value], []
    for start, stop in zip(ends, ends[1:]):
        body, index, _ = _unfolded(s.body, loop.var, start, stop, s.scatter_index)
        if not _in_range_on(index, s.shape, loop.var, start, stop, extents):
            return (nest,)
        moves = ir.istride(flatten(index, s.shape), loop.var)
        inner = dataclasses.replace(loop, simd=isinstance(moves, IConst) and moves.value != 0)
        pieces.append(dataclasses.replace(
            nest, stage=ir.replace(s, scatter_index=index), loops=nest.loops[:-1] + (inner,),
            window=Window(simplify_expr(body), (IConst(start),), (IConst(stop),), (),
                          _inside(body, loop.var, start, stop, shapes, extents), adds_on=start > 0)))
    return tuple(pieces)


def _inside(piece, var: str, start: int, stop: int, shapes: dict, extents: dict) -> frozenset:
    """The reads of ``piece`` that lie inside their tensors all over ``[start, stop)``
    (a mirrored coordinate, unfolded, is in range on its piece only)."""
    return frozenset(load for load in ir.loads(piece)
                     if _in_range_on(load.index, shapes[load.tensor], var, start, stop, extents))


def _in_range_on(index: tuple, shape: tuple, var: str, start: int, stop: int, extents: dict) -> bool:
    """Whether ``index`` lies in ``shape`` for ``var`` all over ``[start, stop)``."""
    shifted = {var: ir.iadd(IVar(var), IConst(start))}
    return index_in_range(tuple(ir.isubst(i, shifted) for i in index), shape,
                          {**extents, var: IConst(stop - start)})


def _kinks(body, var: str, cuts: set, extent: int, index: tuple = ()) -> list:
    """``cuts`` and the places in ``[0, extent)`` where a ``min`` or ``max`` of
    ``var`` alone in ``body``'s coordinates (and in ``index``) changes argument
    (a mirrored padding's edges), sorted; at most MAX_PIECES of them."""
    cuts = set(cuts)
    while len(cuts) < MAX_PIECES:
        ends = [0] + sorted(cuts) + [extent]
        found = {_unfolded(body, var, start, stop, index)[2] for start, stop in zip(ends, ends[1:])} - {None}
        if not found:
            break
        cuts |= found
    return sorted(cuts)


def _unfolded(body, var: str, start: int, stop: int, index: tuple = ()) -> tuple:
    """``(body, index, kink)``: ``body`` (and the coordinates ``index``) with
    each ``min``/``max`` of ``var`` alone in its coordinates replaced by the
    argument it takes all over ``[start, stop)`` (innermost first: a mirror
    ``L - |L - |v - p||`` is a line on each piece), and the first place inside
    where one that is left changes argument (None: none is left, or none has
    a place ``_kink`` can solve)."""
    kinks = []

    def unfold(e):
        if not isinstance(e, ir.IBin):
            return e
        e = ir.IBIN_BUILDERS[e.op](unfold(e.a), unfold(e.b))
        if not (isinstance(e, ir.IBin) and e.op in ("min", "max") and ir.ivars(e) == {var}):
            return e
        gap = ir.isub(e.a, e.b)
        bounds = _interval(ir.isubst(gap, {var: ir.iadd(IVar(var), IConst(start))}), {var: IConst(stop - start)})
        if bounds is not None and (bounds[0] >= 0 or bounds[1] <= 0):
            return e.a if (bounds[0] >= 0) == (e.op == "max") else e.b
        kinks.append(_kink(gap, var, start, stop))
        return e

    def leaf(x):
        if isinstance(x, ir.Load):
            return ir.Load(x.tensor, tuple(unfold(i) for i in x.index))
        return ir.IndexValue(unfold(x.expr)) if isinstance(x, ir.IndexValue) else x
    unfolded = ir.map_expr(body, leaf), tuple(unfold(i) for i in index)
    return (*unfolded, next((k for k in kinks if k is not None), None))


def _kink(gap: ir.IExpr, var: str, start: int, stop: int):
    """The first ``v`` in ``(start, stop)`` where ``gap`` (affine in ``var``)
    turns non-negative or negative, or None."""
    form = ir.affine(gap, {var})
    if form is None or not isinstance(form[1], IConst) or not form[0]:
        return None
    slope, rest = form[0][var], form[1].value
    # slope * v + rest >= 0 from ceil(-rest / slope) on (slope > 0), up to floor(-rest / slope) (slope < 0)
    at = -(rest // slope) if slope > 0 else rest // -slope + 1
    return at if start < at < stop else None


def _divided(nest, piece, start: int, stop: int, in_range: frozenset, held: frozenset):
    """The piece ``[start, stop)`` of ``nest``'s innermost loop as two loops,
    blocks of ``q`` and the elements of a block (``Collapsed.split``), when its
    reads take ``(v + c) // q`` and ``(v + c) % q`` of the loop's variable
    ``v``, ``q`` dividing ``start + c`` and the piece's length: then those are
    the block and the element (``cprint.Printer``), no division left, and a
    head-split tensor is read along its rows. None otherwise."""
    var = nest.loops[-1].var
    divisions = _divisions(piece, var)
    if len({q for q, _ in divisions}) != 1:
        return None
    q = next(iter(divisions))[0]
    if q < 2 or (stop - start) % q or any((c + start) % q for _, c in divisions):
        return None
    taken = {loop.var for loop in nest.loops} | {a.name for a in nest.stage.all_axes}
    outer, inner = ir.fresh_name(f"{var}_block", taken), ir.fresh_name(f"{var}_lane", taken)
    loops = nest.loops[:-1] + (Loop(outer, IConst((stop - start) // q)), Loop(inner, IConst(q), simd=True))
    zero = nest.collapsed.zero if nest.collapsed is not None else frozenset()
    return dataclasses.replace(nest, loops=loops, window=Window(piece, (), (), (), in_range, held),
                               collapsed=Collapsed(zero, split={var: (outer, inner, q, start)}))


def _divisions(e, var: str) -> set:
    """``(q, c)`` of every ``(var + c) // q`` and ``(var + c) % q`` in ``e``'s indices."""
    found = set()
    for sub in ir.postorder(e):
        coordinates = sub.index if isinstance(sub, ir.Load) else (sub.expr,) if isinstance(sub, ir.IndexValue) else ()
        for c in coordinates:
            found |= _quotients(c, var)
    return found


def _quotients(e, var: str) -> set:
    if not isinstance(e, ir.IBin):
        return set()
    found = _quotients(e.a, var) | _quotients(e.b, var)
    if e.op in ("//", "%") and isinstance(e.b, IConst) and var in ir.ivars(e.a):
        form = ir.affine(e.a, {var})
        if form is not None and form[0] == {var: 1} and isinstance(form[1], IConst):
            found.add((e.b.value, form[1].value))
    return found


def _test(cond):
    """``(op, coordinate - limit)`` of an index comparison ``cond``, or None."""
    if not (isinstance(cond, Call) and cond.op in COMPARISONS and
            all(isinstance(a, ir.IndexValue) or isinstance(a, Const) and float(a.value).is_integer() for a in cond.args)):
        return None
    a, b = (x.expr if isinstance(x, ir.IndexValue) else IConst(int(x.value)) for x in cond.args)
    return cond.op, ir.isub(a, b)


def _bounds(cond, var: str) -> list:
    """Where ``cond``, a test of ``var + c`` against 0, changes along ``var``."""
    op, difference = _test(cond)
    split = ir.affine(difference, {var})
    if split is None or split[0] != {var: 1} or not isinstance(split[1], IConst):
        return []
    # var + c >= 0 (or < 0) changes at var = -c; > and <= at -c + 1
    return [-split[1].value + (op in ("gt", "le"))]


def _decided(cond, var: str, start: int, stop: int):
    """Whether ``cond`` holds for every ``var`` in ``[start, stop)`` (True),
    for none (False), or either (None)."""
    op, difference = _test(cond)
    shifted = ir.isubst(difference, {var: ir.iadd(IVar(var), IConst(start))})
    bounds = _interval(shifted, {var: IConst(stop - start)})
    if bounds is None:
        return None
    always, never = COMPARISONS[op](*bounds)
    return True if always else False if never else None
