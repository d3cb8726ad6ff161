"""Algebraic simplification, stage CSE and dead-stage elimination.

Example::

    >>> from compiler.ir import Call, Const, Load, IVar, format_expr
    >>> x = Load("x", (IVar("i"),))
    >>> print(format_expr(simplify_expr(Call("mul", (Call("add", (x, Const(0.0))), Const(1.0))))))
    x[i]
"""
from __future__ import annotations

import math

import numpy as np

from . import ir
from .ir import Call, Const, Program, Stage
from .ops_table import NUMPY


def _is(e, value) -> bool:
    return isinstance(e, Const) and e.value == value and not (value == 0 and math.copysign(1, e.value) < 0)


def _fold(op, args):
    with np.errstate(all="ignore"):
        value = NUMPY[op](*(np.float64(a.value) for a in args))
    return Const(float(value))


def _rewrite(e: Call):
    """One local rule, or ``e`` unchanged. Arguments are already simplified."""
    op, a = e.op, e.args
    if all(isinstance(x, Const) for x in a) and op != "stop_gradient":
        return _fold(op, a)
    if op == "add":
        if _is(a[0], 0):
            return a[1]
        if _is(a[1], 0):
            return a[0]
        if isinstance(a[1], Call) and a[1].op == "neg":
            return Call("sub", (a[0], a[1].args[0]))
    elif op == "sub":
        if _is(a[1], 0):
            return a[0]
        if _is(a[0], 0):
            return Call("neg", (a[1],))
        if isinstance(a[1], Call) and a[1].op == "neg":
            return Call("add", (a[0], a[1].args[0]))
    elif op == "mul":
        for x, y in ((a[0], a[1]), (a[1], a[0])):
            if _is(x, 1):
                return y
            # x * 0 is 0 here (not IEEE for inf/nan): derivative rules multiply by
            # zero partials routinely and the result must stay zero
            if _is(x, 0):
                return Const(0.0)
            if _is(x, -1):
                return Call("neg", (y,))
            if isinstance(x, Const) and isinstance(y, Call) and y.op == "mul" and isinstance(y.args[0], Const):
                return Call("mul", (_fold("mul", (x, y.args[0])), y.args[1]))
        if isinstance(a[1], Const) and not isinstance(a[0], Const):
            return Call("mul", (a[1], a[0]))
        if isinstance(a[0], Call) and a[0].op == "neg" and isinstance(a[1], Call) and a[1].op == "neg":
            return Call("mul", (a[0].args[0], a[1].args[0]))
        for k in (0, 1):
            if isinstance(a[k], Call) and a[k].op == "neg":
                return Call("neg", (Call("mul", (a[k].args[0], a[1 - k])),))
    elif op == "div":
        if _is(a[1], 1):
            return a[0]
        if _is(a[0], 0):
            return Const(0.0)
    elif op == "neg":
        if isinstance(a[0], Call) and a[0].op == "neg":
            return a[0].args[0]
    elif op == "pow" and isinstance(a[1], Const):
        if a[1].value == 1:
            return a[0]
        if a[1].value == 2:
            return Call("mul", (a[0], a[0]))
        if a[1].value == 0.5:
            return Call("sqrt", (a[0],))
        if a[1].value == -1:
            return Call("div", (Const(1.0), a[0]))
    elif op == "select":
        if isinstance(a[0], Const):
            return a[1] if a[0].value != 0 else a[2]
        if a[1] == a[2]:
            return a[1]
    elif op == "stop_gradient" and isinstance(a[0], Const):
        return a[0]
    return e


def simplify_expr(e, memo=None):
    """Apply the algebraic rules bottom-up until none applies."""
    memo = {} if memo is None else memo
    if not isinstance(e, Call):
        return e
    if e not in memo:
        new = Call(e.op, tuple(simplify_expr(a, memo) for a in e.args))
        rewritten = _rewrite(new)
        memo[e] = new if rewritten == new else simplify_expr(rewritten, memo)
    return memo[e]


def eliminate_dead_stages(p: Program) -> Program:
    """Drop stages that no output or buffer update needs."""
    live = set(p.outputs) | {stage for _, stage in p.updates}
    kept = []
    for s in reversed(p.stages):
        if s.name in live:
            kept.append(s)
            live |= ir.tensors_read(s.body)
            if s.scatter_index:
                live |= set().union(*(ir.index_tensors(i) for i in s.scatter_index))
            for a in s.all_axes:
                live |= ir.index_tensors(a.extent)
    return ir.replace(p, stages=tuple(reversed(kept)))


def _definition(s: Stage):
    return (s.shape, s.axes, s.body, s.reduce, s.reduce_axes, s.scatter_index, s.inverse)


def deduplicate_stages(p: Program) -> Program:
    """Common-subexpression elimination across stages: identical definitions
    are computed once (outputs keep their names)."""
    seen, renames, stages = {}, {}, []
    outputs = set(p.outputs) | {stage for _, stage in p.updates}
    for s in p.stages:
        if renames:
            s = ir.replace(s, body=ir.rename_tensors(s.body, renames))
        key = _definition(s)
        if key in seen and s.name not in outputs:
            renames[s.name] = seen[key]
            continue
        seen.setdefault(key, s.name)
        stages.append(s)
    return ir.replace(p, stages=tuple(stages))


def drop_unit_reductions(s: Stage) -> Stage:
    """A reduction over an axis of extent 1 is that one element; with no
    reduction axes left the stage is pointwise (and can be fused)."""
    unit = {a.name: ir.IConst(0) for a in s.reduce_axes if a.extent == ir.IConst(1)}
    if not unit or s.scatter_index is not None:
        return s
    remaining = tuple(a for a in s.reduce_axes if a.name not in unit)
    return ir.replace(s, body=ir.subst_indices(s.body, unit), reduce_axes=remaining,
                      reduce=s.reduce if remaining else None)


def simplify_program(p: Program) -> Program:
    stages = []
    for s in p.stages:
        s = drop_unit_reductions(s)
        stages.append(ir.replace(s, body=simplify_expr(s.body)))
    p = ir.replace(p, stages=tuple(stages))
    return eliminate_dead_stages(deduplicate_stages(p))
