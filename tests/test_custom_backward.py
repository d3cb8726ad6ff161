"""User-written backward passes (compiler/custom_backward.py): tracing into a
backward Program with the derived backward's conventions, running instead of
the derived backward, and verification (verify_backward, checked builds) that
names the wrong tensor."""
import os
import subprocess
import sys
import numpy as np
import pytest

from layerc import Input, Param, SpecError, check_grad, layer, ops
from layerc.backward_check import BackwardMismatch, verify_backward


@layer
class UserLinear:
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier")
    bias = Param("O")

    def forward(x, weight, bias):
        return x @ weight.T + bias

    def backward(grad_output, x, weight):
        return {"x": grad_output @ weight, "weight": grad_output.T @ x, "bias": grad_output.sum(axis=0)}


@layer
class WrongBiasLinear:
    """Deliberately wrong: the bias gradient is a mean instead of a sum."""
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier")
    bias = Param("O")

    def forward(x, weight, bias):
        return x @ weight.T + bias

    def backward(grad_output, x, weight):
        return {"x": grad_output @ weight, "weight": grad_output.T @ x, "bias": grad_output.mean(axis=0)}


@layer
class WrongInputLinear:
    """Deliberately wrong: the input gradient uses the transposed product order."""
    x = Input("N", "I")
    weight = Param("I", "I", init="xavier")

    def forward(x, weight):
        return x @ weight.T

    def backward(grad_output, x, weight):
        return grad_output @ weight.T, grad_output.T @ x


def test_program_follows_the_derived_conventions():
    m = UserLinear.build(I=5, O=3)
    user, derived = m.compiled.user_backward, m.compiled.derived
    assert user is not None
    assert user.name == derived.name == "UserLinear_backward"
    assert user.outputs == derived.outputs == ("grad_x", "grad_weight", "grad_bias")
    forward_decls = m.compiled.traced.tensors
    assert user.tensors[:len(forward_decls)] == forward_decls
    grads = [t for t in user.tensors if t.role == "grad"]
    assert [t.name for t in grads] == ["grad_" + m.compiled.traced.outputs[0]]
    # no backward stage takes the name of a forward stage or tensor
    forward_names = {s.name for s in m.compiled.traced.stages} | {t.name for t in forward_decls}
    assert not forward_names & {s.name for s in user.stages}


