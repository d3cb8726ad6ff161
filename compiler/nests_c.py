"""The renderers of loop nests: one function per form of ``Nest`` (its kind,
or how sibling stages share its loops), each giving the nest's C through the
templates. What a nest runs was decided by ``compiler/schedule.py``; a renderer
only prints it. Matrix products are in ``compiler/contract_c.py``.

Example::

    RENDERERS[nest.form](nest, context)     # the C of one nest
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from . import ir
from .cprint import Printer, c_comment, init_value, render, tensor_c, var_c
from .cstatements import (AddWhere, Declare, Fence, Fill, FoldLanes, Let, Loop, Partials, RowBuffer, Store, StoreEach,
                          Stream, TileBuffer, TileFlush, TileStart, TileStore, Update, Verbatim)
from .flat_c import render_either
from .ir import IConst, IVar
from .schedule import LOCAL_ROW_LIMIT, owns_rows, range_condition

# tiles of this many elements (LC_TILE) are computed in a small array, then
# streamed out; a loop shorter than two tiles is not worth it
STREAM_TILE = 64
# per dtype: the copy of a tile to memory, and the 16-byte streaming store it uses
STREAMS = {dtype: dict(name=f"lc_stream_{dtype}", ctype=ctype, vtype=f"lc_v{16 // width}{dtype}",
                       lanes=16 // width, store=f"__builtin_ia32_movntp{letter}")
           for dtype, ctype, width, letter in (("f32", "float", 4, "s"), ("f64", "double", 8, "d"))}

# the online max-and-sum's shift: the maximum of a row's first SHIFT_PROBE
# elements. Exponentials against it stay finite while the row's maximum is at
# most SHIFT_LIMIT above it (exp(64) * 2^32 terms < float's maximum); else the
# row is summed again against its maximum
SHIFT_PROBE = 32
SHIFT_LIMIT = 64
# a "taps" nest keeps a partial sum per offset and position of its innermost
# loop where they are at most this many (16 KiB of float, in the L1 cache)
LANES_LIMIT = 4096
# the threads share a nest's parallel loop with the next one where it has fewer
# iterations than this (or a number known only at run time): a batch of 1 or 3
# on a few threads leaves threads idle or one doing twice the others' work
SHARED_BELOW = 32
# a vectorized loop shared that way is cut into blocks of this many iterations
# (a multiple of every vector and of a streamed tile, LC_TILE)
SHARED_BLOCK = 4096


@dataclass(frozen=True)
class Output:
    """``tensor[index] = value`` in a nest's innermost loop (a store that may stream)."""
    tensor: str
    index: tuple
    value: str

    def store(self, printer: Printer) -> Store:
        return Store(printer.element(self.tensor, self.index), self.value)


def _loops(nest, printer: Printer) -> list:
    return [Loop(var_c(l.var), printer.index(l.extent), simd=l.simd) for l in nest.loops]


def _in_threads(loops: list, k: int, nest, printer: Printer, ctx, inner=()) -> list:
    """``loops`` with ``loops[k]`` the parallel loop of ``nest``: one thread below
    ``ctx.min_work`` iterations of its loops and the ``inner`` loops each of
    its iterations runs. Where that loop is short (``_shares_next``), the
    threads share it and the loop inside it (``collapse(2)``); a vectorized
    innermost loop is then cut into blocks first, the threads sharing the blocks."""
    if not ctx.threads:
        return loops
    loop = loops[k]
    loop.parallel, loop.work, loop.min_work = True, printer.size((*nest.loops, *inner)), ctx.min_work
    if not _shares_next(loops, k, nest):
        return loops
    if loops[k + 1].simd:
        loops = loops[:k + 1] + _blocks(loops[k + 1], nest.loops[k + 1], printer)[0]
    loop.collapse = 2
    return loops


def _parallel_loop(nest) -> int:
    """Where the parallel loop of ``nest`` is (the first of more than one
    iteration, in a ``"rows"`` nest)."""
    return next(k for k, plan in enumerate(nest.loops) if plan.parallel)


