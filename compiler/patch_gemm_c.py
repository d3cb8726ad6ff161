"""The renderer of GEMMs over packed patches (``Nest`` kind ``"patch_gemm"``):
a contraction with an operand read through affine indices (a convolution,
its gradients, a user's index-notation product) as one call of the module's
register tiles per task, after packing what is not a matrix in memory
(``compiler/patches.py``, ``compiler/col2im.py`` plan it;
``templates/patch_gemm.c.j2`` lays it out).
"""
from __future__ import annotations

import dataclasses

from . import ir
from .contract_c import KERNELS
from .cprint import DTYPES, Printer, c_comment, c_literal, render, tensor_c, var_c
from .cstatements import Let
from .ir import IConst
from .patches import WORKSPACE_BYTES


def render_patch_gemm(nest, ctx) -> str:
    """The C of a patch GEMM nest (see the module docstring)."""
    plan = nest.patch
    s = plan.view or nest.stage
    shapes = {**ctx.shapes, s.name: s.shape}
    extents = {a.name: a.extent for a in s.all_axes}
    printer = Printer(shapes, extents, ctx.dtype)
    ix = printer.index
    packs = [_pack_rows(p, Printer(shapes, extents, ctx.dtype)) for p in plan.packs]
    per_task = [p for p, pack in zip(packs, plan.packs) if not pack.once]
    room = IConst(0)
    for p, pack in zip(packs, plan.packs):
        if not pack.once:
            p["at"], room = ix(room), ir.iadd(room, pack.capacity)
    scatter = plan.scatter and _scatter_rows(plan.scatter, s.name, printer, plan.start if plan.prologue is None else None)
    if scatter:
        scatter["at"], room = ix(room), ir.iadd(room, plan.scatter.capacity)
    block = plan.block
    # the starting value is not streamed past the caches: the calls read it back at once
    start = dataclasses.replace(ctx, shapes=shapes, outputs=frozenset()).render(plan.prologue) \
        if plan.prologue is not None else ""

    def operand(op) -> list:
        base = op.tensor if op.index is None else f"{tensor_c(op.tensor)} + ({printer.offset(op.tensor, op.index)})"
        return [base, ix(op.ld)]

    def strides(transposed: bool, ld: str) -> list:
        # (rows, columns) apart: a transposed matrix's rows are its memory's columns
        return ["1", ld] if transposed else [ld, "1"]

    out = plan.out
    target = "lc_cols" if out.index is None else f"lc_out + ({printer.offset(out.tensor, out.index)})"
    out_strides = strides(out.transposed, ix(out.ld))
    # the tiles go to the thread's copy, rows x cols as the calls see them (without one, to the output)
    private = private_copies(plan) and dict(
        rows=ix(plan.rows), cols=ix(plan.cols), ld=ix(out.ld),
        target=f"{tensor_c(s.name)} + ({printer.offset(out.tensor, out.index)})")
    if private:
        target = f"lc_mine ? lc_mine : {target}"
        out_strides = [f"lc_mine ? {private['cols']} : {out_strides[0]}", f"lc_mine ? 1 : {out_strides[1]}"]
    beta = "1" if plan.accumulate or (plan.start is not None and not scatter) else "0"
    (a, lda), (b, ldb) = operand(plan.a), operand(plan.b)

    # A read element by element, B's rows where they lie, C written either way
    tables = {side: _rows(f"lc_rows_{side}", op.rows, printer) for side, op in (("a", plan.a), ("b", plan.b))
              if op.rows is not None}
    call = [ix(plan.rows), ix(plan.cols), ix(plan.depth), c_literal(plan.alpha, ctx.dtype), a,
            *strides(plan.a.transposed, lda), tables["a"]["name"] if "a" in tables else "0", b, ldb,
            tables["b"]["name"] if "b" in tables else "0", *(ix(n) for n in plan.b.runs or (IConst(0), IConst(0))),
            beta, target, *out_strides, "lc_scratch"]
    kernel = KERNELS[ctx.dtype]
    return render(
        "patch_gemm.c.j2", comment=c_comment(ir.format_stage(s)), ctype=DTYPES[ctx.dtype][0], start=start,
        started=plan.start is not None, terms=ix(plan.terms), out=tensor_c(s.name), out_size=printer.size(s.axes),
        budget=WORKSPACE_BYTES,
        block=dict(axis=block.axis.name, extent=ix(block.axis.extent), unit=ix(ir.isubst(room, {block.step: 1})),
                   start=var_c(block.start), stop=var_c(block.stop), step=var_c(block.step), grain=block.grain)
        if block else dict(axis="none", extent="1", unit=f"lc_max_i64({ix(room)}, 1)", start="", stop="", step="",
                           grain=1),
        tasks=printer.size(plan.loops), work=printer.size(s.all_axes), min_work=ctx.min_work,
        room=ix(room), once=[p for p in packs if p not in per_task], per_task=per_task,
        decode=printer.decode("lc_task / lc_blocks", plan.loops), accumulate=plan.accumulate,
        private=private, scatter=scatter, gemm=f"{kernel['name']}_tiles", call=call,
        scratch=f"LC_TILE_SCRATCH({kernel['nr']})", tables=list(tables.values()))


