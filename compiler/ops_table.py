"""The one table of elementwise ops: how each prints in C and its local derivatives.

Each row keeps an op's forward (a C format over argument names, ``{f}`` standing
for the ``f`` suffix of single-precision libm functions) next to its local
gradient: a function of the argument expressions and the op's own output that
returns ``d out / d arg`` for each argument, or ``None`` for an argument that is
not differentiable (conditions, comparisons).

Example::

    >>> from layerc.compiler.ir import Load, IVar
    >>> x = Load("x", (IVar("i"),))
    >>> out = call("exp", x)
    >>> OPS["exp"].grad(x, out=out)[0] == out
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .ir import Call, Const


@dataclass(frozen=True)
class Op:
    arity: int
    c: str
    grad: Callable | None      # (*args, out) -> tuple of partials (None: not differentiable)
    # domain for gradient tests: values of each argument that keep the op smooth
    test_domain: tuple = ((-2.0, 2.0),)


def call(op: str, *args):
    return Call(op, tuple(args))


def const(v) -> Const:
    return Const(float(v))


ONE, ZERO, HALF = Const(1.0), Const(0.0), Const(0.5)


def add(a, b): return call("add", a, b)
def sub(a, b): return call("sub", a, b)
def mul(a, b): return call("mul", a, b)
def div(a, b): return call("div", a, b)
def neg(a): return call("neg", a)
def select(c, a, b): return call("select", c, a, b)


POS = ((0.3, 2.0),)

OPS: dict[str, Op] = {
    "add":     Op(2, "({0} + {1})",  lambda x, y, out: (ONE, ONE), ((-2, 2), (-2, 2))),
    "sub":     Op(2, "({0} - {1})",  lambda x, y, out: (ONE, const(-1)), ((-2, 2), (-2, 2))),
    "mul":     Op(2, "({0} * {1})",  lambda x, y, out: (y, x), ((-2, 2), (-2, 2))),
    "div":     Op(2, "({0} / {1})",  lambda x, y, out: (div(ONE, y), neg(div(out, y))), ((-2, 2), (0.5, 2))),
    "pow":     Op(2, "pow{f}({0}, {1})",
                  lambda x, y, out: (mul(y, call("pow", x, sub(y, ONE))), mul(out, call("log", x))),
                  ((0.5, 2), (-1.5, 1.5))),
    "neg":     Op(1, "(-{0})",       lambda x, out: (const(-1),)),
    "exp":     Op(1, "exp{f}({0})",  lambda x, out: (out,)),
    "log":     Op(1, "log{f}({0})",  lambda x, out: (div(ONE, x),), POS),
    "sqrt":    Op(1, "sqrt{f}({0})", lambda x, out: (div(HALF, out),), POS),
    "tanh":    Op(1, "tanh{f}({0})", lambda x, out: (sub(ONE, mul(out, out)),)),
    "sigmoid": Op(1, "(1 / (1 + exp{f}(-{0})))", lambda x, out: (mul(out, sub(ONE, out)),)),
    "erf":     Op(1, "erf{f}({0})",
                  lambda x, out: (mul(const(2 / math.sqrt(math.pi)), call("exp", neg(mul(x, x)))),)),
    # NaN propagates through relu, abs, maximum and minimum, as in numpy; maximum and
    # minimum test for NaN outside, so the inner select compiles to maxss/minss
    "relu":    Op(1, "({0} < 0 ? 0 : {0})", lambda x, out: (call("gt", x, ZERO),)),
    "abs":     Op(1, "fabs{f}({0})", lambda x, out: (sub(call("gt", x, ZERO), call("lt", x, ZERO)),)),
    # at ties the gradient splits evenly between the arguments
    "maximum": Op(2, "(({0} != {0}) ? {0} : (({0} > {1}) ? {0} : {1}))",
                  lambda x, y, out: (add(call("gt", x, y), mul(HALF, call("eq", x, y))),
                                     add(call("lt", x, y), mul(HALF, call("eq", x, y)))),
                  ((-2, 2), (-2, 2))),
    "minimum": Op(2, "(({0} != {0}) ? {0} : (({0} < {1}) ? {0} : {1}))",
                  lambda x, y, out: (add(call("lt", x, y), mul(HALF, call("eq", x, y))),
                                     add(call("gt", x, y), mul(HALF, call("eq", x, y)))),
                  ((-2, 2), (-2, 2))),
    "select":  Op(3, "({0} != 0 ? {1} : {2})",
                  lambda c, a, b, out: (None, select(c, ONE, ZERO), select(c, ZERO, ONE)),
                  ((-1, 1), (-2, 2), (-2, 2))),
    # the derivative of a shift-invariant function (softmax) through its shift is
    # exactly zero; stop_gradient says so instead of computing terms that cancel
    "stop_gradient": Op(1, "{0}", None),
    "lt": Op(2, "({0} < {1})",   None, ((-2, 2), (-2, 2))),
    "le": Op(2, "({0} <= {1})",  None, ((-2, 2), (-2, 2))),
    "gt": Op(2, "({0} > {1})",   None, ((-2, 2), (-2, 2))),
    "ge": Op(2, "({0} >= {1})",  None, ((-2, 2), (-2, 2))),
    "eq": Op(2, "({0} == {1})",  None, ((-2, 2), (-2, 2))),
    "ne": Op(2, "({0} != {1})",  None, ((-2, 2), (-2, 2))),
}

COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")

# numpy evaluation of each op: the reference the tests compare compiled kernels to
NUMPY: dict[str, Callable] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "pow": np.power, "neg": np.negative, "exp": np.exp, "log": np.log,
    "sqrt": np.sqrt, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": np.vectorize(math.erf, otypes=[float]), "relu": lambda x: np.where(x < 0, 0, x),
    "abs": np.abs, "maximum": np.maximum, "minimum": np.minimum,
    "select": lambda c, a, b: np.where(c != 0, a, b), "stop_gradient": lambda x: x,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal,
}
