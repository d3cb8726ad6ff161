"""The renderer of matrix products (``Nest`` kind ``"contract"``): calls of
the module's gemm where both operands are matrices in memory
(``templates/gemm.c.j2``: numpy's BLAS, or the packed kernel without one),
else a packed, register-tiled product that reads any expression
(``templates/contract.c.j2``). What is which was decided by
``compiler/schedule.py`` (``Contraction``, ``Gemm``).

Example::

    render_contraction(nest, context)     # the C of a "contract" nest
"""
from __future__ import annotations

import dataclasses

from . import ir
from .cprint import DTYPES, MASKS, c_comment, c_literal, render, tensor_c, var_c

KERNELS = {dtype: dict(name=f"lc_kernel_{dtype}", ctype=DTYPES[dtype][0], vtype=f"lc_v{dtype}",
                      nr=f"LC_NR_{dtype.upper()}", lanes=MASKS[dtype]) for dtype in DTYPES}
GEMMS = {dtype: dict(name=f"lc_gemm_{dtype}", ctype=DTYPES[dtype][0], pointer=f"lc_{letter}gemm",
                    type64=f"lc_{letter}gemm64_t", type32=f"lc_{letter}gemm32_t",
                    kernel=KERNELS[dtype]["name"], nr=KERNELS[dtype]["nr"])
         for dtype, letter in (("f32", "s"), ("f64", "d"))}


def calls_gemm(c_text: str, dtype: str) -> bool:
    """Whether a function's C calls the ``dtype``'s gemm, which its library
    links from an object file compiled once (``codegen.render_gemm_source``).

    >>> calls_gemm("lc_status |= lc_gemm_f32(0, 1, m, n, k, ...);", "f32")
    True
    """
    return f"{GEMMS[dtype]['name']}(" in c_text


def render_contraction(nest, ctx) -> str:
    """A sum of products: gemm calls when the schedule found its operands laid
    out as matrices (``Contraction.gemm``), else the packed product."""
    if nest.contraction.gemm is None:
        return render_packed(nest, ctx)
    return render_gemm(nest, ctx)


def _operand(matrix, printer, step: str = "", column_step: str = "") -> dict:
    """A gemm operand: where it starts, its leading dimension and how far one
    of the call's rows is (``step``: the left operand and the output; a block
    of rows starts ``lc_row0`` rows in) and one of its columns
    (``column_step``: the right operand and the output; ``lc_col0``)."""
    return dict(tensor=tensor_c(matrix.tensor), offset=printer.offset(matrix.tensor, matrix.index),
                step=step, column_step=column_step, ld=printer.index(matrix.ld))


def render_gemm(nest, ctx) -> str:
    """Gemm calls, one per value of the loops around them (templates/gemm.c.j2).
    A sum started at a value (``add_into_products``) writes that value first
    (the gemm's prologue nest); the calls add onto it."""
    s, c = nest.stage, nest.contraction
    gemm = c.gemm
    printer = ctx.printer([s])
    a, b, out = gemm.a, gemm.b, gemm.out
    rows, cols = printer.size(gemm.m), printer.size(gemm.n)
    # row-major calls C = op(A) op(B); a transposed result is computed as out^T = b^T a^T
    left, right, call_rows, call_cols = (b, a, cols, rows) if out.transposed else (a, b, rows, cols)
    trans_left = left.transposed != out.transposed
    trans_right = right.transposed != out.transposed
    m_size, n_size, k_size = printer.size(c.m), printer.size(c.n), printer.size(c.k)
    # the starting value is not streamed past the caches: the calls read it back at once
    start = dataclasses.replace(ctx, outputs=frozenset()).render(gemm.prologue) if gemm.prologue else ""
    return render(
        "gemm.c.j2", comment=c_comment(ir.format_stage(s)), start=start,
        started=gemm.prologue is not None, out=tensor_c(s.name), out_size=printer.size(s.axes),
        k_size=k_size, m_size=m_size, n_size=n_size, calls=printer.size(gemm.loops), rows=call_rows,
        work=printer.size(c.m + c.n + c.k), min_work=ctx.min_work,
        decode=printer.decode("lc_task / lc_parts", gemm.loops),
        accumulate=[dict(var=var_c(x.name), extent=printer.index(x.extent)) for x in gemm.accumulate],
        gemm=GEMMS[ctx.dtype]["name"], trans_left=int(trans_left), trans_right=int(trans_right),
        cols=call_cols, depth=printer.size(gemm.k), alpha=c_literal(gemm.alpha, ctx.dtype),
        left=_operand(left, printer, "1" if trans_left else printer.index(left.ld)),
        right=_operand(right, printer, column_step=printer.index(right.ld) if trans_right else "1"),
        result=_operand(out, printer, printer.index(out.ld), "1"))


def render_packed(nest, ctx) -> str:
    """A sum of products as a packed, register-tiled matrix product (templates/contract.c.j2)."""
    s, c = nest.stage, nest.contraction
    index_printer = ctx.printer([s])
    sides = {}
    for side, value in (("a", c.a), ("b", c.b)):
        printer = ctx.printer([s])
        sides[f"{side}_value"] = printer.value(value)
        sides[f"{side}_lets"] = printer.lets
    kernel = KERNELS[ctx.dtype]
    return render(
        "contract.c.j2", comment=c_comment(ir.format_stage(s)), ctype=ctx.ctype, nr=kernel["nr"],
        kernel=kernel["name"], m_size=index_printer.size(c.m), n_size=index_printer.size(c.n),
        k_size=index_printer.size(c.k), out=tensor_c(s.name), out_size=index_printer.size(s.axes),
        min_work=ctx.min_work,
        batch=[dict(var=var_c(a.name), extent=index_printer.index(a.extent)) for a in c.batch],
        m_decode=index_printer.decode("lc_m", c.m), n_decode=index_printer.decode("lc_n", c.n),
        k_decode=index_printer.decode("lc_kk", c.k), store=index_printer.element(s.name, s.index), **sides)
