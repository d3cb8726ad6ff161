"""The inlined float exp (``lc_exp_inlinef``, templates/module.c.j2) that
every float ``exp`` compiles to: its error over a dense sweep of float32
inputs, and its edges (overflow to inf, underflow through the subnormals to 0,
infinities, NaN), at each vector width this machine runs."""
import numpy as np
import pytest

from layerc import Input, layer, ops
from layerc.runtime import isa


@layer
class Exp:
    x = Input("N")

    def forward(x):
        return ops.exp(x)


def _ulps(got, want):
    """|got - want| in units of the last place of ``want`` rounded to float32
    (subnormals: the subnormal spacing)."""
    rounded = np.abs(want.astype(np.float32)).astype(np.float64)
    spacing = np.maximum(np.spacing(rounded.astype(np.float32)).astype(np.float64), 2.0 ** -149)
    return np.abs(got.astype(np.float64) - want) / spacing


@pytest.mark.parametrize("level", isa.supported())
def test_exp_within_three_ulp_over_a_dense_sweep(level, monkeypatch):
    """Every 97th float32 from -104 to 89 (about 23 million): within 3.5 ulp
    of e^v (measured: 2.81 with FMA over every float of that range, 3.08
    without FMA, the baseline level, on this sweep)."""
    monkeypatch.setenv(isa.ENV, level)
    lo, hi = np.float32(-104).view(np.uint32), np.float32(89).view(np.uint32)
    negative = np.arange(np.uint32(0x80000000), lo, 97, dtype=np.uint32)
    positive = np.arange(0, hi, 97, dtype=np.uint32)
    x = np.concatenate([negative, positive]).view(np.float32)
    got = Exp.build(dtype=np.float32).forward(x).numpy()
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64))
        finite = np.isfinite(want.astype(np.float32))
    assert np.all(got[~finite] == np.inf)
    assert _ulps(got[finite], want[finite]).max() < 3.5


@pytest.mark.parametrize("level", isa.supported())
def test_exp_edges(level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    x = np.array([0, -0.0, 1, -1, 88.0, 88.72, 88.73, 89, 100, 1e30, np.inf, -87.3, -100, -103.9, -104, -1e30,
                  -np.inf, np.nan, 1e-30, -1e-45], np.float32)
    got = Exp.build(dtype=np.float32).forward(x).numpy()
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=4e-7, atol=2e-45)
    assert np.isnan(got[x != x]).all()
