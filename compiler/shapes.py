"""Symbolic shape arithmetic for tracing: numpy broadcasting, sizes, and the
index maps of a reshape. Functions of IR index expressions (``compiler/ir.py``)
only: shapes in, shapes or index tuples out.

Example::

    >>> from layerc.compiler.ir import ISym, IConst, format_iexpr
    >>> [format_iexpr(d) for d in broadcast([(ISym("N"), IConst(1)), (ISym("C"),)])]
    ['N', 'C']
    >>> same_size(size_product((ISym("N"), IConst(4))), size_product((IConst(2), ISym("N"), IConst(2))))
    True
"""
from __future__ import annotations

from . import ir
from .ir import IConst, IVar


def broadcast(shapes: list) -> tuple | None:
    """numpy broadcasting on symbolic shapes (equal sizes, or 1); None when they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        size = None
        for s in shapes:
            d = s[k - rank + len(s)] if k - rank + len(s) >= 0 else IConst(1)
            if d == IConst(1):
                size = size or d
            elif size is None or size == IConst(1):
                size = d
            elif size != d:
                return None
        out.append(size)
    return tuple(out)


def size_product(dims) -> ir.IExpr:
    total = IConst(1)
    for d in dims:
        total = ir.imul(total, d)
    return total


def same_size(a, b) -> bool:
    """Whether two symbolic sizes are equal for every binding of their symbols."""
    syms = sorted(ir.isyms(a) | ir.isyms(b))
    for base in (2, 3, 7):
        env = {s: base + k for k, s in enumerate(syms)}
        if ir.ievaluate(a, env) != ir.ievaluate(b, env):
            return False
    return True


def quotient(dims, divisor_dims) -> ir.IExpr:
    """``product(dims) // product(divisor_dims)``, with the sizes both share
    cancelled first: ``(N, C) / (N, 2)`` is ``C // 2``, not ``N * C // (N * 2)``."""
    rest = list(dims)
    divisors = []
    for d in divisor_dims:
        if d in rest:
            rest.remove(d)
        else:
            divisors.append(d)
    return ir.ifloordiv(size_product(rest), size_product(divisors))


def size_mismatch(what: str, have, want) -> str | None:
    """Why ``want`` elements cannot stand for ``have`` (None when they always agree)."""
    if same_size(have, want):
        return None
    free = sorted(_divided_syms(have) | _divided_syms(want))
    hint = f" for some values of {', '.join(free)} (bind them when the layer is built)" if free else ""
    return f"{what}: {ir.format_iexpr(have)} elements against {ir.format_iexpr(want)}{hint}"


def _divided_syms(e) -> set:
    """The size symbols under a ``//`` or ``%``: those whose value decides whether sizes divide."""
    if isinstance(e, ir.IBin):
        return ir.isyms(e) if e.op in ("//", "%") else _divided_syms(e.a) | _divided_syms(e.b)
    return set()


def flatten(vars_, dims):
    """The row-major position of the coordinates ``vars_`` in a box of ``dims``."""
    flat = IConst(0)
    for v, d in zip(vars_, dims):
        flat = ir.iadd(ir.imul(flat, d), v)
    return flat


def _unflatten(flat, dims):
    out = []
    for k in range(len(dims) - 1, -1, -1):
        out.append(ir.imod(flat, dims[k]) if k else flat)
        flat = ir.ifloordiv(flat, dims[k])
    return tuple(reversed(out))


def _reshape_groups(src, dst):
    """Pair runs of source and destination dimensions with equal products, so
    that a split or a merge of dimensions indexes with a single affine map."""
    everything = [(list(range(len(src))), list(range(len(dst))))]
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        gi, gj = [i], [j]
        if i >= len(src) or j >= len(dst):
            return everything
        ps, pd = size_product([src[i]]), size_product([dst[j]])
        while ps != pd:
            if not (isinstance(ps, IConst) and isinstance(pd, IConst)):
                return everything
            if ps.value < pd.value and gi[-1] + 1 < len(src):
                gi.append(gi[-1] + 1)
                ps = ir.imul(ps, src[gi[-1]])
            elif gj[-1] + 1 < len(dst):
                gj.append(gj[-1] + 1)
                pd = ir.imul(pd, dst[gj[-1]])
            else:
                return everything
        groups.append((gi, gj))
        i, j = gi[-1] + 1, gj[-1] + 1
    return groups


def reshape_index(src: tuple, dst: tuple) -> tuple:
    """``(index, inverse)`` of a C-order reshape from shape ``src`` to ``dst``:
    where the element of the result at ``i0, i1, ...`` is read in the source,
    and where the source element ``s0, s1, ...`` lands in the result.
    Dimensions of size 1 take index 0 and stay out of the grouping, so that
    [N, G, 1, H, W] -> [N, G, H, W] indexes with plain variables, no // or %."""
    out_vars = [IVar(f"i{k}") for k in range(len(dst))]
    src_vars = [IVar(f"s{k}") for k in range(len(src))]
    index, inverse = [IConst(0)] * len(src), [IConst(0)] * len(dst)
    src_kept = [k for k, d in enumerate(src) if d != IConst(1)]
    dst_kept = [j for j, d in enumerate(dst) if d != IConst(1)]
    for gs, gd in _reshape_groups([src[k] for k in src_kept], [dst[j] for j in dst_kept]):
        gs, gd = [src_kept[k] for k in gs], [dst_kept[j] for j in gd]
        flat = flatten([out_vars[j] for j in gd], [dst[j] for j in gd])
        for k, e in zip(gs, _unflatten(flat, [src[k] for k in gs])):
            index[k] = e
        flat_src = flatten([src_vars[k] for k in gs], [src[k] for k in gs])
        for j, e in zip(gd, _unflatten(flat_src, [dst[j] for j in gd])):
            inverse[j] = e
    return tuple(index), tuple(inverse)
