"""A convolution as GEMM calls over shifted views of its input.

Packed as patches (``compiler/patches.py``), a 3x3 convolution's input is
written nine times, once per tap, before each call reads it. Where the read
``x[n, c, h + i*d - p, w + j*d - p]`` moves with each column variable at
stride 1, a task instead copies the part of the input it reads once into a
workspace laid out as the input is, each coordinate widened by the taps'
span (the padding written as zeros): ``P[c, u, v] = x[n, c, h0 + u - p, v - p]``.
Row ``(c, i, j)`` of the call's B is then ``P`` read from ``c*Hp*Wp + i*d*Wp
+ j*d`` on, and column ``(h, w)`` is position ``(h - h0)*Wp + w`` of it: one
offset per row (the tiles take a table of them), unit stride along a row.
Where the calls have rows enough that the tiles copy each panel of B anyway
(over COMPACT_MIN_ROWS) and enough to repay blending it (BLEND_ROWS), their
columns are only the positions kept: column
``(h - h0)*Wo + w``, read from runs of ``Wo`` positions ``Wp`` apart (the
tiles' ``run`` and ``pitch``; a 3x3 convolution over 16x16 images computes
256 columns a channel, not 286). With fewer rows, the positions past a row's
``Wo`` columns (``w`` from ``Wo`` to ``Wp``) are computed too, and left out
when the calls' workspace is copied into the output (a ``col2im.Scatter``
that assigns). The input gradient of a stride-1
convolution reads its output gradient the same way (``y - i*d + p``). A
weight gradient's A is the taps' rows of such a copy, the sum runs over the
copy's positions, and B (the output gradient) is spread over the same
positions, zero at those past a row's end. A strided read (``2*h + i - p``)
is copied a plane per phase of the input (``_dims``): tap ``i`` reads phase
``i % 2`` shifted by ``i // 2``, so that the columns still move at stride 1.

In: a ``Stage`` and its ``Contraction``. Out: a ``patches.PatchGemm`` whose B
(or A) has ``rows`` set, or None where neither side is one such read (a
column variable in two coordinates, taps of unknown count, no taps).

Example::

    plan = plan_shifted(stage, plan_contraction(stage), program.shapes())   # a 3x3 convolution
    plan.b.rows.offset                # c * ((W + 2) * (h_step + 2)) + i * (W + 2) + j
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from . import ir
from .col2im import Scatter, _guarded, _implied
from .ir import IConst, IVar, Load, affine
from .patches import Block, Operand, Pack, PackLoop, _length, _plan, _window, along_reads, ranked_splits
from .schedule import Contraction, _factors, _plain_read

# the calls' columns are a multiple of this, the widest tile of any vector
# width (float32's under AVX-512): no tile at an edge of B
WHOLE_TILES = 32
# the calls' rows above which their columns may skip the padding between an
# image's rows: from there the tiles copy each panel of B anyway (more than two
# tiles of the tallest vector width's rows meet it)
COMPACT_MIN_ROWS = 16
# what the blended panel copy costs over the plain one, in rows of tiles per
# row of B: the columns saved must outweigh it, rows * gap > BLEND_ROWS * pitch
# (a 3x3 convolution of 3 channels into 32, rows 34 positions apart, ran its
# forward 4-15% slower on AVX2 compacted; 64 rows 18 apart, 4-10% faster)
BLEND_ROWS = 4


@dataclass(frozen=True)
class Rows:
    """Where B's rows start: row ``k`` (the point of ``loops``, the call's
    summed axes, outermost first) ``offset`` elements into the workspace;
    ``count`` rows."""

    loops: tuple
    offset: ir.IExpr
    count: ir.IExpr


@dataclass(frozen=True)
class _Dim:
    """A dimension of the workspace: loop ``var`` over ``extent`` positions,
    position ``u`` holding the read's coordinate ``u + base``. ``column``:
    the call's column variable in it (None: taps only); ``taps``: the summed
    variables' part of the coordinate less its lowest value (B's row offset)."""

    var: str
    base: ir.IExpr
    taps: ir.IExpr
    column: str | None
    extent: ir.IExpr
    span: int           # the taps' part of the extent: highest less lowest


def plan_shifted(s: ir.Stage, c: Contraction, shapes: dict):
    """The calls of ``c`` with a side read as shifted views of a padded copy of
    the input (see the module docstring), or None."""
    candidates = list(ranked_splits(s, c, shapes))
    if not candidates:
        return None
    plan = _columns_shifted(s, c, shapes, *candidates[0])
    if plan is not None:
        return plan
    # a sum over the positions of one image's copy needs the images among the
    # tasks, which the best split may have left in the sum (a grouped weight
    # gradient): the next splits as good may take them out. Columns shifted
    # only at the best split: at another, the positions computed and dropped
    # can outnumber those kept (a strided weight gradient as a convolution)
    for candidate in candidates:
        plan = _sum_shifted(s, c, shapes, *candidate)
        if plan is not None:
            return plan
    return None


def _columns_shifted(s: ir.Stage, c: Contraction, shapes: dict, split, flipped, sides):
    """B's rows (a convolution's taps) as shifted views; its columns the
    positions of the copy, copied into the output by the tasks that own them."""
    b = sides[1]
    if b.matrix is not None or b.once or b.layout != (b.depth, b.free):
        return None
    # tasks take blocks of the outermost column (rows of the image)
    extents = {a.name: a.extent for a in s.all_axes}
    taken = set(extents)
    block = _block_of(b.free[0], taken)
    plan = _plan(s, c, shapes, split, flipped, sides, block)
    found = _read(b.value, shapes) and _dims(_read(b.value, shapes)[0], b.free, b.depth, block, taken)
    if plan.accumulate or not found:
        return None
    (load, scale), (dims, index) = _read(b.value, shapes), found
    strides = _strides(dims)
    runs = _runs(dims, strides, block, plan.rows)
    pack = _padded_copy("lc_pack_b", load, dims, index, strides, extents, shapes, runs)
    # the calls run whole tiles: their columns rounded up to WHOLE_TILES, read
    # past the copy into as many zeros
    columns = _round_up(_columns(dims, strides, block) if runs is None else
                        ir.imul(ir.isub(IVar(block.stop), IVar(block.start)), runs[0]))
    if dict(zip((d.column for d in dims), strides)).get(block.axis.name) == IConst(1):
        # blocks of the columns themselves (a 1-D convolution's positions): whole
        # tiles each, or every block rounds up (blocks of 100 ran as 128)
        block = replace(block, grain=WHOLE_TILES)
        plan = ir.replace(plan, block=block)
    at_step = ir.isubst(columns, {block.start: IConst(0), block.stop: IVar(block.step)})
    placed = {d.column: st for d, st in zip(dims, strides) if d.column is not None}
    if runs is not None:
        placed = {**{column: runs[0] for column in placed if column != dims[-1].column}, dims[-1].column: IConst(1)}
    out = _copy_out(s, sides[0].free, b.free, placed, block, columns, at_step)
    packs = tuple(p for p in plan.packs if p.name != "lc_pack_b") + (pack,)
    return ir.replace(plan, packs=packs, b=Operand(pack.name, None, IConst(0), False, _rows(b.depth, dims, strides),
                                                   runs),
                      out=Operand("lc_cols", None, columns, False), cols=columns,
                      alpha=plan.alpha * scale, scatter=out)


def _sum_shifted(s: ir.Stage, c: Contraction, shapes: dict, split, flipped, sides):
    """A's rows (a weight gradient's taps) as shifted views, the sum over the
    positions of the copy; B (the output gradient) spread over the same
    positions, zero at those past a row's end."""
    a, b = sides
    if a.matrix is not None or a.once or b.once or not a.depth:
        return None
    extents = {v.name: v.extent for v in s.all_axes}
    taken = set(extents)
    block = _block_of(a.depth[0], taken)
    plan = _plan(s, c, shapes, split, flipped, sides, block)
    other = _plain_read(b.value, shapes, extents)
    found = _read(a.value, shapes) and _dims(_read(a.value, shapes)[0], a.depth, a.free, block, taken)
    if not found or other is None or set(ir.ivars_of_expr(b.value)) & {v.name for v in a.free}:
        return None
    (load, scale), (dims, index) = _read(a.value, shapes), found
    first = next(k for k, d in enumerate(dims) if d.column)
    if not all(d.column for d in dims[first:]):
        return None         # positions between the columns' would be summed, and B is not zero there
    strides = _strides(dims)
    depth = _columns(dims, strides, block)
    packs = (_padded_copy("lc_pack_a", load, dims, index, strides, extents, shapes),
             _spread(b, other[0], dims, strides, block, taken, extents, shapes))
    return ir.replace(plan, packs=packs, a=Operand("lc_pack_a", None, IConst(0), False, _rows(a.free, dims, strides)),
                      b=Operand("lc_pack_b", None, _length(b.free, None), False), depth=depth,
                      alpha=plan.alpha * scale * other[1])


