"""Instruction-set levels chosen when a library loads (runtime/isa.py, compiler/cc.py's ISA_FLAGS):
each level builds its own library, LAYERC_ISA forces a narrower one, and every
level computes the same results and gradients."""
import numpy as np
import pytest

import layerc
from layerc import Input, Param, check_grad, layer, ops
from layerc.compiler.cc import ISA_FLAGS, BuildOptions
from layerc.runtime import isa

RUNS = isa.supported()


@layer
class ExpProduct:
    """A packed contraction (its operand is an expression, not a matrix in memory) and libmvec's exp."""
    x = Input("N", "K")
    w = Param("K", "M", init="normal")

    def forward(x, w):
        N, K = x.shape
        K2, M = w.shape
        k = ops.reduce_axis(K, "k")
        return ops.compute((N, M), lambda n, m: ops.sum(ops.exp(x[n, k]) * w[k, m], over=k))


def test_the_widest_level_the_cpu_runs_is_chosen(monkeypatch):
    monkeypatch.delenv(isa.ENV, raising=False)
    assert isa.chosen() == RUNS[0]
    assert RUNS[-1] == "baseline"


def test_the_environment_forces_a_narrower_level(monkeypatch):
    for level in RUNS:
        monkeypatch.setenv(isa.ENV, level)
        assert isa.chosen() == level


def test_an_unknown_level_is_refused_and_one_the_cpu_lacks_is_not_loaded(monkeypatch):
    monkeypatch.setenv(isa.ENV, "sse9")
    with pytest.raises(ValueError, match="LAYERC_ISA='sse9': expected one of avx512, avx2, baseline"):
        isa.chosen()
    monkeypatch.setattr(isa, "supported", lambda: ("avx2", "baseline"))
    monkeypatch.setenv(isa.ENV, "avx512")
    with pytest.warns(RuntimeWarning, match="does not run it"):
        assert isa.chosen() == "avx2"


def test_no_level_is_tuned_to_the_cpu_at_hand():
    flags = BuildOptions().final_flags()
    assert not any(f.endswith("=native") for f in flags)
    assert all(not any(f.endswith("=native") for f in extra) for extra in ISA_FLAGS.values())


@pytest.mark.parametrize("level", RUNS)
def test_every_level_builds_its_own_library_with_the_same_results(monkeypatch, level):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 45)).astype(np.float32)
    monkeypatch.setenv(isa.ENV, level)
    layerc.manual_seed(0)
    module = ExpProduct.build(K=45, M=29)
    expected = np.exp(x.astype(np.float64)) @ module.w.numpy().astype(np.float64)
    got = module(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())
    for other in (lvl for lvl in RUNS if lvl != level):
        monkeypatch.setenv(isa.ENV, other)
        assert ExpProduct.build(K=45, M=29).so_path != module.so_path


@pytest.mark.parametrize("level", RUNS)
def test_gradients_agree_with_finite_differences_at_every_level(monkeypatch, level):
    monkeypatch.setenv(isa.ENV, level)
    assert check_grad(ExpProduct, N=3, K=4, M=5).ok
    conv = layerc.nn.Conv2DSpec
    assert check_grad(conv, N=2, C=3, H=6, W=5, O=4, CG=3, KH=3, KW=3, stride=(2, 1), padding=(1, 1),
                      dilation=(1, 2)).ok


# stride 1, padded, dilated, grouped, 1-D: shifted views of padded copies
# (compiler/shifted.py) in the forward and both gradients, tiles of each width
SHIFTED = [dict(C=8, O=9, CG=8, KH=3, KW=3, H=7, W=9, padding=(1, 1), dilation=(1, 1), groups=1),
           dict(C=16, O=16, CG=8, KH=3, KW=3, H=9, W=7, padding=(0, 1), dilation=(2, 1), groups=2),
           # unit kernel axes: a 1xK weight gradient is one product over channels and taps
           dict(C=8, O=9, CG=8, KH=1, KW=5, H=1, W=11, padding=(0, 2), dilation=(1, 1), groups=1),
           dict(C=8, O=9, CG=8, KH=5, KW=1, H=9, W=3, padding=(2, 0), dilation=(1, 1), groups=1)]


@pytest.mark.parametrize("level", RUNS)
@pytest.mark.parametrize("case", range(len(SHIFTED)))
def test_shifted_convolutions_agree_with_finite_differences_at_every_level(monkeypatch, level, case):
    monkeypatch.setenv(isa.ENV, level)
    check_grad(layerc.nn.Conv2DSpec, N=2, stride=(1, 1), **SHIFTED[case]).assert_ok()
    check_grad(layerc.nn.Conv1DSpec, N=2, C=8, O=9, CG=8, K=5, L=13, stride=(1,), padding=(2,), dilation=(1,),
               groups=1).assert_ok()


@pytest.mark.parametrize("level", RUNS)
def test_thin_products_agree_with_numpy_at_every_level(monkeypatch, level):
    """A batch of 3 through a weight whose every thread's block passes 1 MiB:
    the module's own thin kernels (dot products, in-place tiles) of each width."""
    monkeypatch.setenv(isa.ENV, level)
    rng = np.random.default_rng(1)
    module = layerc.nn.LinearSpec.build(I=2051, O=600, bias=False)
    x, gy = rng.standard_normal((3, 2051)).astype(np.float32), rng.standard_normal((3, 600)).astype(np.float32)
    w = module.weight.numpy().astype(np.float64)
    np.testing.assert_allclose(module.forward(x).numpy(), x @ w.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(module.backward(gy).numpy(), gy.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(module.weight.grad, gy.T.astype(np.float64) @ x, rtol=1e-4, atol=1e-4)
