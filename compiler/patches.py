"""Contractions with a patch operand, planned as packed BLAS calls.

A sum of products ``out[i] = sum_r A(i, r) * B(i, r)`` whose two sides are not
both matrices in memory still runs as matrix products: a convolution reads its
input at ``h*s + kh*d - p`` (under a zero guard for the padding), its input
gradient reads the output gradient through guards, a weight may be read with
its axes in another order. Each side that is not a matrix in memory is
*packed*: written into a workspace matrix by loops over its own index
variables, the innermost running along memory and cut to where the value can
be nonzero (zeros written around it, no test inside). Then one GEMM call
(numpy's BLAS, or the module's packed kernel without one) multiplies the
workspaces, or the tensors in place, for each *task*: the calls' loops (batch
images, groups, the outer part of a sum that does not flatten) times blocks of
one axis of the packed side, sized so that a thread's workspace stays small.
A side that reads no task variable (a weight in another order) is packed once.

In: a ``Stage`` and the ``Contraction`` that ``schedule.plan_contraction``
found in it. Out: an immutable ``PatchGemm`` (templates/patch_gemm.c.j2 via
``codegen.render_patch_gemm``), or None when the sides are both matrices
(``plan_gemm`` takes those) or no split of the axes gives matrix calls.

Example::

    c = plan_contraction(stage)                    # a convolution's forward
    plan = plan_patch_gemm(stage, c, program.shapes())
    [p.name for p in plan.packs]                   # ['lc_pack_a']: the input's patches
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from . import ir
from .ir import Axis, Call, Const, IConst, IVar, Load, affine
from .schedule import (Contraction, _conjuncts, _is_index_test, _matrix, _plain_read, _settle, _size_rank,
                       _zero_unless, index_in_range, range_condition)
from .shapes import flatten
from .simplify import simplify_expr

# a thread's workspaces hold about this many bytes: the packed block is read
# back by the GEMM from the core's own cache
WORKSPACE_BYTES = 1 << 20
# a call whose rows, columns or sums are fewer than this runs its tiles below
# their speed (a split that leaves a kernel's 3x3 taps per call)
SHORT_DEPTH = 64
# a packing row shorter than this (a weight's kernel row) is left to gcc to
# unroll or turn into a copy, not marked for SIMD
SHORT_ROW = 16
# a transposing copy writes a line of the workspace per element of its
# innermost loop: this many lines (16 KiB) stay in a core's L1 between passes
TRANSPOSE_LINES = 256


@dataclass(frozen=True)
class Operand:
    """One matrix of each GEMM call: ``tensor`` (a tensor, or a ``Pack``'s
    workspace) from the element at ``index`` on (None: the workspace's start),
    row-major with leading dimension ``ld``; ``transposed`` when the call
    takes its transpose. ``rows``: B's rows lie apart unevenly, row ``k``
    at the offset a ``shifted.Rows`` gives (``ld`` then unused). ``runs``:
    ``(run, pitch)`` when B's columns lie in runs of ``run``, ``pitch``
    apart (an image's rows in a padded copy), None when one after another."""

    tensor: str
    index: tuple | None
    ld: ir.IExpr
    transposed: bool
    rows: object = None
    runs: tuple | None = None


@dataclass(frozen=True)
class PackLoop:
    var: str
    start: ir.IExpr
    stop: ir.IExpr


@dataclass(frozen=True)
class Pack:
    """A workspace written by ``loops`` (outermost first; the last runs along
    memory): element ``offset`` gets ``value``. The innermost loop's value is
    zero below every bound in ``lo``, from every bound in ``hi`` on, and
    everywhere when a condition of ``tests`` is false; there, the reads in
    ``in_range`` are inside their tensors. ``capacity``: elements, with the
    block at its longest. ``once``: written before the calls, not per task.
    ``simd``: the innermost loop is marked for vectorization. ``stride``: how
    far apart the innermost loop writes (more than 1: a transposing copy)."""

    name: str
    value: object
    loops: tuple
    offset: ir.IExpr
    capacity: ir.IExpr
    lo: tuple
    hi: tuple
    tests: tuple
    in_range: frozenset
    once: bool
    simd: bool
    stride: ir.IExpr = IConst(1)


@dataclass(frozen=True)
class Block:
    """The axis a task covers part of: from ``start`` to ``stop`` (index
    variables the task sets), at most ``step`` long (set once per call), a
    multiple of ``grain`` but for the last block."""

    axis: Axis
    start: str
    stop: str
    step: str
    grain: int = 1


@dataclass(frozen=True)
class PatchGemm:
    """``out`` as one GEMM call ``out = alpha op(a) op(b) (+ out)`` per task
    (``rows`` x ``cols``, summing ``depth`` terms), after the task's packs.
    Tasks: every value of ``loops`` times the blocks of ``block`` (None: one).
    ``accumulate``: several tasks add onto one output element (the output is
    set first; each thread adds into its own copy; the copies are summed).
    ``terms``: the number of terms of the whole sum; ``start`` the value the
    sum starts from (None: 0). ``scatter``: see ``compiler/col2im.py``."""

    packs: tuple
    a: Operand
    b: Operand
    out: Operand
    alpha: float
    rows: ir.IExpr
    cols: ir.IExpr
    depth: ir.IExpr
    loops: tuple
    accumulate: bool
    block: Block | None
    terms: ir.IExpr
    start: object = None
    scatter: object = None      # col2im.Scatter: the calls write a workspace, added into the output
    view: ir.Stage | None = None    # the stage planned, when its output axes were split (``split_digits``)
    prologue: object = None     # the nest writing ``start`` into the output first (compiler/plan.py plans it)


# ---------------------------------------------------------------- output axes as digits


def split_digits(s: ir.Stage) -> ir.Stage:
    """``s`` with each output axis ``j`` that its body reads only as ``j // K``
    and ``j % K`` split into the two digits ``(j // K, j % K)``: the same
    memory, seen as one more dimension (a grouped convolution's gradient
    over the channels ``K*g + c`` becomes a product per group ``g``)."""
    if s.scatter_index is not None or s.reduce != "sum":
        return s
    axes, digits = [], {}
    taken = {a.name for a in s.all_axes}
    for a in s.axes:
        radix = _radix(s.body, a)
        if radix is None:
            axes.append(a)
            continue
        high, low = (ir.Axis(ir.fresh_name(f"{a.name}_{part}", taken), extent)
                     for part, extent in (("hi", IConst(a.extent.value // radix)), ("lo", IConst(radix))))
        digits[a.name] = high, low, radix
        axes += [high, low]
    if not digits:
        return s

    def index(e):
        if isinstance(e, ir.IBin) and e.op in ("//", "%") and isinstance(e.a, IVar) and e.a.name in digits:
            high, low, _ = digits[e.a.name]
            return IVar((high if e.op == "//" else low).name)
        if isinstance(e, ir.IBin):
            return ir.IBIN_BUILDERS[e.op](index(e.a), index(e.b))
        return e

    body = ir.map_expr(s.body, lambda e: Load(e.tensor, tuple(index(i) for i in e.index))
                       if isinstance(e, Load) else ir.IndexValue(index(e.expr)) if isinstance(e, ir.IndexValue) else e)
    return ir.replace(s, shape=tuple(a.extent for a in axes), axes=tuple(axes), body=body)


def _radix(body, axis: Axis):
    """``K`` when ``body`` reads index variable ``axis`` only as ``axis // K``
    and ``axis % K``, with ``K`` dividing its extent; else None."""
    found = set()

    def visit(e) -> bool:
        if isinstance(e, ir.IBin) and e.op in ("//", "%") and e.a == IVar(axis.name) and isinstance(e.b, IConst):
            found.add(e.b.value)
            return True
        if isinstance(e, ir.IBin):
            return visit(e.a) and visit(e.b)
        return e != IVar(axis.name)

    indices = [i for load in ir.loads(body) for i in load.index]
    indices += [e.expr for e in ir.postorder(body) if isinstance(e, ir.IndexValue)]
    if not all(visit(i) for i in indices) or len(found) != 1 or not isinstance(axis.extent, IConst):
        return None
    (radix,) = found
    return radix if radix > 1 and axis.extent.value % radix == 0 else None


# ---------------------------------------------------------------- choosing the calls


@dataclass(frozen=True)
class _Side:
    """A side of each call at one split and orientation: ``A`` (read element
    by element) or ``B`` (``is_b``: read by rows along its free axes), a matrix
    in memory (``matrix``) or packed in ``layout`` (rows, columns)."""

    value: object
    free: tuple         # its own axes of the call (the call's rows for A, columns for B)
    depth: tuple        # the call's summed axes
    is_b: bool          # B: its summed axes are the rows, its free ones contiguous
    matrix: object      # schedule.Matrix, or None: packed
    scale: float
    once: bool
    layout: tuple | None

    @property
    def forced(self) -> bool:
        """Packed against the grain of its reads, so that its rows are the B the tiles want."""
        return self.matrix is None and self.layout != _layout(self.value, self.free, self.depth)


def plan_patch_gemm(s: ir.Stage, c: Contraction, shapes: dict, in_place: bool = False) -> PatchGemm | None:
    """GEMM calls over packed operands for the contraction ``c`` of ``s``, or
    None. ``in_place``: calls on the tensors as they lie, with nothing packed."""
    best = best_split(s, c, shapes, in_place)
    return None if best is None else _plan(s, c, shapes, *best)


def best_split(s: ir.Stage, c: Contraction, shapes: dict, in_place: bool = False):
    """``(split, flipped, sides)``: the split of the axes into tasks and calls,
    the orientation and the calls' two sides ``[A, B]`` that run ``c`` best,
    or None (see ``plan_patch_gemm``)."""
    return next(ranked_splits(s, c, shapes, in_place), None)


def ranked_splits(s: ir.Stage, c: Contraction, shapes: dict, in_place: bool = False):
    """The ``(split, flipped, sides)`` of ``best_split``, best first, then the
    others as good in their calls' shapes (as few short sides, no step of the
    block over a thread's workspace): a plan that needs another split of the
    tasks (a weight gradient's sum over one image at a time) takes the next."""
    extents = {a.name: a.extent for a in s.all_axes}
    reads = [_plain_read(v, shapes, extents) for v in (c.a, c.b)]
    ranked = []
    for split in itertools.product(range(len(c.m)), range(len(c.n)), range(len(c.k))):
        for flipped in (False, True):
            sides = _sides(s, c, shapes, reads, split, flipped)
            if sides is None or in_place != all(side.matrix is not None for side in sides):
                continue
            # the fewest short sides of the calls (a kernel's 3x3 taps as the
            # sums); the least packed against the grain; the fewest workspaces
            # packed per task; the output written by rows (the tiles store a
            # transposed one element by element); the fewest calls
            short = sum(isinstance(d, IConst) and d.value < SHORT_DEPTH
                        for d in (_length(sides[0].free, None), _length(sides[1].free, None),
                                  _length(sides[0].depth, None)))
            forced = sum(_against_grain(side, extents) for side in sides if side.forced)
            runs = (c.n[split[1]:], c.m[split[0]:]) if flipped else (c.m[split[0]:], c.n[split[1]:])
            score = (short, _oversized(sides), forced, sum(side.matrix is None and not side.once for side in sides),
                     _matrix(s.name, s.index, s.shape, *runs).transposed, sum(split))
            ranked.append((score, len(ranked), split, flipped, sides))
    ranked.sort(key=lambda r: r[:2])
    for score, _, split, flipped, sides in ranked:
        if score[:2] == ranked[0][0][:2]:
            yield split, flipped, sides


def _sides(s: ir.Stage, c: Contraction, shapes: dict, reads: list, split: tuple, flipped: bool):
    """``[A, B]`` at one split of the axes, the calls computing the output
    (``m`` x ``n``) or, ``flipped``, its transpose; None when the output is not
    a matrix there."""
    pm, pn, pk = split
    m, n, k = c.m[pm:], c.n[pn:], c.k[pk:]
    if _matrix(s.name, s.index, s.shape, m, n) is None:
        return None
    task_vars = {a.name for a in c.batch + c.m[:pm] + c.n[:pn] + c.k[:pk]}
    sides = []
    calls = ((c.a, reads[0], m), (c.b, reads[1], n))
    for value, read, free in calls[::-1] if flipped else calls:
        is_b = bool(sides)
        runs = (k, free) if is_b else (free, k)
        matrix = read and _matrix(read[0].tensor, read[0].index, shapes[read[0].tensor], *runs)
        if matrix and is_b and matrix.transposed:
            matrix = None           # B's rows must lie in memory as rows
        # packed once: a side of fixed size (a weight) that no task changes
        once = not (ir.ivars_of_expr(value) & task_vars) and all(isinstance(a.extent, IConst) for a in free + k)
        layout = None if matrix else (k, free) if is_b else _layout(value, free, k)
        sides.append(_Side(value, free, k, is_b, matrix or None, read[1] if matrix else 1.0, once, layout))
    if not task_vars:
        # no task loops: a side packed once would be packed by one thread and multiplied in one
        # call; one larger than a thread's workspace (a whole batch's patches in a weight gradient)
        # is packed by tasks instead, a block each, so that the threads share its packing and calls
        sides = [replace(side, once=False) if side.once and _oversized_once(side) else side
                 for side in sides]
    return sides


def _oversized_once(side: _Side) -> bool:
    """Whether ``side``, packed whole, takes more than a thread's workspace."""
    return math.prod(_estimate(a.extent) for a in side.free + side.depth) * 4 > WORKSPACE_BYTES


def _against_grain(side: _Side, extents: dict) -> float:
    """The cost of packing ``side`` across its reads: its elements, more per
    element when its rows are short (a kernel's taps)."""
    inner = _estimate(side.layout[1][-1].extent)
    return _elements(side.value, extents) * max(1.0, SHORT_ROW / inner)


def _oversized(sides: list) -> bool:
    """Whether one step of the block axis already takes more than a thread's
    workspace (a whole image of patches: the sum had better split off the images)."""
    block = _block(sides, set())
    if block is None:
        return False
    steps = [side.free + side.depth for side in sides if side.matrix is None and not side.once]
    per_step = sum(math.prod(1 if a == block.axis else _estimate(a.extent) for a in axes) for axes in steps)
    return per_step * 4 > WORKSPACE_BYTES


def _estimate(extent) -> int:
    """An extent, a size left free at build time counted as 64."""
    return extent.value if isinstance(extent, IConst) else 64


def _elements(value, extents: dict) -> int:
    """About how many elements ``value`` spans over all calls (a size left free
    at build time counted as 64)."""
    return int(math.prod(_estimate(extents[v]) for v in ir.ivars_of_expr(value) if v in extents))


def _plan(s: ir.Stage, c: Contraction, shapes: dict, split: tuple, flipped: bool, sides: list,
          block: Block | None = None) -> PatchGemm:
    """The calls at one split and orientation; tasks take blocks of ``block``'s
    axis (None: ``_block``'s choice)."""
    pm, pn, pk = split
    m, n, k = c.m[pm:], c.n[pn:], c.k[pk:]
    block = block or _block(sides, {a.name for a in s.all_axes})
    extents = {a.name: a.extent for a in s.all_axes}
    packs, operands = [], []
    for name, side in zip(("lc_pack_a", "lc_pack_b"), sides):
        if side.matrix is None:
            rows, cols = side.layout
            packs.append(_pack(name, side, rows, cols, block, s, shapes))
            # a workspace [rows x cols] is the side's matrix transposed when its rows are the other run
            operands.append(Operand(name, None, _length(cols, block), rows != (side.depth if side.is_b else side.free)))
        else:
            load = _plain_read(side.value, shapes, extents)[0]
            operands.append(in_place(load.tensor, load.index, side.free + side.depth, block, side.matrix))
    a, b = operands
    runs = (n, m) if flipped else (m, n)
    out = in_place(s.name, s.index, m + n, block, _matrix(s.name, s.index, s.shape, *runs))
    accumulate = bool(c.k[:pk]) or (block is not None and block.axis in k)
    return PatchGemm(tuple(packs), a, b, out, sides[0].scale * sides[1].scale, _length(runs[0], block),
                     _length(runs[1], block), _length(k, block), c.batch + c.m[:pm] + c.n[:pn] + c.k[:pk],
                     accumulate, block, _length(c.k, None), c.start)


def in_place(tensor: str, index: tuple, run: tuple, block: Block | None, matrix) -> Operand:
    """A matrix read where it lies, from the call's first element (the block's start)."""
    first = {a.name: IConst(0) for a in run}
    if block is not None and block.axis in run:
        first[block.axis.name] = IVar(block.start)
    return Operand(tensor, tuple(ir.isubst(i, first) for i in index), matrix.ld, matrix.transposed)


def _length(axes: tuple, block: Block | None) -> ir.IExpr:
    """Elements of ``axes`` together in one call (the block's length for its axis)."""
    size = IConst(1)
    for a in axes:
        extent = ir.isub(IVar(block.stop), IVar(block.start)) if block and a == block.axis else a.extent
        size = ir.imul(size, extent)
    return size


# ---------------------------------------------------------------- packing


def _layout(value, free: tuple, depth: tuple) -> tuple:
    """``(rows, cols)`` of a workspace that packs ``value`` along the grain: the
    columns are the run holding the variable that walks memory in its widest
    read, so the innermost packing loop reads and writes contiguously."""
    along = _along_memory(value, free + depth)
    return (free, depth) if along in {a.name for a in depth} else (depth, free)


def _along_memory(value, axes: tuple):
    """The longest of ``axes`` in the last coordinate of the read of ``value``
    that spans the most of them, or None."""
    extents = {a.name: a.extent for a in axes}
    best = None
    for load in ir.loads(value):
        names = set(extents) & (ir.ivars(load.index[-1]) if load.index else set())
        spanned = set(extents) & set().union(*(ir.ivars(i) for i in load.index))
        if names and (best is None or len(spanned) > best[0]):
            best = len(spanned), max(names, key=lambda v: (_size_rank(extents[v]), v))
    return best and best[1]


def _block(sides: list, taken: set) -> Block | None:
    """The outermost column axis of a side packed per task (along the grain if
    one is): tasks take blocks of it. None when every side is packed once."""
    per_task = sorted((side for side in sides if side.matrix is None and not side.once), key=lambda side: side.forced)
    if not per_task:
        return None
    axis = per_task[0].layout[1][0]
    return Block(axis, *(ir.fresh_name(f"{axis.name}_{part}", taken) for part in ("start", "stop", "step")))


def _flat(axes: tuple, block: Block | None) -> ir.IExpr:
    """Row-major offset of the point of ``axes`` (the block's axis counted from its start)."""
    offset = IConst(0)
    for a in axes:
        extent, coordinate = a.extent, IVar(a.name)
        if block and a == block.axis:
            extent = ir.isub(IVar(block.stop), IVar(block.start))
            coordinate = ir.isub(coordinate, IVar(block.start))
        offset = ir.iadd(ir.imul(offset, extent), coordinate)
    return offset


def workspace(rows: tuple, cols: tuple, block: Block | None) -> tuple:
    """``(loops, offset, capacity)`` of a row-major workspace over the axis
    runs ``rows`` x ``cols``: its loops (the block's axis over the block), the
    element at their point, and its elements with the block at its longest."""
    loops = tuple(PackLoop(a.name, IVar(block.start), IVar(block.stop)) if block and a == block.axis
                  else PackLoop(a.name, IConst(0), a.extent) for a in rows + cols)
    offset = ir.iadd(ir.imul(_flat(rows, block), _length(cols, block)), _flat(cols, block))
    capacity = ir.imul(_length(rows, block), _length(cols, block))
    if block is not None:
        capacity = ir.isubst(capacity, {block.start: IConst(0), block.stop: IVar(block.step)})
    return loops, offset, capacity


def _pack(name: str, side: _Side, rows: tuple, cols: tuple, block: Block | None, s: ir.Stage,
          shapes: dict) -> Pack:
    block = block if block is not None and block.axis in rows + cols else None
    loops, offset, capacity = workspace(rows, cols, block)
    loops, stride = along_reads(side.value, loops, offset, shapes, block)
    extents = {a.name: a.extent for a in s.all_axes}
    value, lo, hi, tests, in_range = _window(side.value, loops[-1].var, extents, shapes)
    inner = loops[-1].stop if loops[-1].start == IConst(0) else None
    simd = not (isinstance(inner, IConst) and inner.value < SHORT_ROW)
    return Pack(name, value, loops, offset, capacity, lo, hi, tests, in_range, side.once and block is None, simd,
                stride)


def along_reads(value, loops: tuple, offset: ir.IExpr, shapes: dict, block: Block | None) -> tuple:
    """``(loops, stride)``: the loops that write ``value`` at ``offset``, with
    the one that walks the read's memory innermost when the workspace's own
    innermost loop reads further apart than that one would write (a B packed
    against the grain: an output gradient spread by position, its channels
    along each row, each channel a plane apart). The reads then run
    contiguous and the writes ``stride`` apart, through at most
    TRANSPOSE_LINES lines that the next pass of the loop around it fills on
    while they are still in L1."""
    inner, names = loops[-1], {l.var: l for l in loops}
    read = _widest_read(value, set(names))
    walking = set(names) & ir.ivars(read.index[-1]) if read is not None and read.index else set()
    if not walking or inner.var in walking:
        return loops, IConst(1)
    length = {v: _estimate(ir.isub(names[v].stop, names[v].start)) for v in walking}
    along = names[max(walking, key=lambda v: (length[v], v))]
    stride, across = ir.istride(offset, along.var), ir.istride(flatten(read.index, shapes[read.tensor]), inner.var)
    if stride is None or across is None or length[along.var] > TRANSPOSE_LINES or \
            _guess(across, block) <= _guess(stride, block):
        return loops, IConst(1)
    return tuple(l for l in loops if l != along) + (along,), stride


def _widest_read(value, names: set):
    """The read of ``value`` whose index spans the most of ``names`` (the first of
    those), or None when none does."""
    spans = [(len(names & set().union(*(ir.ivars(i) for i in load.index))), -k, load)
             for k, load in enumerate(ir.loads(value)) if load.index]
    best = max(spans, default=None, key=lambda span: span[:2])
    return best[2] if best and best[0] else None


def _guess(e: ir.IExpr, block: Block | None) -> int:
    """``e`` with a size left free at build time counted as 64 (a block as
    starting at 0 and 64 long)."""
    if block is not None:
        e = ir.isubst(e, {block.start: IConst(0), block.stop: IVar(block.step)})
    return ir.ievaluate(e, {v: 64 for v in ir.ivars(e) | ir.isyms(e)})




# ---------------------------------------------------------------- where a packed value can be nonzero


def _window(value, var: str, extents: dict, shapes: dict) -> tuple:
    """``(value, lo, hi, tests, in_range)``: ``value`` along loop ``var`` is
    zero below the bounds ``lo``, from the bounds ``hi`` on and wherever a
    condition of ``tests`` (free of ``var``) is false; the value returned is
    the one inside, without those conditions, where the reads ``in_range``
    need no check."""
    guarded = {}

    def guard(e):
        # a read that may fall outside its tensor, with its implicit zero made explicit
        if isinstance(e, ir.Load) and not index_in_range(e.index, shapes[e.tensor], extents):
            guarded[e] = range_condition(e.index, shapes[e.tensor], extents)
            return Call("select", (guarded[e], e, Const(0.0)))
        return e

    body = ir.map_expr(value, guard)
    lo, hi, tests, settled = [], [], [], set()
    for cond in _zero_unless(body):
        bound = _bound(cond, var)
        if bound is not None:
            (lo if bound[0] == "lo" else hi).append(bound[1])
        elif _is_index_test(cond) and var not in ir.ivars_of_expr(cond):
            tests.append(cond)
        else:
            continue
        settled.add(cond)
    in_range = frozenset(e for e, cond in guarded.items() if set(_conjuncts(cond)) <= settled)
    return (simplify_expr(_settle(body, settled)), tuple(dict.fromkeys(lo)), tuple(dict.fromkeys(hi)),
            tuple(dict.fromkeys(tests)), in_range)


def canonical(e: ir.IExpr) -> ir.IExpr:
    """An affine index expression as ``c1*v1 + c2*v2 + ... + rest`` (largest
    coefficients first), so that solved bounds and targets print plainly."""
    split = affine(e, ir.ivars(e))
    if split is None:
        return e
    out = IConst(0)
    for v in sorted(split[0], key=lambda v: (-abs(split[0][v]), v)):
        out = ir.iadd(out, ir.imul(split[0][v], IVar(v)))
    return ir.iadd(out, split[1])


def _bound(cond, var: str):
    """``("lo" | "hi", bound)`` when ``cond`` is ``c*var + rest >= limit`` or
    ``< limit`` (``rest``, ``limit`` free of ``var``): the first value of
    ``var`` where it holds, or the first past them."""
    if not (isinstance(cond, Call) and cond.op in ("ge", "lt") and
            all(isinstance(a, ir.IndexValue) or a == Const(0.0) for a in cond.args)):
        return None
    coordinate, limit = (a.expr if isinstance(a, ir.IndexValue) else IConst(0) for a in cond.args)
    split = affine(coordinate, {var})
    if var in ir.ivars(limit) or split is None or var not in split[0]:
        return None
    coef, room = split[0][var], ir.isub(limit, split[1])
    # c*var >= room starts at ceil(room / c); c*var < room stops there (for c < 0: mirrored)
    if coef > 0:
        edge = room if coef == 1 else ir.imul(-1, ir.ifloordiv(canonical(ir.imul(-1, room)), coef))
        return ("lo" if cond.op == "ge" else "hi"), canonical(edge)
    edge = ir.iadd(ir.ifloordiv(canonical(ir.imul(-1, room)), -coef), 1)
    return ("hi" if cond.op == "ge" else "lo"), canonical(edge)