def _shares_next(loops: list, k: int, nest) -> bool:
    """Whether the threads share ``loops[k]`` with the loop inside it: the
    first is short (fewer than ``SHARED_BELOW`` iterations, or a size known only
    at run time: a batch of 1), the second runs across output elements
    (``SHARES_ITERATIONS``: not a reduction, nor a scatter's loop whose
    iterations may write the same element), nothing runs between them, and it
    is vectorized only as the innermost loop (then cut into blocks, if long
    enough for several)."""
    if len(loops) < k + 2 or k + 2 > len(nest.loops) or not SHARES_ITERATIONS.get(nest.form, _output_loop)(
            nest, nest.loops[k + 1]):
        return False
    first, second = loops[k], loops[k + 1]
    extent = nest.loops[k].extent
    if isinstance(extent, IConst) and extent.value >= SHARED_BELOW or nest.loops[k + 1].extent == IConst(1):
        return False
    # nothing between them, and the inner loop's bounds do not depend on the outer one
    if first.enter or first.exit or second.start != "0" or first.var in second.stop:
        return False
    if second.simd:
        length = nest.loops[k + 1].extent
        return len(loops) == k + 2 and not (isinstance(length, IConst) and length.value < 2 * SHARED_BLOCK)
    return True


def _output_loop(nest, plan) -> bool:
    return not plan.reduction


# whether the threads may split a loop of a nest of this form between them
# (by default, where it is not a reduction's: each iteration writes elements of its own)
SHARES_ITERATIONS = {
    # each thread accumulates into partial outputs of its own
    "pass": lambda nest, plan: True,
    "accumulate": lambda nest, plan: True,
    # a scatter's iterations write where its index says: each value of the loop a slice of its own
    "scatter": lambda nest, plan: owns_rows(nest.stage.scatter_index, plan.var),
}


def _blocks(loop: Loop, plan, printer: Printer) -> tuple[list, ir.IExpr]:
    """A vectorized loop as a loop over blocks of ``SHARED_BLOCK`` iterations and
    the vectorized loop over one block; and the number of blocks."""
    block = IVar(f"{plan.var}_block")
    start = ir.imul(block, SHARED_BLOCK)
    count = ir.ifloordiv(ir.iadd(plan.extent, SHARED_BLOCK - 1), SHARED_BLOCK)
    inner = dataclasses.replace(loop, start=printer.index(start),
                                stop=printer.smaller(printer.index(ir.iadd(start, SHARED_BLOCK)), loop.stop))
    return [Loop(var_c(block.name), printer.index(count)), inner], count


def _split_pass(loops: list, nest, printer: Printer) -> tuple[list, ir.IExpr]:
    """A pass's loops as the threads split them (``pass.c.j2``: each thread's
    iterations ``lc_lo`` to ``lc_hi``), and how many iterations they split: the
    outermost loop's, or where it is short (``_shares_next``) one loop over the
    pairs of it and the loop inside it (cut into blocks if vectorized), each
    pair's two variables taken from the pair's number."""
    outer = nest.loops[0]
    if not _shares_next(loops, 0, nest):
        return [Loop(loops[0].var, "lc_hi", "lc_lo")] + loops[1:], outer.extent
    second, count = loops[1], nest.loops[1].extent
    if second.simd:
        (second, *rest), count = _blocks(second, nest.loops[1], printer)
    else:
        rest = loops[2:]
    pair = IVar(f"{outer.var}_pair")
    split = [Let("int64_t", loops[0].var, printer.index(ir.ifloordiv(pair, count))),
             Let("int64_t", second.var, printer.index(ir.imod(pair, count)))]
    shared = Loop(var_c(pair.name), "lc_hi", "lc_lo", enter=split + second.enter, exit=second.exit)
    return [shared] + rest, ir.imul(outer.extent, count)


