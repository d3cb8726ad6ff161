"""Sums split by linearity, so that they run in an earlier sum's pass.

A norm's backward sums, per row, ``g * w * r + s * (x - m)``, where ``s`` is
computed from an earlier sum over the same row (``sum(g * w * (x - m))``): the
second sum waits for the first, and each reads the row. By linearity it is
``sum(g * w * r) + s * sum(x - m)``. Those two sums read only what the earlier
one reads, so they move up beside it, and the schedule accumulates all three
in one pass over the row (``schedule.sums_nest``); what is left of the stage is
pointwise: ``a + s * b`` per row.

In: a fused program (``schedule.fuse_pair``). Out: the same program with each
sum split where its terms read a stage computed since the last sum over the
same loops only through factors constant along the sum, and its pieces then
share that sum's loops. A stage the program returns keeps its sum (an empty
sum is 0; ``s * 0`` is not when ``s`` is infinite).

Example::

    backward = split_late_sums(backward)
"""
from __future__ import annotations

from . import ir
from .ir import Call, Const, Load, Program, Stage
from .schedule import plan_stage, sums_nest
from .simplify import simplify_expr


def split_late_sums(p: Program) -> Program:
    """``p`` with its sums split and moved as the module docstring says."""
    stages = list(p.stages)
    kept = set(p.outputs) | {name for _, name in p.updates}
    taken = {st.name for st in stages} | {t.name for t in p.tensors}
    shapes = p.shapes()
    k = 0
    while k < len(stages):
        s, j = stages[k], _earlier_sum(stages, k)
        pieces = None
        if j is not None and s.name not in kept:
            late = {st.name for st in stages[j + 1:k]}
            pieces = _split(s, late, taken)
        if pieces is not None and _share_loops(stages[j], pieces[0], shapes):
            sums, rest = pieces
            taken |= {st.name for st in sums}
            shapes.update({st.name: st.shape for st in sums})
            stages[k] = rest
            stages[j + 1:j + 1] = sums
            k += len(sums)
        k += 1
    return ir.replace(p, stages=tuple(stages))


def _is_sum(s: Stage) -> bool:
    return s.reduce == "sum" and s.scatter_index is None


def _domain(s: Stage) -> tuple:
    """The extents a sum loops over, but those of one iteration."""
    def spanning(axes):
        return tuple(a.extent for a in axes if a.extent != ir.IConst(1))
    return spanning(s.axes), spanning(s.reduce_axes)


def _earlier_sum(stages: list, k: int) -> int | None:
    """Where the last sum over the loops of ``stages[k]`` (a sum) before it is."""
    if not _is_sum(stages[k]):
        return None
    return next((j for j in range(k - 1, -1, -1)
                 if _is_sum(stages[j]) and _domain(stages[j]) == _domain(stages[k])), None)


def _terms(e, reduced: set) -> list:
    """``e`` as ``[(coefficient, term)]`` whose ``coefficient * term`` add up to
    it, each coefficient (None: 1) constant along the ``reduced`` variables.
    Only sums are split: a product's term stays whole (``s * (x - m)`` is not
    ``s * x - s * m``, which would cancel in rounding)."""
    if isinstance(e, Call) and e.op == "add":
        return _terms(e.args[0], reduced) + _terms(e.args[1], reduced)
    if isinstance(e, Call) and e.op == "sub":
        return _terms(e.args[0], reduced) + _terms(Call("neg", (e.args[1],)), reduced)
    if isinstance(e, Call) and e.op == "neg":
        return [(_times(Const(-1.0), c), t) for c, t in _terms(e.args[0], reduced)]
    return [_factored(e, reduced)]


def _factored(e, reduced: set) -> tuple:
    """``(coefficient, term)`` of a product ``e``: its factors constant along
    the ``reduced`` variables, and the rest."""
    if isinstance(e, Call) and e.op == "neg":
        c, t = _factored(e.args[0], reduced)
        return _times(Const(-1.0), c), t
    if isinstance(e, Call) and e.op == "mul":
        a, b = e.args
        for constant, rest in ((a, b), (b, a)):
            if not ir.ivars_of_expr(constant) & reduced:
                c, t = _factored(rest, reduced)
                return _times(constant, c), t
    return None, e


def _times(a, b):
    """``a * b``, None standing for 1."""
    if a is None or b is None:
        return b if a is None else a
    return Call("mul", (a, b))


def _added(terms: list):
    total = terms[0]
    for t in terms[1:]:
        total = Call("add", (total, t))
    return total


def _split(s: Stage, late: set, taken: set):
    """``(sums, rest)``: ``s`` as the sums of its terms (one of those whose
    coefficients read nothing in ``late``, one per coefficient that does) and
    the pointwise stage that combines them; None when no coefficient reads
    ``late`` or a term does."""
    reduced = {a.name for a in s.reduce_axes}
    early, by_coefficient = [], {}
    for c, t in _terms(s.body, reduced):
        if c is not None and ir.tensors_read(c) & late:
            by_coefficient.setdefault(c, []).append(t)
        else:
            early.append(_times(c, t))
    if not by_coefficient:
        return None
    pieces = ([(None, early)] if early else []) + list(by_coefficient.items())
    if any(ir.tensors_read(_added(terms)) & late for _, terms in pieces):
        return None
    sums, combined = [], []
    for c, terms in pieces:
        name = ir.fresh_name(f"{s.name}_part", taken | {st.name for st in sums})
        sums.append(ir.replace(s, name=name, body=simplify_expr(_added(terms))))
        combined.append(_times(c, Load(name, s.index)))
    rest = ir.replace(s, body=simplify_expr(_added(combined)), reduce=None, reduce_axes=())
    return sums, rest


def _share_loops(earlier: Stage, sums: list, shapes: dict) -> bool:
    """Whether the schedule runs ``sums`` in ``earlier``'s pass (else the
    split would only add passes)."""
    nest = plan_stage(earlier, shapes)
    for st in sums:
        nest = sums_nest(nest, plan_stage(st, shapes))
        if nest is None:
            return False
    return True
