"""The renderer of window nests (``Nest`` kind ``"window"``): a window
reduction, or a window's adjoint as a scatter (``nest.sliding``, planned in
``compiler/windows.py``), laid out by ``templates/window.c.j2``. The column
loop runs vectorized where every read is inside its tensor (``nest.window``)
and guarded on the edges around it.
"""
from __future__ import annotations

import math

from . import ir
from .cprint import DTYPES, Printer, c_comment, init_value, render, tensor_c, var_c
from .cstatements import Let
from .flat_c import render_either
from .ir import IConst, IVar
from .windows import COLUMN_BLOCK, WINDOW_LIMIT, lane_mode


def render_window(nest, ctx) -> str:
    """The C of a window nest (see the module docstring); with its planes as
    rows too (``nest.flat``), the two chosen by the plane's size at run time."""
    comment = c_comment(ir.format_stage(nest.stage))
    flat = nest.flat
    return render_either(flat, ctx, lambda: _render(nest.sliding, nest.window, ctx, comment),
                         lambda: _render(flat.plan, None, ctx, f"{comment}: planes as rows", dict(flat.shapes),
                                         flat.column))


def _render(plan, bounds, ctx, comment: str, views: dict | None = None, at: str | None = None) -> str:
    """The C of one window plan: ``views`` override tensors' shapes (a flat
    plan's), ``at`` names the index variable holding a flat row's column."""
    s = plan.stage
    fast, edge, index = (ctx.printer([s]) for _ in range(3))
    for printer in (fast, edge, index) if views else ():
        printer.shapes = printer.shapes | views
    fast.in_range = (bounds.in_range if bounds else frozenset()) | plan.in_range
    # a scatter's inner offsets either pick the element written or are summed
    # into it; a reduction sums them all into its own element
    targeted = set().union(*map(ir.ivars, plan.target)) if plan.scatter else set()
    written = tuple(a for a in plan.inner if a.name in targeted)
    summed = tuple(a for a in plan.inner if a.name not in targeted)
    # a max of values that cannot be NaN (the first maximum's position) needs no NaN test
    reduce = "greatest" if s.reduce == "max" and ir.never_nan(s.body) else s.reduce
    modes = (reduce, reduce) if not plan.scatter else ("gather", "gather") if summed else ("plain", "guarded")
    fast_part = _window_part(plan, fast, bounds.body if bounds else s.body, modes[0])
    # what does not change along the column and the window is computed once per row
    column = {plan.column.name} | ({at} if at else set())
    varying = column | {a.name for a in plan.inner}
    hoisted = [let for let, e in zip(fast.lets, fast.nodes) if not ir.ivars_of_expr(e) & varying]
    pre = _per_offset(plan, fast, hoisted, index, column)
    fast_part["start_lines"] = [let for let in fast_part["start_lines"] if let not in hoisted]
    fast_part["lines"] = [pre["reads"].get(let.name, let) if pre else let for let in fast_part["lines"]
                          if let not in hoisted]
    # the edges hold the columns a window reaches outside its tensor: there a
    # reduction reads zero, and a scatter writes nothing
    edges = bounds is not None and (not plan.scatter or plan.inner)
    # a row that a test empties runs all its columns on the edges: a sum's run
    # there in masked vector loads (a depthwise convolution's first and last
    # rows took a fifth of its time in scalar code)
    edge_simd = edges and bool(bounds.tests) and reduce == "sum" and not (plan.scatter or plan.gaps)
    return render(
        "window.c.j2", comment=comment, column_at=var_c(at) if at else "", itype="int32_t" if at else "int64_t",
        planes=len(plan.planes),
        work=index.size(plan.order) if plan.planes else "", min_work=ctx.min_work,
        clear=_plane_clear(plan, index), loops=_offsets(plan.planes + plan.rows + plan.outer, index),
        written=_offsets(written, index), summed=_offsets(summed, index), hoisted=hoisted, pre=pre,
        blocks=_window_limits(plan, bounds, index), column=var_c(plan.column.name),
        extent=index.index(plan.column.extent), ctype=DTYPES[ctx.dtype][0], init=init_value(s.reduce, ctx.dtype),
        # a term per element: the scatter stores it, and a column may be done twice
        assign="=" if plan.injective else "+=", block=COLUMN_BLOCK, redo=plan.injective or not plan.scatter,
        gaps=int(plan.gaps), fast=fast_part, lane=lane_mode(plan), lanes=_lanes(plan.inner[-1]) if plan.inner else 0,
        edges=_window_part(plan, edge, s.body, modes[1], guarded=True) if edges else None, edge_simd=edge_simd)