def _comment(stages) -> str:
    return c_comment("; ".join(ir.format_stage(st) for st in stages if st))


# ---------------------------------------------------------------- streaming stores


def _streams(plans: tuple, outputs: list, function_outputs: frozenset, in_row: bool, merged: dict) -> list:
    """The ``outputs`` a nest can stream: those of the function's outputs
    written along its innermost loop (its last coordinates that loop's
    variable and those ``merged`` into it: a group norm's output over each
    channel's plane), when that loop is vectorized, at least two tiles long
    and inside another loop (whose iterations end with a fence), or inside a
    row (``in_row``: the fence follows the loop). An intermediate is left out:
    the next nest reads it at once, from the cache if it fits, and a second
    nest would only cost build time."""
    if len(plans) < (1 if in_row else 2):
        return []
    inner = plans[-1]
    if not inner.simd or inner.parallel or inner.reduction or (
            isinstance(inner.extent, IConst) and inner.extent.value < 2 * STREAM_TILE):
        return []
    names = (inner.var, *merged.get(inner.var, ()))
    along = tuple(IVar(name) for name in names)
    return [o for o in outputs
            if o.tensor in function_outputs and o.index[-len(along):] == along
            and all(not set(names) & ir.ivars(i) for i in o.index[:-len(along)])]


def _render_streamed(template: str, plans: tuple, loops: list, lets: list, body: list, outputs: list,
                     printer: Printer, ctx, **context) -> str:
    """A nest rendered from ``template``, given its ``loops`` and what its
    innermost loop runs: temporaries ``lets``, statements ``body`` and
    ``outputs``. Outputs along the innermost loop of a function output larger
    than the caches (decided at run time) go through tiles streamed to memory;
    a nest without such stores is rendered once, one inside a row that streams
    (``ctx.streaming``) only tiled."""
    streamed = _streams(plans, outputs, ctx.outputs, not ctx.threads, printer.merged)
    plain = render(template, loops=loops, lets=lets, body=body + [o.store(printer) for o in outputs], **context)
    if not streamed:
        return plain
    inner = loops[-1]
    tile = Loop(inner.var, inner.stop, inner.start, form="tiles", enter=[TileStart(inner.stop)])
    statements, streams = [], []
    for o in outputs:
        if o not in streamed:
            statements.append(o.store(printer))
            continue
        buffer = f"lc_tile{len(streams)}"
        tile.enter.append(TileBuffer(printer.ctype, buffer))
        streams.append(Stream(STREAMS[printer.dtype]["name"], tensor_c(o.tensor),
                              printer.offset(o.tensor, o.index), buffer))
        statements.append(TileStore(buffer, inner.var, o.value))
    tile.exit.append(TileFlush(inner.var, tuple(streams)))
    elements = dataclasses.replace(inner, form="tile")
    if len(loops) > 1:
        parent = dataclasses.replace(loops[-2], exit=loops[-2].exit + [Fence()])
        loops = loops[:-2] + [parent]
    else:
        context = dict(context, epilogue=context["epilogue"] + [Fence()])
        loops = []
    tiled = render(template, loops=loops + [tile, elements], lets=lets, body=body + statements, **context)
    sizes = [printer.product(printer.shapes[o.tensor]) for o in streamed]
    if ctx.streaming is not None:
        ctx.streaming.extend(sizes)
        return tiled
    return render("streamed.c.j2", ctype=printer.ctype, sizes=sizes, streamed=tiled, plain=plain)


# ---------------------------------------------------------------- one stage per nest


def _windowed(nest, printer: Printer, loops: list):
    """The term of ``nest``'s stage; a windowed nest's innermost loop runs where
    the term can be nonzero (without the tests that makes true)."""
    window = nest.window
    if window is None:
        return nest.stage.body
    printer.in_range = window.in_range
    last = loops[-1]
    for bound in window.start:
        last.start = printer.larger(last.start, printer.index(bound))
    for bound in window.stop:
        last.stop = printer.smaller(last.stop, printer.index(bound))
    if window.tests:
        last.stop = printer.when_all([printer.value(t) for t in window.tests], last.stop, last.start)
    return window.body


