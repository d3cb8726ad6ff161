"""Linear(input_size, output_size): y = x @ weight.T + bias, weight [out, in], bias [out]
(the layouts of torch.nn.Linear).

Run: python examples/custom_layers/linear.py
"""
import numpy as np

from layerc import Input, Param, check_grad, layer


@layer
class LinearSpec:
    """y = x @ weight.T + bias."""
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier")
    bias = Param("O", init="zeros")

    def forward(x, weight, bias):
        return x @ weight.T + bias


def Linear(input_size, output_size, dtype=np.float32):
    """A compiled linear layer: ``[N, input_size] -> [N, output_size]``."""
    return LinearSpec.build(I=input_size, O=output_size, dtype=dtype)


Linear.spec = LinearSpec


def check(verbose=False):
    layer_ = Linear(4, 3)
    layer_.bias.numpy()[...] = [0.5, -1.0, 2.0]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w, b = layer_.weight.numpy(), layer_.bias.numpy()
    y = layer_.forward(x)
    assert np.allclose(y.numpy(), x @ w.T + b, atol=1e-5)
    gy = rng.standard_normal((5, 3)).astype(np.float32)
    gx = layer_.backward(gy)
    assert np.allclose(gx.numpy(), gy @ w, atol=1e-5)
    assert np.allclose(layer_.weight.grad, gy.T @ x, atol=1e-5)
    assert np.allclose(layer_.bias.grad, gy.sum(axis=0), atol=1e-5)
    if verbose:
        print("Linear(4, 3) on x[5, 4] -> y", y.shape)
        print("y =\n", y.numpy())
        print("bias.grad (= grad_output.sum(axis=0)) =", layer_.bias.grad)
    report = check_grad(LinearSpec, N=3, I=5, O=7)
    assert report.ok, str(report)
    return report


def main():
    print(check(verbose=True))


if __name__ == "__main__":
    main()