def _per_offset(plan, fast: Printer, hoisted: list, printer: Printer, column: set) -> dict | None:
    """A reduction's values that change with the window's offsets but not along
    the column (a depthwise convolution's weights), computed once per row into
    arrays by the flattened offset (``lets``, stored at ``flat``), and read from
    there in the column loop (``reads``: the temporaries that replace them). Read
    from the tensor instead, gcc loads them again for every vector: inside an
    OpenMP region the pointers lose ``restrict``, and the output's store might
    have changed them."""
    count = math.prod(offset.extent.value for offset in plan.inner)
    if plan.scatter or not plan.inner or count > WINDOW_LIMIT:     # unrolled windows only
        return None
    lets = [let for let, e in zip(fast.lets, fast.nodes)
            if let not in hoisted and not ir.ivars_of_expr(e) & column]
    if not lets:
        return None
    flat = IConst(0)
    for offset in plan.inner:
        flat = ir.iadd(ir.imul(flat, offset.extent), IVar(offset.name))
    flat = printer.index(flat)
    reads = {let.name: Let(let.ctype, let.name, f"lc_pre_{let.name}[{flat}]") for let in lets}
    return dict(lets=lets, reads=reads, flat=flat, offsets=_offsets(plan.inner, printer), count=count)


def _lanes(offset) -> int:
    """The vector length of an offset in lanes: the widest power of two it
    fills (at most COLUMN_BLOCK). gcc 12 leaves a loop shorter than its
    vector in scalar code: a 7 wide offset in 16 float lanes ran unvectorized."""
    return min(COLUMN_BLOCK, 1 << (offset.extent.value.bit_length() - 1))


def _plane_clear(plan, printer: Printer) -> dict | None:
    """Where a scatter's plane starts in its target, and its size (it is zeroed
    before the plane's terms are added)."""
    if not (plan.scatter and plan.clear):
        return None
    shape, planes = plan.stage.shape, plan.planes
    start = tuple(IVar(a.name) for a in planes) + (IConst(0),) * (len(shape) - len(planes))
    return dict(target=tensor_c(plan.stage.name), start=printer.offset(plan.stage.name, start),
                length=printer.product(shape[len(planes):]))


def _offsets(axes, printer: Printer) -> list:
    return [dict(var=var_c(a.name), extent=printer.index(a.extent)) for a in axes]


def _window_limits(plan, bounds, printer: Printer) -> list:
    """The column's limits (``lc_lo0``, ``lc_hi0``) and the tests that empty it
    (``lc_ok``), each worked out at the outermost loop whose indices it uses:
    a pool's limits once, its tests once per row (the planes' loops are
    collapsed: nothing between them)."""
    if bounds is None:
        return []
    order = [a.name for a in plan.planes + plan.rows + plan.outer]
    inner = {a.name for a in plan.inner}

    def block(kind, used, **parts):
        depth = max((order.index(v) + 1 for v in used if v in order), default=0)
        depth = max(depth, len(plan.planes)) if depth else 0
        over = _offsets(plan.inner, printer) if used & inner else []
        return dict(kind=kind, depth=depth, inner=over, lines=[], starts=[], stops=[], tests=[]) | parts

    limits = bounds.start + bounds.stop
    column = block("column", set().union(*map(ir.ivars, limits)) if limits else set(),
                   starts=[printer.index(b) for b in bounds.start], stops=[printer.index(b) for b in bounds.stop])
    tests = [printer.value(t) for t in bounds.tests]
    used = set().union(*map(ir.ivars_of_expr, bounds.tests)) if bounds.tests else set()
    return [column, block("tests", used, lines=printer.lets, tests=tests)]


def _window_part(plan, printer: Printer, body, mode: str, guarded: bool = False) -> dict:
    """What the column loop computes: the term's ``value`` (after ``lines``),
    accumulated (``mode``: max, greatest, sum, or gather: summed over the
    offsets the target does not use, then stored) or added to ``target``
    (plain, guarded). On the edges a scatter writes only where ``guard`` holds
    (its target inside the tensor); a gather's guard is worked out after its
    sum (``guard_lines``), the offsets it uses alone being in scope. A sum
    started at a value (``plan.start``) begins at ``start`` (after ``start_lines``)."""
    start = printer.value(plan.start) if plan.start is not None else None
    start_lines = list(printer.lets)
    value = printer.value(body)
    guard, guard_lines = None, []
    if guarded and plan.write_guard is not None and mode == "gather":
        after = Printer(printer.shapes, printer.extents, printer.dtype)
        guard, guard_lines = after.value(plan.write_guard), after.lets
    elif guarded and plan.write_guard is not None:
        guard = printer.value(plan.write_guard)
    elif mode == "guarded":
        mode = "plain"
    return dict(lines=printer.lets[len(start_lines):], value=value, guard=guard, guard_lines=guard_lines, mode=mode,
                target=printer.element(plan.stage.name, plan.target), start=start, start_lines=start_lines)


__all__ = ["render_window"]
