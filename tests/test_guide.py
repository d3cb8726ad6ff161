"""The custom-layers guide's own tests, as the guide writes them: PReLU forward
and gradient, the integration test of a Sequential MLP, attention keeping its
shape, and the training loop."""
import importlib.util
import pathlib

import numpy as np
import pytest

from layerc import SGD, Sequential, Tensor, mse_loss
from layerc.nn import Linear

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "custom_layers"


def example(name):
    spec = importlib.util.spec_from_file_location(f"guide_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PReLU = example("prelu_activation").PReLU


def test_prelu_forward():
    layer = PReLU(num_features=1, init_value=0.25)
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=np.float32)
    output = layer.forward(x)
    np.testing.assert_array_almost_equal(output.numpy(), [-0.5, -0.25, 0.0, 1.0, 2.0])


def test_prelu_gradient():
    layer = PReLU(num_features=1, init_value=0.25)
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=np.float32)
    layer.forward(x)
    layer.backward(np.ones_like(x))
    assert layer.alpha.grad[0] == pytest.approx(-3.0)


def test_integration_sequential_mlp():
    model = Sequential([
        Linear(784, 256),
        PReLU(256),
        Linear(256, 128),
        PReLU(128),
        Linear(128, 10),
    ])
    x = np.random.default_rng(0).standard_normal((32, 784)).astype(np.float32)
    output = model.forward(x)
    assert output.shape == (32, 10)
    assert np.isfinite(output.numpy()).all()
    # and the whole model trains through the tape
    loss = mse_loss(output, Tensor(np.zeros((32, 10), np.float32)))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.slow
def test_attention_keeps_the_shape_at_the_guides_size():
    MultiHeadAttention = example("attention_layer").MultiHeadAttention
    layer = MultiHeadAttention(embed_dim=512, num_heads=8)
    x = np.random.default_rng(1).standard_normal((32, 100, 512)).astype(np.float32)
    assert layer.forward(x).shape == (32, 100, 512)


def test_training_changes_alpha():
    layer = PReLU()
    optimizer = SGD(lr=0.01)
    X, y = Tensor.randn(100, 10), Tensor.randn(100, 10)
    initial_alpha = layer.alpha[0]
    for _ in range(10):
        output = layer.forward(X)
        loss = mse_loss(output, y)
        loss.backward()
        optimizer.step(layer.parameters())
    assert layer.alpha[0] != initial_alpha
