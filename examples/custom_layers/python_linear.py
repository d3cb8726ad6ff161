"""CustomLinear as a plain Python ``Module`` of Tensor ops: no spec, no compile.

The guide's layer, ``y = x @ weight.T + bias``, written the way a torch user
would write it: the parameters are ``Tensor``s with ``requires_grad=True`` and
``forward`` uses Tensor operators. Each op runs in numpy and records its
backward on the tape (runtime/tensor_ops.py), so ``loss.backward()`` reaches
the parameters, and the module composes with compiled layers, losses and
optimizers. ``ResidualConv`` shows the same for ``relu(conv(x) + x)`` around a
compiled ``Conv2D``.

Compared with the spec version (``custom_linear.py``): it is initialized the
same way (``initialize("xavier", ...)`` from the seeded generator) and
trains to the same loss; the spec version runs compiled C, this one numpy.

Run: python examples/custom_layers/python_linear.py
"""
import numpy as np

from layerc import Adam, Module, Tensor, manual_seed, mse_loss
from layerc.gradcheck import numeric_gradient
from layerc.nn import Conv2D
from layerc.runtime.init import initialize
from layerc.runtime.tensor import no_grad
from layerc.runtime.tensor_ops import relu


class PythonLinear(Module):
    """``[N, input_size] -> [N, output_size]``, weight ``[out, in]`` (xavier), bias ``[out]`` (zeros)."""

    def __init__(self, input_size, output_size, dtype=np.float32):
        super().__init__()
        self.weight = Tensor(initialize("xavier", (output_size, input_size), dtype), requires_grad=True)
        self.bias = Tensor(np.zeros(output_size, dtype), requires_grad=True)

    def forward(self, x):
        return x @ self.weight.T + self.bias


class ResidualConv(Module):
    """``relu(conv(x) + x)``: a compiled convolution and two Tensor ops."""

    def __init__(self, channels, dtype=np.float32):
        super().__init__()
        self.conv = Conv2D(channels, channels, 3, padding=1, dtype=dtype)

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        return relu(self.conv(x) + x)


def train(layer, x, target, steps=20, lr=0.05):
    """``steps`` Adam steps on the mean squared error; the loss after each step."""
    opt = Adam(layer.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = mse_loss(layer(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def check(verbose=False):
    from custom_linear import CustomLinear                      # the spec version
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    target = rng.standard_normal((16, 3)).astype(np.float32)
    manual_seed(0)
    spec_layer = CustomLinear(4, 3)
    manual_seed(0)
    python_layer = PythonLinear(4, 3)
    assert np.array_equal(spec_layer.weight.numpy(), python_layer.weight.numpy())    # the same init
    spec_losses = train(spec_layer, x, target)
    python_losses = train(python_layer, x, target)
    diff = max(abs(a - b) for a, b in zip(spec_losses, python_losses))
    assert diff < 1e-5, (spec_losses, python_losses)
    assert python_losses[-1] < python_losses[0]

    # relu(conv(x) + x): the tape's input gradient against finite differences (float64)
    block = ResidualConv(2, dtype=np.float64)
    xr = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal(xr.shape)
    xt = Tensor(xr, requires_grad=True)
    (block(xt) * w).sum().backward()

    def value():
        with no_grad():
            return float((block(xr) * w).sum())
    fd_error = np.abs(xt.grad - numeric_gradient(value, xr)).max()
    assert fd_error < 1e-6, fd_error
    if verbose:
        print(f"CustomLinear, spec vs Python Tensor ops, 20 Adam steps: loss {spec_losses[0]:.5f} -> "
              f"{spec_losses[-1]:.5f} (spec) and {python_losses[-1]:.5f} (Python); max |difference| {diff:.1e}")
        print(f"relu(conv(x) + x): input gradient vs finite differences, max |error| {fd_error:.1e}")
        print("passed")
    return spec_losses, python_losses


def main():
    check(verbose=True)


if __name__ == "__main__":
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).parent))      # custom_linear, next to this file
    main()
