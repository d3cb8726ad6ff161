"""LinearNoBias(input_size, output_size): y = x @ weight.T, weight [output_size, input_size].

Run: python examples/custom_layers/linear_no_bias.py
"""
import numpy as np

from layerc import Input, Param, check_grad, layer


@layer
class LinearNoBiasSpec:
    """y = x @ weight.T (no bias); weight is [out, in] as in torch.nn.Linear."""
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier")   # N(0, 2 / (in + out))

    def forward(x, weight):
        return x @ weight.T


def LinearNoBias(input_size, output_size, dtype=np.float32):
    """A compiled linear layer without bias: ``[N, input_size] -> [N, output_size]``."""
    return LinearNoBiasSpec.build(I=input_size, O=output_size, dtype=dtype)


LinearNoBias.spec = LinearNoBiasSpec


def check(verbose=False):
    layer_ = LinearNoBias(4, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w = layer_.weight.numpy()
    y = layer_.forward(x)
    assert y.shape == (5, 3)
    assert np.allclose(y.numpy(), x @ w.T, atol=1e-5)
    gy = rng.standard_normal((5, 3)).astype(np.float32)
    gx = layer_.backward(gy)
    assert np.allclose(gx.numpy(), gy @ w, atol=1e-5)
    assert np.allclose(layer_.weight.grad, gy.T @ x, atol=1e-5)
    if verbose:
        print("LinearNoBias(4, 3) on x[5, 4] -> y", y.shape)
        print("y =\n", y.numpy())
        print("weight.grad (= grad_output.T @ x) =\n", layer_.weight.grad)
    report = check_grad(LinearNoBiasSpec, N=3, I=5, O=7)
    assert report.ok, str(report)
    return report


def main():
    print(check(verbose=True))


if __name__ == "__main__":
    main()
