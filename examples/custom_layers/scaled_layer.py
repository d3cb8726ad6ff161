"""ScaledLayer: y = x * scale, with one learnable scalar ``scale`` (initialized to 1.0).

The layer is a layerc spec; layerc derives its backward
(dL/dx = grad * scale, dL/dscale = sum(grad * x)) and compiles both to C.

Run: python examples/custom_layers/scaled_layer.py
"""
import numpy as np

from layerc import Input, Param, check_grad, layer


@layer
class ScaledLayerSpec:
    """y = x * scale; ``scale`` is a learnable scalar."""
    x = Input("N", "D")                  # both sizes free: any [N, D] input
    scale = Param(init=1.0)              # no sizes: a scalar parameter

    def forward(x, scale):
        return x * scale


def ScaledLayer(dtype=np.float32):
    """A compiled ``ScaledLayer`` module (``forward``, ``backward``, ``scale``)."""
    return ScaledLayerSpec.build(dtype=dtype)


ScaledLayer.spec = ScaledLayerSpec


def check(verbose=False):
    """Forward/backward against numpy and a float64 finite-difference check; returns the report."""
    layer_ = ScaledLayer()
    assert layer_.scale.numpy().shape == () and float(layer_.scale.numpy()) == 1.0
    layer_.scale.numpy()[...] = 1.5
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    y = layer_.forward(x)
    assert np.allclose(y.numpy(), x * 1.5)
    gy = np.ones_like(x)
    gx = layer_.backward(gy)
    assert np.allclose(gx.numpy(), 1.5 * gy)
    assert np.isclose(float(layer_.scale.grad), float((gy * x).sum()))
    if verbose:
        print("x =\n", x)
        print("y = x * scale (scale = 1.5) =\n", y.numpy())
        print("dL/dx for dL/dy = 1:\n", gx.numpy())
        print("scale.grad =", float(layer_.scale.grad), "(= sum of x)")
    report = check_grad(ScaledLayerSpec, N=3, D=5)
    assert report.ok, str(report)
    return report


def main():
    report = check(verbose=True)
    print(report)


if __name__ == "__main__":
    main()
