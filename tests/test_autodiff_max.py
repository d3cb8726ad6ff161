"""The gradient of a max reduction over a libm function (``max(sin(x))``)
reaches its maximal element whichever loops the forward and the backward
evaluate the function in.

Fusion recomputes ``sin(x)`` wherever it is read; gcc vectorizes one loop
(libmvec) and not another (scalar libm), and the two can differ by an ulp: the
backward's argmax test, the recomputed value against the forward's maximum,
then failed for every element of a row and the gradient vanished (at the avx2
and baseline levels, for about half the rows). The backward now stores the
values once and takes both their maximum and its argmax from memory."""
import numpy as np
import pytest

from layerc import Input, check_grad, layer, ops
from layerc.compiler.autodiff import gradient_program
from layerc.runtime import isa

torch = pytest.importorskip("torch")

LENGTH = 1003      # long enough for the reduction to take the vector path, with a scalar tail


@layer
class MaxOfSine:
    x = Input("N", "L")

    def forward(x):
        return ops.max(ops.sin(x) * 3.0, axis=1)


@layer
class MinOfExp:
    x = Input("N", "L")

    def forward(x):
        return ops.min(ops.exp(x), axis=-1)


@layer
class RowMax:
    x = Input("N", "L")

    def forward(x):
        return ops.max(x, axis=1)


TORCH = {MaxOfSine: lambda t: torch.sin(t).mul(3.0).max(dim=1).values,
         MinOfExp: lambda t: torch.exp(t).min(dim=-1).values}


def test_the_argmax_is_taken_from_stored_values_only_when_libm_is_recomputed():
    stored = {s.name.split("_")[0] for s in gradient_program(MaxOfSine.trace(L=5)).stages}
    assert {"values", "top", "first"} <= stored
    plain = gradient_program(RowMax.trace(L=5))
    assert not any(s.scatter_index for s in plain.stages)     # a pool reads its input as is


@pytest.mark.torch
@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("spec", [MaxOfSine, MinOfExp])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_row_keeps_its_gradient_at_every_instruction_set_level(spec, dtype, level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    m = spec.build(L=LENGTH, dtype=dtype)
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, (64, LENGTH))
    g = rng.uniform(0.5, 1.5, 64)
    m.forward(x=x.astype(dtype))
    got = m.backward(g.astype(dtype)).numpy()
    t = torch.tensor(x, requires_grad=True)
    TORCH[spec](t).backward(torch.tensor(g))
    want = t.grad.numpy()
    assert (np.count_nonzero(got, axis=1) == 1).all()
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    else:
        # float32 rounds near-equal values together: the first of them takes the gradient
        picked, best = np.argmax(got != 0, axis=1), np.argmax(want != 0, axis=1)
        values = np.sin(x) if spec is MaxOfSine else -np.exp(x)
        rows = np.arange(len(x))
        np.testing.assert_allclose(values[rows, picked], values[rows, best], rtol=1e-6)


def test_max_over_a_libm_function_passes_the_gradient_check():
    check_grad(MaxOfSine, N=3, L=LENGTH).assert_ok()
    check_grad(MinOfExp, N=2, L=37).assert_ok()