def _runs(dims: list, strides: list, block, rows) -> tuple | None:
    """``(run, pitch)``: the calls' columns as the kept positions of two column
    dimensions, the outer the block's and the inner shifted by taps (the
    padding between its runs); None where the calls keep the copy's positions
    (COMPACT_MIN_ROWS rows or fewer, a run without padding after it, or too
    little padding for the rows to repay the blended copy: BLEND_ROWS)."""
    columns = [(d, st) for d, st in zip(dims, strides) if d.column is not None]
    if len(columns) != 2 or not isinstance(rows, IConst) or rows.value <= COMPACT_MIN_ROWS:
        return None
    (outer, pitch), (inner, _) = columns
    if outer.column != block.axis.name or inner.span == 0 or not isinstance(pitch, IConst) or \
            rows.value * inner.span <= BLEND_ROWS * pitch.value:
        return None
    return ir.isub(inner.extent, IConst(inner.span)), pitch


def _block_of(axis, taken: set) -> Block:
    return Block(axis, *(ir.fresh_name(f"{axis.name}_{part}", taken) for part in ("start", "stop", "step")))


def _rows(taps: tuple, dims: list, strides: list) -> Rows:
    """The table of where each tap's row starts in the copy."""
    return Rows(tuple(PackLoop(a.name, IConst(0), a.extent) for a in taps),
                _sum(ir.imul(d.taps, st) for d, st in zip(dims, strides)), _length(taps, None))


