"""Scheduling: fuse pointwise producers into their consumers, decide what the
backward recomputes and what the forward saves, and plan each stage's loops.

In: programs (``compiler/ir.py``). Out: fused programs (``fuse_pair``) and, per
program, a ``Plan``: the nests that run it, each of a few kinds, which
``compiler/codegen.py`` renders as they are (it plans nothing itself).

Example::

    fwd, bwd = fuse_pair(forward_program, backward_program)
    plan = plan_program(fwd)
    for nest in plan: print(nest.form, nest.stage.name, [l.var for l in nest.loops])
    plan.calls_blas          # whether some matrix product is a BLAS call
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass

from . import ir
from .ir import Call, Const, IConst, IExpr, IVar, Load, Program, Stage, TensorDecl, affine
from .ops_table import COMPARISONS, OPS
from .simplify import collapse_one_hot_sums, eliminate_dead_stages, simplify_expr
from .collapse import Collapsed, collapse_nest
from .windows import (FLAT_ROW, Sliding, flatten_planes, flatten_reduced_planes, laned_rows_pay, merge_rows,
                      plan_sliding, walks_contiguously)

CHEAP_OPS_LIMIT = 8


def is_pointwise(s: Stage) -> bool:
    return s.reduce is None and s.scatter_index is None


def _cheap(body) -> bool:
    calls = [e for e in ir.postorder(body) if isinstance(e, Call)]
    return len(calls) <= CHEAP_OPS_LIMIT and not any(OPS[c.op].expensive for c in calls)


# ---------------------------------------------------------------- range analysis


def _interval(e: ir.IExpr, extents: dict):
    """Integer bounds of an index expression, or None when unknown."""
    if isinstance(e, IConst):
        return e.value, e.value
    if isinstance(e, IVar):
        ext = extents.get(e.name)
        return (0, ext.value - 1) if isinstance(ext, IConst) else None
    if isinstance(e, ir.IBin) and e.op in "+*":
        a, b = _interval(e.a, extents), _interval(e.b, extents)
        if a is None or b is None:
            return None
        if e.op == "+":
            return a[0] + b[0], a[1] + b[1]
        products = [x * y for x in a for y in b]
        return min(products), max(products)
    if isinstance(e, ir.IBin) and e.op in ("min", "max"):
        a, b = _interval(e.a, extents), _interval(e.b, extents)
        if a is None or b is None:
            return None
        if e.op == "max" and ir.imul(-1, e.a) == e.b:
            # |v| (a mirrored coordinate): v and -v move together, so |v| >= 0
            # where the bounds of the two taken apart would say only >= min(v)
            return (0 if a[0] <= 0 <= a[1] else min(abs(a[0]), abs(a[1])), max(abs(a[0]), abs(a[1])))
        pick = min if e.op == "min" else max
        return pick(a[0], b[0]), pick(a[1], b[1])
    if isinstance(e, ir.IBin) and e.op in ("//", "%") and isinstance(e.b, IConst) and e.b.value > 0:
        # a split index (a reshape's h = e // 32, d = e % 32)
        a = _interval(e.a, extents)
        if e.op == "%":
            return (0, e.b.value - 1) if a is None or a[0] < 0 or a[1] >= e.b.value else a
        return None if a is None else (a[0] // e.b.value, a[1] // e.b.value)
    return None


def coordinate_in_range(coord: ir.IExpr, size: ir.IExpr, extents: dict) -> bool:
    """Whether ``0 <= coord < size`` for every value of the loop indices."""
    if isinstance(coord, IVar) and extents.get(coord.name) == size:
        return True
    if coord == IConst(0) and size != IConst(0) and isinstance(size, IConst):
        return True
    bounds = _interval(coord, extents)
    return bounds is not None and isinstance(size, IConst) and bounds[0] >= 0 and bounds[1] < size.value


def index_in_range(index: tuple, shape: tuple, extents: dict) -> bool:
    return all(coordinate_in_range(c, d, extents) for c, d in zip(index, shape))


def range_condition(index: tuple, shape: tuple, extents: dict):
    """The value-level condition ``0 <= index < shape`` for coordinates not provably in range."""
    conds = []
    for c, d in zip(index, shape):
        if not coordinate_in_range(c, d, extents):
            conds.append(Call("ge", (ir.IndexValue(c), Const(0.0))))
            conds.append(Call("lt", (ir.IndexValue(c), ir.IndexValue(d))))
    cond = None
    for c in conds:
        cond = c if cond is None else Call("mul", (cond, c))
    return cond


# ---------------------------------------------------------------- fusion


def _inline_ok(consumer: Stage, load: Load, producer: Stage) -> bool:
    used = set().union(*(ir.ivars(i) for i in load.index)) if load.index else set()
    # recomputing is free when every loop of the consumer picks a different producer element
    no_blowup = {a.name for a in consumer.all_axes if a.extent != IConst(1)} <= used
    return no_blowup or _cheap(producer.body)


def _is_permuted_read(e) -> bool:
    return isinstance(e, Load) and all(isinstance(i, (IVar, IConst)) for i in e.index)


def _is_affine_read(e) -> bool:
    return isinstance(e, Load) and all(ir.affine(i, ir.ivars(i)) is not None for i in e.index)


def _inline(consumer: Stage, defs: dict) -> Stage:
    extents = {a.name: a.extent for a in consumer.all_axes}
    # a matrix product reads its operands from memory, where BLAS can take them:
    # only re-indexing (a transpose) is inlined into it, and a copy read through
    # a guard at affine coordinates (a padded window), which no BLAS call takes
    # and packing reads as cheaply (a gather, a mirrored padding's, is read once)
    product = plan_contraction(consumer) is not None

    def leaf(e):
        if isinstance(e, Load) and e.tensor in defs and _inline_ok(consumer, e, defs[e.tensor]):
            producer = defs[e.tensor]
            body = ir.subst_indices(producer.body, {a.name: i for a, i in zip(producer.axes, e.index)})
            cond = range_condition(e.index, producer.shape, extents)
            if product and not (_is_permuted_read(body) if cond is None else _is_affine_read(body)):
                return e
            return body if cond is None else Call("select", (cond, body, Const(0.0)))
        return e

    return ir.replace(consumer, body=simplify_expr(ir.map_expr(consumer.body, leaf)))


def _fuse_stages(stages, defs: dict, keep: set):
    """Inline known pointwise definitions into each stage, in order; returns the
    new stages and the definitions grown by the pointwise stages seen."""
    defs = dict(defs)
    fused_stages = []
    for s in stages:
        # inlining a gather's gradient can expose a one-hot sum: it becomes one read
        fused = collapse_one_hot_sums(_inline(s, defs))
        if is_pointwise(fused) and (fused.name not in keep or _cheap(fused.body)):
            defs[fused.name] = fused
        fused_stages.append(fused)
    return fused_stages, defs


def _permuted_copy_of(consumer: Stage, producers: dict):
    """The reduction ``consumer`` copies with its axes permuted (a transpose of
    a matrix product's result), or None."""
    body = consumer.body
    if not (is_pointwise(consumer) and isinstance(body, Load) and body.tensor in producers):
        return None
    producer = producers[body.tensor]
    names = [i.name for i in body.index if isinstance(i, IVar)]
    # the other coordinates pick the only element of a dimension of size 1
    dropped = [a for a, i in zip(producer.axes, body.index) if not isinstance(i, IVar)]
    if producer.reduce is None or producer.scatter_index is not None or \
            sorted(names) != sorted(a.name for a in consumer.axes) or \
            any(a.extent != IConst(1) for a in dropped) or \
            any(i != IConst(0) for i in body.index if not isinstance(i, IVar)):
        return None
    return producer


def _absorb_permuted_copies(stages: list, keep: set) -> list:
    """A reduction read only by a stage that permutes its axes (or drops axes
    of size 1) is computed in that order directly: one pass and one tensor fewer."""
    readers = {}
    for s in stages:
        for t in ir.tensors_read(s.body):
            readers[t] = readers.get(t, 0) + 1
    producers = {s.name: s for s in stages if s.name not in keep and readers.get(s.name) == 1}
    out = list(stages)
    for consumer in stages:
        producer = _permuted_copy_of(consumer, producers)
        if producer is None:
            continue
        taken = {a.name for a in consumer.axes}
        reduce_axes = tuple(ir.replace(a, name=f"{a.name}_r") if a.name in taken else a
                            for a in producer.reduce_axes)
        mapping = {a.name: i for a, i in zip(producer.axes, consumer.body.index)}
        mapping |= {a.name: IVar(r.name) for a, r in zip(producer.reduce_axes, reduce_axes) if a != r}
        direct = ir.replace(producer, name=consumer.name, shape=consumer.shape, axes=consumer.axes,
                            body=ir.subst_indices(producer.body, mapping), reduce_axes=reduce_axes)
        out[out.index(producer)] = direct
        out.remove(consumer)
    return out


def _stored_anyway(stages, fused, keep: set) -> set:
    """The costly pointwise stages of ``stages`` that are stored anyway: some
    stage of ``fused`` still reads them (a matrix product takes its operands
    from memory), or reads a plain copy of them. Inlining them elsewhere
    computes them twice (the gradient of a split projection: three heads'
    gradients gathered into one matrix, which the product with the weight
    reads and the bias's sum would gather again)."""
    read = set().union(*(ir.tensors_read(st.body) for st in fused))
    by_name = {st.name: st for st in stages}
    inlined = {st.name: st for st in fused}       # costs are of the bodies as fused
    stored = set()
    for name in read & set(by_name):
        st = by_name[name]
        # through plain copies (a reshape's identity) to what they copy
        while isinstance(st.body, Load) and st.body.tensor in by_name and st.body.index == st.index:
            st = by_name[st.body.tensor]
        if st.name not in keep and is_pointwise(st) and not _cheap(inlined[st.name].body):
            stored.add(st.name)
    return stored


def fuse(p: Program, available: dict | None = None) -> Program:
    """Inline pointwise stages into the stages that read them (recomputing
    rather than storing), compute transposed reductions in place, then drop
    stages nobody reads. ``available`` holds pointwise stages of another
    program (the forward) the backward may recompute."""
    keep = set(p.outputs) | {s for _, s in p.updates}
    stages, _ = _fuse_stages(p.stages, available or {}, keep)
    stored = _stored_anyway(p.stages, stages, keep)
    if stored:
        # its other readers read it rather than compute it once more
        stages, _ = _fuse_stages(p.stages, available or {}, keep | stored)
    stages = _absorb_permuted_copies(stages, keep)
    return eliminate_dead_stages(ir.replace(p, stages=tuple(stages)))


def _save(fwd: Program, bwd: Program, outputs: tuple):
    """The forward's ``outputs`` plus every forward stage the backward reads,
    which the backward declares as saved."""
    read = set()
    for s in bwd.stages:
        read |= ir.tensors_read(s.body)
    saved = tuple(s.name for s in fwd.stages if s.name in read)
    decls = [t for t in bwd.tensors if t.role != "saved"]
    decls += [TensorDecl(n, fwd.shape_of(n), "saved") for n in saved]
    fwd = ir.replace(fwd, outputs=outputs + tuple(n for n in saved if n not in outputs))
    return fwd, ir.replace(bwd, tensors=tuple(decls))


def fuse_pair(fwd: Program, bwd: Program):
    """Fuse forward and backward together: the backward recomputes cheap
    forward values; forward stages it still reads become saved outputs, and
    so do the exponentials of a sum it would take again (``keep_terms``)."""
    _, available = _fuse_stages(fwd.stages, {}, set(fwd.outputs))
    bwd = fuse(bwd, available)
    outputs = fwd.outputs
    fwd, bwd = _save(fwd, bwd, outputs)
    fwd, bwd = keep_terms(fuse(fwd), bwd)
    bwd = terms_from_quotients(fwd, bwd, outputs)
    fwd, bwd = _save(fwd, bwd, outputs)
    return add_into_products(eliminate_dead_stages(fwd)), add_into_products(bwd)


# ---------------------------------------------------------------- sums started at a value


def _first_term(axes) -> object:
    """The condition that every axis of ``axes`` is at 0: a sum's first term."""
    cond = None
    for a in axes:
        test = Call("eq", (ir.IndexValue(IVar(a.name)), Const(0.0)))
        cond = test if cond is None else Call("mul", (cond, test))
    return cond


def starting_value(s: Stage) -> tuple:
    """``(start, rest)`` when a sum stage's body is ``select(first term, start,
    0) + rest`` (``add_into_products``): the sum of ``rest`` started at
    ``start``. Else ``(None, body)``."""
    body = s.body
    if s.reduce == "sum" and isinstance(body, Call) and body.op == "add":
        first, rest = body.args
        if (isinstance(first, Call) and first.op == "select" and first.args[2] == Const(0.0)
                and first.args[0] == _first_term(s.reduce_axes)):
            return first.args[1], rest
    return None, body


def add_into_products(p: Program) -> Program:
    """A matrix product or window sum whose only reader adds something to it
    elementwise (a bias, a residual, another product) becomes that sum,
    started at the addend: ``out = z + sum_k a*b`` as ``sum_k (select(k == 0,
    z, 0) + a*b)``. A product's nest writes ``z`` into the output and the BLAS
    adds the product onto it (beta 1); a window's sum starts at ``z``
    (``Sliding.start``): one pass over the output and one buffer fewer. Only
    for those two (a plain loop nest would test the condition every term)."""
    readers = p.readers()
    kept = set(p.outputs) | {s for _, s in p.updates}
    products = {s.name: s for s in p.stages if s.reduce == "sum" and s.scatter_index is None}
    stages, folded = [], set()
    for s in p.stages:
        started = _started_product(s, products, readers, kept)
        if started is not None:
            folded.add(started[1])
            s = started[0]
        stages.append(s)
    return ir.replace(p, stages=tuple(st for st in stages if st.name not in folded))


def _started_product(s: Stage, products: dict, readers: dict, kept: set):
    """``(the sum s computes, started at its addend; the product's name)``, or None."""
    if not (is_pointwise(s) and isinstance(s.body, Call) and s.body.op == "add"):
        return None
    for load, addend in (s.body.args, s.body.args[::-1]):
        c = products.get(load.tensor) if isinstance(load, Load) else None
        if (c is None or c.name in kept or readers.get(c.name) != [s.name] or load.index != s.index
                or c.shape != s.shape or [a.extent for a in c.axes] != [a.extent for a in s.axes]
                or c.name in ir.tensors_read(addend)):
            continue
        # the product's axes take the sum's names; its reduced axes name none of them
        taken = {a.name for a in s.axes}
        names = {a.name: b.name for a, b in zip(c.axes, s.axes)}
        reduce_axes = []
        for a in c.reduce_axes:
            name = a.name
            while name in taken:
                name += "_"
            taken.add(name)
            names[a.name] = name
            reduce_axes.append(ir.Axis(name, a.extent))
        reduce_axes = tuple(reduce_axes)
        product = ir.subst_indices(c.body, {old: IVar(new) for old, new in names.items()})
        start = Call("select", (_first_term(reduce_axes), addend, Const(0.0)))
        started = ir.replace(s, body=Call("add", (start, product)), reduce="sum", reduce_axes=reduce_axes)
        if plan_contraction(started) is not None or _started_window(started) is not None:
            return started, c.name
    return None


def _started_window(s: Stage) -> Sliding | None:
    """The window plan of a sum started at a value (``starting_value``), with
    that value as its ``start``; None when the sum is no window reduction."""
    start, terms = starting_value(s)
    sliding = plan_sliding(ir.replace(s, body=terms)) if start is not None else None
    if sliding is None or sliding.scatter:
        return None
    return dataclasses.replace(sliding, start=start)


def _bind(pattern, expr, free: set, binding: dict) -> bool:
    """Whether ``expr`` is ``pattern`` with its index variables named in
    ``free`` replaced by index expressions, the same each time; records them
    in ``binding``."""
    if isinstance(pattern, IVar) and pattern.name in free:
        return binding.setdefault(pattern.name, expr) == expr
    if type(pattern) is not type(expr):
        return False
    if isinstance(pattern, tuple):
        return len(pattern) == len(expr) and all(_bind(a, b, free, binding) for a, b in zip(pattern, expr))
    if not dataclasses.is_dataclass(pattern):
        return pattern == expr
    return all(_bind(getattr(pattern, f.name), getattr(expr, f.name), free, binding)
               for f in dataclasses.fields(pattern))


def _terms_of(s: Stage, shapes: dict) -> Stage | None:
    """The stage of ``s``'s terms, when ``s`` is a row's sum of exponentials
    (softmax, log-sum-exp) summed along its innermost loop, else None."""
    if not (s.reduce == "sum" and s.scatter_index is None and len(s.reduce_axes) == 1 and
            isinstance(s.body, Call) and s.body.op == "exp"):
        return None
    if plan_loops(s, shapes).loops[-1].var != s.reduce_axes[0].name:
        return None
    return Stage(f"{s.name}_terms", tuple(a.extent for a in s.all_axes), s.all_axes, s.body)


def _read_terms(stage: Stage, terms: Stage) -> Stage:
    """``stage`` with each ``exp`` of the terms' argument, at an index inside
    them, read from ``terms``."""
    free = {a.name for a in terms.axes}
    extents = {a.name: a.extent for a in stage.all_axes}

    def read(call: Call):
        binding = {}
        if call.op == "exp" and _bind(terms.body, call, free, binding):
            # an axis the argument does not use (keepdims) has one element
            index = tuple(binding.get(a.name, IConst(0)) for a in terms.axes)
            if index_in_range(index, terms.shape, extents):
                return Load(terms.name, index)
        return call
    return ir.replace(stage, body=ir.map_calls(stage.body, read))


def keep_terms(fwd: Program, bwd: Program):
    """A forward sum of exponentials whose terms the backward takes again
    (softmax's gradient reads ``exp(x - max)``) stores them while it sums:
    writing and reading a value back costs less than an ``exp`` twice. Every
    later ``exp`` of the same argument, forward or backward, reads the stored
    terms. Returns both programs (the terms not yet declared saved)."""
    shapes = fwd.shapes()
    for name in [s.name for s in fwd.stages]:
        k = next(k for k, s in enumerate(fwd.stages) if s.name == name)
        terms = _terms_of(fwd.stages[k], shapes)
        if terms is None or terms.name in shapes:
            continue
        backward = tuple(_read_terms(b, terms) for b in bwd.stages)
        if backward == bwd.stages:
            continue
        summed = ir.replace(fwd.stages[k], body=Load(terms.name, tuple(IVar(a.name) for a in terms.axes)))
        later = tuple(_read_terms(f, terms) for f in fwd.stages[k + 1:])
        fwd = ir.replace(fwd, stages=fwd.stages[:k] + (terms, summed) + later)
        bwd = ir.replace(bwd, stages=backward)
        shapes[terms.name] = terms.shape
    return fwd, bwd


def _quotient_of_terms(o: Stage, stages: dict):
    """``(terms, sum)`` when ``o`` is ``terms / sum`` (a softmax), ``terms``
    kept exponentials (``keep_terms``) and ``sum`` the sum of them all; else None."""
    body = o.body
    if not (is_pointwise(o) and isinstance(body, Call) and body.op == "div"
            and all(isinstance(a, Load) for a in body.args)):
        return None
    terms, total = (stages.get(a.tensor) for a in body.args)
    if terms is None or total is None or not is_pointwise(terms) or not isinstance(terms.body, Call) \
            or terms.body.op != "exp" or total.reduce != "sum" \
            or total.body != Load(terms.name, tuple(IVar(a.name) for a in terms.axes)):
        return None
    return terms, total


def terms_from_quotients(fwd: Program, bwd: Program, outputs: tuple) -> Program:
    """The backward with each read of kept exponentials ``e`` (``keep_terms``)
    whose quotient ``y = e / sum(e)`` is a forward output read as ``y * sum``
    instead: the forward writes ``y`` anyway, and ``e`` then stays in the
    cache while its row is normalized (``Nest.local``), one pass over memory
    fewer. The sum is at least the largest term, so ``y * sum`` is ``e`` within
    an ulp, and a row of NaN or infinities gives NaN either way."""
    stages = {s.name: s for s in fwd.stages}
    for o in (stages[name] for name in outputs if name in stages):
        found = _quotient_of_terms(o, stages)
        if found is None:
            continue
        terms, (pattern, divisor) = found[0], o.body.args
        free = {a.name for a in o.axes}

        def recover(e, terms=terms, pattern=pattern, divisor=divisor, o=o, free=free):
            binding = {}
            if not (isinstance(e, Load) and e.tensor == terms.name and _bind(pattern.index, e.index, free, binding)
                    and free <= set(binding)):
                return e
            read = Load(o.name, tuple(binding[a.name] for a in o.axes))
            return Call("mul", (read, ir.subst_indices(divisor, binding)))
        rewritten = tuple(ir.replace(b, body=ir.map_expr(b.body, recover)) for b in bwd.stages)
        if not any(terms.name in ir.tensors_read(b.body) for b in rewritten):
            bwd = ir.replace(bwd, stages=rewritten)
    return bwd


# ---------------------------------------------------------------- loop plans


@dataclass(frozen=True)
class Loop:
    var: str
    extent: ir.IExpr
    parallel: bool = False      # the outermost loop of a nest that may run in threads
    simd: bool = False          # the innermost loop, vectorized
    reduction: bool = False     # a reduction loop (the accumulator is private)


@dataclass(frozen=True)
class Contraction:
    """A sum stage ``out[batch, m, n] = sum_k A(batch, m, k) * B(batch, k, n)``:
    run as packed, register-tiled matrix multiplication. ``a`` and ``b`` are the
    two sides' values (any expressions: guarded reads for padding, fused
    producers); ``m``, ``n``, ``k`` are runs of index variables, each flattened
    into one matrix dimension. ``start``: the value the sum starts from
    (``add_into_products``), None for 0."""

    a: object
    b: object
    batch: tuple
    m: tuple
    n: tuple
    k: tuple
    gemm: "Gemm | None" = None
    start: object = None


@dataclass(frozen=True)
class Matrix:
    """One operand of a BLAS call: the elements ``tensor[index]`` with the
    matrix's own variables at zero mark its start; stored row-major with
    leading dimension ``ld``, ``transposed`` when its row variables are the
    innermost (contiguous) ones."""

    tensor: str
    index: tuple
    transposed: bool
    ld: IExpr


@dataclass(frozen=True)
class Gemm:
    """A contraction as BLAS calls ``out[m, n] = alpha * a[m, k] @ b[k, n]``:
    one per value of ``loops`` (batch axes and the outer axes of m, n that do
    not flatten with the rest), accumulating over ``accumulate`` (outer axes of
    k). ``m``, ``n``, ``k`` are the axis runs each call flattens."""

    a: Matrix
    b: Matrix
    out: Matrix
    alpha: float
    loops: tuple
    accumulate: tuple
    m: tuple
    n: tuple
    k: tuple
    prologue: "Nest | None" = None      # writes the sum's starting value into the output (beta 1)


# below these sizes a contraction runs as plain loops: packing would not pay
CONTRACTION_MIN_SIZE = 8


@dataclass(frozen=True)
class Nest:
    """How one stage (or several sibling stages in one pass) runs.

    ``kind``: ``"inner"`` (reduction inside, a scalar accumulator per output
    element; also pointwise stages), ``"accumulate"`` (output zero-filled, then
    updated in a loop order that keeps the innermost loop contiguous), ``"row"``
    (a stencil: each output row zeroed, then the window accumulated into it
    with the columns innermost), ``"contract"`` (a matrix product),
    ``"scatter"``, ``"online"`` (a row's maximum, its sibling, and the sum
    of ``exp(x - maximum)``, this stage, in one pass: see ``nests_c.render_online``),
    or ``"taps"`` (a sum whose trailing output loops, a window's offsets,
    run inside its reduction loops but the innermost, ``taps`` of them: see
    ``_taps_inside``), or ``"window"`` (a window reduction or a window's gradient, planned in
    ``sliding``: see ``compiler/windows.py``), or ``"patch_gemm"`` (GEMM calls over
    packed operands, planned in ``patch``: see ``compiler/plan.py``).
    ``loops`` are outermost first; in ``inner`` and ``online`` nests the first
    ``len(stage.axes)`` are the output axes.

    ``siblings``: further ``(kind, stage)`` pairs run in the same loops (one
    pass over the data), their index variables renamed to this nest's;
    ``shared`` says how: ``"siblings"`` (pointwise stages), ``"sums"``
    (reductions, an accumulator each: ``sums_nest``) or ``"pass"``. A nest
    whose ``kind`` or any sibling is ``"accumulate"`` runs as a *pass*: the
    outermost loop is split into one contiguous block per thread, each thread
    accumulates into its own partial output, and the partials are combined in
    thread order afterwards (deterministic for a given thread count).
    ``terms``: in a sum's ``inner`` or ``online`` nest, the pointwise stage of
    its terms (``keep_terms``), stored as they are added.
    ``group``: in a ``"rows"`` nest (``loops``: row loops shared by
    consecutive nests), those nests, each with the loops it runs inside a row:
    a row's statistics and what reads them computed while the row is in cache.
    ``local``: in a ``"rows"`` nest, ``(tensor, k)`` of the tensors its nests
    write and only they read, each held a row at a time (its first ``k``
    coordinates the row's) in a buffer of the thread's, in the cache.
    ``across``: an ``inner`` reduction over a short axis whose vector loop is
    the innermost output loop of more than one iteration (rows in SIMD lanes),
    the reduced axis a scalar loop inside it (where that axis's length is
    known only at run time, no loop is marked: see ``_across_rows``). ``collapsed``: how the loops
    differ from the stages' axes (``compiler/collapse.py``): loops of one
    iteration dropped, loops walking memory together merged.
    """

    stage: Stage
    kind: str
    loops: tuple
    siblings: tuple = ()
    contraction: Contraction | None = None
    window: Window | None = None
    terms: Stage | None = None
    shared: str = ""
    sliding: Sliding | None = None
    patch: object = None        # a "patch_gemm" nest's PatchGemm (compiler/plan.py makes those)
    across: bool = False        # an "inner" reduction with its rows in SIMD lanes (``_across_rows``)
    collapsed: object = None    # loops dropped and merged (compiler/collapse.py), or None
    group: tuple = ()           # a "rows" nest's nests, each run inside its loops (``_row_group``)
    taps: int = 0               # a "taps" nest's output loops inside its reduction (``_taps_inside``)
    local: tuple = ()           # a "rows" nest's tensors kept a row at a time (``_row_locals``)
    flat: object = None         # a "window" or "taps" nest's planes as one row (``windows.FlatPlanes``), or None

    @property
    def members(self) -> tuple:
        """``(kind, stage)`` of every stage this nest computes, in program order
        (a ``"rows"`` nest: its nests' stages and kept terms)."""
        if self.group:
            return tuple(m for nest in self.group for m in
                         (nest.members + ((("inner", nest.terms),) if nest.terms else ())))
        return ((self.kind, self.stage),) + self.siblings

    @property
    def is_pass(self) -> bool:
        return any(kind == "accumulate" for kind, _ in self.members)

    @property
    def form(self) -> str:
        """What renders the nest (``codegen.RENDERERS``): how its stages share
        its loops, else its kind."""
        return self.shared or self.kind

    @property
    def calls_blas(self) -> bool:
        return self.contraction is not None and self.contraction.gemm is not None


@dataclass(frozen=True)
class ShortRows:
    """The nests a program runs instead of its plan's while the reductions a
    size known only at run time makes short are short: each of ``lengths``
    (the product of a reduction's extents) below ``RUN_TIME_SHORT_ROW``.
    There they run as ``across`` nests, each reduction a nest of its own
    rather than one pass (``"online"``) or a row's group (``"rows"``), whose
    per-row shift, rescaling and loop setups a short row does not pay for."""

    lengths: tuple
    nests: tuple


@dataclass(frozen=True)
class Plan:
    """A program and the nests that run it, in order: what codegen renders.
    Iterating a plan gives its nests. ``short``: the nests run instead while
    some reductions over sizes free at build time are short (a run-time branch
    outside every loop), or None."""

    program: Program
    nests: tuple
    short: ShortRows | None = None

    def __iter__(self):
        return iter(self.nests)

    def __len__(self) -> int:
        return len(self.nests)

    def __getitem__(self, k):
        return self.nests[k]

    @property
    def calls_blas(self) -> bool:
        """Whether some matrix product of the program is a BLAS call."""
        return any(nest.calls_blas for nest in self.nests + (self.short.nests if self.short else ()))

    def map_nests(self, f) -> "Plan":
        """The plan with ``f`` applied to each of its nests (and its short rows' nests)."""
        return self.flat_map_nests(lambda nest: (f(nest),))

    def flat_map_nests(self, f) -> "Plan":
        """The plan with each of its nests (and its short rows' nests) replaced
        by the nests ``f`` gives for it."""
        def each(nests):
            return tuple(n for nest in nests for n in f(nest))
        short = self.short and ShortRows(self.short.lengths, each(self.short.nests))
        return Plan(self.program, each(self.nests), short)


@dataclass(frozen=True)
class Window:
    """The innermost loop of a sum cut to where its term can be nonzero (the
    part of a padded stencil's row inside the image): ``start``/``stop`` are
    bounds besides the loop's own (``max``/``min`` of them), ``tests`` index
    comparisons that do not change along the loop and skip it when false,
    ``body`` the term without the tests these make true, ``in_range`` the reads
    that need no bounds check there, ``settled`` the conditions that hold there."""

    body: object
    start: tuple
    stop: tuple
    tests: tuple
    in_range: frozenset
    settled: frozenset = frozenset()
    adds_on: bool = False       # a scatter's later piece: adds onto what the pieces before it wrote


def _conjuncts(cond) -> list:
    if isinstance(cond, Call) and cond.op == "mul":
        return _conjuncts(cond.args[0]) + _conjuncts(cond.args[1])
    return [cond]


def _zero_unless(e) -> list:
    """Conditions that each make ``e`` zero when false."""
    if isinstance(e, Call) and e.op == "select" and e.args[2] == Const(0.0):
        return _conjuncts(e.args[0]) + _zero_unless(e.args[1])
    if isinstance(e, Call) and e.op == "mul":
        return _zero_unless(e.args[0]) + _zero_unless(e.args[1])
    if isinstance(e, Call) and e.op in ("div", "neg"):
        return _zero_unless(e.args[0])
    return []


def _bound(cond, var: str):
    """``("start" | "stop", bound)`` when ``cond`` is ``var + rest >= 0`` or
    ``var + rest < size`` (or the same with ``-var``), rest free of ``var``."""
    if not (isinstance(cond, Call) and cond.op in ("ge", "lt") and
            all(isinstance(a, ir.IndexValue) or a == Const(0.0) for a in cond.args)):
        return None
    (coordinate, limit) = (a.expr if isinstance(a, ir.IndexValue) else IConst(0) for a in cond.args)
    if var in ir.ivars(limit):
        return None
    split = affine(coordinate, {var})
    if split is None or not split[0].get(var):
        return None
    coef, rest = split[0][var], split[1]
    # a stride: var >= ceil((limit - rest) / coef), or var <= floor((rest - limit) / -coef)
    above = ir.ifloordiv(ir.iadd(ir.isub(limit, rest), coef - 1), coef) if coef > 0 else None
    below = ir.iadd(ir.ifloordiv(ir.isub(rest, limit), -coef), 1) if coef < 0 else None
    if cond.op == "ge":     # coef * var + rest >= limit
        return ("start", above) if coef > 0 else ("stop", below)
    # coef * var + rest < limit
    return ("stop", above) if coef > 0 else ("start", below)


def plan_window(s: Stage, var: str, shapes: dict) -> Window | None:
    """Bounds for the innermost loop ``var`` of a sum outside which its term is zero, or None."""
    guarded = {}
    body = explicit_zeros(s, shapes, guarded)
    bounds, tests = {}, []
    for cond in _zero_unless(body):
        bound = _bound(cond, var)
        if bound is not None:
            bounds[cond] = bound
        elif _is_index_test(cond) and var not in ir.ivars_of_expr(cond) and cond not in tests:
            tests.append(cond)
    if not bounds and not tests:
        return None

    settled = set(bounds) | set(tests)
    body = simplify_expr(_settle(body, settled))
    # a read is unchecked only where all its bounds hold: the printer evaluates
    # each read on its own line, before any select that would have guarded it
    in_range = frozenset(e for e, cond in guarded.items() if set(_conjuncts(cond)) <= settled)
    return Window(body, tuple(b for kind, b in bounds.values() if kind == "start"),
                  tuple(b for kind, b in bounds.values() if kind == "stop"), tuple(tests), in_range,
                  frozenset(settled))


def explicit_zeros(s: Stage, shapes: dict, guarded: dict | None = None):
    """``s``'s body with each read that may fall outside its tensor guarded by
    its range, its implicit zero made explicit (each guard kept in ``guarded``)."""
    extents = {a.name: a.extent for a in s.all_axes}
    guarded = {} if guarded is None else guarded

    def guard(e):
        if isinstance(e, Load) and not index_in_range(e.index, shapes[e.tensor], extents):
            guarded[e] = range_condition(e.index, shapes[e.tensor], extents)
            return Call("select", (guarded[e], e, Const(0.0)))
        return e

    return ir.map_expr(s.body, guard)


def _is_index_test(cond) -> bool:
    return isinstance(cond, Call) and cond.op in COMPARISONS and \
        all(isinstance(a, ir.IndexValue) or isinstance(a, Const) for a in cond.args)


def _settle(e, known: set, failed: frozenset = frozenset()):
    """``e`` with the conditions ``known`` to hold replaced by 1, those that
    ``failed`` by 0."""
    memo = {}
    for sub in ir.postorder(e):
        if sub in known or sub in failed:
            memo[sub] = Const(1.0 if sub in known else 0.0)
        elif isinstance(sub, Call):
            memo[sub] = Call(sub.op, tuple(memo[a] for a in sub.args))
        else:
            memo[sub] = sub
    return memo[e]


def _size_rank(extent) -> float:
    return extent.value if isinstance(extent, IConst) else float("inf")


def _contiguous_coordinate(s: Stage, shapes: dict):
    """``(variable, others)``: the longest-running index variable of the last
    coordinate of the stage's widest read (the one that walks memory with stride
    1), and the other variables of that coordinate. Trailing dimensions of size
    1 are skipped: in ``x[i, j, 0]`` of an ``[N, C, 1]`` tensor, ``j`` walks
    memory."""
    extents = {a.name: a.extent for a in s.all_axes}

    def footprint(load):
        size = 1.0
        for v in set().union(*(ir.ivars(i) for i in load.index)):
            size *= _size_rank(extents.get(v, IConst(1)))
        return size

    def last(load):
        shape = shapes.get(load.tensor, ())
        k = len(load.index) - 1
        while k > 0 and k < len(shape) and shape[k] == IConst(1) and load.index[k] == IConst(0):
            k -= 1
        return load.index[k] if load.index else None

    best = None
    for load in ir.loads(s.body):
        coefs = _terms(last(load), set(extents))[0] if load.index else {}
        if any(abs(c) == 1 for c in coefs.values()):
            if best is None or footprint(load) > footprint(best):
                best = load
    if best is None:
        return None, set()
    coefs, opaque = _terms(last(best), set(extents))
    var = max((v for v, c in coefs.items() if abs(c) == 1), key=lambda v: (_size_rank(extents[v]), v))
    return var, (set(coefs) | opaque) - {var}


def _terms(coordinate, names: set) -> tuple[dict, set]:
    """A coordinate's affine coefficients, over the terms of its sum that are
    affine, and the variables of those that are not: ``13 * w // 7 + j`` (an
    adaptive window's column) walks memory along ``j``, ``w`` beside it. So
    does ``min(13 * w // 7 + j, (13 * w + 19) // 7 - 1)``, the column clamped
    to its window's last (an adaptive maximum's): a bound that is a function
    of the indices alone leaves the walk to the other side."""
    split = affine(coordinate, names)
    if split is not None:
        return split[0], set()
    if isinstance(coordinate, ir.IBin) and coordinate.op in ("+", "min", "max"):
        (a, opaque_a), (b, opaque_b) = _terms(coordinate.a, names), _terms(coordinate.b, names)
        if coordinate.op == "+":
            return {v: a.get(v, 0) + b.get(v, 0) for v in set(a) | set(b)}, opaque_a | opaque_b
        if opaque_a | opaque_b and not (a and b):
            return a or b, opaque_a | opaque_b
    return {}, ir.ivars(coordinate) & names


def _factors(e) -> list:
    if isinstance(e, Call) and e.op == "mul":
        return _factors(e.args[0]) + _factors(e.args[1])
    return [e]


def _product(factors):
    out = factors[0]
    for f in factors[1:]:
        out = Call("mul", (out, f))
    return out


def _large(axes) -> bool:
    size = IConst(1)
    for a in axes:
        size = ir.imul(size, a.extent)
    return not isinstance(size, IConst) or size.value >= CONTRACTION_MIN_SIZE


def plan_contraction(s: Stage) -> Contraction | None:
    """Split a sum of products into the two sides of a matrix product, or None."""
    if s.reduce != "sum" or s.scatter_index is not None or not s.reduce_axes:
        return None
    start, body = starting_value(s)
    guard = None
    if isinstance(body, Call) and body.op == "select" and body.args[2] == Const(0.0):
        guard, body = body.args[0], body.args[1]
    factors = _factors(body)
    if len(factors) < 2 or not _large(s.reduce_axes):
        return None
    used = [ir.ivars_of_expr(f) for f in factors]
    guard_vars = ir.ivars_of_expr(guard) if guard is not None else set()
    for mask in range(1, 2 ** len(factors) - 1):
        side_a = [k for k in range(len(factors)) if mask >> k & 1]
        side_b = [k for k in range(len(factors)) if not mask >> k & 1]
        va = set().union(*(used[k] for k in side_a))
        vb = set().union(*(used[k] for k in side_b))
        m = tuple(a for a in s.axes if a.name in va and a.name not in vb)
        n = tuple(a for a in s.axes if a.name in vb and a.name not in va)
        if not (m and n and _large(m) and _large(n)):
            continue
        a_value, b_value = _product([factors[k] for k in side_a]), _product([factors[k] for k in side_b])
        if guard is not None:
            # the guard joins the side whose indices it mentions (it may not straddle both)
            if not guard_vars & {x.name for x in n}:
                a_value = Call("select", (guard, a_value, Const(0.0)))
            elif not guard_vars & {x.name for x in m}:
                b_value = Call("select", (guard, b_value, Const(0.0)))
            else:
                continue
        batch = tuple(a for a in s.axes if a not in m and a not in n)
        return Contraction(a_value, b_value, batch, m, n, s.reduce_axes, start=start)
    return None


def _plain_read(value, shapes: dict, extents: dict):
    """``(load, scale)`` when ``value`` is one in-range tensor read times constants."""
    factors = _factors(value)
    loads = [f for f in factors if isinstance(f, Load)]
    consts = [f for f in factors if isinstance(f, Const)]
    if len(loads) != 1 or len(loads) + len(consts) != len(factors):
        return None
    load = loads[0]
    if not index_in_range(load.index, shapes[load.tensor], extents):
        return None
    return load, math.prod(c.value for c in consts)


def _matrix(tensor: str, index: tuple, shape: tuple, rows: tuple, cols: tuple) -> Matrix | None:
    """``tensor[index]`` as a row-major matrix over the axis runs ``rows`` and
    ``cols``, or None: each run must occupy consecutive dimensions in its own
    order (so it flattens like the contraction flattens it; dimensions of size
    1 between them take no room), and one run must end where the stride is 1
    (BLAS needs one unit stride)."""
    run_of = {a.name: "rows" for a in rows} | {a.name: "cols" for a in cols}
    dims = {"rows": [], "cols": []}
    var_at, start = {}, []
    for d, coordinate in enumerate(index):
        # a coordinate is one run variable plus an offset free of them (a head's columns: 32 * h + k)
        split = affine(coordinate, set(run_of))
        if split is None or len(split[0]) > 1 or any(c != 1 for c in split[0].values()):
            return None
        if split[0]:
            (name,) = split[0]
            dims[run_of[name]].append(d)
            var_at[d] = name
        start.append(split[1])
    for run, axes in (("rows", rows), ("cols", cols)):
        ds = dims[run]
        if [var_at[d] for d in ds] != [a.name for a in axes] or \
                any(d not in ds and shape[d] != IConst(1) for d in range(ds[0], ds[-1])):
            return None
        # only the outermost run variable may have an offset
        if any(start[d] != IConst(0) for d in ds[1:]):
            return None
        # only the outermost axis of a run may cover part of its dimension
        if any(shape[d] != a.extent for d, a in zip(ds[1:], axes[1:])):
            return None

    def stride(d):
        out = IConst(1)
        for size in shape[d + 1:]:
            out = ir.imul(out, size)
        return out

    # the inner run ends where the strides are 1 (trailing dimensions of size 1 allowed)
    if stride(dims["cols"][-1]) == IConst(1):
        inner, outer = "cols", "rows"
    elif stride(dims["rows"][-1]) == IConst(1):
        inner, outer = "rows", "cols"
    else:
        return None
    return Matrix(tensor, tuple(start), inner == "rows", stride(dims[outer][-1]))


def plan_gemm(s: Stage, c: Contraction, shapes: dict) -> Gemm | None:
    """The contraction as BLAS calls, when both sides are plain tensor reads
    (times constants) laid out as matrices; None otherwise. Runs that do not
    flatten (an output [N, C, H, W] with n over N, H, W) lose outer axes to
    loops around the calls, as few as possible."""
    extents = {a.name: a.extent for a in s.all_axes}
    sides = [_plain_read(v, shapes, extents) for v in (c.a, c.b)]
    if None in sides:
        return None
    (a, a_scale), (b, b_scale) = sides
    splits = itertools.product(range(len(c.m)), range(len(c.n)), range(len(c.k)))
    for pm, pn, pk in sorted(splits, key=sum):
        m, n, k = c.m[pm:], c.n[pn:], c.k[pk:]
        a_matrix = _matrix(a.tensor, a.index, shapes[a.tensor], m, k)
        b_matrix = _matrix(b.tensor, b.index, shapes[b.tensor], k, n)
        out = _matrix(s.name, s.index, s.shape, m, n)
        if a_matrix and b_matrix and out:
            return Gemm(a_matrix, b_matrix, out, a_scale * b_scale, c.batch + c.m[:pm] + c.n[:pn],
                        c.k[:pk], m, n, k)
    return None


def plan_stage(s: Stage, shapes: dict, short: bool = False) -> Nest:
    """The nest of one stage; ``short``: plan reductions over sizes free at
    build time as short ones."""
    contraction = plan_contraction(s)
    gemm = contraction and plan_gemm(s, contraction, shapes)
    if contraction is None or (contraction.start is not None and gemm is None):
        return plan_windowed(s, shapes) or plan_loops(s, shapes, short)
    if contraction.start is not None:
        # the output holds the sum's starting value first; the products add onto it
        start = ir.replace(s, body=contraction.start, reduce=None, reduce_axes=())
        gemm = dataclasses.replace(gemm, prologue=plan_loops(start, shapes))
    return Nest(s, "contract", (), contraction=dataclasses.replace(contraction, gemm=gemm))


def plan_windowed(s: Stage, shapes: dict) -> Nest | None:
    """A ``"window"`` nest for a window reduction or a window's adjoint
    (compiler/windows.py), its column cut to where the reads are inside their
    tensors; None for other stages, or a scatter whose writes it cannot bound."""
    sliding = _started_window(s) or plan_sliding(s)
    if sliding is None:
        return None
    window = plan_window(sliding.bounded, sliding.column.name, shapes)
    if window is None:
        sliding = merge_rows(sliding, shapes)
    if not laned_rows_pay(sliding):
        return None
    guard = _conjuncts(sliding.write_guard) if sliding.write_guard is not None else []
    if guard and (window is None or not set(guard) <= window.settled):
        return None
    if window is not None and sliding.bounded is not sliding.stage:
        window = dataclasses.replace(window, body=simplify_expr(_settle(sliding.stage.body, window.settled)))
    loops = tuple(Loop(a.name, a.extent, parallel=a in sliding.planes[:1], simd=a == sliding.column)
                  for a in sliding.order)
    # short rows run their planes as one row where the window's reads allow (chosen by the plane's size)
    flat = None
    if window is not None and _may_be_below(sliding.column.extent, FLAT_ROW):
        flat = flatten_planes(sliding, explicit_zeros(sliding.stage, shapes), shapes)
    return Nest(s, "window", loops, window=window, sliding=sliding, flat=flat)


def _may_be_below(extent, limit: int) -> bool:
    return not isinstance(extent, IConst) or extent.value < limit


# a reduction loop shorter than this with a cheap body runs as scalar code:
# gcc unrolls it fully, where a vector loop pays its setup, a horizontal
# reduction and a scalar tail per output element (a row max over 10 classes ran
# 2.4x slower vectorized). Bodies with transcendentals keep the vector loop:
# their libmvec calls are what costs, and those need it.
SHORT_REDUCTION = 16


# partial sums a ``_taps_inside`` nest keeps at most (a 7x7 window's 49)
TAPS_LIMIT = 64


def _vectorize_innermost(s: Stage, loop: Loop) -> bool:
    if loop.extent == IConst(1):
        return False            # one iteration (a keepdims axis): nothing to vectorize
    short = isinstance(loop.extent, IConst) and loop.extent.value < SHORT_REDUCTION
    return not (loop.reduction and short and _cheap(s.body))


# rows at least this many (or a free size) fill the lanes of a vector loop over rows
ACROSS_ROWS_MIN = 16

# a reduction over a size free at build time runs as a short one (``ShortRows``)
# when its rows are shorter than this at run time: focal loss over N=4096 rows
# of K classes, fwd+bwd, runs faster so below 16 and slower at 16 and 32, on
# AVX-512 and AVX2 alike
RUN_TIME_SHORT_ROW = 16


def _row_loop(s: Stage, axes: list, red: list, short: bool) -> int | None:
    """Where the rows of a short reduction run in SIMD lanes: the position in
    ``axes`` of the output loop to vectorize, or None. A reduction over fewer
    than ``SHORT_REDUCTION`` elements (a known size) vectorized along its axis
    fills a fraction of a vector and pays a horizontal reduction and a tail per
    row; across rows each lane reduces a row of its own, the short axis a
    scalar loop gcc unrolls (a row's max and sum of exponentials over 10
    classes: 34 us for 4096 rows against 61 us along the axis). The row loop
    is the innermost output loop of more than one iteration. A size free at
    build time counts as long, or as short (1) in the plan for short rows
    (``short``: ``ShortRows``)."""
    free = 1 if short else SHORT_REDUCTION
    size = math.prod(l.extent.value if isinstance(l.extent, IConst) else free for l in red)
    if not red or size >= SHORT_REDUCTION or s.scatter_index is not None:
        return None
    # a reduced index read as a value (a first maximum's position) leaves gcc 12
    # without a vector type for the row loop: that reduction stays a scalar loop
    values = [e for e in ir.postorder(s.body) if isinstance(e, ir.IndexValue)]
    if {l.var for l in red} & set().union(*(ir.ivars(e.expr) for e in values)):
        return None
    k = max((i for i, loop in enumerate(axes) if loop.extent != IConst(1)), default=None)
    if k is None:
        return None
    rows = axes[k].extent
    return k if not isinstance(rows, IConst) or rows.value >= ACROSS_ROWS_MIN else None


def _across_rows(s: Stage, axes: list, red: list, shapes: dict, short: bool) -> Nest | None:
    """An ``"inner"`` nest with the rows in SIMD lanes (``Nest.across``), or None."""
    k = _row_loop(s, axes, red, short)
    if k is None:
        return None
    loops = list(axes) + list(red)
    # gcc puts rows in lanes only around a row loop it unrolls, one of a known
    # length; a row of a length known only at run time (``ShortRows``) is left
    # to gcc's own vectorizer, which takes the row's loop (a wide vector, then
    # a narrower one for its end)
    loops[k] = dataclasses.replace(loops[k], simd=all(isinstance(l.extent, IConst) for l in red))
    loops[0] = dataclasses.replace(loops[0], parallel=True)
    window = plan_window(s, red[-1].var, shapes) if s.reduce == "sum" else None
    return Nest(s, "inner", tuple(loops), window=window, across=True)


def owns_rows(index: tuple, var: str) -> bool:
    """Whether each value of ``var`` writes a slice of its own through
    ``index`` (a coordinate that is ``var`` itself, ``var`` in no other but
    through a data-dependent read, which picks an element inside the slice): a
    scatter that runs in threads over it without races (a padding's gradient,
    mirrored along the image's axes, over the batch; an adaptive maximum's,
    at each window's first maximum)."""
    own = [k for k, i in enumerate(index) if i == IVar(var)]
    return bool(own) and all(var not in _direct_ivars(i) for k, i in enumerate(index) if k != own[0])


def _direct_ivars(e) -> set:
    """The index variables of ``e`` outside its data-dependent reads."""
    if isinstance(e, ir.ILoad):
        return set()
    if isinstance(e, ir.IBin):
        return _direct_ivars(e.a) | _direct_ivars(e.b)
    return ir.ivars(e)


def plan_loops(s: Stage, shapes: dict, short: bool = False) -> Nest:
    """Plain loops for a stage: pointwise, reductions, stencils, scatters (and
    matrix products when there is no BLAS to call). ``short``: as ``plan_stage``."""
    if s.scatter_index is not None:
        loops = [Loop(a.name, a.extent) for a in s.all_axes]
        if loops and owns_rows(s.scatter_index, loops[0].var):
            loops[0] = Loop(loops[0].var, loops[0].extent, parallel=True)
        return Nest(s, "scatter", tuple(loops))
    axes = [Loop(a.name, a.extent) for a in s.axes]
    red = [Loop(a.name, a.extent, reduction=True) for a in s.reduce_axes]
    inner, beside = _contiguous_coordinate(s, shapes)
    reduced = {a.name for a in s.reduce_axes}
    if red and s.axes and inner == s.axes[-1].name and beside & reduced:
        # a stencil (convolution, pooling: x[.., w + j]): each output row is
        # accumulated over the window while it stays in cache, columns innermost
        loops = axes[:-1] + red + [Loop(axes[-1].var, axes[-1].extent, simd=True)]
        if len(axes) > 1:
            loops[0] = Loop(loops[0].var, loops[0].extent, parallel=True)
        window = plan_window(s, axes[-1].var, shapes) if s.reduce == "sum" else None
        return Nest(s, "row", tuple(loops), window=window)
    if red and s.axes and inner == s.axes[-1].name:
        # e.g. sum over rows of a row-major matrix: keep the columns innermost
        loops = red + axes
        loops[-1] = Loop(loops[-1].var, loops[-1].extent, simd=True)
        return Nest(s, "accumulate", tuple(loops))
    across = _across_rows(s, axes, red, shapes, short)
    if across is not None:
        return across
    loops = axes + red
    if loops:
        # loops of one iteration (keepdims axes) inside it leave the loop above innermost
        k = max((i for i, loop in enumerate(loops) if loop.extent != IConst(1)), default=len(loops) - 1)
        inner = loops[k]
        loops[k] = Loop(inner.var, inner.extent, simd=_vectorize_innermost(s, inner), reduction=inner.reduction)
        first = loops[0]
        loops[0] = Loop(first.var, first.extent, parallel=True, simd=loops[0].simd, reduction=first.reduction)
    window = plan_window(s, red[-1].var, shapes) if red and s.reduce == "sum" else None
    taps = _taps_inside(s, loops)
    if taps:
        n_axes = len(s.axes)
        offsets, column = loops[n_axes - taps:n_axes], loops[-1]
        loops = loops[:n_axes - taps] + loops[n_axes:-1]
        if walks_contiguously(s.body, column.var):
            # the offsets inside the column (unrolled): a vector of the row is read
            # once for all of them, and the column runs whole, its reads guarded
            return Nest(s, "taps", tuple(loops + [column] + offsets), taps=taps,
                        flat=_flat_taps(s, shapes, loops, offsets, taps))
        return Nest(s, "taps", tuple(loops + offsets + [column]), window=window, taps=taps)
    return Nest(s, "inner", tuple(loops), window=window)


def _flat_taps(s: Stage, shapes: dict, loops: list, offsets: list, taps: int):
    """A ``"taps"`` nest's planes as one row (``windows.FlatPlanes``, its
    ``plan`` the nest over the flat row) where its rows may be short, or None."""
    if len(loops) < 2 or not _may_be_below(s.reduce_axes[-1].extent, FLAT_ROW):
        return None
    flat = flatten_reduced_planes(s, explicit_zeros(s, shapes), shapes)
    if flat is None or loops[-1].var != s.reduce_axes[-2].name:
        return None
    column = Loop(flat.flat.name, flat.flat.extent, reduction=True, simd=True)
    return dataclasses.replace(flat, plan=Nest(flat.stage, "taps", tuple(loops[:-1] + [column] + offsets), taps=taps))


def _taps_inside(s: Stage, loops: list) -> int:
    """How many trailing output loops of a sum run inside its reduction loops
    (all but the innermost): the offsets of a window the sum slides over its
    reduced indices (a convolution's weight gradient, ``dw[o, c, i, j] =
    sum_{n, h, w} g[n, o, h, w] * x[n, c, h + i, w + j]``), a few constant
    ones, each outer loop of the reduction holding a partial sum per offset.
    Each row the innermost loop reads is then read for every offset while it
    is in cache, where one offset at a time streams the whole input per
    offset (a depthwise 3x3 weight gradient: nine passes)."""
    reduced = [a.name for a in s.reduce_axes]
    if s.reduce != "sum" or len(reduced) < 2 or not loops or loops[-1].var != reduced[-1] or not loops[-1].simd:
        return 0
    coordinates = [c for load in ir.loads(s.body) for c in load.index]
    taps = 0
    for axis in reversed(s.axes[1:]):
        sliding = any(axis.name in ir.ivars(c) and ir.ivars(c) & set(reduced) for c in coordinates)
        if not (isinstance(axis.extent, IConst) and sliding):
            break
        taps += 1
    extents = [a.extent.value for a in s.axes[len(s.axes) - taps:]]
    return taps if taps and 1 < math.prod(extents) <= TAPS_LIMIT else 0


def _passable(nest: Nest) -> bool:
    """Pointwise and accumulate nests can share loops with siblings."""
    return nest.kind == "accumulate" or (nest.kind == "inner" and nest.stage.reduce is None)


def _rename(stage: Stage, loops: tuple, onto: tuple) -> Stage:
    """``stage`` with the index variables of ``loops`` renamed to those of ``onto``."""
    mapping = {a.var: IVar(b.var) for a, b in zip(loops, onto)}
    names = {a.var: b.var for a, b in zip(loops, onto)}

    def axes(seq):
        return tuple(ir.Axis(names.get(a.name, a.name), a.extent) for a in seq)

    return ir.replace(stage, axes=axes(stage.axes), reduce_axes=axes(stage.reduce_axes),
                      body=ir.subst_indices(stage.body, mapping))


def _spanning(loops: tuple) -> tuple:
    """The loops of more than one iteration (a loop of one runs once wherever it is)."""
    return tuple(loop for loop in loops if loop.extent != IConst(1))


def _fuse_into(group: Nest, nest: Nest):
    """``group`` with ``nest`` as one more sibling, or None when they cannot share a pass:
    both must be pointwise or accumulate nests over the same loop extents with the
    same simd loop, and the newcomer must not read anything the group writes.
    Loops of one iteration do not count: the newcomer's join the group's
    innermost, renamed apart, and ``collapse_nest`` drops them (``grad_x[n, c,
    0]`` of an ``[N, C, 1]`` input shares a pass with ``grad_alpha[c]``)."""
    ours, theirs = _spanning(group.loops), _spanning(nest.loops)
    if not (_passable(group) and _passable(nest)) or len(ours) != len(theirs) or not ours:
        return None
    if any(a.extent != b.extent or a.simd != b.simd for a, b in zip(ours, theirs)):
        return None
    written = {st.name for _, st in group.members}
    if ir.tensors_read(nest.stage.body) & written:
        return None
    taken = {loop.var for loop in group.loops}
    units = tuple(loop for loop in nest.loops if loop.extent == IConst(1))
    joined = tuple(dataclasses.replace(loop, var=ir.fresh_name(loop.var, taken), parallel=False, simd=False)
                   for loop in units)
    stage = _rename(nest.stage, theirs + units, ours + joined)
    siblings = group.siblings + ((nest.kind, stage),)
    shared = "pass" if group.is_pass or nest.kind == "accumulate" else "siblings"
    return Nest(group.stage, group.kind, group.loops + joined, siblings, shared=shared)


def sums_nest(first: Nest, second: Nest) -> Nest | None:
    """``first`` (a sum, or sums sharing its loops) and the sum ``second``
    over the same loops as one ``"sums"`` nest, each element's sums
    accumulated side by side in one pass over their terms (a norm's
    gradients: the sums of ``g`` and of ``g * x`` read ``g`` and ``x`` once),
    or None. Both must be plain sums into a scalar accumulator (no window,
    kept terms, rows in lanes or matrix product), their loops alike, and
    ``second`` must not read what ``first`` writes. A maximum is left to
    ``_online``, which runs it with the sum of exponentials that reads it."""
    if first.shared not in ("", "sums") or second.siblings:
        return None
    for nest in (first, second):
        st = nest.stage
        if (nest.kind != "inner" or st.reduce != "sum" or st.scatter_index is not None or nest.window is not None or
                nest.terms is not None or nest.across or plan_contraction(st) is not None):
            return None
    # loops of one iteration do not count: the newcomer's join the output loops, renamed apart
    ours, theirs = _spanning(first.loops), _spanning(second.loops)
    units = tuple(loop for loop in second.loops if loop.extent == IConst(1))
    if len(ours) != len(theirs) or any(loop.reduction for loop in units) or any(
            (a.extent, a.simd, a.reduction) != (b.extent, b.simd, b.reduction) for a, b in zip(ours, theirs)):
        return None
    if ir.tensors_read(second.stage.body) & {st.name for _, st in first.members}:
        return None
    taken = {loop.var for loop in first.loops}
    joined = []
    for loop in units:
        joined.append(dataclasses.replace(loop, var=ir.fresh_name(loop.var, taken), parallel=False, simd=False))
        taken.add(joined[-1].var)
    stage = _rename(second.stage, theirs + units, ours + tuple(joined))
    n_out = sum(not loop.reduction for loop in first.loops)
    loops = first.loops[:n_out] + tuple(joined) + first.loops[n_out:]
    return Nest(first.stage, "inner", loops, first.siblings + (("inner", stage),), shared="sums")


def _row_index(load: Load, stage: Stage) -> bool:
    """Whether ``load`` reads ``stage`` at the element of the current row (its
    own axes; 0 on axes of size 1, as keepdims leaves them)."""
    return load.tensor == stage.name and len(load.index) == len(stage.axes) and all(
        i == IVar(a.name) or (i == IConst(0) and a.extent == IConst(1)) for i, a in zip(load.index, stage.axes))


# rows up to this long take two passes (maximum, then exponentials) over L1;
# longer ones one pass (an "online" nest)
TWO_PASS_ROW = 512


def _online(first: Nest, second: Nest) -> Nest | None:
    """A row maximum followed by the row's ``sum exp(x - max)`` (softmax,
    log-sum-exp) as one pass over the row: an ``"online"`` nest computing both
    (``first`` is its sibling), or None. Only for rows longer than
    ``TWO_PASS_ROW``: a shorter row is read twice from L1 anyway."""
    a, b = first.stage, second.stage
    row = first.loops[-1].extent if first.loops else IConst(0)
    if isinstance(row, IConst) and row.value <= TWO_PASS_ROW or first.across or second.across:
        return None
    if not (first.kind == second.kind == "inner" and not first.siblings and not second.siblings and
            a.reduce == "max" and b.reduce == "sum" and len(first.loops) == len(second.loops) and
            len(a.reduce_axes) == len(b.reduce_axes) == 1 and
            [x.extent for x in first.loops] == [x.extent for x in second.loops] and
            first.loops[-1].var == a.reduce_axes[0].name and second.loops[-1].var == b.reduce_axes[0].name):
        return None
    b = _rename(b, second.loops, first.loops)
    terms = second.terms and _rename(second.terms, second.loops, first.loops)
    term = (terms or b).body
    if not (isinstance(term, Call) and term.op == "exp" and
            isinstance(term.args[0], Call) and term.args[0].op == "sub"):
        return None
    value, maximum = term.args[0].args
    if isinstance(maximum, Call) and maximum.op == "stop_gradient":
        maximum = maximum.args[0]
    if not (value == a.body and isinstance(maximum, Load) and _row_index(maximum, a)):
        return None
    return Nest(b, "online", first.loops, siblings=(("inner", a),), terms=terms)


def _with_terms(terms: Nest, total: Nest) -> Nest | None:
    """The sum ``total`` of the stored ``terms`` (``keep_terms``) as one nest
    that stores each term as it adds it, or None."""
    t, s = terms.stage, total.stage
    if not (terms.kind == total.kind == "inner" and is_pointwise(t) and s.reduce == "sum" and
            not terms.siblings and not total.siblings and total.window is None and
            s.body == Load(t.name, tuple(IVar(a.name) for a in s.all_axes)) and
            [(a.var, a.extent) for a in terms.loops] == [(a.var, a.extent) for a in total.loops]):
        return None
    # vectorized as its terms are: a short row of exponentials is worth it
    loops = total.loops if total.across or not total.loops else \
        total.loops[:-1] + (dataclasses.replace(total.loops[-1], simd=terms.loops[-1].simd),)
    return dataclasses.replace(total, loops=loops, terms=t)


# ---------------------------------------------------------------- rows


ROW_FORMS = frozenset({"inner", "online", "siblings", "sums"})
# a tensor written and read only inside a "rows" nest is kept a row at a time
# (``Nest.local``) where a row has at most this many elements (32 KiB of float)
LOCAL_ROW_LIMIT = 8192


def _row_loops(nest: Nest) -> int:
    """How many of ``nest``'s outermost loops are plain loops over its output's
    rows (not reduced; not vectorized, but in a pointwise stage, whose
    vectorized loop may be one over rows: a row's scale); 0 when it cannot
    join a ``"rows"`` nest."""
    if nest.form not in ROW_FORMS or nest.window is not None or nest.across:
        return 0
    pointwise = nest.form == "inner" and nest.stage.reduce is None
    last = len(nest.loops) if pointwise else len(nest.loops) - 1
    k = 0
    while k < last and not (nest.loops[k].reduction or nest.loops[k].simd and not pointwise):
        k += 1
    return k


def _renamed_nest(nest: Nest, onto: tuple) -> Nest:
    """``nest`` with its outermost loops' variables renamed to those of ``onto``."""
    outer = nest.loops[:len(onto)]
    terms = nest.terms and _rename(nest.terms, outer, onto)
    siblings = tuple((kind, _rename(st, outer, onto)) for kind, st in nest.siblings)
    return dataclasses.replace(nest, stage=_rename(nest.stage, outer, onto), siblings=siblings, terms=terms,
                               loops=onto + nest.loops[len(onto):])


def _unsplit(coordinate, split: dict):
    """``coordinate`` with ``v // q`` of a split variable ``v = q * outer + inner``
    read as ``outer``."""
    if isinstance(coordinate, ir.IBin) and coordinate.op == "//" and isinstance(coordinate.a, IVar):
        outer, _, q, offset = split.get(coordinate.a.name, (None, None, None, None))
        if coordinate.b == IConst(q) and offset == 0:
            return IVar(outer)
    return coordinate


def _reads_rows_only(nest: Nest, written: dict, rows: tuple) -> bool:
    """Whether every read ``nest`` makes of a tensor in ``written`` (name -> its
    writer's axes) is in the current row: its coordinates along the writer's
    row axes are the row loops' variables."""
    split = nest.collapsed.split if nest.collapsed is not None else {}
    for _, st in nest.members + ((("inner", nest.terms),) if nest.terms else ()):
        for load in ir.loads(st.body):
            axes = written.get(load.tensor)
            index = tuple(_unsplit(c, split) for c in load.index)
            if axes is not None and any(k >= len(index) or index[k] != IVar(loop.var) and
                                        not (index[k] == IConst(0) and loop.extent == IConst(1))
                                        for k, loop in enumerate(rows)):
                return False
    return True


def _split_to_rows(second: Nest, rows: tuple) -> Nest | None:
    """``second`` (pointwise, a sum, or sums side by side) with its first output
    loop that differs from the row loop at its place split in two, when its
    extent is a multiple ``q`` of the row's (both known): an outer loop over
    the rows' and an inner one of ``q``, the stages' variable ``q * outer +
    inner`` (``Collapsed.split``). A group norm's output over channels, and
    its per-channel partial sums (``compiler/partial_sums.py``), then run in
    the rows of its statistics over groups of channels. None when that does
    not apply."""
    if second.form not in ("inner", "sums") or second.collapsed is not None or second.window is not None or \
            second.terms is not None or second.across or second.stage.reduce not in (None, "sum"):
        return None
    outputs = second.loops[:-1] if second.stage.reduce is None else second.loops[:_row_loops(second)]
    k = next((k for k, (row, loop) in enumerate(zip(rows, outputs)) if row.extent != loop.extent), None)
    if k is None:
        return None
    row, loop = rows[k].extent, second.loops[k].extent
    if not (isinstance(row, IConst) and isinstance(loop, IConst) and 1 < row.value < loop.value
            and loop.value % row.value == 0):
        return None
    stages = [st for _, st in second.members]
    own = set().union(*({a.name for a in st.all_axes} for st in stages)) | {l.var for l in second.loops}
    var, inner = f"{second.loops[k].var}_split", f"{second.loops[k].var}_part"
    if {var, inner} & (own | {l.var for l in rows}) or rows[k].var in own - {second.loops[k].var}:
        return None
    renamed = [_rename(st, second.loops[k:k + 1], (Loop(var, loop),)) for st in stages]
    siblings = tuple((kind, st) for (kind, _), st in zip(second.siblings, renamed[1:]))
    loops = second.loops[:k] + (Loop(rows[k].var, row), Loop(inner, IConst(loop.value // row.value))) + \
        second.loops[k + 1:]
    split = {var: (rows[k].var, inner, loop.value // row.value, 0)}
    return dataclasses.replace(second, stage=renamed[0], siblings=siblings, loops=loops,
                               collapsed=Collapsed(split=split))


def _unit_rows_inside(nests: tuple, unit: tuple) -> tuple | None:
    """A ``"rows"`` nest's ``nests`` with its innermost row loops ``unit`` run
    inside each of them, when those loops have one iteration each (the axes a
    statistic keeps, keepdims): the rows then line up with a nest over the
    whole row (a layer norm's output after its mean and variance). None when
    some loop of ``unit`` has more than one iteration."""
    if any(loop.extent != IConst(1) for loop in unit):
        return None
    inside = tuple(dataclasses.replace(loop, parallel=False) for loop in unit)
    return tuple(dataclasses.replace(n, loops=inside + n.loops) for n in nests)


def _row_group(first: Nest, second: Nest) -> Nest | None:
    """``first`` (or the nests of its ``"rows"`` nest) and ``second`` as one
    ``"rows"`` nest when they share their row loops and ``second`` reads what
    the first ones write only in the current row: a layer norm's mean,
    variance and output, a softmax's maximum, sum and quotients, each row
    read from memory once and again from the cache; else with a loop of
    ``second`` split to line up with the rows (``_split_to_rows``). None
    otherwise."""
    group = _grouped(first, second)
    if group is None and first.group:
        split = _split_to_rows(second, first.loops)
        group = split and _grouped(first, split)
    return group


def _grouped(first: Nest, second: Nest) -> Nest | None:
    """``_row_group`` with ``second``'s loops as they are."""
    nests = first.group or (first,)
    # a product may run as GEMM calls on packed patches (compiler/plan.py): not in a row's loops
    if any(plan_contraction(n.stage) is not None for n in nests + (second,)):
        return None
    rows = first.loops if first.group else first.loops[:_row_loops(first)]
    k = 0
    while k < min(len(rows), _row_loops(second)) and rows[k].extent == second.loops[k].extent:
        k += 1
    if k == 0:
        return None
    if first.group and k < len(rows):
        nests = _unit_rows_inside(nests, rows[k:])
        if nests is None:
            return None
    rows = rows[:k]
    if second.stage.reduce is None and len(nests) == 1 and nests[0].stage.reduce is None:
        return None             # pointwise nests share their loops as siblings already
    rows = tuple(dataclasses.replace(loop, parallel=False, simd=False) for loop in rows)
    second = _renamed_nest(second, rows)
    taken = {l.var for l in rows}
    if any(l.var in taken for l in second.loops[len(rows):]):
        return None
    written = {st.name: st.axes for nest in nests for _, st in nest.members + (("", nest.terms),) if st}
    if not _reads_rows_only(second, written, rows):
        return None
    inner = [n if first.group else dataclasses.replace(n, loops=n.loops[len(rows):]) for n in nests]
    inner.append(dataclasses.replace(second, loops=second.loops[len(rows):]))
    if any(not n.loops and n.form != "inner" for n in inner):
        return None
    # the threads share the first row loop of more than one iteration
    k = next((k for k, loop in enumerate(rows) if loop.extent != IConst(1)), 0)
    outer = rows[:k] + (dataclasses.replace(rows[k], parallel=True),) + rows[k + 1:]
    return Nest(nests[0].stage, "rows", outer, group=tuple(inner))


def plan_program(p: Program, fuse_siblings: bool = True) -> Plan:
    """The plan of a program: its stages' nests, where consecutive
    pointwise/accumulate stages over the same iteration space share one pass
    (``Nest.siblings``); and the nests that run instead while the reductions
    over sizes free at build time are short (``ShortRows``), if they differ."""
    nests = _plan_nests(p, fuse_siblings, short=False)
    short = _plan_nests(p, fuse_siblings, short=True)
    lengths = [_free_row_length(n) for n in _all_nests(short) if n.across]
    lengths = tuple(dict.fromkeys(length for length in lengths if length is not None))
    return Plan(p, nests, ShortRows(lengths, short) if lengths else None)


def _all_nests(nests: tuple):
    """The nests, a ``"rows"`` nest's own in its place."""
    return (m for n in nests for m in n.group or (n,))


def _free_row_length(nest: Nest):
    """The length of an ``across`` nest's rows (the product of its reduced
    loops' extents), when it is known only at run time; else None."""
    extents = [l.extent for l in nest.loops if l.reduction]
    if all(isinstance(e, IConst) for e in extents):
        return None
    return functools.reduce(ir.imul, extents)


def _plan_nests(p: Program, fuse_siblings: bool, short: bool) -> tuple:
    """``plan_program``'s nests, reductions over free sizes planned as short (``short``) or long."""
    shapes = p.shapes()
    nests = []
    for s in p.stages:
        nest = plan_stage(s, shapes, short)
        kept = _with_terms(nests[-1], nest) if nests and fuse_siblings else None
        if kept is not None:
            nests.pop()
            nest = kept
        merged = _fuse_into(nests[-1], nest) if nests and fuse_siblings else None
        merged = merged or (_online(nests[-1], nest) if nests and fuse_siblings else None)
        merged = merged or (sums_nest(nests[-1], nest) if nests and fuse_siblings else None)
        if merged is None:
            nests.append(nest)
        else:
            nests[-1] = merged
    grouped = []
    for nest in nests:
        group = _row_group(grouped[-1], nest) if grouped and fuse_siblings else None
        if group is None:
            grouped.append(nest)
        else:
            grouped[-1] = group
    grouped = _passes_into_rows(grouped)
    grouped = [dataclasses.replace(n, local=_row_locals(n, grouped, p)) if n.group else n for n in grouped]
    return tuple(collapse_nest(nest, shapes) for nest in grouped)


def _passes_into_rows(nests: list) -> list:
    """``nests`` with each accumulating pass next to a ``"rows"`` nest over the
    same rows run inside it (``_rows_with_pass``)."""
    nests = list(nests)
    k = 0
    while k < len(nests):
        for j in (k - 1, k + 1):
            merged = _rows_with_pass(nests[j], nests[k]) if 0 <= j < len(nests) else None
            if merged is not None:
                nests[j] = merged
                del nests[k]
                k -= 1
                break
        k += 1
    return nests


def _rows_with_pass(rows: Nest, accumulating: Nest) -> Nest | None:
    """``rows`` with the pass ``accumulating`` run in its rows, or None: a layer
    norm's parameter gradients, sums over the rows of the output gradient and
    the input, added into each thread's partial sums as the row that its
    input gradient reads goes by (one read of each row, not two). The pass's
    outer loops must run over the rows (the same extents), every stage of it
    accumulate, and neither nest read what the other writes. Only rows of one
    loop: the threads split it into blocks, where rows over a short batch and
    a second loop run that pair in threads (``collapse(2)``)."""
    if not rows.group or accumulating.group or not accumulating.members or any(
            kind != "accumulate" for kind, _ in accumulating.members) or accumulating.window is not None:
        return None
    k = len(rows.loops)
    if k != 1 or rows.loops[0].extent == IConst(1) or len(accumulating.loops) <= k or any(
            a.extent != r.extent or not a.reduction for a, r in zip(accumulating.loops, rows.loops)):
        return None
    ours, theirs = {st.name for _, st in rows.members}, {st.name for _, st in accumulating.members}
    if any(ir.tensors_read(st.body) & theirs for _, st in rows.members) or any(
            ir.tensors_read(st.body) & ours for _, st in accumulating.members):
        return None
    taken = {loop.var for loop in rows.loops}
    if any(loop.var in taken for loop in accumulating.loops[k:]):
        return None
    inner = _renamed_nest(accumulating, rows.loops)
    inner = dataclasses.replace(inner, loops=inner.loops[k:])
    return dataclasses.replace(rows, group=rows.group + (inner,))


def _row_locals(rows: Nest, nests: list, p: Program) -> tuple:
    """``Nest.local`` of ``rows``: ``(tensor, k)`` of each tensor its nests
    write along its ``k`` row loops, which no other nest reads and the program
    does not return, whose row has at most ``LOCAL_ROW_LIMIT`` elements: known,
    or checked at run time (a longer row then stays in the tensor's memory):
    softmax's exponentials, once the backward takes them from its output
    (``terms_from_quotients``), never reach memory."""
    kept = set(p.outputs) | {name for _, name in p.updates}
    elsewhere = set().union(*(ir.tensors_read(st.body) for n in nests if n is not rows for _, st in n.members))
    k = len(rows.loops)
    local = []
    for _, st in rows.members:
        inner = math.prod(e.value if isinstance(e, IConst) else 1 for e in st.shape[k:])
        if st.name in kept or st.name in elsewhere or st.reduce or inner > LOCAL_ROW_LIMIT:
            continue
        if st.index[:k] == tuple(IVar(loop.var) for loop in rows.loops):
            local.append((st.name, k))
    return tuple(local)
