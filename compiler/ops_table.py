"""The one table of elementwise ops: one row per op holds all layerc knows of it.

A row gives the op's arity; its C form (a format over argument expressions,
``{f}`` standing for the ``f`` suffix of single-precision libm functions and
literals); its numpy reference (what constant folding computes and what tests
compare compiled kernels to); its local gradient, a function of the argument
expressions and the op's own output returning ``d out / d arg`` for each
argument (``None`` for an argument that is not differentiable), or ``None``
for an op without one (comparisons); the values of each argument that keep it
smooth (``test_domain``: positive for ``log``); whether it is ``expensive``,
which fusion recomputes only where each value is used once; and, for tests
that draw random values, where it is not smooth: ``kinks`` maps the arguments
(numpy arrays) to their distances from such points (a tuple of arrays), and
``jumps`` says whether the value itself jumps there (``floor``) or only its
slope (``relu``).

Derivatives follow PyTorch's wherever the function is defined: at a kink the
one-sided value PyTorch picks (``relu'(0) = 0``, ``elu'(0) = alpha``), and no
``0 * inf`` where PyTorch gives a number (``d (x ** p) / dp`` at ``x == 0``).
C forms choose with selects on computed values (blends, not branches), so
loops vectorize; libm functions are ones glibc's libmvec has in vector form,
and where that costs a layer more than its memory traffic (float erf, erfc,
exp of an exponent known at most 0) the form calls an inlined ``lc_`` helper
of templates/module.c.j2 instead (doubles: libm's).

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

from .ir import COMPARISONS, Call, Const


@dataclass(frozen=True)
class Op:
    """One op: ``Op(arity, c, numpy, grad, test_domain, expensive, kinks, jumps)``."""

    arity: int
    c: str
    numpy: Callable
    grad: Callable | None      # (*args, out) -> tuple of partials (None: not differentiable)
    test_domain: tuple = ((-2.0, 2.0),)
    expensive: bool = False
    kinks: Callable | None = None    # (*arrays) -> distances to the non-smooth points
    jumps: bool = False


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
def lt(a, b): return call("lt", a, b)
def le(a, b): return call("le", a, b)
def gt(a, b): return call("gt", a, b)
def ge(a, b): return call("ge", a, b)
def eq(a, b): return call("eq", a, b)


POS, TWO = ((0.3, 2.0),), ((-2.0, 2.0), (-2.0, 2.0))
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848, 1.0507009873554804934
GELU_TANH_BETA, GELU_TANH_KAPPA = math.sqrt(2 / math.pi), 0.044715


# ---------------------------------------------------------------- where ops are not smooth


def _at(*points):
    """Kinks at fixed points of the first argument."""
    return lambda x, *rest: tuple(x - p for p in points)


def _between(*pairs):
    """Kinks where two arguments are equal (``pairs`` of argument positions)."""
    return lambda *args: tuple(args[i] - args[j] for i, j in pairs)


def _from_integers(shift):
    """Jumps at the integers (``shift`` 0) or halfway between them (0.5)."""
    return lambda x: (np.abs(x - shift - np.rint(x - shift)),)


def _remainder_jumps(x, y):
    r = np.fmod(x, y)
    return (r, np.abs(y) - np.abs(r))


# ---------------------------------------------------------------- numpy references


def _np_erf(x):
    return np.vectorize(math.erf, otypes=[float])(x)


def _np_erfc(x):
    return np.vectorize(math.erfc, otypes=[float])(x)


def _np_ndtr(x):
    return 0.5 * _np_erfc(x * -math.sqrt(0.5))


def _np_softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _np_remainder(x, y):
    # PyTorch's: fmod, moved onto the divisor's side (numpy's own signs its zeros by y)
    r = np.fmod(x, y)
    return np.where((r != 0) & ((r < 0) != (y < 0)), r + y, r)


def _np_lerp(a, b, w):
    return np.where(np.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(GELU_TANH_BETA * (x + GELU_TANH_KAPPA * x * x * x)))


def _np_elu(x, alpha, scale=1.0):
    return np.where(x > 0, scale * x, scale * alpha * np.expm1(x))


def _np_sign(x):
    return np.where(np.isnan(x), 0.0, np.sign(x))     # PyTorch's sign(nan) is 0


def _sigmoid_np(x):
    return 1 / (1 + np.exp(-x))


def _np_word(v):
    """An argument of ``philox_uniform`` as its C reads it: truncated to int32
    (0 outside int32's range, NaN too), the bits as an unsigned 32-bit word."""
    v = np.asarray(v, dtype=np.float64)
    inside = (v > -2.0 ** 31) & (v < 2.0 ** 31)
    return np.where(inside, np.trunc(np.where(inside, v, 0)), 0).astype(np.int64) & 0xFFFFFFFF


def _np_philox_uniform(s0, s1, c0, c1, row, col):
    """Philox-4x32-10 as ``templates/philox.c.j2`` computes it (uint64 arithmetic)."""
    mask = 0xFFFFFFFF
    k0, k1 = (_np_word(s0) + (_np_word(s1) << 16)) & mask, np.int64(0x5EED)
    w0, w1, w2, w3 = _np_word(col), _np_word(row), (_np_word(c0) + (_np_word(c1) << 16)) & mask, 0
    w0, w1, w2, k0 = np.broadcast_arrays(w0, w1, w2, k0)
    w0, w1, w2, w3, k0, k1 = (np.array(a, dtype=np.uint64) for a in (w0, w1, w2, w3 + 0 * w0, k0, k1 + 0 * w0))
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * w0, np.uint64(0xCD9E8D57) * w2
        w0, w1, w2, w3 = (p1 >> np.uint64(32)) ^ w1 ^ k0, p1 & np.uint64(mask), (p0 >> np.uint64(32)) ^ w3 ^ k1, \
            p0 & np.uint64(mask)
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & np.uint64(mask), (k1 + np.uint64(0xBB67AE85)) & np.uint64(mask)
    return (w0 >> np.uint64(8)).astype(np.float64) * 2.0 ** -24


# ---------------------------------------------------------------- local derivatives


def _zero(x, out):
    return (ZERO,)


def _pow_grad(x, p, out):
    # PyTorch's: no base gradient where p == 0 (0 ** 0 too); no exponent gradient
    # where x == 0 and p >= 0, where out * log(x) would be 0 * -inf
    base = select(eq(p, ZERO), ZERO, mul(p, call("pow", x, sub(p, ONE))))
    exponent = select(mul(eq(x, ZERO), ge(p, ZERO)), ZERO, mul(out, call("log", x)))
    return base, exponent


def _remainder_grad(x, y, out):
    # -floor(x / y) as the integer (x - x % y) / y, as PyTorch reads it off fmod:
    # x / y itself may round onto an integer or underflow (1e-300 / -1e300 is -0,
    # its floor -1)
    quotient = select(eq(y, ZERO), div(x, y), call("round", div(sub(x, out), y)))
    return ONE, neg(quotient)


def _maximum_grad(x, y, out):
    # at ties the gradient splits evenly between the arguments
    tie = mul(HALF, eq(x, y))
    return add(gt(x, y), tie), add(lt(x, y), tie)


def _minimum_grad(x, y, out):
    tie = mul(HALF, eq(x, y))
    return add(lt(x, y), tie), add(gt(x, y), tie)


def _silu_grad(x, out):
    s = call("sigmoid", x)
    return (mul(s, add(ONE, mul(x, sub(ONE, s)))),)


def _mish_grad(x, out):
    t = call("tanh", call("softplus", x))
    return (add(t, mul(mul(x, call("sigmoid", x)), sub(ONE, mul(t, t)))),)


def _normal_pdf(x):
    # the exponential lc_ndtr computes for x: a kernel needing both computes it once
    return mul(const(1 / math.sqrt(2 * math.pi)), call("exp", mul(const(-0.5), mul(x, x))))


def _gelu_grad(x, out):
    # Phi(x) read back from the output, x * Phi(x) / x (within two roundings;
    # 1/2 at 0): the forward's CDF not computed again, its polynomial the most of
    # the backward's work
    cdf = select(call("ne", x, ZERO), div(out, x), HALF)
    return (add(cdf, mul(x, _normal_pdf(x))),)


def _gelu_tanh_grad(x, out):
    # with s = sigmoid(2 u) = (1 + tanh u) / 2: s + x s (1 - s) 2 u', which keeps
    # its precision where 1 + tanh u cancels (x below -5); PyTorch's order of
    # products otherwise: at |x| ~ 1e300 both give nan (x**3 overflows)
    inner = mul(const(2 * GELU_TANH_BETA), add(x, mul(const(GELU_TANH_KAPPA), mul(mul(x, x), x))))
    s = call("sigmoid", inner)
    slope = mul(const(2 * GELU_TANH_BETA), add(ONE, mul(const(3 * GELU_TANH_KAPPA), mul(x, x))))
    return (add(s, mul(mul(mul(x, s), sub(ONE, s)), slope)),)


def _elu_grad(x, alpha, out):
    negative = le(x, ZERO)          # PyTorch's side: x == 0 takes alpha, nan takes 1
    return select(negative, mul(alpha, call("exp", x)), ONE), select(negative, call("expm1", x), ZERO)


def _celu_grad(x, alpha, out):
    u = div(x, alpha)
    negative = le(x, ZERO)
    d_alpha = sub(call("expm1", u), mul(u, call("exp", u)))
    return select(negative, call("exp", u), ONE), select(negative, d_alpha, ZERO)


def _hardswish_grad(x, out):
    return (select(le(x, const(-3)), ZERO, select(lt(x, const(3)), add(div(x, const(3)), HALF), ONE)),)


def _clip_grad(x, lo, hi, out):
    # PyTorch's clamp: x passes at the bounds; lo > hi gives hi. At lo == hi below
    # x the value is min(lo, hi): lo takes the gradient (PyTorch gives it to
    # neither, so clip(x, y, y) would have no gradient in y)
    return (mul(ge(x, lo), le(x, hi)), mul(lt(x, lo), le(lo, hi)), select(gt(x, hi), ONE, lt(hi, lo)))


def _comparison(c: str, reference: Callable) -> Op:
    return Op(2, c, reference, None, TWO, kinks=_between((0, 1)), jumps=True)


# ---------------------------------------------------------------- the table

ARITHMETIC = {
    "add": Op(2, "({0} + {1})", np.add, lambda x, y, out: (ONE, ONE), TWO),
    "sub": Op(2, "({0} - {1})", np.subtract, lambda x, y, out: (ONE, const(-1)), TWO),
    "mul": Op(2, "({0} * {1})", np.multiply, lambda x, y, out: (y, x), TWO),
    "div": Op(2, "({0} / {1})", np.divide, lambda x, y, out: (div(ONE, y), neg(div(out, y))),
              ((-2, 2), (0.5, 2)), expensive=True),
    "pow": Op(2, "pow{f}({0}, {1})", np.power, _pow_grad, ((0.5, 2), (-1.5, 1.5)), expensive=True),
    "neg": Op(1, "(-{0})", np.negative, lambda x, out: (const(-1),)),
    # fmod is exact (x - y * floor(x / y) is not for large quotients) but has no
    # vector form in libmvec: a loop computing a remainder stays scalar
    "remainder": Op(2, "(((fmod{f}({0}, {1}) != 0) & ((fmod{f}({0}, {1}) < 0) != ({1} < 0))) "
                       "? fmod{f}({0}, {1}) + {1} : fmod{f}({0}, {1}))", _np_remainder,
                    _remainder_grad, ((-4, 4), (0.5, 2)),
                    expensive=True, kinks=_remainder_jumps, jumps=True),
    "lerp": Op(3, "(fabs{f}({2}) < 0.5{f} ? {0} + {2} * ({1} - {0}) : {1} - ({1} - {0}) * (1 - {2}))",
               _np_lerp, lambda a, b, w, out: (sub(ONE, w), w, sub(b, a))),
}

TRANSCENDENTAL = {
    "exp": Op(1, "exp{f}({0})", np.exp, lambda x, out: (out,), expensive=True),
    "expm1": Op(1, "expm1{f}({0})", np.expm1, lambda x, out: (add(out, ONE),), expensive=True),
    "log": Op(1, "log{f}({0})", np.log, lambda x, out: (div(ONE, x),), POS, expensive=True),
    "log2": Op(1, "log2{f}({0})", np.log2, lambda x, out: (div(const(1 / math.log(2)), x),), POS,
               expensive=True),
    "log1p": Op(1, "log1p{f}({0})", np.log1p, lambda x, out: (div(ONE, add(x, ONE)),), ((-0.5, 2.0),),
                expensive=True),
    "sqrt": Op(1, "sqrt{f}({0})", np.sqrt, lambda x, out: (div(HALF, out),), POS, expensive=True),
    "rsqrt": Op(1, "(1 / sqrt{f}({0}))", lambda x: 1 / np.sqrt(x),
                lambda x, out: (mul(const(-0.5), mul(mul(out, out), out)),), POS, expensive=True),
    "sin": Op(1, "sin{f}({0})", np.sin, lambda x, out: (call("cos", x),), expensive=True),
    "cos": Op(1, "cos{f}({0})", np.cos, lambda x, out: (neg(call("sin", x)),), expensive=True),
    "tan": Op(1, "tan{f}({0})", np.tan, lambda x, out: (add(ONE, mul(out, out)),), ((-1.2, 1.2),),
              expensive=True),
    "tanh": Op(1, "tanh{f}({0})", np.tanh, lambda x, out: (sub(ONE, mul(out, out)),), expensive=True),
    "sigmoid": Op(1, "(1 / (1 + exp{f}(-{0})))", _sigmoid_np,
                  lambda x, out: (mul(out, sub(ONE, out)),), expensive=True),
    "erf": Op(1, "lc_erf{f}({0})", _np_erf,
              lambda x, out: (mul(const(2 / math.sqrt(math.pi)), call("exp", neg(mul(x, x)))),),
              expensive=True),
    "erfc": Op(1, "lc_erfc{f}({0})", _np_erfc,
               lambda x, out: (mul(const(-2 / math.sqrt(math.pi)), call("exp", neg(mul(x, x)))),),
               expensive=True),
    # the standard normal distribution's CDF
    "ndtr": Op(1, "lc_ndtr{f}({0})", _np_ndtr, lambda x, out: (_normal_pdf(x),), ((-4.0, 4.0),),
               expensive=True),
    # max(x, y) + log1p(exp(-|x - y|)); x == y apart, so that inf, inf gives inf
    "logaddexp": Op(2, "({0} == {1} ? {0} + 0.6931471805599453{f} : ({0} > {1} ? {0} : {1}) "
                       "+ log1p{f}(exp{f}(-fabs{f}({0} - {1}))))", np.logaddexp,
                    lambda x, y, out: (call("sigmoid", sub(x, y)), call("sigmoid", sub(y, x))), TWO,
                    expensive=True),
}

# integer-valued: zero gradient (PyTorch's), jumps where the value steps
ROUNDING = {
    "floor": Op(1, "floor{f}({0})", np.floor, _zero, kinks=_from_integers(0), jumps=True),
    "ceil": Op(1, "ceil{f}({0})", np.ceil, _zero, kinks=_from_integers(0), jumps=True),
    "round": Op(1, "rint{f}({0})", np.rint, _zero, kinks=_from_integers(0.5), jumps=True),   # half to even
    "trunc": Op(1, "trunc{f}({0})", np.trunc, _zero, kinks=_from_integers(0), jumps=True),
    "sign": Op(1, "(({0} > 0) - ({0} < 0))", _np_sign, _zero, kinks=_at(0), jumps=True),
}

SOFTPLUS_C = "(({0} > 0 ? {0} : 0) + log1p{f}(exp{f}(-fabs{f}({0}))))"

# NaN propagates through relu, abs, maximum and minimum, as in numpy; maximum and
# minimum test for NaN outside, so the inner select compiles to maxss/minss
ACTIVATIONS = {
    "relu": Op(1, "({0} < 0 ? 0 : {0})", lambda x: np.where(x < 0, 0, x), lambda x, out: (gt(x, ZERO),),
               kinks=_at(0)),
    "abs": Op(1, "fabs{f}({0})", np.abs, lambda x, out: (sub(gt(x, ZERO), lt(x, ZERO)),), kinks=_at(0)),
    "relu6": Op(1, "({0} < 0 ? 0 : ({0} > 6 ? 6 : {0}))", lambda x: np.where(x < 0, 0, np.minimum(x, 6)),
                # torch's vectorized loop: 0 at nan (its scalar loop gives 1)
                lambda x, out: (mul(gt(x, ZERO), lt(x, const(6))),), ((-2, 8),), kinks=_at(0, 6)),
    "leaky_relu": Op(2, "({0} > 0 ? {0} : {1} * {0})", lambda x, s: np.where(x > 0, x, s * x),
                     lambda x, s, out: (select(gt(x, ZERO), ONE, s), select(gt(x, ZERO), ZERO, x)),
                     ((-2, 2), (0.0, 0.5)), kinks=_at(0)),
    "elu": Op(2, "({0} > 0 ? {0} : {1} * expm1{f}({0}))", _np_elu, _elu_grad, ((-2, 2), (0.5, 2)),
              expensive=True, kinks=_at(0)),
    "celu": Op(2, "({0} > 0 ? {0} : {1} * expm1{f}({0} / {1}))",
               lambda x, a: np.where(x > 0, x, a * np.expm1(x / a)), _celu_grad, ((-2, 2), (0.5, 2)),
               expensive=True, kinks=_at(0)),
    "selu": Op(1, "(1.0507009873554805{f} * ({0} > 0 ? {0} : 1.6732632423543772{f} * expm1{f}({0})))",
               lambda x: _np_elu(x, SELU_ALPHA, SELU_SCALE),
               lambda x, out: (select(le(x, ZERO), mul(const(SELU_SCALE * SELU_ALPHA), call("exp", x)),
                                      const(SELU_SCALE)),),
               expensive=True, kinks=_at(0)),
    "softplus": Op(1, SOFTPLUS_C, _np_softplus, lambda x, out: (call("sigmoid", x),), expensive=True),
    "logsigmoid": Op(1, "(({0} < 0 ? {0} : 0) - log1p{f}(exp{f}(-fabs{f}({0}))))",
                     lambda x: -_np_softplus(-x), lambda x, out: (call("sigmoid", neg(x)),), expensive=True),
    "silu": Op(1, "({0} / (1 + exp{f}(-{0})))", lambda x: x / (1 + np.exp(-x)), _silu_grad, expensive=True),
    "mish": Op(1, "({0} * tanh{f}" + SOFTPLUS_C + ")", lambda x: x * np.tanh(_np_softplus(x)), _mish_grad,
               expensive=True),
    # x Phi(x) (ndtr), not x (1 + erf(x / sqrt 2)) / 2, which cancels to 0 below
    # x = -5.4 in float
    "gelu": Op(1, "({0} * lc_ndtr{f}({0}))", lambda x: x * _np_ndtr(x), _gelu_grad, expensive=True),
    # 0.5 (1 + tanh u) as sigmoid(2 u): no 1 + tanh u cancelling to 0 below x = -5
    "gelu_tanh": Op(1, "({0} / (1 + exp{f}(-1.5957691216057308{f} * ({0} + 0.044715{f} * {0} * {0} * {0}))))",
                    _np_gelu_tanh, _gelu_tanh_grad, expensive=True),
    # PyTorch's x * relu6(x + 3) / 6: -inf gives nan, as there
    "hardswish": Op(1, "({0} * ({0} < -3 ? 0 : ({0} > 3 ? 6 : {0} + 3)) / 6)",
                    lambda x: x * np.clip(x + 3, 0, 6) / 6, _hardswish_grad, ((-4, 4),), kinks=_at(-3, 3)),
    "hardsigmoid": Op(1, "(({0} < -3 ? 0 : ({0} > 3 ? 6 : {0} + 3)) / 6)", lambda x: np.clip(x + 3, 0, 6) / 6,
                      lambda x, out: (mul(const(1 / 6), mul(gt(x, const(-3)), lt(x, const(3)))),), ((-4, 4),),
                      kinks=_at(-3, 3)),
    # (1 - |out|)**2 is 1 / (1 + |x|)**2 without a division, and nan at +-inf with the value
    "softsign": Op(1, "({0} / (1 + fabs{f}({0})))", lambda x: x / (1 + np.abs(x)),
                   lambda x, out: (mul(sub(ONE, call("abs", out)), sub(ONE, call("abs", out))),), expensive=True),
}

MAX_C = "(({0} != {0}) ? {0} : (({0} > {1}) ? {0} : {1}))"
MIN_C = "(({0} != {0}) ? {0} : (({0} < {1}) ? {0} : {1}))"

SELECTIONS = {
    "maximum": Op(2, MAX_C, np.maximum, _maximum_grad, TWO, kinks=_between((0, 1))),
    "minimum": Op(2, MIN_C, np.minimum, _minimum_grad, TWO, kinks=_between((0, 1))),
    # minimum(maximum(x, lo), hi), nan in any argument propagating (as the sum of
    # all three); the nan test apart, so that gcc turns the selects into blends
    "clip": Op(3, "((({0} != {0}) | ({1} != {1}) | ({2} != {2})) ? ({0} + {1} + {2}) : "
                  "(((({0} < {1}) ? {1} : {0}) > {2}) ? {2} : (({0} < {1}) ? {1} : {0})))",
               lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), _clip_grad,
               kinks=_between((0, 1), (0, 2), (1, 2))),
    "select": Op(3, "({0} != 0 ? {1} : {2})", lambda c, a, b: np.where(c != 0, a, b),
                 lambda c, a, b, out: (None, select(c, ONE, ZERO), select(c, ZERO, ONE)),
                 ((-1, 1), (-2, 2), (-2, 2)), kinks=lambda c, a, b: (c,), jumps=True),
    # the derivative of a shift-invariant function (softmax) through its shift is
    # exactly zero; stop_gradient says so instead of computing terms that cancel
    "stop_gradient": Op(1, "{0}", lambda x: x, None),
}

