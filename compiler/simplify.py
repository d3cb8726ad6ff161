"""Algebraic simplification, stage CSE and dead-stage elimination.

Example::

    >>> from layerc.compiler.ir import Call, Const, Load, IVar, format_expr
    >>> x = Load("x", (IVar("i"),))
    >>> print(format_expr(simplify_expr(Call("mul", (Call("add", (x, Const(0.0))), Const(1.0))))))
    x[i]
"""
from __future__ import annotations

import math

import numpy as np

from . import ir
from .ir import Call, Const, Program, Stage
from .ops_table import OPS


def _is(e, value) -> bool:
    return isinstance(e, Const) and e.value == value and not (value == 0 and math.copysign(1, e.value) < 0)


def _fold(op, args):
    with np.errstate(all="ignore"):
        value = OPS[op].numpy(*(np.float64(a.value) for a in args))
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


def _one_hot_index(e, var: str):
    """``(condition, index)`` when ``e`` is zero unless the condition
    ``var == index`` holds (``index`` free of ``var``): the one-hot test a
    gather's gradient puts under a select. Looks through negation, products
    and selects with a zero branch."""
    if isinstance(e, Call) and e.op == "select" and _is(e.args[2], 0):
        for cond in _conjuncts(e.args[0]):
            if cond.op == "eq":
                sides = [x.expr for x in cond.args if isinstance(x, ir.IndexValue)]
                if len(sides) == 2 and ir.IVar(var) in sides:
                    other = sides[1] if sides[0] == ir.IVar(var) else sides[0]
                    if var not in ir.ivars(other):
                        return cond, other
        return _one_hot_index(e.args[1], var)
    if isinstance(e, Call) and e.op == "neg":
        return _one_hot_index(e.args[0], var)
    if isinstance(e, Call) and e.op == "mul":
        return _one_hot_index(e.args[0], var) or _one_hot_index(e.args[1], var)
    return None


def _conjuncts(cond) -> list:
    if isinstance(cond, Call) and cond.op == "mul":
        return _conjuncts(cond.args[0]) + _conjuncts(cond.args[1])
    return [cond] if isinstance(cond, Call) else []


def _replace_node(e, old, new):
    memo = {}
    for sub in ir.postorder(e):
        if sub == old:
            memo[sub] = new
        elif isinstance(sub, Call):
            memo[sub] = Call(sub.op, tuple(memo[a] for a in sub.args))
        else:
            memo[sub] = sub
    return memo[e]


def collapse_one_hot_sums(s: Stage) -> Stage:
    """``sum_r (v if r == e else 0)`` is ``v`` at ``r = e`` when ``0 <= e <
    extent(r)``, else 0: one read instead of a loop over r (a gather's
    gradient summed over the gathered axis, as in log_softmax's backward)."""
    if s.reduce != "sum" or s.scatter_index is not None:
        return s
    for axis in s.reduce_axes:
        found = _one_hot_index(s.body, axis.name)
        if found is None:
            continue
        cond, index = found
        body = _replace_node(s.body, cond, Const(1.0))
        body = ir.subst_indices(body, {axis.name: index})
        in_range = Call("mul", (Call("ge", (ir.IndexValue(index), Const(0.0))),
                                Call("lt", (ir.IndexValue(index), ir.IndexValue(axis.extent)))))
        remaining = tuple(a for a in s.reduce_axes if a is not axis)
        return collapse_one_hot_sums(ir.replace(
            s, body=Call("select", (in_range, body, Const(0.0))), reduce_axes=remaining,
            reduce=s.reduce if remaining else None))
    return s


def simplify_stages(p: Program) -> Program:
    """Each stage of ``p`` simplified on its own (unit reductions dropped,
    one-hot sums collapsed, its body folded); no stage added or removed, so
    a fused program keeps what it saves and computes."""
    stages = []
    for s in p.stages:
        s = collapse_one_hot_sums(drop_unit_reductions(s))
        stages.append(ir.replace(s, body=simplify_expr(s.body)))
    return ir.replace(p, stages=tuple(stages))


def simplify_program(p: Program) -> Program:
    return eliminate_dead_stages(deduplicate_stages(simplify_stages(p)))