def _hoisted(nest, printer: Printer, loops: list, prologue: list) -> list:
    """The temporaries of the innermost loop; those that do not change along it
    are computed before it."""
    if not loops:
        return printer.lets
    invariant, variant = printer.hoist(nest.loops[-1].var)
    if len(loops) > 1 and loops[-2].collapse > 1:
        return printer.lets         # nothing runs between loops the threads share
    (loops[-2].enter if len(loops) > 1 else prologue).extend(invariant)
    return variant


def render_inner(nest, ctx) -> str:
    """A pointwise stage, or a reduction innermost into a scalar accumulator
    per output element (storing the terms it adds when ``nest.terms``); or
    sums over the same loops (``"sums"``), an accumulator each, side by side."""
    s = nest.stage
    stages = [st for _, st in nest.members]
    printer = ctx.printer(stages)
    printer.collapse(nest.collapsed)
    if nest.across:
        printer.hide_strides()
    printer.scalar = not any(l.simd for l in nest.loops)
    loops = [Loop(var_c(l.var), printer.index(l.extent)) for l in nest.loops]
    body = _windowed(nest, printer, loops)
    value = printer.value(nest.terms.body if nest.terms else body)
    prologue, epilogue, statements = [], [], []
    outputs = [Output(nest.terms.name, nest.terms.index, value)] if nest.terms else []
    n_axes = sum(not l.reduction for l in nest.loops)      # the output's loops (collapsed)
    accumulators = ["acc"] if len(stages) == 1 else [f"acc{k}" for k in range(len(stages))]
    if s.reduce:
        for st, acc in zip(stages, accumulators):
            term = body if st is s else st.body
            (loops[n_axes - 1].enter if n_axes else prologue).append(Declare(ctx.ctype, acc, init_value(st.reduce, ctx.dtype)))
            (loops[n_axes - 1].exit if n_axes else epilogue).append(Store(printer.element(st.name, st.index), acc))
            # a maximum of values that cannot be NaN (the first maximum's position) needs no NaN test
            statements.append(Update("greatest" if st.reduce == "max" and ir.never_nan(term) else st.reduce, acc,
                                     value if st is s else printer.value(term)))
    else:
        outputs.append(Output(s.name, s.index, value))
    for loop, plan in zip(loops, nest.loops):
        loop.simd = plan.simd
        if nest.across and plan.reduction and isinstance(plan.extent, IConst):
            # each lane's short row: unrolled, or gcc cannot vectorize the rows around it
            loop.unroll = plan.extent.value
        # the accumulators are private to the loop that reduces into them
        if plan.reduction and (plan.simd or not n_axes):
            loop.reductions = tuple(("max" if st.reduce == "max" else "+", acc) for st, acc in zip(stages, accumulators))
    if any(plan.parallel for plan in nest.loops):
        loops = _in_threads(loops, _parallel_loop(nest), nest, printer, ctx)
    lets = _hoisted(nest, printer, loops, prologue)
    prologue[:0] = printer.stride_lets()
    return _render_streamed("nest.c.j2", nest.loops, loops, lets, statements, outputs, printer, ctx,
                            comment=_comment((nest.terms, *stages)), prologue=prologue, epilogue=epilogue)


def render_taps(nest, ctx) -> str:
    """A sum whose window offsets (its last ``nest.taps`` output loops) run
    inside its reduction loops: each outer output element keeps a partial sum
    per offset, and the partial sums are stored at the end. The offsets run
    around the innermost (vectorized) loop, each row summed into its offset's
    partial sum, or, where that loop walks every read contiguously, inside it,
    unrolled: each vector of a row is loaded once for every offset. Where the
    innermost loop is short and of a known length, or is cut in tiles, each
    offset keeps a partial sum per position of it instead (lanes), added
    across at the end: a row of 56 no longer ends in a sum across the vector
    lanes (a depthwise convolution's weight gradient did that 9 times a row).
    Narrow planes may run as one row (``nest.flat``: see ``compiler/flat_c.py``)."""
    return render_either(nest.flat, ctx, lambda: _taps(nest, ctx), lambda: _taps(nest.flat.plan, ctx, nest.flat))


