"""The one table of elementwise ops: one row per op holds all layerc knows of it.

A row gives the op's arity; its C form (a format over argument expressions,
``{f}`` standing for the ``f`` suffix of single-precision libm functions); its
numpy reference (what constant folding computes and what tests compare
compiled kernels to); its local gradient, a function of the argument
expressions and the op's own output returning ``d out / d arg`` for each
argument (``None`` for an argument that is not differentiable), or ``None``
for an op without one (comparisons); the values of each argument that keep it
smooth (``test_domain``: positive for ``log``); and whether it is
``expensive``, which fusion recomputes only where each value is used once.

Example::

    >>> from layerc.compiler.ir import Load, IVar
    >>> x = Load("x", (IVar("i"),))
    >>> out = call("exp", x)
    >>> OPS["exp"].grad(x, out=out)[0] == out
    True
    >>> float(OPS["exp"].numpy(0.0)), OPS["exp"].c.format("x", f="f"), OPS["exp"].expensive
    (1.0, 'expf(x)', True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .ir import Call, Const


@dataclass(frozen=True)
class Op:
    """One op: ``Op(arity, c, numpy, grad, test_domain, expensive)``."""

    arity: int
    c: str
    numpy: Callable
    grad: Callable | None      # (*args, out) -> tuple of partials (None: not differentiable)
    test_domain: tuple = ((-2.0, 2.0),)
    expensive: bool = False


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


POS, TWO = ((0.3, 2.0),), ((-2.0, 2.0), (-2.0, 2.0))


def _maximum_grad(x, y, out):
    # at ties the gradient splits evenly between the arguments
    tie = mul(HALF, call("eq", x, y))
    return add(call("gt", x, y), tie), add(call("lt", x, y), tie)


def _minimum_grad(x, y, out):
    tie = mul(HALF, call("eq", x, y))
    return add(call("lt", x, y), tie), add(call("gt", x, y), tie)


def _comparison(c: str, reference: Callable) -> Op:
    return Op(2, c, reference, None, TWO)


OPS: dict[str, Op] = {
    "add": Op(2, "({0} + {1})", np.add, lambda x, y, out: (ONE, ONE), TWO),
    "sub": Op(2, "({0} - {1})", np.subtract, lambda x, y, out: (ONE, const(-1)), TWO),
    "mul": Op(2, "({0} * {1})", np.multiply, lambda x, y, out: (y, x), TWO),
    "div": Op(2, "({0} / {1})", np.divide, lambda x, y, out: (div(ONE, y), neg(div(out, y))),
              ((-2, 2), (0.5, 2)), expensive=True),
    "pow": Op(2, "pow{f}({0}, {1})", np.power,
              lambda x, y, out: (mul(y, call("pow", x, sub(y, ONE))), mul(out, call("log", x))),
              ((0.5, 2), (-1.5, 1.5)), expensive=True),
    "neg": Op(1, "(-{0})", np.negative, lambda x, out: (const(-1),)),
    "exp": Op(1, "exp{f}({0})", np.exp, lambda x, out: (out,), expensive=True),
    "log": Op(1, "log{f}({0})", np.log, lambda x, out: (div(ONE, x),), POS, expensive=True),
    "sqrt": Op(1, "sqrt{f}({0})", np.sqrt, lambda x, out: (div(HALF, out),), POS, expensive=True),
    "tanh": Op(1, "tanh{f}({0})", np.tanh, lambda x, out: (sub(ONE, mul(out, out)),), expensive=True),
    "sigmoid": Op(1, "(1 / (1 + exp{f}(-{0})))", lambda x: 1 / (1 + np.exp(-x)),
                  lambda x, out: (mul(out, sub(ONE, out)),), expensive=True),
    "erf": Op(1, "erf{f}({0})", np.vectorize(math.erf, otypes=[float]),
              lambda x, out: (mul(const(2 / math.sqrt(math.pi)), call("exp", neg(mul(x, x)))),),
              expensive=True),
    # NaN propagates through relu, abs, maximum and minimum, as in numpy; maximum and
    # minimum test for NaN outside, so the inner select compiles to maxss/minss
    "relu": Op(1, "({0} < 0 ? 0 : {0})", lambda x: np.where(x < 0, 0, x), lambda x, out: (call("gt", x, ZERO),)),
    "abs": Op(1, "fabs{f}({0})", np.abs, lambda x, out: (sub(call("gt", x, ZERO), call("lt", x, ZERO)),)),
    "maximum": Op(2, "(({0} != {0}) ? {0} : (({0} > {1}) ? {0} : {1}))", np.maximum, _maximum_grad, TWO),
    "minimum": Op(2, "(({0} != {0}) ? {0} : (({0} < {1}) ? {0} : {1}))", np.minimum, _minimum_grad, TWO),
    "select": Op(3, "({0} != 0 ? {1} : {2})", lambda c, a, b: np.where(c != 0, a, b),
                 lambda c, a, b, out: (None, select(c, ONE, ZERO), select(c, ZERO, ONE)),
                 ((-1, 1), (-2, 2), (-2, 2))),
    # the derivative of a shift-invariant function (softmax) through its shift is
    # exactly zero; stop_gradient says so instead of computing terms that cancel
    "stop_gradient": Op(1, "{0}", lambda x: x, None),
    "lt": _comparison("({0} < {1})", np.less),
    "le": _comparison("({0} <= {1})", np.less_equal),
    "gt": _comparison("({0} > {1})", np.greater),
    "ge": _comparison("({0} >= {1})", np.greater_equal),
    "eq": _comparison("({0} == {1})", np.equal),
    "ne": _comparison("({0} != {1})", np.not_equal),
}

COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