def _spread(side, load: Load, dims: list, strides: list, block, taken: set, extents: dict, shapes: dict) -> Pack:
    """``side`` (its summed axes the copy's columns) packed with a row per
    position of the copy (zero past the end of the input's rows), its own
    axes along each row."""
    loops, position, last, to = [], IConst(0), IConst(1), {}
    for d, st in zip(dims, strides):
        if d.column is None:
            continue
        var = ir.fresh_name(f"q{len(loops)}", taken)
        blocked = d.column == block.axis.name
        stop = ir.isub(IVar(block.stop), IVar(block.start)) if blocked else d.extent
        loops.append(PackLoop(var, IConst(0), stop))
        to[d.column] = ir.iadd(IVar(var), IVar(block.start)) if blocked else IVar(var)
        position = ir.iadd(position, ir.imul(IVar(var), st))
        last = ir.iadd(last, ir.imul(ir.isub(stop, IConst(1)), st))
    loops += [PackLoop(a.name, IConst(0), a.extent) for a in side.free]
    own = IConst(0)
    for a in side.free:
        own = ir.iadd(ir.imul(own, a.extent), IVar(a.name))
    read = Load(load.tensor, tuple(ir.isubst(i, to) for i in load.index))
    extents = {**extents, **{l.var: l.stop for l in loops}}
    width = _length(side.free, None)
    offset = ir.iadd(ir.imul(position, width), own)
    loops, stride = along_reads(read, tuple(loops), offset, shapes, block)
    value, lo, hi, tests, in_range = _window(read, loops[-1].var, extents, shapes)
    capacity = ir.isubst(ir.imul(last, width), {block.start: IConst(0), block.stop: IVar(block.step)})
    return Pack("lc_pack_b", value, loops, offset, capacity, lo, hi, tests, in_range, False, True, stride)