def _taps(nest, ctx, plane=None) -> str:
    """The C of a ``"taps"`` nest; ``plane``: the ``FlatPlanes`` whose row it
    sums over (its tensors' views, its column read from ``lc_col``, its
    index arithmetic in 32 bits)."""
    s = nest.stage
    printer = ctx.printer([s])
    itype = "int64_t"
    if plane is not None:
        printer.shapes = printer.shapes | dict(plane.shapes)
        itype = "int32_t"
    column = next(k for k, l in enumerate(nest.loops) if l.simd)
    loops = [Loop(var_c(l.var), printer.index(l.extent), simd=l.simd, itype=itype if k >= column else "int64_t")
             for k, l in enumerate(nest.loops)]
    inside = column < len(loops) - 1
    taps = nest.loops[column + 1:] if inside else nest.loops[column - nest.taps:column]
    for loop, tap in zip(loops[column + 1:], taps):
        loop.unroll = tap.extent.value
    value = printer.value(nest.stage.body if inside else _windowed(nest, printer, loops))
    outer = len(s.axes) - nest.taps
    flat = IConst(0)
    for tap in taps:
        flat = ir.iadd(ir.imul(flat, tap.extent), IVar(tap.var))
    partial = f"lc_taps[{printer.index(flat)}]"
    prologue, epilogue = [], []
    count = math.prod(tap.extent.value for tap in taps)
    enter, exit_ = (loops[outer - 1].enter, loops[outer - 1].exit) if outer else (prologue, epilogue)
    enter.append(Partials(ctx.ctype, "lc_taps", count))
    row = nest.loops[column].extent
    body = [Update("sum", "acc", value)]
    known = isinstance(row, IConst) and count * row.value <= LANES_LIMIT
    # offsets inside the row always keep lanes: there is no row loop of their own to sum in
    tiled = not known and (inside or not isinstance(row, IConst) and count * STREAM_TILE <= LANES_LIMIT)
    if known:
        enter.append(Partials(ctx.ctype, "lc_lanes", count * row.value))
        lane = printer.index(ir.iadd(ir.imul(flat, row), IVar(nest.loops[column].var)))
        body = [Update("sum", f"lc_lanes[{lane}]", value)]
        exit_.append(FoldLanes(ctx.ctype, "lc_lanes", "lc_taps", count, row.value))
    elif tiled:
        # a row of a run-time length: a partial sum per position of a tile of it
        enter.append(Partials(ctx.ctype, "lc_lanes", count * STREAM_TILE))
        lane = f"{printer.index(flat)} * LC_TILE + {loops[column].var} - lc_tile_start"
        body = [Update("sum", f"lc_lanes[{lane}]", value)]
        exit_.append(FoldLanes(ctx.ctype, "lc_lanes", "lc_taps", count, "LC_TILE"))
    else:
        loops[-2].enter.append(Declare(ctx.ctype, "acc", init_value("sum", ctx.dtype)))
        loops[-2].exit.append(Update("sum", partial, "acc"))
        loops[-1].reductions = (("+", "acc"),)
    exit_.append(StoreEach(tuple(Loop(var_c(t.var), printer.index(t.extent)) for t in taps),
                           printer.element(s.name, s.index), partial))
    if nest.loops[0].parallel:
        loops = _in_threads(loops, 0, nest, printer, ctx)
    lets = printer.lets if inside else _hoisted(nest, printer, loops, prologue)
    if plane is not None:
        lets = [Let(itype, var_c(plane.column), f"lc_col[{var_c(plane.flat.name)}]")] + lets
    if tiled:
        inner = loops[column]
        loops[column:column + 1] = [Loop(inner.var, inner.stop, inner.start, form="tiles", enter=[TileStart(inner.stop)]),
                                    dataclasses.replace(inner, form="tile")]
    return render("nest.c.j2", loops=loops, lets=lets, body=body,
                  comment=_comment((s,)), prologue=prologue, epilogue=epilogue)


