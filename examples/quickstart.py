"""layerc quickstart: declare a layer as a spec, compile it, run it, look at the
backward layerc derived, and check that backward against finite differences.

Run: python examples/quickstart.py
"""
import numpy as np

from layerc import Input, Param, check_grad, layer, ops


@layer
class PReLU:
    """PReLU(x) = max(0, x) + alpha * min(0, x), one alpha per feature."""
    x = Input("N", "C")                 # symbolic sizes; N stays free at run time
    alpha = Param("C", init=0.25)       # one learnable slope per feature

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


def main():
    # 1. build: trace -> IR -> derived backward -> C -> cffi (cached on disk) -> module
    m = PReLU.build(C=4)
    print("built", m, "with parameters", [name for name, _ in m.named_parameters()])

    # 2. forward on a numpy array (float32 by default)
    x = np.array([[-2.0, -1.0, 0.5, 3.0],
                  [1.0, -4.0, 2.0, -0.5]], dtype=np.float32)
    y = m.forward(x)
    print("\nx =\n", x)
    print("forward: y = PReLU(x) =\n", y.numpy())
    expected = np.maximum(x, 0) + 0.25 * np.minimum(x, 0)
    assert np.allclose(y.numpy(), expected), "forward disagrees with numpy"

    # 3. backward: gradient of the input, and alpha.grad accumulated on the parameter
    gx = m.backward(np.ones_like(x))
    print("\nbackward(ones): dL/dx =\n", gx.numpy())
    print("alpha.grad =", m.alpha.grad, "(per feature: the sum of the negative inputs)")
    assert np.allclose(m.alpha.grad, np.minimum(x, 0).sum(axis=0))

    # 4. the backward layerc derived, in math notation
    compiled = m.compiled
    print("\nforward, as traced:")
    print(_body(compiled.traced))
    print("\nderived backward (grad_<name> is dL/d<name>):")
    print(_body(compiled.derived))
    print("\n(m.compiled.explain() also shows the fused programs; m.source is the generated C)")

    # 5. finite-difference gradient check in float64
    report = check_grad(PReLU, N=3, C=5)
    print()
    print(report)
    assert report.ok, "gradient check failed"


def _body(program):
    from layerc.compiler import ir
    return "\n".join("  " + line for line in ir.format_program(program).splitlines() if not line.startswith("#"))


if __name__ == "__main__":
    main()