def _round_up(n: ir.IExpr) -> ir.IExpr:
    return ir.imul(ir.ifloordiv(ir.iadd(n, WHOLE_TILES - 1), WHOLE_TILES), WHOLE_TILES)


def _read(value, shapes: dict):
    """``(load, scale)`` when ``value`` is one read times constants, zero only
    where the read falls outside its tensor; else None."""
    conditions, product = _guarded(value)
    factors = _factors(product)
    loads = [f for f in factors if isinstance(f, Load)]
    if len(loads) != 1 or not all(isinstance(f, (Load, ir.Const)) for f in factors):
        return None
    load = loads[0]
    implied = set().union(*(_implied(i, i, 1, n) for i, n in zip(load.index, shapes[load.tensor])))
    if any(cond not in implied for cond in conditions):
        return None
    return load, math.prod(f.value for f in factors if isinstance(f, ir.Const))


def _dims(load: Load, cols: tuple, depth: tuple, block, taken: set):
    """``(dims, index)``: the workspace's dimensions (one per coordinate of
    ``load`` that reads a column or summed variable, and one more per phase
    of a strided one) and the read that fills it; None unless each column
    variable is in one coordinate, at a positive stride, in the columns'
    order, the innermost in the last dimension, and some coordinate shifts a
    column by taps.

    A coordinate ``s*h + t + rest`` (``t``: the taps, ``s`` > 1) reads the
    input at every ``s``-th position from ``s*h + min(t)`` on: written
    ``s*(h + q) + r`` with ``t - min(t) = s*q + r``, each phase ``r`` of the
    input is a plane of its own (its positions ``u = h + q`` at stride 1), and
    tap ``t`` reads plane ``r`` shifted by ``q``. The phases are dimensions
    outside the columns' (before the first), so that the columns stay
    positions of one plane."""
    names = {a.name for a in cols}
    summed = {a.name: a.extent for a in depth}
    extents = {a.name: a.extent for a in cols}
    outer, phases, index, order = [], [], [], []
    for coordinate in load.index:
        split = affine(coordinate, names | set(summed))
        if split is None:
            return None
        coefs, rest = split
        here = [v for v in coefs if v in names]
        taps = {v: k for v, k in coefs.items() if v in summed}
        if not here and not taps:
            index.append(coordinate)
            continue
        if len(here) > 1 or any(coefs[v] < 1 for v in here) or any(not isinstance(summed[v], IConst) for v in taps):
            return None
        column = here[0] if here else None
        dim, phase, read = _coordinate(column, coefs[column] if column else 1, rest, taps, summed,
                                       extents.get(column), block, taken, len(outer))
        outer.append(dim)
        phases += [phase] if phase else []
        index.append(read)
        order += here
    first = next((k for k, d in enumerate(outer) if d.column), len(outer))
    dims = outer[:first] + phases + outer[first:]
    if order != [a.name for a in cols] or dims[-1].column != cols[-1].name or \
            not any((d.column or d in phases) and d.taps != IConst(0) for d in dims):
        return None
    return dims, tuple(index)