# counter-based random numbers (Dropout's mask): a uniform in [0, 1) from a key
# and a counter given as integers (templates/philox.c.j2); flat between integers
RANDOM = {
    "philox_uniform": Op(6, "lc_philox_uniform{f}({0}, {1}, {2}, {3}, {4}, {5})", _np_philox_uniform,
                         lambda *args, out: (ZERO,) * 6, ((0.0, 65535.0),),
                         kinks=lambda *args: tuple(np.abs(a - np.rint(a)) for a in args), jumps=True),
}


OPS: dict[str, Op] = {
    **ARITHMETIC, **TRANSCENDENTAL, **ROUNDING, **ACTIVATIONS, **SELECTIONS, **RANDOM,
    "lt": _comparison("({0} < {1})", np.less),
    "le": _comparison("({0} <= {1})", np.less_equal),
    "gt": _comparison("({0} > {1})", np.greater),
    "ge": _comparison("({0} >= {1})", np.greater_equal),
    "eq": _comparison("({0} == {1})", np.equal),
    "ne": _comparison("({0} != {1})", np.not_equal),
}

# printed forms of ops whose argument is known at most zero (or NaN): e^v
# inlined (templates/module.c.j2) instead of a call into libmvec
AT_MOST_ZERO = {"exp": "lc_exp_inline{f}({0})"}

# the power of two a divisor is scaled by before its reciprocal is taken
# (templates/module.c.j2): a / d printed as (a * s) * (1 / (d * s))
QUOTIENT_SCALE = "lc_quotient_scale{f}({0})"

# ops whose value is at least zero (or NaN) whatever their arguments
NONNEGATIVE = ("exp", "abs", "sqrt", "sigmoid", "relu")


def sign(e) -> int:
    """1 where ``e`` is known at least zero, -1 where known at most zero (NaN
    either way), 0 where unknown: from constants, squares, products, negations
    and ops that are never negative. Rounding keeps these signs.

    >>> from .ir import Load
    >>> x = Load("x", ())
    >>> sign(neg(mul(x, x))), sign(mul(const(-0.5), mul(x, x))), sign(call("exp", x)), sign(x)
    (-1, -1, 1, 0)
    """
    if isinstance(e, Const):
        return 1 if e.value >= 0 else -1
    if not isinstance(e, Call):
        return 0
    if e.op in NONNEGATIVE:
        return 1
    if e.op == "neg":
        return -sign(e.args[0])
    if e.op in ("mul", "div"):
        a, b = e.args
        return 1 if e.op == "mul" and a == b else sign(a) * sign(b)
    return 0