def render_row(nest, ctx) -> str:
    """A stencil: each output row zeroed, then the window accumulated into it,
    columns innermost."""
    s = nest.stage
    printer = ctx.printer([s])
    loops = [Loop(var_c(l.var), printer.index(l.extent)) for l in nest.loops]
    value = printer.value(_windowed(nest, printer, loops))
    last = nest.loops[-1]
    row = tuple(IConst(0) if i == IVar(last.var) else i for i in s.index)
    zero = Fill(tensor_c(s.name), printer.index(last.extent), init_value(s.reduce, ctx.dtype),
                offset=printer.offset(s.name, row))
    prologue, n_outer = [], len(s.axes) - 1
    (loops[n_outer - 1].enter if n_outer else prologue).append(zero)
    statements = [Update(s.reduce, printer.element(s.name, s.index), value)]
    loops[-1].simd = True
    if nest.loops[0].parallel:
        loops = _in_threads(loops, 0, nest, printer, ctx)
    lets = _hoisted(nest, printer, loops, prologue)
    return _render_streamed("nest.c.j2", nest.loops, loops, lets, statements, [], printer, ctx,
                            comment=_comment((s,)), prologue=prologue, epilogue=[])


def render_scatter(nest, ctx) -> str:
    """A sum into the output at computed indices: zeroed first, then updated;
    in threads over the outermost loop where each of its values writes a
    slice of its own (``schedule.owns_rows``), else serially."""
    s = nest.stage
    printer = ctx.printer([s])
    loops = _loops(nest, printer)
    value = printer.value(_windowed(nest, printer, loops))
    # the output zeroed in threads too: alone, it took a reflected padding's backward 40% of its time
    prologue = [] if nest.window is not None and nest.window.adds_on else \
        [Fill(tensor_c(s.name), printer.product(printer.shapes[s.name]), init_value(s.reduce, ctx.dtype),
              threads_from=str(ctx.min_work))]
    target = printer.element(s.name, s.scatter_index)
    # a piece's target lies in the output all over its stretch (compiler/pieces.py)
    guard = None if nest.window is not None else range_condition(s.scatter_index, s.shape, printer.extents)
    # an index outside the output has no element to receive its share
    update = Update("sum", target, value) if guard is None else AddWhere(printer.value(guard), target, value)
    if nest.loops and nest.loops[0].parallel:
        loops = _in_threads(loops, 0, nest, printer, ctx)
    return _render_streamed("nest.c.j2", nest.loops, loops, printer.lets, [update], [], printer, ctx,
                            comment=_comment((s,)), prologue=prologue, epilogue=[])


# ---------------------------------------------------------------- stages sharing loops


def render_siblings(nest, ctx) -> str:
    """Pointwise siblings over the same loops: one ``parallel for`` nest."""
    printer = ctx.printer(st for _, st in nest.members)
    printer.collapse(nest.collapsed)
    outputs = [Output(st.name, st.index, printer.value(st.body)) for _, st in nest.members]
    loops = _in_threads(_loops(nest, printer), 0, nest, printer, ctx)
    return _render_streamed("nest.c.j2", nest.loops, loops, printer.lets, [], outputs, printer, ctx,
                            comment=_comment(st for _, st in nest.members), prologue=[], epilogue=[])