def _coordinate(column, stride: int, rest, taps: dict, summed: dict, extent, block, taken: set, number: int):
    """``(dim, phase, read)`` of a coordinate ``stride*column + taps + rest``:
    its dimension of the workspace, the dimension of its phases (None at
    stride 1, or where the taps stay in one phase) and the coordinate the
    copy reads at their point (its loops named after ``number``)."""
    lowest = sum(k * (summed[v].value - 1) for v, k in taps.items() if k < 0)
    span = sum(abs(k) * (summed[v].value - 1) for v, k in taps.items())
    shift = _sum([IConst(-lowest)] + [ir.imul(k, IVar(v)) for v, k in taps.items()])
    base = ir.iadd(rest, IConst(lowest))
    var = ir.fresh_name(f"u{number}", taken)
    position, phase = ir.imul(stride, IVar(var)), None
    # the phases the taps reach: multiples of the divisor they share with the
    # stride (a dilation of 2 at stride 2 reads one)
    step = math.gcd(stride, *taps.values())
    if step < stride:
        phase = _Dim(ir.fresh_name(f"r{number}", taken), IConst(0), ir.ifloordiv(ir.imod(shift, stride), step),
                     None, IConst(min(stride // step, span // step + 1)), 0)
        position = ir.iadd(position, ir.imul(step, IVar(phase.var)))
    shift, span = ir.ifloordiv(shift, stride), span // stride
    if column is None:
        extent = IConst(span + 1)
    elif column == block.axis.name:
        extent, base = ir.iadd(IVar(block.step), IConst(span)), ir.iadd(base, ir.imul(stride, IVar(block.start)))
    else:
        extent = ir.iadd(extent, IConst(span))
    return _Dim(var, base, shift, column, extent, span), phase, ir.iadd(position, base)


def _strides(dims: list) -> list:
    """Row-major strides of the workspace's dimensions."""
    strides, stride = [], IConst(1)
    for d in reversed(dims):
        strides.append(stride)
        stride = ir.imul(stride, d.extent)
    return strides[::-1]


def _padded_copy(name: str, load: Load, dims: list, index: tuple, strides: list, extents: dict,
                 shapes: dict, runs: tuple | None = None) -> Pack:
    """The task's copy of what its calls read, zeros outside the input, and
    at least WHOLE_TILES elements more at its end (its outermost loop runs
    on past the input: zeros again); with ``runs``, as many more as the
    columns rounded up to WHOLE_TILES reach rows further on."""
    tail = IConst(WHOLE_TILES)
    if runs is not None:
        run, pitch = runs
        tail = ir.iadd(tail, ir.imul(ir.iadd(IConst(1), ir.ifloordiv(IConst(WHOLE_TILES), run)), pitch))
    more = ir.ifloordiv(ir.iadd(tail, ir.isub(strides[0], IConst(1))), strides[0])
    dims = [replace(dims[0], extent=ir.iadd(dims[0].extent, more))] + dims[1:]
    loops = tuple(PackLoop(d.var, IConst(0), d.extent) for d in dims)
    extents = {**extents, **{d.var: d.extent for d in dims}}
    value, lo, hi, tests, in_range = _window(Load(load.tensor, index), dims[-1].var, extents, shapes)
    offset = _sum(ir.imul(IVar(d.var), st) for d, st in zip(dims, strides))
    capacity = ir.imul(strides[0], dims[0].extent)
    return Pack(name, value, loops, offset, capacity, lo, hi, tests, in_range, False, True)


def _columns(dims: list, strides: list, block) -> ir.IExpr:
    """The calls' columns: one past the position of the last (the block's last row's last column)."""
    last = IConst(1)
    for d, st in zip(dims, strides):
        if d.column is not None:
            length = ir.isub(IVar(block.stop), IVar(block.start)) if d.column == block.axis.name else \
                ir.isub(d.extent, IConst(d.span))
            last = ir.iadd(last, ir.imul(ir.isub(length, IConst(1)), st))
    return last


def _copy_out(s: ir.Stage, rows: tuple, cols: tuple, stride_of: dict, block, columns, at_step) -> Scatter:
    """The calls' workspace (rows ``rows`` of ``columns`` positions) copied
    into the output: column point ``cols`` at the sum of its coordinates
    times ``stride_of`` theirs (the block's counted from its start)."""
    loops = tuple(PackLoop(a.name, IVar(block.start), IVar(block.stop)) if a == block.axis
                  else PackLoop(a.name, IConst(0), a.extent) for a in rows + cols)
    row = IConst(0)
    for a in rows:
        row = ir.iadd(ir.imul(row, a.extent), IVar(a.name))
    position = _sum(ir.imul(ir.isub(IVar(a.name), IVar(block.start)) if a == block.axis else IVar(a.name),
                            stride_of[a.name]) for a in cols)
    offset = ir.iadd(ir.imul(row, columns), position)
    capacity = ir.imul(_length(rows, None), at_step)
    return Scatter(loops, offset, capacity, tuple(IVar(a.name) for a in s.axes), (), (), (), assign=True)


def _sum(terms) -> ir.IExpr:
    total = IConst(0)
    for t in terms:
        total = ir.iadd(total, t)
    return total
