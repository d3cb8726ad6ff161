"""The inlined float functions of templates/module.c.j2 that ops print to
(compiler/ops_table.py), ``lc_erff``, ``lc_erfcf`` and ``lc_ndtrf`` (the GELU's), and the
tanh-form GELU written as ``x * sigmoid(2u)``: their error in float32 ulps
against float64 references over dense sweeps of float32 inputs, their edges
(0, -0, +-inf, NaN, +-1e30, subnormals) and negative tails, at every vector
width this machine runs (the baseline level has no FMA)."""
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


def _erfc(x):
    return np.vectorize(math.erfc, otypes=[float])(x)


# op -> (float64 reference, what its float kernel calls, sweep bound, ulps):
# the sweep covers [-bound, bound] (further out: test_edges, test_deep_tails)
CASES = {
    # Abramowitz-Stegun's absolute error 1.5e-7 is 2.6 ulp of 0.52 (the small side's
    # polynomial ends at 0.5)
    "erf": (_erf, "lc_erff(", 4.0, 6.0),
    # further out the rounding of x^2 is amplified by x^2 without FMA (the baseline
    # level): test_deep_tails
    "erfc": (_erfc, "lc_erfcf(", 4.0, 16.0),
    "ndtr": (lambda x: 0.5 * _erfc(-x / math.sqrt(2)), "lc_ndtrf(", 5.0, 16.0),
    "gelu": (lambda x: 0.5 * x * _erfc(-x / math.sqrt(2)), "lc_ndtrf(", 5.0, 16.0),
    # the sigmoid's argument 2u = 2 beta (x + kappa x^3) rounds (3 roundings), and
    # e^(2u) amplifies that by |2u| (4.2 at x = -2.5)
    "gelu_tanh": (lambda x: x * _expit(BETA2 * (x + 0.044715 * x ** 3)), "expf(", 2.5, 12.0),
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
    reference, _, bound, ulps = CASES[op]
    m = _built(op, level, monkeypatch)
    got = m.forward(np.append(EDGES, np.nan).astype(np.float32)).numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        want = reference(EDGES.astype(np.float64))
    assert np.isnan(got[-1])
    got = got[:-1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
    # beyond the sweep, the tails: test_deep_tails
    finite = ~np.isnan(want) & ((np.abs(EDGES) <= bound) | (np.abs(want) == 1) | (want == 0))
    assert (_ulps(got[finite], want[finite]) < ulps).all(), (op, EDGES[finite], got[finite], want[finite])
    zeros = want == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]), err_msg=op)


@pytest.mark.parametrize("op", ["gelu", "gelu_tanh"])
def test_deep_tails(op, monkeypatch):
    """Below the sweeps, down to 1e-36: no 1 + erf or
    1 + tanh cancelling to give 0. Relative error within the float32 rounding
    of the arguments (amplified by e^(-x^2 / 2), e^(2u))."""
    reference = CASES[op][0]
    m = _built(op, isa.supported()[0], monkeypatch)
    x = -np.geomspace(2.5, 104, 20001).astype(np.float32)
    with np.errstate(under="ignore", over="ignore"):
        want = reference(x.astype(np.float64))
        x = x[np.abs(want) >= 1e-36]                # e^(-2u) overflows below
        want = want[np.abs(want) >= 1e-36]
    got = m.forward(x).numpy().astype(np.float64)
    assert np.isfinite(got).all() and not (got * want < 0).any()
    np.testing.assert_allclose(got, want, rtol=3e-5)


@pytest.mark.parametrize("level", isa.supported())
def test_gelu_gradient_reads_the_cdf_back_from_the_output(level, monkeypatch):
    """GELU's backward takes Phi(x) as y / x from the forward's output (1/2 at
    0), not from lc_ndtr again: over a dense sweep, the deep tail and 0, the
    gradient is the float64 derivative within float32 rounding."""
    m = _built("gelu", level, monkeypatch)
    backward = m.source[m.source.index("int lc_op_gelu_backward_f32"):]
    assert "lc_ndtrf(" not in backward[:backward.index("\n}\n")]
    x = np.concatenate([np.linspace(-12, 12, 200001), -np.geomspace(12, 40, 2001), [0.0, -0.0, 1e-40]])
    x = x.astype(np.float32)
    m.forward(x)
    got = m.backward(np.ones_like(x)).numpy().astype(np.float64)
    wide = x.astype(np.float64)
    want = 0.5 * _erfc(-wide / math.sqrt(2)) + wide * np.exp(-0.5 * wide * wide) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-7)
