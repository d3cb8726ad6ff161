"""A strided convolution's input gradient as GEMM calls and a scatter (col2im).

Autodiff writes the input gradient of a strided read in gather form::

    gx[n, c, y, x] = sum_{o, i, j} (gy[n, o, (y + p - i*d) // s, (x + p - j*d) // s] * w[o, c, i, j]
                                    if (y + p - i*d) % s == 0 and ... in range else 0)

Packing that read as it stands would multiply s^2 times more zeros than
values. Read the other way, each coordinate ``(y + p - i*d) // s`` that the
guard keeps divisible is a new index ``h`` with ``y = s*h - p + i*d``: the
sum is a matrix product over the variables left (``o``), whose result
``cols[c, i, j, h, w] = sum_o w[o, c, i, j] * gy[n, o, h, w]`` is then added
into ``gx`` at ``(s*h - p + i*d, s*w - p + j*d)``. A task computes the columns
of one image and a block of channels into its own workspace with one GEMM
call, then adds them into the part of the output that only it writes: no
two threads write one element.

In: a ``Stage``; out: a ``patches.PatchGemm`` whose ``scatter`` is set, or
None when the stage is not of this form or the product's sides are not
matrices in memory (B's rows as rows).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .ir import Call, Const, IConst, IVar, Load, affine
from .patches import (Block, Operand, PatchGemm, _bound, _conjuncts, _length, _plain_read, canonical,
                      in_place, workspace)
from .schedule import _factors, _matrix, _product, coordinate_in_range, starting_value

# a product with fewer rows, columns or terms than this is left to loops
MIN_SIDE = 8


@dataclass(frozen=True)
class Scatter:
    """The calls' results (a workspace over ``loops``, element ``offset`` at
    their point) added into the output at ``index``. Along the innermost loop
    the target lies inside the output from every bound of ``lo`` to every
    bound of ``hi``; outside ``tests`` (free of that loop) nowhere.
    ``assign``: each output element is one element of the workspace, of one
    task (written, not added, unless the sum started at a value)."""

    loops: tuple
    offset: ir.IExpr
    capacity: ir.IExpr
    index: tuple
    lo: tuple
    hi: tuple
    tests: tuple
    assign: bool = False


@dataclass(frozen=True)
class _Gather:
    """The gathered read solved backwards: ``load`` with ``h`` variables, and
    each output variable's value ``y = s*h + rest``."""

    value: object        # the read with the new variables (times constants)
    axes: tuple          # the new variables, one per strided coordinate
    targets: dict        # output variable -> its coordinate in the new variables


def plan_col2im(s: ir.Stage, shapes: dict, unstrided: bool = False) -> PatchGemm | None:
    """``s`` as GEMM calls into a workspace added into the output, or None.
    Only a strided gather, unless ``unstrided`` (when the gather is no matrix
    product of its own: an input gradient of few channels)."""
    if s.reduce != "sum" or s.scatter_index is not None:
        return None
    start, body = starting_value(s)
    conditions, product = _guarded(body)
    factors = _factors(product)
    for k, gathered in enumerate(factors):
        if len(factors) < 2:
            break
        other = _product(factors[:k] + factors[k + 1:])
        gather = _solve(s, conditions, gathered, other, shapes, unstrided)
        if gather is not None:
            return _plan(s, start, gather, other, shapes)
    return None


def _guarded(value):
    """``(conditions, value)`` of ``select(cond, value, 0)``, selects nested in
    it taken too (no condition: ``[]``)."""
    conditions = []
    while isinstance(value, Call) and value.op == "select" and value.args[2] == Const(0.0):
        conditions += _conjuncts(value.args[0])
        value = value.args[1]
    return conditions, value


def _solve(s: ir.Stage, conditions: list, gathered, other, shapes: dict, unstrided: bool) -> _Gather | None:
    """The read ``gathered`` solved for new variables where its coordinates mix
    an output variable with reduced ones (dividing by a stride), if every
    condition (``conditions`` and its own guards) holds wherever they are in range."""
    own, value = _guarded(gathered)
    conditions = conditions + own
    loads = ir.loads(value)
    outer = {a.name for a in s.axes}
    reduced = {a.name for a in s.reduce_axes}
    strided = loads and any(isinstance(i, ir.IBin) and i.op == "//" for i in loads[0].index)
    if len(loads) != 1 or not (strided or unstrided):
        return None
    load, taken = loads[0], {a.name for a in s.all_axes}
    index, axes, targets, implied = [], [], {}, set()
    for k, coordinate in enumerate(load.index):
        numerator, stride = (coordinate.a, coordinate.b.value) if isinstance(coordinate, ir.IBin) and \
            coordinate.op == "//" and isinstance(coordinate.b, IConst) else (coordinate, 1)
        split = affine(numerator, outer | reduced)
        solved = split and [v for v in split[0] if v in outer]
        # an adjoint's gather reads y - i*d (y: the output's, i: a reduced variable)
        mixed = stride > 1 or (split and any(split[0][v] < 0 for v in set(split[0]) & reduced))
        if not (solved and mixed) or len(solved) > 1 or split[0][solved[0]] != 1 or solved[0] in targets:
            if split is None or ir.ivars(coordinate) & set(targets):
                return None
            index.append(coordinate)
            continue
        y = solved[0]
        h = ir.Axis(ir.fresh_name(f"{y}_src", taken), shapes[load.tensor][k])
        # y + rest = s*h, so y = s*h - rest
        rest = split[1]
        for v, coef in split[0].items():
            rest = ir.iadd(rest, ir.imul(coef, IVar(v))) if v != y else rest
        targets[y] = canonical(ir.isub(ir.imul(stride, IVar(h.name)), rest))
        axes.append(h)
        index.append(IVar(h.name))
        implied |= _implied(coordinate, numerator, stride, shapes[load.tensor][k])
    if not axes or any(cond not in implied for cond in conditions) or ir.ivars_of_expr(other) & set(targets):
        return None
    return _Gather(ir.map_expr(value, lambda e: Load(e.tensor, tuple(index)) if e == load else e),
                   tuple(axes), targets)


