"""Every op of the table (compiler/ops_table.py) against PyTorch autograd at
edge values: 0, -0.0, +-inf, NaN, +-1e-300, +-1e300, ordinary values and
the op's own boundaries (kinks, jumps, the edge of its domain). Each argument
takes each value (a full grid for two and three arguments); a one-op spec is
built in float64, its forward and its backward (with ones) are compared with
``torch`` element by element.

NaN agrees with NaN, an infinity with the same infinity, numbers within a
relative 1e-7 (or both below 1e-290). Every other disagreement fails, unless
``CONVENTIONS`` lists it with its reason; a listed convention that no longer
disagrees anywhere fails too, so the table stays true. A new op of the table
is covered as soon as ``TORCH`` names its PyTorch counterpart (a test fails
until it does).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from layerc.compiler.ops_table import OPS
from test_ops_table import op_spec

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch

INF, NAN = math.inf, math.nan
EDGES = (0.0, -0.0, INF, -INF, NAN, 1e-300, -1e-300, 1e300, -1e300, 1.0, -0.5, 2.0)
# where ops change form, beyond the edges above
BOUNDARIES = {"relu6": (6.0,), "hardswish": (-3.0, 3.0), "hardsigmoid": (-3.0, 3.0), "log1p": (-1.0,),
              "tan": (math.pi / 2,), "round": (0.5, 1.5, -2.5), "lerp": (0.5, -0.5)}


@dataclass(frozen=True)
class Param:
    """A PyTorch function whose argument ``position`` is a Python number (no
    gradient there): it takes ``values`` only, and its gradient is not compared."""

    fn: Callable
    values: tuple
    position: int = 1


def _comparison(name):
    return lambda x, y: getattr(torch, name)(x, y).double()


TORCH = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "neg": torch.neg, "remainder": torch.remainder, "lerp": torch.lerp,
    "exp": torch.exp, "expm1": torch.expm1, "log": torch.log, "log2": torch.log2, "log1p": torch.log1p,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "erf": torch.erf, "erfc": torch.erfc, "ndtr": torch.special.ndtr, "logaddexp": torch.logaddexp,
    "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "trunc": torch.trunc, "sign": torch.sign,
    "relu": torch.relu, "abs": torch.abs, "relu6": F.relu6, "selu": F.selu, "softplus": F.softplus,
    "leaky_relu": Param(F.leaky_relu, (0.01, 0.2)), "elu": Param(F.elu, (1.0, 0.5)),
    "celu": Param(F.celu, (1.0, 2.0)),
    "logsigmoid": F.logsigmoid, "silu": F.silu, "mish": F.mish, "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid, "softsign": F.softsign,
    "maximum": torch.maximum, "minimum": torch.minimum, "clip": torch.clamp,
    "select": lambda c, a, b: torch.where(c != 0, a, b), "stop_gradient": lambda x: x.detach(),
    **{name: _comparison(name) for name in ("lt", "le", "gt", "ge", "eq", "ne")},
}


@dataclass(frozen=True)
class Convention:
    """Where layerc deliberately differs from PyTorch: ``output`` is "value" or
    "grad k" (the gradient of argument k), ``where`` picks the grid points.
    ``by_cpu``: PyTorch's own value there depends on the CPU it runs on, so
    the convention may agree with it on one machine (it is not stale there)."""

    ops: tuple
    output: str
    where: Callable
    reason: str
    by_cpu: bool = False


def _any_nan(*args):
    return np.any([np.isnan(a) for a in args], axis=0)


def _cancels(a, b, w):
    with np.errstate(all="ignore"):
        return np.abs(a + w * (b - a)) < 1e-12 * np.maximum(np.abs(a), np.abs(b))


def _huge_quotient(x, y):
    with np.errstate(all="ignore"):
        return np.isfinite(x) & np.isinf(x / y)


CONVENTIONS = (
    Convention(("relu",), "grad 0", _any_nan,
               "nan in: relu's gradient is (x > 0), 0 at nan; torch's mask is (x <= 0), 1 at nan"),
    Convention(("maximum", "minimum"), "grad 0", _any_nan,
               "nan in: the gradient goes where x wins (x > y, half at x == y), none at nan; torch gives 1"),
    Convention(("maximum", "minimum"), "grad 1", _any_nan, "as grad 0"),
    Convention(("elu", "celu", "selu", "hardswish"), "grad 0", _any_nan,
               "nan in: layerc's gradient takes the positive side's slope on every CPU (x <= 0 is false "
               "at nan); torch's does with AVX-512 and gives nan with AVX2 (its vectorized backward)",
               by_cpu=True),
    Convention(("lerp",), "value", _cancels,
               "a + w * (b - a) rounds the product (C11, no contraction); torch's build fuses it into "
               "an fma, which differs where the sum cancels (1 + 1e300 * -1e-300: 0 against -7.8e-17)"),
    Convention(("clip",), "grad 1", lambda x, lo, hi: (lo == hi) & (x < lo),
               "lo == hi above x: the value is min(lo, hi), and lo takes its gradient; torch gives it to "
               "neither bound, so clip(x, y, y) = y would have no gradient in y"),
    Convention(("remainder",), "value", _huge_quotient,
               "x / y overflows (1e300 % 1e-300): fmod gives the exact remainder; torch's vectorized "
               "loop gives nan (its scalar loop agrees with layerc)"),
    Convention(("remainder",), "grad 1", lambda x, y: np.isinf(y),
               "y = +-inf, x of the other sign: the divisor's gradient -floor(x / y) is read off x % y, "
               "-+inf there, giving nan; torch reads it off fmod(x, y) = x and gives 1 (x % y has no "
               "derivative there)"),
)


def grid(op: str) -> list:
    """The argument values: columns of equal length, one per argument."""
    points = EDGES + BOUNDARIES.get(op, ())
    columns = [points] * OPS[op].arity
    ref = TORCH[op]
    if isinstance(ref, Param):
        columns[ref.position] = ref.values
    rows = list(itertools.product(*columns))
    return [np.array(column, dtype=np.float64) for column in zip(*rows)]


def layerc_results(op: str, args: list) -> dict:
    size = len(args[0])
    module = op_spec(op, broadcast=False).build(C=size, dtype="float64")
    arrays = {f"x{k}": a.reshape(1, size) for k, a in enumerate(args)}
    results = {"value": module.forward(**arrays).numpy().ravel()}
    grads = module.backward(np.ones((1, size)))
    grads = grads if isinstance(grads, tuple) else (grads,)
    results.update((f"grad {k}", g.numpy().ravel()) for k, g in enumerate(grads))
    return results


def torch_results(op: str, args: list) -> dict:
    ref = TORCH[op]
    fn, fixed = (ref.fn, ref.position) if isinstance(ref, Param) else (ref, None)
    size = len(args[0])
    results = {"value": np.empty(size)} | {f"grad {k}": np.zeros(size) for k in range(len(args)) if k != fixed}
    # one call per value of a Python-number argument (all of them when there is none)
    for value in (np.unique(args[fixed]) if fixed is not None else [None]):
        rows = np.flatnonzero(args[fixed] == value) if fixed is not None else np.arange(size)
        tensors = [float(value) if k == fixed else torch.tensor(a[rows], requires_grad=True)
                   for k, a in enumerate(args)]
        out = fn(*tensors)
        if out.requires_grad:
            out.backward(torch.ones_like(out))
        results["value"][rows] = out.detach().numpy()
        for k, t in enumerate(tensors):
            if k != fixed and t.grad is not None:
                results[f"grad {k}"][rows] = t.grad.numpy()
    return results


def disagree(ours, theirs):
    same = (np.isnan(ours) & np.isnan(theirs)) | np.isclose(ours, theirs, rtol=1e-7, atol=1e-290)
    return ~same


# ops PyTorch has no function for, and where their edge values are checked instead
NO_TORCH = {"philox_uniform": "a counter-based generator of layerc's own: tests/test_dropout.py checks it "
                              "at these edges against its numpy reference"}


def test_every_op_has_a_torch_counterpart():
    assert not sorted(set(OPS) - set(TORCH) - set(NO_TORCH)), "name the PyTorch function of each new op in TORCH"
    assert not sorted(set(TORCH) - set(OPS))


@pytest.mark.parametrize("op", sorted(set(OPS) - set(NO_TORCH)))
def test_values_and_gradients_agree_with_torch_at_edges(op):
    args = grid(op)
    ours, theirs = layerc_results(op, args), torch_results(op, args)
    failures, used = [], set()
    for output, expected in theirs.items():
        bad = disagree(ours[output], expected)
        for k, c in enumerate(CONVENTIONS):
            if op in c.ops and c.output == output:
                excused = bad & c.where(*args)
                used.add(k) if excused.any() else None
                bad &= ~excused
        for i in np.flatnonzero(bad)[:8]:
            at = ", ".join(repr(float(a[i])) for a in args)
            failures.append(f"{op}({at}) {output}: layerc {ours[output][i]!r}, torch {expected[i]!r}")
    stale = [c.reason for k, c in enumerate(CONVENTIONS) if op in c.ops and k not in used and not c.by_cpu]
    assert not failures, "\n".join(failures)
    assert not stale, f"{op}: conventions that no longer disagree anywhere: {stale}"