def private_copies(plan) -> bool:
    """Whether the calls add their tiles into a copy per thread laid out as
    their C, summed into the output at the end: when tasks add onto one output
    that the calls write transposed (a weight gradient's [O, C*KH*KW] as
    C*KH*KW x O calls), the same for every task. Stored where it lies, each
    element of a tile would go to a cache line of its own, every block of the sum."""
    if not plan.accumulate or plan.out.index is None or not plan.out.transposed:
        return False
    task_vars = {a.name for a in plan.loops} | ({plan.block.start, plan.block.stop} if plan.block else set())
    return not set().union(*(ir.ivars(i) for i in plan.out.index)) & task_vars


def _rows(name: str, rows, printer: Printer) -> dict:
    """What templates/patch_gemm.c.j2 needs to write a table of where a side's rows start."""
    ix = printer.index
    return dict(name=name, loops=[dict(var=var_c(l.var), start=ix(l.start), stop=ix(l.stop)) for l in rows.loops],
                offset=ix(rows.offset), count=ix(rows.count))


def _scatter_rows(scatter, out: str, printer: Printer, start) -> dict:
    """What templates/patch_gemm.c.j2 needs to add the calls' workspace into
    the output; ``start``: the value the sum starts from, added on the way
    (None: the output holds it already, or the sum starts from zero)."""
    ix = printer.index
    tests = Printer(printer.shapes, printer.extents, printer.dtype)
    passed = [tests.value(t) for t in scatter.tests]
    n_tests = len(tests.lets)
    start_value = tests.value(start) if start is not None else None
    hoisted, lines = tests.hoist(scatter.loops[-1].var)
    inner = scatter.loops[-1]
    lo, hi = ix(inner.start), ix(inner.stop)
    for bound in scatter.lo:
        lo = printer.larger(lo, ix(bound))
    for bound in scatter.hi:
        hi = printer.smaller(hi, ix(bound))
    return dict(loops=[dict(var=var_c(l.var), start=ix(l.start), stop=ix(l.stop)) for l in scatter.loops],
                inner=dict(var=var_c(inner.var), start=ix(inner.start), stop=ix(inner.stop)),
                row=ix(ir.isubst(scatter.offset, {inner.var: inner.start})), tests=hoisted[:n_tests],
                hoisted=hoisted[n_tests:], lines=lines, start=start_value, lo=lo, hi=hi,
                passed=passed, target=printer.element(out, scatter.index), assign=scatter.assign)


def _pack_rows(pack, printer: Printer) -> dict:
    """What templates/patch_gemm.c.j2 needs to write one workspace."""
    ix = printer.index
    tests = [printer.value(t) for t in pack.tests]
    n_tests = len(printer.lets)
    printer.in_range = pack.in_range
    value = printer.value(pack.value)
    inner = pack.loops[-1]
    hoisted, lines = printer.hoist(inner.var)
    loops = [dict(var=var_c(l.var), start=ix(l.start), stop=ix(l.stop), enter=[]) for l in pack.loops]
    enter = []
    # the row's bounds are worked out in the loop of the last variable they read
    for name, combine, first, bounds in (("lc_lo_bound", printer.larger, inner.start, pack.lo),
                                          ("lc_hi_bound", printer.smaller, inner.stop, pack.hi)):
        text, names = ix(first), ir.ivars(first)
        for bound in bounds:
            text, names = combine(text, ix(bound)), names | ir.ivars(bound)
        depth = max((k for k, l in enumerate(pack.loops[:-1]) if l.var in names), default=None)
        (enter if depth is None else loops[depth]["enter"]).append(Let("int64_t", name, text))
    return dict(name=pack.name, loops=loops, enter=enter,
                inner=dict(var=var_c(inner.var), start=ix(inner.start), stop=ix(inner.stop)),
                row=ix(ir.isubst(pack.offset, {inner.var: inner.start})), capacity=ix(pack.capacity),
                tests=hoisted[:n_tests], hoisted=hoisted[n_tests:], lines=lines, value=value, simd=pack.simd,
                passed=tests, stride=None if pack.stride == IConst(1) else ix(pack.stride))


__all__ = ["private_copies", "render_patch_gemm"]