def _implied(coordinate, numerator, stride: int, extent) -> set:
    """The guard conditions that hold wherever ``coordinate`` is a new variable's value."""
    zero = (ir.IndexValue(IConst(0)), Const(0.0))
    read = ir.IndexValue(coordinate)
    found = {Call("ge", (read, z)) for z in zero} | {Call("lt", (read, ir.IndexValue(extent)))}
    if stride > 1:
        found |= {Call("eq", (ir.IndexValue(ir.imod(numerator, stride)), z)) for z in zero}
    return found


def _plan(s: ir.Stage, start, gather: _Gather, other, shapes: dict) -> PatchGemm | None:
    """The product ``cols[rows, cols] = sum_depth other * gathered`` per task:
    ``rows`` the other side's own variables (a block of its output variable
    first), ``cols`` the gathered side's; the other output variables are the
    tasks' loops, so that tasks own disjoint parts of the output."""
    extents = {a.name: a.extent for a in s.all_axes + gather.axes}
    reads = _plain_read(gather.value, shapes, extents), _plain_read(other, shapes, extents)
    if None in reads:
        return None
    (g_load, g_scale), (o_load, o_scale) = reads
    used = [set().union(*(ir.ivars(i) for i in load.index)) for load in (g_load, o_load)]
    owners = [a.name for a in s.axes if a.name not in gather.targets]
    depth = tuple(a for a in s.reduce_axes if a.name in used[0] & used[1])
    in_targets = set().union(*(ir.ivars(t) for t in gather.targets.values()))
    if not depth or in_targets & {a.name for a in depth} or \
            {a.name for a in s.reduce_axes + gather.axes} - used[0] - used[1]:
        return None
    rows = _run(o_load, used[0], extents)
    cols = [v for v in _run(g_load, used[1], extents) if v not in owners]
    owned = [v for v in rows if v in owners]
    if len(owned) > 1 or (owned and rows[0] != owned[0]) or not cols:
        return None
    rows, cols = (tuple(ir.Axis(v, extents[v]) for v in run) for run in (rows, cols))
    if any(isinstance(n, IConst) and n.value < MIN_SIDE for n in map(lambda r: _length(r, None), (rows, cols, depth))):
        return None
    block = None
    if owned:
        taken = set(extents)
        block = Block(rows[0], *(ir.fresh_name(f"{rows[0].name}_{p}", taken) for p in ("start", "stop", "step")))
    a = _matrix(o_load.tensor, o_load.index, shapes[o_load.tensor], rows, depth)
    b = _matrix(g_load.tensor, g_load.index, shapes[g_load.tensor], depth, cols)
    if a is None or b is None or b.transposed:
        return None
    loops = tuple(ax for ax in s.axes if ax.name in owners and ax.name not in owned)
    operands = [in_place(o_load.tensor, o_load.index, rows + depth, block, a),
                in_place(g_load.tensor, g_load.index, depth + cols, block, b)]
    scatter = _scatter(s, gather, rows, cols, block)
    return PatchGemm((), *operands, Operand("lc_cols", None, _length(cols, block), False), g_scale * o_scale,
                     _length(rows, block), _length(cols, block), _length(depth, None), loops, False, block,
                     _length(s.reduce_axes, None), start, scatter)


def _run(load, elsewhere: set, extents: dict) -> list:
    """The index variables only ``load`` reads, in the order of its dimensions."""
    names = []
    for i in load.index:
        names += [v for v in sorted(ir.ivars(i)) if v not in elsewhere and v not in names]
    return [v for v in names if v in extents]


def _scatter(s: ir.Stage, gather: _Gather, rows: tuple, cols: tuple, block) -> Scatter:
    loops, offset, capacity = workspace(rows, cols, block)
    target = tuple(gather.targets.get(a.name, IVar(a.name)) for a in s.axes)
    extents = {a.name: a.extent for a in s.all_axes + gather.axes}
    lo, hi, tests = [], [], []
    for coordinate, size in zip(target, s.shape):
        if coordinate_in_range(coordinate, size, extents):
            continue
        for cond in (Call("ge", (ir.IndexValue(coordinate), Const(0.0))),
                     Call("lt", (ir.IndexValue(coordinate), ir.IndexValue(size)))):
            bound = _bound(cond, loops[-1].var)
            if bound is None:
                tests.append(cond)
            else:
                (lo if bound[0] == "lo" else hi).append(bound[1])
    return Scatter(loops, offset, capacity, target, tuple(lo), tuple(hi), tuple(tests))