def test_user_backward_matches_numpy_and_finite_differences():
    m = UserLinear.build(I=4, O=3, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, gy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    m.forward(x)
    gx = m.backward(gy)
    w = m.weight.numpy()
    np.testing.assert_allclose(gx.numpy(), gy @ w, rtol=1e-12)
    np.testing.assert_allclose(m.weight.grad, gy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(m.bias.grad, gy.sum(axis=0), rtol=1e-12)
    report = check_grad(UserLinear, N=3, I=5, O=7)
    assert report.ok, str(report)
    verified = verify_backward(UserLinear, N=3, I=5, O=7)
    assert verified.ok, str(verified)
    assert set(verified.derived) == {"x", "weight", "bias"}
    assert max(verified.derived.values()) < 1e-12


def test_the_module_runs_the_user_backward_not_the_derived_one():
    m = WrongBiasLinear.build(I=4, O=3, dtype=np.float64, checked=False)     # opted out: it builds
    x = np.ones((4, 4))
    m.forward(x)
    m.backward(np.ones((4, 3)))
    np.testing.assert_allclose(m.bias.grad, np.ones(3))        # the (wrong) mean, not the sum 4
    report = check_grad(WrongBiasLinear, N=3, I=5, O=7)
    assert not report.ok
    assert report.errors["bias"] > 0.1 and report.errors["x"] < 1e-6 and report.errors["weight"] < 1e-6


def test_wrong_backward_report_names_the_tensor():
    report = verify_backward(WrongBiasLinear, N=3, I=5, O=7)
    assert not report.ok
    assert report.wrong() == ["bias"]
    assert report.derived["bias"] > 0.1 and report.finite_differences["bias"] > 0.1
    text = str(report)
    assert "grad bias" in text and "WRONG" in text and "FAILED: the user-written gradient of bias is wrong" in text
    with pytest.raises(BackwardMismatch, match="gradient of bias is wrong"):
        report.assert_ok()

    other = verify_backward(WrongInputLinear, N=3, I=4)
    assert other.wrong() == ["x"]


def test_checked_build_raises_on_a_wrong_backward_and_passes_a_right_one():
    with pytest.raises(BackwardMismatch) as info:
        WrongBiasLinear.build(I=5, O=3, checked=True)
    assert "bias" in str(info.value) and "WrongBiasLinear" in str(info.value)
    m = UserLinear.build(I=5, O=3, checked=True)
    assert m.forward(np.ones((2, 5), np.float32)).shape == (2, 3)
    # unchecked builds do not verify
    WrongBiasLinear.build(I=5, O=3, checked=False)


def test_a_wrong_backward_fails_its_first_build_unless_opted_out(monkeypatch):
    @layer
    class EnvWrong:
        x = Input("N")

        def forward(x):
            return x * x

        def backward(grad_output, x):
            return grad_output * x          # missing the factor 2

    monkeypatch.delenv("LAYERC_CHECK_BACKWARD", raising=False)
    with pytest.raises(BackwardMismatch, match="gradient of x is wrong"):
        EnvWrong.build()                    # checked by default
    EnvWrong.build(checked=False)
    monkeypatch.setenv("LAYERC_CHECK_BACKWARD", "0")
    EnvWrong.build(dtype=np.float64)


WARM = """
import sys
sys.path.insert(0, sys.argv[1])
from layerc import backward_check
import user_layers
user_layers.Tripled.build(C=3)
print(backward_check.verifications())
"""


def test_a_correct_backward_is_verified_once_and_a_warm_start_pays_nothing(tmp_path):
    (tmp_path / "user_layers.py").write_text(
        "from layerc import Input, layer\n\n\n@layer\nclass Tripled:\n    x = Input('N', 'C')\n\n"
        "    def forward(x):\n        return x * 3.0\n\n"
        "    def backward(grad_output):\n        return grad_output * 3.0\n")
    env = {**os.environ, "LAYERC_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("LAYERC_CHECK_BACKWARD", None)
    runs = [subprocess.run([sys.executable, "-c", WARM, str(tmp_path)], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert [r.stdout.split()[-1] for r in runs] == ["1", "0"]


def test_output_parameter_and_saved_forward_values():
    @layer
    class UserSigmoid:
        x = Input("N", "C")

        def forward(x):
            return ops.sigmoid(x)

        def backward(grad_output, output):
            return grad_output * output * (1 - output)

    m = UserSigmoid.build(C=4, dtype=np.float64)
    assert "saved" in {t.role for t in m.compiled.user_backward.tensors}
    x = np.linspace(-2, 2, 8).reshape(2, 4)
    y = m.forward(x).numpy()
    gx = m.backward(np.ones_like(x)).numpy()
    np.testing.assert_allclose(gx, y * (1 - y), rtol=1e-12)
    assert verify_backward(UserSigmoid, C=4).ok


def test_integer_targets_in_a_user_backward():
    @layer
    class UserCrossEntropy:
        x = Input("N", "C")
        t = Input("N", dtype="int64")

        def forward(x, t):
            N, C = x.shape
            lp = ops.log_softmax(x, axis=1)
            return -ops.mean(ops.compute((N,), lambda n: lp[n, t[n]]))

        def backward(grad_output, x, t):
            N, C = x.shape
            onehot = ops.compute((N, C), lambda n, c: (c >= t[n]) * (c <= t[n]))
            return grad_output * (ops.softmax(x, axis=1) - onehot) / N

    targets = {"t": [0, 4, 2]}
    report = verify_backward(UserCrossEntropy, N=3, C=5, inputs=targets)
    assert report.ok, str(report)
    assert check_grad(UserCrossEntropy, N=3, C=5, inputs=targets).ok


def test_tuple_return_several_outputs_and_zero_gradients():
    @layer
    class TwoOutputs:
        x = Input("N")
        w = Param("N", init=0.5)

        def forward(x, w):
            return x * w, x * x

        def backward(grad_output, x, w):
            g1, g2 = grad_output
            return g1 * w + 2.0 * g2 * x, g1 * x

    assert verify_backward(TwoOutputs, N=5).ok
    assert check_grad(TwoOutputs, N=5).ok

    @layer
    class Frozen:
        x = Input("N")
        b = Param("N", init=1.0)

        def forward(x, b):
            return x * 3.0 + b * 0.0            # b does not change the output

        def backward(grad_output):
            return {"x": grad_output * 3.0, "b": None}      # None: a zero gradient

    m = Frozen.build(N=3, dtype=np.float64)
    m.forward(np.ones(3))
    np.testing.assert_array_equal(m.backward(np.ones(3)).numpy(), [3, 3, 3])
    np.testing.assert_array_equal(m.b.grad, [0, 0, 0])
    assert verify_backward(Frozen, N=3).ok

    @layer
    class Identity:
        x = Input("N")
        y = Input("N")

        def forward(x, y):
            return x + y

        def backward(grad_output):
            return grad_output, grad_output             # a declared tensor returned twice

    assert verify_backward(Identity, N=4).ok


def _expect_error(match, **members):
    cls = type("Bad", (), {"x": Input("N", "C"), "w": Param("C"), **members})
    spec = layer(cls)
    with pytest.raises(SpecError, match=match):
        spec.build(C=3)


def test_spec_errors_name_the_problem():
    def forward(x, w):
        return x * w
    _expect_error("gives no gradient for w", forward=forward,
                  backward=lambda grad_output, w: {"x": grad_output * w})
    _expect_error("'bogus'.*not differentiable", forward=forward,
                  backward=lambda grad_output, w, x: {"x": grad_output * w, "w": x.sum(axis=0), "bogus": x})
    _expect_error(r"gradient of w has shape \(N, 3\) but w has shape \(3,\)", forward=forward,
                  backward=lambda grad_output, w, x: {"x": grad_output * w, "w": grad_output * x})
    _expect_error("returns 1 gradient", forward=forward, backward=lambda grad_output: grad_output)
    _expect_error("takes 'dy'", forward=forward, backward=lambda dy: (dy, dy))


def test_verify_backward_needs_a_user_backward():
    @layer
    class Plain:
        x = Input("N")

        def forward(x):
            return x * 2.0

    with pytest.raises(ValueError, match="no user-written backward"):
        verify_backward(Plain, N=3)