def render_pass(nest, ctx) -> str:
    """Sibling stages in one pass over shared loops (one printer, so a value
    read by several of them is loaded once). Accumulate members reduce into
    per-thread partial outputs over a static split of the outermost loop; in
    a ``"rows"`` nest's row (``ctx.accumulators``), into the row's thread's."""
    printer = ctx.printer(st for _, st in nest.members)
    printer.collapse(nest.collapsed)
    if ctx.accumulators:
        updates = [Update(st.reduce, printer.at(ctx.accumulators[st.name], st.name, st.index), printer.value(st.body))
                   for _, st in nest.members]
        return render("nest.c.j2", comment=_comment(st for _, st in nest.members), prologue=[],
                      loops=_loops(nest, printer), lets=printer.lets, body=updates, epilogue=[])
    statements, outputs, partials = [], [], []
    for kind, st in nest.members:
        value = printer.value(st.body)
        if kind != "accumulate":
            outputs.append(Output(st.name, st.index, value))
            continue
        acc = f"lc_acc{len(partials)}"
        partials.append(_partial(st, acc, printer, ctx))
        statements.append(Update(st.reduce, printer.at(acc, st.name, st.index), value))
    printer.reciprocals(nest.loops[-1].var)
    loops, split = _split_pass(_loops(nest, printer), nest, printer)
    return _render_streamed("pass.c.j2", nest.loops, loops, printer.lets, statements, outputs, printer, ctx,
                            comment=_comment(st for _, st in nest.members), work=printer.size(nest.loops),
                            min_work=ctx.min_work, partials=partials, outer_extent=printer.index(split))


def _partial(st, acc: str, printer: Printer, ctx) -> dict:
    """What ``pass.c.j2`` takes of an accumulate stage ``st``: each thread's
    partial output ``acc``, started at the reduction's first value."""
    return dict(ctype=ctx.ctype, acc=acc, out=tensor_c(st.name), reduce=st.reduce,
                size=printer.product(printer.shapes[st.name]), init=init_value(st.reduce, ctx.dtype))


def _row_pass(printer: Printer, maximum, terms, shift: str | None) -> dict:
    """What ``online.c.j2`` takes of one pass over a row: its temporaries, the
    value maximized, and the exponent of the term summed against ``shift`` where
    there is one (at most ``SHIFT_LIMIT`` where the sum is kept)."""
    x = printer.value(maximum.body)
    exponent = printer.call("sub", x, shift) if shift else ""
    kept = printer.element(terms.name, terms.index) if terms else ""
    return dict(lets=printer.lets, x=x, exponent=exponent, kept=kept)


def render_online(nest, ctx) -> str:
    """A row's maximum m and sum of exp(x - m) in one pass over the row: the
    exponentials are taken against a shift s (the maximum of the row's first
    elements) while the maximum is found, then the sum is scaled by exp(s - m).
    A row whose maximum is far above s, or not finite (NaN, infinities), is
    summed again against m: every row gives what the two passes give. Kept
    terms (``nest.terms``) are stored as they are summed, and scaled with the sum."""
    (_, maximum), total = nest.siblings[0], nest.stage
    outer, row = nest.loops[:-1], nest.loops[-1]
    probe, fused, again, scaled = (ctx.printer([maximum]) for _ in range(4))
    length = probe.index(row.extent)
    rescale = dict(lets=scaled.lets, kept=scaled.element(nest.terms.name, nest.terms.index)) if nest.terms else None
    body = render("online.c.j2", ctype=ctx.ctype, suffix=probe.suffix, var=var_c(row.var), length=length,
                  probe_stop=probe.smaller(length, str(SHIFT_PROBE)), shift_limit=SHIFT_LIMIT,
                  lowest=init_value("max", ctx.dtype), scale=probe.call("exp", probe.call("sub", "lc_shift", "lc_max")),
                  probe=_row_pass(probe, maximum, None, None),
                  fused=_row_pass(fused, maximum, nest.terms, "lc_shift"),
                  again=_row_pass(again, maximum, nest.terms, "lc_max"), scaled=rescale,
                  max_target=probe.element(maximum.name, maximum.index),
                  sum_target=probe.element(total.name, total.index))
    loops = [Loop(var_c(l.var), probe.index(l.extent)) for l in outer]
    if loops:
        loops = _in_threads(loops, 0, nest, probe, ctx)
    comment = _comment((maximum, nest.terms, total)) + " (one pass)"
    return render("nest.c.j2", comment=comment, prologue=[], loops=loops, lets=[], body=[Verbatim(body)], epilogue=[])


