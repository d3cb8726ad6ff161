"""CustomLinear(input_size, output_size): a linear layer whose backward is
written by the user, as in the guide:

    grad_input  = grad_output @ weight
    grad_weight = grad_output.T @ input
    grad_bias   = grad_output.sum(axis=0)

A spec that defines ``backward`` gets it compiled instead of the derived one.
layerc still derives its own backward and can verify the user's against it and
against finite differences: ``build(..., checked=True)`` (or
``LAYERC_CHECK_BACKWARD=1``) does so when the module is built, ``layerc check``
always does, and ``layerc.backward_check.verify_backward`` returns the report.

Run: python examples/custom_layers/custom_linear.py
"""
import numpy as np

from layerc import Input, Param, check_grad, layer
from layerc.backward_check import verify_backward


@layer
class CustomLinearSpec:
    """y = x @ weight.T + bias, with a hand-written backward."""
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier")     # randn * sqrt(2 / (in + out)), as in the guide
    bias = Param("O", init="zeros")

    def forward(x, weight, bias):
        return x @ weight.T + bias

    def backward(grad_output, x, weight):
        # parameters by name: grad_output, output, and the spec's inputs/params/attrs
        return {"x": grad_output @ weight,              # [N, O] @ [O, I] -> [N, I]
                "weight": grad_output.T @ x,            # [O, N] @ [N, I] -> [O, I]
                "bias": grad_output.sum(axis=0)}        # [O]


def CustomLinear(input_size, output_size, dtype=np.float32, checked=None):
    """A compiled ``[N, input_size] -> [N, output_size]`` layer running the user's backward.
    ``checked=True`` verifies that backward when building."""
    return CustomLinearSpec.build(I=input_size, O=output_size, dtype=dtype, checked=checked)


CustomLinear.spec = CustomLinearSpec


def check(verbose=False):
    layer_ = CustomLinear(4, 3, checked=True)           # verified once at build
    rng = np.random.default_rng(2)
    layer_.bias.numpy()[...] = [0.1, 0.2, 0.3]
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
        from layerc.compiler import ir
        print("CustomLinear(4, 3) on x[5, 4] -> y", y.shape)
        print("the user-written backward, as compiled:")
        print("\n".join("  " + line for line in ir.format_program(layer_.compiled.user_backward).splitlines()
                        if not line.startswith("#")))
    verified = verify_backward(CustomLinearSpec, I=5, O=7, N=3)     # odd sizes
    assert verified.ok, str(verified)
    report = check_grad(CustomLinearSpec, N=3, I=5, O=7)             # checks the user's backward
    assert report.ok, str(report)
    return [verified, report]


def main():
    for report in check(verbose=True):
        print(report)


if __name__ == "__main__":
    main()
