"""The inlined float functions of templates/module.c.j2 that ops print to
(compiler/ops_table.py): ``lc_tanhf``, ``lc_sigmoidf`` and the ops built on
them (silu, mish, the tanh-form GELU), ``lc_erff``. Their error in float32
ulps against float64 references over dense sweeps of float32 inputs, and their
edges (0, -0, +-inf, NaN, +-1e30, subnormals), at every vector width this
machine runs (the baseline level has no FMA)."""
import math

import numpy as np
import pytest

from layerc import Input, layer, ops
from layerc.runtime import isa

BETA2 = 2 * math.sqrt(2 / math.pi)


def _expit(x):
    e = np.exp(-np.abs(x))
    return np.where(x > 0, 1, e) / (1 + e)


def _erf(x):
    return np.vectorize(math.erf, otypes=[float])(x)


# op -> (float64 reference, the C helper its float kernel calls, sweep bound,
# ulps): the sweep covers [-bound, bound] where the result is a normal float
# (tails below: test_edges and test_deep_tails)
CASES = {
    "tanh": (np.tanh, "lc_tanhf(", 10.0, 2.5),
    "sigmoid": (_expit, "lc_sigmoidf(", 87.0, 4.0),
    "silu": (lambda x: x * _expit(x), "lc_sigmoidf(", 80.0, 4.5),
    # the sigmoid's argument 2u = 2 beta (x + kappa x^3) rounds (3 roundings), and
    # e^(2u) amplifies that by |2u| (4.2 at x = -2.5)
    "gelu_tanh": (lambda x: x * _expit(BETA2 * (x + 0.044715 * x ** 3)), "lc_sigmoidf(", 2.5, 12.0),
    # Abramowitz-Stegun's absolute error 1.5e-7 is 2.6 ulp of 0.52 (the small side's
    # polynomial ends at 0.5)
    "erf": (_erf, "lc_erff(", 4.0, 6.0),
}


def op_layer(op):
    return layer(type(f"Op_{op}", (), {"x": Input("N"), "forward": lambda x: ops.elementwise(op, x)}))


def _ulps(got, want):
    """|got - want| in units of the last place of ``want`` rounded to float32
    (subnormals: the subnormal spacing)."""
    with np.errstate(over="ignore"):
        rounded = np.abs(want.astype(np.float32))
    spacing = np.maximum(np.spacing(rounded).astype(np.float64), 2.0 ** -149)
    with np.errstate(invalid="ignore"):
        return np.where(got == want, 0, np.abs(got.astype(np.float64) - want) / spacing)    # infinities


def _built(op, level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    m = op_layer(op).build(dtype=np.float32)
    forward = m.source[m.source.index(f"int lc_op_{op}_forward_f32"):]
    assert CASES[op][1] in forward[:forward.index("\n}\n")]
    return m


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("op", sorted(CASES))
def test_within_a_few_ulps_over_a_dense_sweep(op, level, monkeypatch):
    """Every 997th float32 of [-bound, bound] (about 2 million per op)."""
    reference, _, bound, ulps = CASES[op]
    m = _built(op, level, monkeypatch)
    half = np.arange(0, np.float32(bound).view(np.uint32), 997, dtype=np.uint32).view(np.float32)
    x = np.concatenate([half, -half])
    u = _ulps(m.forward(x).numpy(), reference(x.astype(np.float64)))
    assert u.max() < ulps, f"{op}: {u.max():.2f} ulp at x = {x[u.argmax()]!r}"


EDGES = np.array([0, -0.0, np.inf, -np.inf, 1e30, -1e30, 1e-40, -1e-40, 1e-45, 3e-8, -3e-8, 88, -88,
                  100, -100, 9.1, -9.1, 0.625, -0.625, 0.62499994, 0.5, -0.5, 0.49999997], np.float32)


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("op", sorted(CASES))
def test_edges(op, level, monkeypatch):
    """Signed zeros keep their sign, NaN stays NaN, infinities and huge values
    give the limits, subnormals their own scale."""
    reference, _, _, ulps = CASES[op]
    m = _built(op, level, monkeypatch)
    got = m.forward(np.append(EDGES, np.nan).astype(np.float32)).numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        want = reference(EDGES.astype(np.float64))
    assert np.isnan(got[-1])
    got = got[:-1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
    # subnormal results of normal arguments: test_deep_tails
    finite = ~np.isnan(want) & ((np.abs(want) >= 2.0 ** -126) | (np.abs(EDGES) < 2.0 ** -126))
    assert (_ulps(got[finite], want[finite]) < ulps).all(), (op, EDGES[finite], got[finite], want[finite])
    zeros = want == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]), err_msg=op)


@pytest.mark.parametrize("op", ["sigmoid", "silu", "gelu_tanh"])
def test_deep_tails(op, monkeypatch):
    """Below the sweeps, down to where the values round to 0: no 1 + tanh u or
    1 + e^-x overflowing to give 0 or nan. Relative error within the float32
    rounding of the arguments (x * e^x, e^(2u) amplify it); subnormal results
    within a subnormal spacing per unit of |x| (the product rounds after e^x)."""
    reference = CASES[op][0]
    m = _built(op, isa.supported()[0], monkeypatch)
    x = -np.geomspace(2.5, 104, 20001).astype(np.float32)
    with np.errstate(under="ignore", over="ignore"):
        want = reference(x.astype(np.float64))
        x = x[np.abs(want) >= 2.0 ** -149]          # at least the smallest subnormal
        want = want[np.abs(want) >= 2.0 ** -149]
    got = m.forward(x).numpy().astype(np.float64)
    assert np.isfinite(got).all() and not (got * want < 0).any()
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=np.abs(x).max() * 2.0 ** -149)