def _row_buffer(nest, printer: Printer, ctx, tensor: str, buffer: str, k: int) -> RowBuffer:
    """The thread's buffer of a tensor kept a row at a time (``Nest.local``):
    an array of the row's known length, or of ``LOCAL_ROW_LIMIT`` elements
    where the row's length is known only at run time, used when the row fits
    (else the row's own place in the tensor, which is allocated whole)."""
    row = ctx.shapes[tensor][k:]
    if all(isinstance(e, IConst) for e in row):
        return RowBuffer(ctx.ctype, buffer, math.prod(e.value for e in row))
    own = printer.at(tensor_c(tensor), tensor, tuple(IVar(loop.var) for loop in nest.loops[:k]) + (IConst(0),) * len(row))
    return RowBuffer(ctx.ctype, buffer, LOCAL_ROW_LIMIT, fits=f"{printer.product(row)} <= {LOCAL_ROW_LIMIT}",
                     own_row=f"&{own}")


def _rows_nest(nest, ctx, inside) -> str:
    """The C of a ``"rows"`` nest, its nests rendered in context ``inside``.
    One that accumulates (``schedule._rows_with_pass``) runs as a pass: each
    thread its block of rows, adding into partial sums of its own, which are
    combined in thread order afterwards."""
    printer = ctx.printer(st for _, st in nest.members)
    loops = _loops(nest, printer)
    # a row's work is its members' loops: the deepest member's count with the rows
    widest = max(nest.group, key=lambda member: len(member.loops))
    comment = _comment(st for _, st in nest.members) + " (row by row)"
    partials = [st for kind, st in nest.members if kind == "accumulate"]
    accumulators = {st.name: f"lc_acc{k}" for k, st in enumerate(partials)}
    inside = dataclasses.replace(inside, accumulators=accumulators)
    buffers = [_row_buffer(nest, printer, ctx, name, buffer, k) for name, (buffer, k) in inside.local.items()]
    body = buffers + [Verbatim(inside.render(member)) for member in nest.group]
    if partials:
        loops = [Loop(loops[0].var, "lc_hi", "lc_lo", enter=loops[0].enter, exit=loops[0].exit)] + loops[1:]
        return render("pass.c.j2", comment=comment, loops=loops, lets=[], body=body,
                      partials=[_partial(st, accumulators[st.name], printer, ctx) for st in partials],
                      work=printer.size((*nest.loops, *widest.loops)), min_work=ctx.min_work,
                      outer_extent=printer.index(nest.loops[0].extent))
    if any(plan.parallel for plan in nest.loops):
        loops = _in_threads(loops, _parallel_loop(nest), nest, printer, ctx, inner=widest.loops)
    return render("nest.c.j2", comment=comment, prologue=[], loops=loops, lets=[], body=body, epilogue=[])


def render_rows(nest, ctx) -> str:
    """Nests sharing their row loops (``Nest.group``): each one's own loops
    run in turn inside each row, the row's data still in cache for the next.
    Whether outputs stream is decided once, around the rows: a test inside
    them stops gcc vectorizing the row's sums."""
    local = {name: (f"lc_row{n}", k) for n, (name, k) in enumerate(nest.local)}
    plain = _rows_nest(nest, ctx, dataclasses.replace(ctx, threads=False, outputs=frozenset(), local=local))
    sizes = []
    streamed = _rows_nest(nest, ctx, dataclasses.replace(ctx, threads=False, streaming=sizes, local=local))
    if not sizes:
        return plain
    return render("streamed.c.j2", ctype=ctx.ctype, sizes=sizes, streamed=streamed, plain=plain)
