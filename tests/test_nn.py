"""Built-in layers (runtime.nn): float64 gradient checks of every spec on odd
sizes, and forward/gradients against torch.nn where torch is installed."""
import numpy as np
import pytest

from compiler import check_grad
from runtime import nn
from runtime.tensor import Tensor


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- Linear

@pytest.mark.parametrize("spec", [nn.LinearSpec, nn.LinearNoBiasSpec])
def test_linear_gradcheck(spec):
    check_grad(spec, N=3, I=5, O=7).assert_ok()


def test_linear3_gradcheck():
    check_grad(nn.Linear3Spec, B=2, N=3, I=5, O=7).assert_ok()


def test_linear_layout_and_init():
    layer = nn.Linear(13, 7)
    assert layer.weight.shape == (7, 13) and layer.bias.shape == (7,)
    bound = 1 / np.sqrt(13)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_tape_accumulates_into_shared_parameters():
    layer = nn.Linear(5, 3)
    x = Tensor(_rng().standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.weight.grad, np.tile(x.numpy().sum(0), (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(layer.bias.grad, np.full(3, 4.0))
    np.testing.assert_allclose(x.grad, np.tile(layer.weight.numpy().sum(0), (4, 1)), rtol=1e-5)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = _rng(1)
    for bias, shape in ((True, (3, 11)), (False, (3, 11)), (True, (2, 5, 11))):
        layer = nn.Linear(11, 6, bias=bias)
        ref = torch.nn.Linear(11, 6, bias=bias)
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(layer.weight.numpy()))
            if bias:
                ref.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        x = rng.standard_normal(shape).astype(np.float32)
        gy = rng.standard_normal(shape[:-1] + (6,)).astype(np.float32)
        y = layer(x)
        gx = layer.backward(gy)
        xt = torch.from_numpy(x).requires_grad_()
        yt = ref(xt)
        yt.backward(torch.from_numpy(gy))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-5, atol=1e-5)
        if bias:
            np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-5)
