"""A forward output that other outputs are computed from: its gradient is the
incoming grad_<output> plus what flows back from the other outputs."""
import numpy as np
import pytest

from layerc import Input, check_grad, layer, ops


@layer
class ExpTwice:
    x = Input("N", "C")

    def forward(x):
        e = ops.exp(x)
        return e, e * 2


@layer
class MeanAndSpread:
    x = Input("N", "C")

    def forward(x):
        m = ops.mean(x, axis=0, keepdims=True)
        return m, ops.sum((x - m) * (x - m), axis=0)


@layer
class SumAndSquare:
    x = Input("N", "C")

    def forward(x):
        s = ops.sum(x, axis=0)
        return s, s * s


@pytest.mark.parametrize("spec", [ExpTwice, MeanAndSpread, SumAndSquare], ids=lambda s: s.name)
def test_output_that_feeds_another_output(spec):
    report = check_grad(spec, N=4, C=3)
    assert report.ok, str(report)


def test_exp_twice_gradient_values():
    m = ExpTwice.build(C=2, dtype="float64")
    x = np.array([[0.0, 1.0]])
    m.forward(x)
    gx = m.backward(np.ones((1, 2)), np.ones((1, 2)))
    np.testing.assert_allclose(gx.numpy(), 3 * np.exp(x))
