"""Windowed reductions (pooling, any reduction over a small window written in
index notation) and their adjoints, planned so that the innermost loop runs
along the contiguous axis. A stage goes in; a ``Sliding`` plan, or None,
comes out. Pure functions of the IR: the schedule adds the column's bounds
(``schedule.plan_window``) and codegen renders ``templates/window.c.j2``.

Two shapes are recognized, structurally (never by layer name):

- A *window reduction* ``y[.., h, w] = R_{i, j} f(x[.., h*s + i*d - p, w*t + j*e - q], ..)``:
  R is ``sum`` or ``max``, every reduction index has a small constant extent
  and slides along an output index. Each output row runs ``w`` innermost
  (vectorized, ``x`` read at stride ``t``) with the whole window unrolled
  inside it. Autodiff's gather of a stride-1 window is one of these too.
- The *gather* autodiff derives for a strided window's input,
  ``dx[.., j2, j3] = sum_{i, j} (g[.., (j2 - i) // s, (j3 - j) // t] if
  (j2 - i) % s == 0 and 0 <= (j2 - i) // s < H' .. else 0)``, is turned back
  into the scatter it inverts, ``dx[.., h*s + i, w*t + j] += g[.., h, w]``
  over ``h, w, i, j``: no division in the loops and ``g`` read contiguously.
  Its leading plain indices (``n, c``) are *planes*: each plane of ``dx`` is
  written by one thread only, so the scatter is race-free and deterministic.

Example::

    >>> from layerc.compiler.ir import Axis, IConst, IVar, Load, Stage, iadd, imul
    >>> h, w, i = IVar("h"), IVar("w"), IVar("i")
    >>> pool = Stage("y", (IConst(4),), (Axis("w", IConst(4)),),
    ...              Load("x", (iadd(imul(2, w), i),)), "max", (Axis("i", IConst(2)),))
    >>> plan = plan_sliding(pool)
    >>> plan.column.name, [a.name for a in plan.inner]
    ('w', ['i'])
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

from . import ir
from .ir import Axis, Call, Const, IBin, IConst, IndexValue, IVar, Load, Stage, affine
from .ops_table import COMPARISONS, OPS
from .simplify import simplify_expr

# window elements at most: the window is unrolled inside the column loop
WINDOW_LIMIT = 64
# a maximum's window elements at most when its rows run in SIMD lanes (a global
# max pool over 14 x 14: its gradient's first maximum, in scalar loops, took
# 4x torch's time), its offsets but the innermost unrolled (WINDOW_LIMIT), the
# innermost two runs of vectors wide at least (laned_rows_pay)
WIDE_LIMIT = 1024

# a window's column loop is vectorized this many columns at a time, in runs of
# whole vectors (plus one for a read with gaps), its last run redone where
# that is harmless: gcc 12 runs a loop's odd columns, a loop shorter than its
# vector, and the last column of a strided read with gaps (x[2w + 2]) in scalar
# code (a max's NaN tests make that slow), and rows are short (13 to 28 columns)
COLUMN_BLOCK = 8

# a window offset this wide at least runs in SIMD lanes when its rows are short
# (4 wide, AdaptiveMaxPool2D 2 [64,32,8,8]: 1.26x torch on the rows, 0.92x in lanes)
LANE_EXTENT = 5


@dataclass(frozen=True)
class Sliding:
    """How a window reduction, or the scatter of a window's adjoint, runs:
    ``planes`` (outermost, split between threads: their iterations write
    disjoint parts of the output), then ``rows`` and ``outer`` window offsets
    (serial), then ``column`` (vectorized), inside it the ``inner`` window
    offsets (unrolled). ``stage`` is the stage as run; for a scatter, its body
    is ``select(write_guard, term, 0)``: the target is in its tensor,
    ``injective`` when it stores each element once, and its planes need a
    ``clear`` first unless it stores every element. ``in_range``: reads inside
    their tensor though not inside each dimension (``merge_rows``). ``start``:
    what a sum starts from instead of 0 (``schedule.add_into_products``: a
    bias added to a depthwise convolution), read once per output element."""

    stage: Stage
    planes: tuple
    rows: tuple
    outer: tuple
    column: Axis
    inner: tuple
    write_guard: object = None
    injective: bool = False
    clear: bool = True
    in_range: frozenset = frozenset()
    start: object = None

    @property
    def scatter(self) -> bool:
        return self.stage.scatter_index is not None

    @property
    def target(self) -> tuple:
        """The index of the element each iteration updates."""
        return self.stage.scatter_index if self.scatter else self.stage.index

    @property
    def bounded(self) -> Stage:
        """The stage whose term is zero where the column loop may not run
        unguarded: the stage itself, or, for a max (no term is zero), the
        product of its reads, zero where a read leaves its tensor; conditions
        on the inner offsets alone (a phase's) are left to the unrolled loop."""
        body = self.stage.body
        if self.stage.reduce == "max":
            body = Const(1.0)
            for read in ir.loads(self.stage.body):
                body = Call("mul", (body, read))
        inner = {a.name for a in self.inner}
        decided = {c for c in _guards(body) if ir.ivars_of_expr(c) <= inner}
        body = simplify_expr(_replace(body, decided)) if decided else body
        return self.stage if body is self.stage.body else ir.replace(self.stage, body=body, reduce="sum")

    @property
    def gaps(self) -> bool:
        """Whether some read strides along the column leaving gaps between the
        window's columns (``x[2*w + j]``, ``j < 3``: ``x[2*w + 2]`` starts a
        group of two it uses one of), which gcc 12 finishes in scalar code."""
        inner = {a.name: a.extent.value for a in self.inner}
        for load in ir.loads(self.stage.body):
            along = affine(load.index[-1], {self.column.name})
            stride = abs(along[0].get(self.column.name, 0)) if along else 0
            if stride < 2:
                continue
            coefs = affine(load.index[-1], ir.ivars(load.index[-1]))
            if coefs is None:
                return True
            offsets = [v for v in coefs[0] if v in inner]
            values = sorted({sum(coefs[0][v] * k for v, k in zip(offsets, point))
                             for point in itertools.product(*(range(inner[v]) for v in offsets))})
            if values != list(range(values[0], values[0] + stride)):
                return True
        return False

    @property
    def order(self) -> tuple:
        """Every axis, outermost first."""
        return self.planes + self.rows + self.outer + (self.column,) + self.inner


def plan_sliding(s: Stage) -> Sliding | None:
    """The plan of a window reduction, or of the gather autodiff derives for a
    strided window (as the scatter it inverts), or None for any other stage."""
    if s.reduce is None and s.scatter_index is None:
        return _plan_split(s)
    if s.scatter_index is not None or s.reduce not in ("sum", "max") or not _is_window(s.reduce_axes, WIDE_LIMIT):
        return None
    offsets = {a.name for a in s.reduce_axes}
    unrolled = _is_window(s.reduce_axes, WINDOW_LIMIT)
    if _vectorizable(s.body, s.index, s.axes[-1].name if s.axes else None, offsets) and _slides(s, s.index):
        plan = Sliding(s, s.axes[:-1], (), (), s.axes[-1], s.reduce_axes)
        # a window too wide to unroll runs its rows in SIMD lanes (its other offsets
        # unrolled), where they are long enough: ``laned_rows_pay``
        laned = lane_mode(plan) == "always" and math.prod(a.extent.value for a in s.reduce_axes[:-1]) <= WINDOW_LIMIT
        return plan if unrolled or laned else None
    scatter = as_scatter(s) if s.reduce == "sum" and unrolled else None
    return scatter and _plan_scatter(*scatter)


def _plan_split(s: Stage) -> Sliding | None:
    """The plan of a pointwise stage whose last index ``j`` is read only as
    ``j // K`` and ``j % K`` (the gradient of a wide window that tiles its
    input: autodiff's one read per element, ``g[.., j // K]``), when a row
    holds fewer windows than a run of vectors: the scatter it is, over ``q =
    j // K`` (the column) and ``r = j % K`` (its inner offset, contiguous, in
    SIMD lanes: ``window_c._lane``), each element stored once, with no division
    left in the loops. A row divided unevenly, or of a length known only at
    run time, has a last column that ends past it: a write guard keeps its
    stores inside the row."""
    last = s.axes[-1] if s.axes else None
    if last is None:
        return None
    indices = [i for e in ir.postorder(s.body) for i in
               (e.index if isinstance(e, Load) else (e.expr,) if isinstance(e, IndexValue) else ())]
    radices = {d.b.value for i in indices for d in _divisions(i)
               if d.a == IVar(last.name) and isinstance(d.b, IConst)}
    if len(radices) != 1:
        return None
    radix, = radices
    columns = ir.ifloordiv(ir.iadd(last.extent, radix - 1), radix)
    if not (LANE_EXTENT <= radix <= WINDOW_LIMIT and (not isinstance(columns, IConst) or columns.value < COLUMN_BLOCK)):
        return None
    taken = {a.name for a in s.axes}
    column = Axis(_fresh(f"{last.name}_", taken), columns)
    lane = Axis(_fresh(f"{last.name}_lane", taken | {column.name}), IConst(radix))
    mapping = {last.name: ir.iadd(ir.imul(radix, IVar(column.name)), IVar(lane.name))}
    body = ir.map_expr(ir.map_expr(s.body, lambda e: _substitute(e, mapping)), lambda e: _below(e, lane))
    split = [i for e in ir.postorder(body) for i in
             (e.index if isinstance(e, Load) else (e.expr,) if isinstance(e, IndexValue) else ())]
    if any(ir.ivars(d) & {column.name, lane.name} for i in split for d in _divisions(i)):
        return None
    target = s.index[:-1] + (mapping[last.name],)
    write_guard = None
    if ir.imul(radix, columns) != last.extent:
        write_guard = Call("lt", (IndexValue(target[-1]), IndexValue(last.extent)))
        body = simplify_expr(Call("select", (write_guard, body, Const(0.0))))
    scatter = ir.replace(s, axes=s.axes[:-1] + (column,), body=body, reduce="sum", reduce_axes=(lane,),
                         scatter_index=target)
    return Sliding(scatter, s.axes[:-1], (), (), column, (lane,), write_guard, True, False)


def _below(leaf, lane: Axis):
    """An index leaf with ``r % K`` as ``r`` and ``r // K`` as 0, ``r`` being
    the ``lane`` over ``[0, K)``."""
    def settle(e):
        if not isinstance(e, IBin):
            return e
        a, b = settle(e.a), settle(e.b)
        if e.op in ("//", "%") and a == IVar(lane.name) and b == lane.extent:
            return a if e.op == "%" else IConst(0)
        return ir.IBIN_BUILDERS[e.op](a, b)
    if isinstance(leaf, Load):
        return Load(leaf.tensor, tuple(settle(i) for i in leaf.index))
    if isinstance(leaf, IndexValue):
        return IndexValue(settle(leaf.expr))
    return leaf


def laned_rows_pay(plan: "Sliding") -> bool:
    """Whether a window too wide to unroll (``WINDOW_LIMIT``) has rows in lanes
    that fill two runs of vectors at least (once ``merge_rows`` made whole rows
    one): rows of 9, 8 lanes and a scalar, ran a 9 x 9 maximum slower than the
    scalar loops; a global pool's 14 x 14 as 196 ran 10x faster."""
    extents = [a.extent.value for a in plan.inner]
    return math.prod(extents) <= WINDOW_LIMIT or extents[-1] >= 2 * COLUMN_BLOCK


def lane_mode(plan: "Sliding") -> str | None:
    """When a reduction's window columns run in SIMD lanes: ``"always"`` when
    its rows are shorter than a run of vectors (a global pool's row is one
    column: vectorized along it, one lane of eight works), ``"short"`` when
    the row's length is known only at run time (the choice made per call),
    None when never. Only a maximum: a sum's unrolled window gcc vectorizes
    itself across the window (AvgPool2D k7 s7 on 7x7 planes: 0.75x torch in
    lanes, 1.08x unrolled), a maximum's costs two selects per element (its
    NaN test). The innermost offset must be wide (LANE_EXTENT) and read every
    tensor contiguously along its last dimension, or not at all."""
    if not plan.inner or plan.inner[-1].extent.value < LANE_EXTENT:
        return None
    if plan.scatter and plan.injective and len(plan.inner) == 1:
        # a tiling window's gradient (windows._plan_split): its offset is the
        # target's contiguous coordinate, each element stored once
        split = affine(plan.target[-1], {plan.inner[0].name})
        return _short_row(plan) if split is not None and split[0].get(plan.inner[0].name) == 1 else None
    if plan.scatter or plan.stage.reduce != "max" or not walks_contiguously(plan.stage.body, plan.inner[-1].name):
        return None
    return _short_row(plan)


def walks_contiguously(body, var: str) -> bool:
    """Whether every read in ``body`` that ``var`` moves moves along its
    tensor's last dimension, one element per step."""
    for load in ir.loads(body):
        for k, coordinate in enumerate(load.index):
            split = affine(coordinate, {var})
            step = split[0].get(var, 0) if split is not None else None
            if step is None or (step and (step != 1 or k != len(load.index) - 1)):
                return False
    return True


def _short_row(plan) -> str | None:
    extent = plan.column.extent
    if not isinstance(extent, IConst):
        return "short"
    return "always" if extent.value < COLUMN_BLOCK else None


def _is_window(axes: tuple, limit: int) -> bool:
    extents = [a.extent.value if isinstance(a.extent, IConst) else None for a in axes]
    return bool(axes) and None not in extents and 0 < math.prod(extents) <= limit


def _coordinates(body, target: tuple) -> list:
    """Every coordinate the stage reads or writes, with the rank of its tensor's
    dimension (-1: the last)."""
    found = [(c, k - len(target)) for k, c in enumerate(target)]
    for load in ir.loads(body):
        found += [(c, k - len(load.index)) for k, c in enumerate(load.index)]
    return found


def _vectorizable(body, target: tuple, column: str | None, offsets: set) -> bool:
    """Whether ``column`` walks every tensor of the stage along its last
    dimension only, at a constant stride (a data-dependent index anywhere, or
    a divided one outside the window's ``offsets``, rules the stage out)."""
    if column is None or any(ir.index_tensors(c) for c, _ in _coordinates(body, target)):
        return False
    for coordinate, rank in _coordinates(body, target):
        names = ir.ivars(coordinate) - offsets
        split = affine(coordinate, names)
        if split is None:
            return False
        if column in names and rank != -1:
            return False
    last = target[-1] if target else IConst(0)
    return affine(last, {column}) is not None and affine(last, {column})[0].get(column, 0) > 0


def _slides(s: Stage, target: tuple) -> bool:
    """Whether each reduction index slides along an output index: it shares
    some coordinate with one (a window, not a short sum over a dimension)."""
    offsets = {a.name for a in s.reduce_axes}
    together = [ir.ivars(c) for c, _ in _coordinates(s.body, target)]
    return all(any(o in names and names - offsets for names in together) for o in offsets)


# ---------------------------------------------------------------- the gather turned back


def as_scatter(s: Stage):
    """``(scatter stage, write guard, phases, whether it writes every element)``
    equal to the gather ``s``, or None.

    Each output index ``j`` of the gather that autodiff solved for a window's
    index ``h`` (``h = (j + r) // s``, ``r`` over the window, guarded by
    ``(j + r) % s == 0`` and ``0 <= h < H``) becomes ``h`` again, and ``j``
    the coordinate ``s*h - r`` the scatter writes. The guards then hold by
    construction; the write guard keeps ``j`` inside the tensor. Where windows
    overlap along the column (3 wide, every 2), two columns would write one
    element: the column is instead cut in phases, ``j = s*m + p`` (``p < s``,
    a new offset), and each element of a row gathers its terms."""
    solved = _solve(s)
    if solved is None:
        return None
    mapping, axes, phases, known = solved
    # every element of a gather cut in phases along each solved index gets one store
    covered = len(phases) == len(mapping)
    body = _settle(ir.map_expr(s.body, lambda e: _substitute(e, mapping)), known)
    target = tuple(mapping.get(a.name, IVar(a.name)) for a in s.axes)
    write_guard, extents = None, {a.name: a.extent for a in axes}
    for coordinate, size in zip(target, s.shape):
        if not (isinstance(coordinate, IVar) and extents.get(coordinate.name) == size):
            for cond in (Call("ge", (IndexValue(coordinate), Const(0.0))),
                         Call("lt", (IndexValue(coordinate), IndexValue(size)))):
                write_guard = cond if write_guard is None else Call("mul", (write_guard, cond))
    body = simplify_expr(Call("select", (write_guard, body, Const(0.0))))
    # what is still divided is a phase's offset, decided when the window is unrolled
    offsets = {a.name for a in s.reduce_axes + phases}
    indices = [i for e in ir.postorder(body) for i in
               (e.index if isinstance(e, Load) else (e.expr,) if isinstance(e, IndexValue) else ())]
    if any(not ir.ivars(d) <= offsets for i in indices for d in _divisions(i)):
        return None
    scatter = ir.replace(s, axes=axes, body=body, reduce_axes=phases + s.reduce_axes, scatter_index=target)
    return scatter, write_guard, phases, covered


def _solve(s: Stage):
    """``(mapping, axes, phases, known)``: each solved output index of the
    gather ``s`` as a coordinate of the scatter's indices ``axes`` (and
    ``phases``), and the comparisons that hold by construction; None when no
    index was solved or one twice."""
    offsets = {a.name for a in s.reduce_axes}
    guards = set(_guards(s.body))
    taken = {a.name for a in s.all_axes}
    extents = {a.name: a.extent for a in s.all_axes}
    mapping, axes, phases, known = {}, [], (), set()
    for k, axis in enumerate(s.axes):
        solutions = set(_solutions(guards, axis.name, offsets))
        if len(solutions) != 1:
            if solutions:
                return None
            axes.append(axis)
            continue
        (numerator, stride, extent), = solutions
        name = _fresh(f"{axis.name}_", taken)
        phase = _fresh(f"{axis.name}_phase", taken | {name})
        taken |= {name, phase}
        inverted = _normalize(ir.isub(ir.imul(stride, IVar(name)), ir.isub(numerator, IVar(axis.name))))
        # (rows keep the inversion: their phases would gather out of range
        # at the first and last rows, which then run unvectorized)
        if k == len(s.axes) - 1 and stride > 1 and not _one_to_one(inverted, extents | {name: extent}):
            mapping[axis.name] = ir.iadd(ir.imul(stride, IVar(name)), IVar(phase))
            axes.append(Axis(name, ir.ifloordiv(ir.iadd(s.shape[k], stride - 1), stride)))
            phases += (Axis(phase, IConst(stride)),)
            continue
        mapping[axis.name] = inverted
        axes.append(Axis(name, extent))
        known |= _true_for(IVar(name), _normalize(extent))
    return (mapping, tuple(axes), phases, known) if mapping else None


def _guards(e) -> list:
    """Conditions that each make ``e`` zero when false (selects with a zero
    branch, and factors of products)."""
    if isinstance(e, Call) and e.op == "select" and e.args[2] == Const(0.0):
        return _conjuncts(e.args[0]) + _guards(e.args[1])
    if isinstance(e, Call) and e.op == "mul":
        return _guards(e.args[0]) + _guards(e.args[1])
    return []


def _conjuncts(cond) -> list:
    if isinstance(cond, Call) and cond.op == "mul":
        return _conjuncts(cond.args[0]) + _conjuncts(cond.args[1])
    return [cond]


def _index_operand(e):
    """An index comparison's operand as an index expression (None if not one)."""
    if isinstance(e, IndexValue):
        return e.expr
    if isinstance(e, Const) and e.value == int(e.value):
        return IConst(int(e.value))
    return None


def _comparison(cond):
    """``(op, a, b)`` for a comparison of index expressions, else None."""
    if isinstance(cond, Call) and cond.op in COMPARISONS:
        a, b = (_index_operand(x) for x in cond.args)
        if a is not None and b is not None:
            return cond.op, a, b
    return None


def _solutions(guards: set, var: str, offsets: set):
    """``(numerator, stride, extent)`` of each ``h = numerator // stride`` the
    guards bound to ``[0, extent)`` (and, for a stride, to a multiple of it),
    ``numerator`` being ``var`` plus window offsets and constants."""
    tests = {t for t in map(_comparison, guards) if t is not None}
    for op, solution, extent in tests:
        if op != "lt" or ("ge", solution, IConst(0)) not in tests:
            continue
        numerator, stride = solution, 1
        if isinstance(solution, IBin) and solution.op == "//" and isinstance(solution.b, IConst):
            numerator, stride = solution.a, solution.b.value
            if ("eq", ir.imod(numerator, stride), IConst(0)) not in tests:
                continue
        split = affine(numerator, {var} | offsets)
        if (split is not None and split[0].get(var) == 1 and stride > 0
                and not ir.ivars(split[1]) and not ir.ivars(extent)):
            yield numerator, stride, extent


def _fresh(base: str, taken: set) -> str:
    name = base
    while name in taken:
        name += "_"
    return name


def _true_for(var: IVar, extent) -> set:
    """The comparisons that hold for a loop index over ``[0, extent)``."""
    return {("ge", var, IConst(0)), ("lt", var, extent)}


def _substitute(leaf, mapping: dict):
    if isinstance(leaf, Load):
        return Load(leaf.tensor, tuple(_normalize(ir.isubst(i, mapping)) for i in leaf.index))
    if isinstance(leaf, IndexValue):
        return IndexValue(_normalize(ir.isubst(leaf.expr, mapping)))
    return leaf


def _normalize(e):
    """An index expression with like terms collected, and ``//``, ``%`` by a
    constant taken over the terms it divides: ``(2*h + i - i) // 2`` is ``h``,
    ``(2*m + p - j) // 2`` is ``m + (p - j) // 2``."""
    if not isinstance(e, IBin):
        return e
    a, b = _normalize(e.a), _normalize(e.b)
    if e.op in ("//", "%") and isinstance(b, IConst) and b.value > 0:
        split = affine(a, ir.ivars(a))
        if split is None:
            return ir.IBIN_BUILDERS[e.op](a, b)
        whole = {v: c // b.value for v, c in split[0].items() if c % b.value == 0}
        remainder = _linear({v: c for v, c in split[0].items() if c % b.value}, split[1])
        if e.op == "%":
            return ir.imod(remainder, b)
        return ir.iadd(_linear(whole, IConst(0)), ir.ifloordiv(remainder, b))
    rebuilt = ir.IBIN_BUILDERS[e.op](a, b)
    split = affine(rebuilt, ir.ivars(rebuilt))
    return _linear(*split) if split is not None else rebuilt


def _linear(coefs: dict, rest) -> ir.IExpr:
    out = IConst(0)
    for name in sorted(coefs):
        out = ir.iadd(out, ir.imul(coefs[name], IVar(name)))
    return ir.iadd(out, rest)


def _settle(e, known: set):
    """``e`` with index comparisons decided: between constants, or ``known`` true."""
    def decide(call):
        test = _comparison(call)
        if test is None:
            return call
        if test in known:
            return Const(1.0)
        op, a, b = test
        if isinstance(a, IConst) and isinstance(b, IConst):
            return Const(float(OPS[op].numpy(a.value, b.value)))
        return call
    return ir.map_calls(e, decide)


def _replace(e, conditions: set):
    """``e`` with each of ``conditions`` replaced by 1 (known to hold)."""
    return ir.map_calls(e, lambda call: Const(1.0) if call in conditions else call)


def _divisions(e):
    """The ``//`` and ``%`` nodes of an index expression."""
    if isinstance(e, IBin):
        if e.op in ("//", "%"):
            yield e
        yield from _divisions(e.a)
        yield from _divisions(e.b)


# ---------------------------------------------------------------- the scatter's loops


def _plan_scatter(s: Stage, write_guard, phases: tuple, covered: bool) -> Sliding | None:
    """Planes: the scatter's leading indices that are its target's own
    coordinates. Inside the column loop run the offsets of the column's
    coordinate, when each picks its own element, the phases, and the offsets
    the target does not use (summed into one element)."""
    target, column = s.scatter_index, s.axes[-1]
    if not (_vectorizable(s.body, target, column.name, {a.name for a in s.reduce_axes}) and _slides(s, target)):
        return None
    planes = []
    for k, (axis, size) in enumerate(zip(s.axes[:-1], s.shape)):
        elsewhere = set().union(*(ir.ivars(c) for d, c in enumerate(target) if d != k))
        if target[k] != IVar(axis.name) or axis.extent != size or axis.name in elsewhere:
            break
        planes.append(axis)
    rows = tuple(a for a in s.axes[len(planes):-1])
    extents = {a.name: a.extent for a in s.all_axes}
    used = [ir.ivars(c) for c in target]
    columns = used[-1] if _one_to_one(target[-1], extents) else set()
    inner = tuple(a for a in s.reduce_axes
                  if a.name in columns or a in phases or not any(a.name in u for u in used))
    outer = tuple(a for a in s.reduce_axes if a not in inner)
    # one store per element: the target takes each value of its indices once
    # (the offsets it does not use are summed before the store)
    targeted = [a for a in s.all_axes if any(a.name in u for u in used)]
    injective = (all(_one_to_one(c, extents) for c in target) and set(s.axes) <= set(targeted) and
                 all(sum(a.name in u for u in used) == 1 for a in targeted))
    return Sliding(s, tuple(planes), rows, outer, column, inner, write_guard, injective, not (injective and covered))


def _one_to_one(coordinate, extents: dict) -> bool:
    """Whether the affine ``coordinate`` takes a different value at each point
    of its variables' box: ordered by coefficient, each one steps over the
    whole range of the smaller ones (``2*h + i``, i < 2, does; ``2*h + i``,
    i < 3, does not)."""
    split = affine(coordinate, ir.ivars(coordinate))
    if split is None:
        return False
    coefs = split[0]
    order = sorted(coefs, key=lambda v: abs(coefs[v]))
    reach = 0
    for k, name in enumerate(order):
        if abs(coefs[name]) <= reach:
            return False
        if k + 1 < len(order):      # the largest step's own range does not matter
            if not isinstance(extents[name], IConst):
                return False
            reach += abs(coefs[name]) * (extents[name].value - 1)
    return True


# ---------------------------------------------------------------- whole rows as one offset


def merge_rows(plan: Sliding, shapes: dict) -> Sliding:
    """``plan`` with a reduction's two innermost window offsets ``i, j`` as one,
    ``k = W*i + j``, when the window spans whole rows of every tensor that
    uses them (``x[.., a + i, j]``, ``j`` over the row of ``W``): the rows
    follow each other in memory, and ``x[.., a, k]`` walks them at once (a
    global pool's 7x7 window as 49 elements in SIMD lanes, where each row's
    7 ran in scalar code). Only for a plan whose reads are all inside their
    tensors (no column bounds): the merged reads leave their last dimension
    but not their tensor (``in_range``). An index value of the offsets must
    be one of ``k`` (``7*i + j`` is ``k``, the first maximum's position)."""
    if plan.scatter or len(plan.inner) < 2:
        return plan
    row, column = plan.inner[-2:]
    names, width = {row.name, column.name}, column.extent
    merged = Axis(_fresh(f"{row.name}{column.name}", {a.name for a in plan.stage.all_axes}),
                  IConst(row.extent.value * width.value))
    reads, refused = set(), []

    def merge(leaf):
        if isinstance(leaf, Load) and any(ir.ivars(c) & names for c in leaf.index):
            coordinates = _row_and_column(leaf, shapes[leaf.tensor], row, column)
            if coordinates is None:
                refused.append(leaf)
                return leaf
            read = Load(leaf.tensor, leaf.index[:-2] + (coordinates[0], ir.iadd(coordinates[1], IVar(merged.name))))
            reads.add(read)
            return read
        if isinstance(leaf, IndexValue) and ir.ivars(leaf.expr) & names:
            split = affine(leaf.expr, names)
            if split is None or split[0].get(row.name, 0) != width.value * split[0].get(column.name, 0):
                refused.append(leaf)
                return leaf
            return IndexValue(_normalize(ir.iadd(ir.imul(split[0].get(column.name, 0), IVar(merged.name)), split[1])))
        return leaf

    body = ir.map_expr(plan.stage.body, merge)
    if refused or any(ir.ivars(c) & names for c in plan.target):
        return plan
    inner = plan.inner[:-2] + (merged,)
    stage = ir.replace(plan.stage, body=body, reduce_axes=inner)
    return dataclasses.replace(plan, stage=stage, inner=inner, in_range=frozenset(reads))


def _row_and_column(load: Load, shape: tuple, row: Axis, column: Axis):
    """``(a, b)`` when ``load`` reads ``x[.., a + row, b + column]`` with the
    column over its whole last dimension, neither offset elsewhere; else None."""
    if len(load.index) < 2 or shape[-1] != column.extent:
        return None
    *rest, r, c = load.index
    if any(ir.ivars(x) & {row.name, column.name} for x in rest):
        return None
    along_rows, along_columns = affine(r, {row.name, column.name}), affine(c, {row.name, column.name})
    if along_rows is None or along_columns is None:
        return None
    if along_rows[0] != {row.name: 1} or along_columns[0] != {column.name: 1}:
        return None
    return along_rows[1], along_columns[1]


# ---------------------------------------------------------------- planes as one row


# a window reduction whose rows are shorter than this runs its planes flattened
# (``flatten_planes``), where the plane holds FLAT_LIMIT elements at most
FLAT_ROW = 40
FLAT_LIMIT = 4096

_FLIPPED = {"ge": "le", "gt": "lt", "le": "ge", "lt": "gt", "eq": "eq", "ne": "ne"}


@dataclass(frozen=True)
class FlatPlanes:
    """A stage that runs each plane (two axes, ``rows`` by ``width``) as one
    row ``p = h*width + w`` (the axis ``flat``): ``stage`` reads its tensors
    viewed with their last two dimensions as one (``shapes``, ``(tensor,
    shape)`` pairs). Every read is guarded (no edges): a test on a row
    coordinate ``h + a`` is one on ``p + a*width``, a test on a column
    coordinate ``w + b`` one on ``column + b``, the variable holding ``w``
    (read from a table of ``p % width``). ``plan``: how the flat row runs, a
    window's ``Sliding`` over it, or the nest of a weight gradient that sums
    over it (``schedule.plan_loops``). At 7 or 14 columns a row's set-up and
    its scalar edges took most of a depthwise convolution's time (forward,
    input and weight gradients); the flat row runs whole vectors."""

    stage: Stage
    shapes: tuple
    flat: Axis
    column: str
    rows: ir.IExpr
    width: ir.IExpr
    plan: object = None


def flatten_planes(plan: Sliding, body, shapes: dict) -> FlatPlanes | None:
    """A window reduction over its output's planes (its last two axes) as a
    ``FlatPlanes`` (``body``: its body with a guard on every read that may
    leave its tensor), or None: a scatter, or a stage whose reads of the
    plane's tensors do not all move one element per row and column step (only
    a window of stride 1 over planes as wide as the output is contiguous along
    the flattened row)."""
    s = plan.stage
    if plan.scatter or plan.rows or plan.outer or not plan.planes or plan.in_range:
        return None
    flat = _flat_plane(s, body, plan.start, plan.planes[-1], plan.column, shapes, written=True)
    if flat is None:
        return None
    stage, start, views, axis, column = flat
    stage = ir.replace(stage, shape=s.shape[:-2] + (axis.extent,), axes=plan.planes[:-1] + (axis,))
    return FlatPlanes(stage, views, axis, column, plan.planes[-1].extent, plan.column.extent,
                      Sliding(stage, plan.planes[:-1], (), (), axis, plan.inner, start=start))


def flatten_reduced_planes(s: Stage, body, shapes: dict) -> FlatPlanes | None:
    """A sum whose last two reduction axes walk planes (a convolution's weight
    gradient, ``sum_{n, h, w} g[n, o, h, w] * x[n, c, h + i, w + j]``) as a
    ``FlatPlanes`` summing over the flat row, or None (as ``flatten_planes``)."""
    if s.reduce != "sum" or len(s.reduce_axes) < 2:
        return None
    row, column = s.reduce_axes[-2:]
    flat = _flat_plane(s, body, None, row, column, shapes, written=False)
    if flat is None:
        return None
    stage, _, views, axis, at = flat
    return FlatPlanes(ir.replace(stage, reduce_axes=s.reduce_axes[:-2] + (axis,)), views, axis, at,
                      row.extent, column.extent)


def _flat_plane(s: Stage, body, start, row: Axis, column: Axis, shapes: dict, written: bool):
    """``(stage, start, views, flat axis, column variable)``: ``s`` with
    ``body`` and ``start`` read on the plane of ``row`` by ``column`` as one
    row (its axes left to the caller), or None. ``written``: the stage's own
    output is one of the planes."""
    names, width = {row.name, column.name}, column.extent
    taken = {a.name for a in s.all_axes}
    flat = Axis(_fresh(f"{row.name}{column.name}", taken), ir.imul(row.extent, width))
    at = _fresh(f"{column.name}_at", taken | {flat.name})
    parts = (body,) + ((start,) if start is not None else ())
    flattened = {load.tensor for part in parts for load in ir.loads(part)
                 if any(ir.ivars(c) & names for c in load.index)} | ({s.name} if written else set())
    if any(len(shapes[t]) < 2 or shapes[t][-1] != width for t in flattened):
        return None
    refused = []

    def test(call):
        flat_test = _flat_test(call, row, column, flat, at)
        return call if flat_test is None else flat_test

    def leaf(e):
        if isinstance(e, Load) and e.tensor in flattened:
            index = _flat_index(e.index, row, column, flat)
            refused.extend([e] if index is None else [])
            return e if index is None else Load(e.tensor, index)
        if isinstance(e, IndexValue) and ir.ivars(e.expr) & names:
            refused.append(e)
        return e

    body, start = (ir.map_expr(ir.map_calls(part, test), leaf) if part is not None else None
                   for part in (body, start))
    if refused or not all(_small(e) for part in (body, start) if part is not None for e in ir.postorder(part)):
        return None
    views = tuple((t, shapes[t][:-2] + (ir.imul(shapes[t][-2], width),)) for t in sorted(flattened))
    return ir.replace(s, body=body), start, views, flat, at


def _small(e) -> bool:
    """Whether an expression's index constants are at most FLAT_LIMIT in size:
    the flat row's index arithmetic runs in 32 bits (its plane's sizes bounded
    by FLAT_LIMIT at run time), so a dilation or padding of 10^9 stays 64-bit."""
    indices = e.index if isinstance(e, Load) else (e.expr,) if isinstance(e, IndexValue) else ()
    return all(abs(c.value) <= FLAT_LIMIT for i in indices for c in _constants(i))


def _constants(e):
    if isinstance(e, IConst):
        yield e
    elif isinstance(e, IBin):
        yield from _constants(e.a)
        yield from _constants(e.b)


def _flat_index(index: tuple, row: Axis, column: Axis, flat: Axis) -> tuple | None:
    """A read's index on its tensor viewed with its last two dimensions as one
    (the plane's rows of ``column.extent``): ``(.., h + a, w + b)`` reads
    ``(.., p + a*width + b)``; a coordinate pair that moves with neither,
    ``(.., a, b)``, reads ``(.., a*width + b)``. None for any other."""
    names, width = {row.name, column.name}, column.extent
    *rest, r, c = index
    split_r, split_c = affine(r, names), affine(c, names)
    if any(ir.ivars(x) & names for x in rest) or split_r is None or split_c is None:
        return None
    (along_r, a), (along_c, b) = split_r, split_c
    coordinate = ir.iadd(ir.imul(a, width), b)
    if along_r == {row.name: 1} and along_c == {column.name: 1}:
        return tuple(rest) + (_normalize(ir.iadd(IVar(flat.name), coordinate)),)
    return tuple(rest) + (_normalize(coordinate),) if not along_r and not along_c else None


def _flat_test(call, row: Axis, column: Axis, flat: Axis, at: str):
    """A comparison of a row coordinate ``h + a`` with a bound ``k`` (free of
    the plane's indices) as the same test on the flat row, ``p + a*width``
    against ``k*width`` (``0 <= w < width``), or of a column coordinate ``w + b``
    as one on ``at + b``; None for any other call (left as it is)."""
    found = _comparison(call)
    names = {row.name, column.name}
    if found is None:
        return None
    op, a, b = found
    if ir.ivars(b) & names:
        op, a, b = _FLIPPED[op], b, a
    split = affine(a, names)
    if split is None or ir.ivars(b) & names:
        return None
    along, rest = split
    if along == {column.name: 1}:
        return Call(op, (IndexValue(_normalize(ir.iadd(IVar(at), rest))), IndexValue(b)))
    if along != {row.name: 1} or op not in ("ge", "gt", "le", "lt"):
        return None
    # h + a >= k holds where p + a*width >= k*width; h + a < k where p + a*width < k*width
    if op in ("gt", "le"):
        op, b = ("ge" if op == "gt" else "lt"), ir.iadd(b, 1)
    width = column.extent
    return Call(op, (IndexValue(_normalize(ir.iadd(IVar(flat.name), ir.imul(rest, width)))),
                     IndexValue(ir.imul(b, width))))
