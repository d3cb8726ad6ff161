"""compiler/cprint.py, Printer.reciprocals: a division along a loop by a value
that does not change along it multiplies by a reciprocal computed outside the
loop, scaled so that it is a normal number. Checked by the C it prints, then
against numpy's division on divisors and dividends at every edge."""
import numpy as np
import pytest

from layerc import Input, layer
from layerc.compiler.cprint import Printer
from layerc.compiler.ir import Call, IConst, ISym, IVar, Load


@layer
class RowQuotient:
    """Each row divided by its own divisor."""
    x = Input("N", "K")
    d = Input("N", 1)

    def forward(x, d):
        return x / d


def test_a_division_by_a_loop_invariant_multiplies_by_its_reciprocal_outside_the_loop():
    printer = Printer({"x": (ISym("N"), ISym("K")), "d": (ISym("N"),)}, {"i": ISym("N"), "k": ISym("K")}, "f32")
    x, d = Load("x", (IVar("i"), IVar("k"))), Load("d", (IVar("i"),))
    printer.value(Call("div", (Call("div", (x, d)), d)))
    invariant, variant = printer.hoist("k")
    assert [let.value for let in invariant] == ["T_d[v_i]", "lc_quotient_scalef(t1)", "(1.0f / (t1 * t2_s))"]
    assert [let.value for let in variant] == ["T_x[(v_i) * S_K + v_k]", "((t0 * t2_s) * t2_r)",
                                              "((t2 * t2_s) * t2_r)"]


def test_a_division_along_its_divisor_stays_a_division():
    printer = Printer({"x": (ISym("K"),)}, {"k": ISym("K")}, "f32")
    x = Load("x", (IVar("k"),))
    printer.value(Call("div", (Call("add", (x, x)), x)))
    _, variant = printer.hoist("k")
    assert variant[-1].value == "(t1 / t0)"


EDGES = [0.0, -0.0, 1e-45, -1e-39, 1e-30, 0.3, 1.0, -7.0, 1e30, 3e38, -3.4e38, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quotients_by_row_divisors_at_every_edge_agree_with_numpy(dtype):
    divisors = np.array(EDGES + ([1e-310, 1e-300, 1e300, 1.7e308] if dtype == np.float64 else []), dtype)
    with np.errstate(all="ignore"):
        x = np.tile(divisors, (len(divisors), 1))             # every dividend by every divisor
        x = np.concatenate([x, x * 3 + 1, x[:, :5]], axis=1).astype(dtype)      # and rows long enough for SIMD
        d = divisors[:, None]
        want = x / d
    got = RowQuotient.build(K=x.shape[1], dtype=dtype).forward(x, d).numpy()
    ulp = np.finfo(dtype).eps
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2 * ulp, atol=np.finfo(dtype).smallest_subnormal * 4)
