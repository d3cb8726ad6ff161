"""Tensor ops on the tape (runtime/tensor_ops.py): every op's value and
gradient against PyTorch and central finite differences in float64, plus the
tape's rules (broadcasting, no recording without requires_grad, dtypes).

Run: pytest -q tests/test_tensor_ops.py
"""
import numpy as np
import pytest

from layerc.gradcheck import numeric_gradient
from layerc.runtime import tensor_ops as F
from layerc.runtime.tensor import Tensor, no_grad

torch = pytest.importorskip("torch")

ANY, POSITIVE, AWAY_FROM_0 = "any", "positive", "away from 0"


def draw(rng, shape, domain):
    """Values in the op's domain, kept off kinks (relu, abs, clip, max ties)."""
    x = rng.uniform(0.3, 2.0, shape) * np.where(rng.random(shape) < 0.5, -1, 1)
    return np.abs(x) if domain == POSITIVE else x


# (name, layerc function, torch function, operand shapes, domain): one row per case
CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (4,)], ANY),
    ("radd", lambda a: 2.5 + a, lambda a: 2.5 + a, [(3, 4)], ANY),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [(3, 1), (1, 4)], ANY),
    ("rsub", lambda a: 1.0 - a, lambda a: 1.0 - a, [(5,)], ANY),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [(2, 3, 4), (3, 1)], ANY),
    ("rmul", lambda a: 3 * a, lambda a: 3 * a, [(5,)], ANY),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (4,)], AWAY_FROM_0),
    ("rdiv", lambda a: 2.0 / a, lambda a: 2.0 / a, [(3, 4)], AWAY_FROM_0),
    ("pow number", lambda a: a ** 3, lambda a: a ** 3, [(3, 4)], ANY),
    ("pow fractional", lambda a: a ** 0.5, lambda a: a ** 0.5, [(3, 4)], POSITIVE),
    ("pow negative integer", lambda a: a ** -2, lambda a: a ** -2, [(3, 4)], AWAY_FROM_0),
    ("pow tensor", lambda a, b: a ** b, lambda a, b: a ** b, [(3, 4), (4,)], POSITIVE),
    ("rpow", lambda a: 2.0 ** a, lambda a: 2.0 ** a, [(4,)], ANY),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 5)], ANY),
    ("matmul batched", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 5)], ANY),
    ("matmul broadcast batch", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)], ANY),
    ("matmul vector right", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)], ANY),
    ("matmul vector left", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (2, 4, 3)], ANY),
    ("matmul dot", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4,)], ANY),
    ("rmatmul", lambda a: np.ones((2, 3)) @ a, lambda a: torch.ones(2, 3, dtype=a.dtype) @ a, [(3, 4)], ANY),
    ("neg", lambda a: -a, lambda a: -a, [(3, 4)], ANY),
    ("T", lambda a: a.T, lambda a: a.permute(*reversed(range(a.ndim))), [(3, 4, 2)], ANY),
    ("transpose", lambda a: a.transpose(1, 0, 2), lambda a: a.permute(1, 0, 2), [(3, 4, 2)], ANY),
    ("transpose fn", lambda a: F.transpose(a, (2, 0, 1)), lambda a: a.permute(2, 0, 1), [(3, 4, 2)], ANY),
    ("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), [(2, 3, 4)], ANY),
    ("reshape -1", lambda a: a.reshape((-1, 2)), lambda a: a.reshape(-1, 2), [(2, 3, 4)], ANY),
    ("sum", lambda a: a.sum(), lambda a: a.sum(), [(3, 4)], ANY),
    ("sum axis", lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [(3, 4, 2)], ANY),
    ("sum axes keepdims", lambda a: a.sum(axis=(0, -1), keepdims=True),
     lambda a: a.sum(dim=(0, -1), keepdim=True), [(3, 4, 2)], ANY),
    ("mean", lambda a: a.mean(), lambda a: a.mean(), [(3, 4)], ANY),
    ("mean axis keepdims", lambda a: a.mean(axis=0, keepdims=True), lambda a: a.mean(dim=0, keepdim=True),
     [(3, 4)], ANY),
    ("max", lambda a: a.max(), lambda a: a.amax(), [(3, 4)], ANY),
    ("max axis", lambda a: a.max(axis=-1), lambda a: a.amax(dim=-1), [(3, 4)], ANY),
    ("max axes keepdims", lambda a: F.max(a, axis=(0, 2), keepdims=True),
     lambda a: a.amax(dim=(0, 2), keepdim=True), [(3, 4, 2)], ANY),
    ("exp", F.exp, torch.exp, [(3, 4)], ANY),
    ("log", F.log, torch.log, [(3, 4)], POSITIVE),
    ("sqrt", F.sqrt, torch.sqrt, [(3, 4)], POSITIVE),
    ("tanh", F.tanh, torch.tanh, [(3, 4)], ANY),
    ("sigmoid", F.sigmoid, torch.sigmoid, [(3, 4)], ANY),
    ("relu", F.relu, torch.relu, [(3, 4)], ANY),
    ("abs", F.abs, torch.abs, [(3, 4)], ANY),
    ("clip", lambda a: a.clip(-1.0, 1.0), lambda a: a.clamp(-1.0, 1.0), [(3, 4)], ANY),
    ("clip low", lambda a: F.clip(a, low=0.5), lambda a: a.clamp(min=0.5), [(3, 4)], ANY),
    ("maximum", F.maximum, torch.maximum, [(3, 4), (4,)], ANY),
    ("minimum", F.minimum, torch.minimum, [(3, 4), (3, 1)], ANY),
    ("exp method", lambda a: a.exp(), torch.exp, [(3,)], ANY),
    ("log method", lambda a: a.log(), torch.log, [(3,)], POSITIVE),
    ("sqrt method", lambda a: a.sqrt(), torch.sqrt, [(3,)], POSITIVE),
    ("tanh method", lambda a: a.tanh(), torch.tanh, [(3,)], ANY),
    ("sigmoid method", lambda a: a.sigmoid(), torch.sigmoid, [(3,)], ANY),
    ("relu method", lambda a: a.relu(), torch.relu, [(3,)], ANY),
    ("abs operator", lambda a: abs(a), torch.abs, [(3,)], ANY),
    ("slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 5)], ANY),
    ("slice int, ellipsis, newaxis", lambda a: a[..., 1, None], lambda a: a[..., 1, None], [(2, 3, 4)], ANY),
    ("integer array index", lambda a: a[[0, 2, 0]], lambda a: a[[0, 2, 0]], [(3, 4)], ANY),
]


@pytest.mark.parametrize("name, fn, torch_fn, shapes, domain", CASES, ids=[c[0] for c in CASES])
def test_op_value_and_gradient_vs_torch_and_finite_differences(name, fn, torch_fn, shapes, domain):
    rng = np.random.default_rng(len(name))
    arrays = [draw(rng, s, domain) for s in shapes]
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    torch_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    torch_out = torch_fn(*torch_in)
    np.testing.assert_allclose(out.numpy(), torch_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert out.dtype == np.float64
    weights = rng.standard_normal(out.shape)
    out.backward(weights)
    torch_out.backward(torch.tensor(weights))

    def loss():
        with no_grad():
            return float(np.sum(fn(*[Tensor(a) for a in arrays]).numpy() * weights))

    for k, (t, a, ta) in enumerate(zip(tensors, arrays, torch_in)):
        assert t.grad.shape == a.shape and t.grad.dtype == np.float64
        np.testing.assert_allclose(t.grad, ta.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"operand {k} vs torch")
        np.testing.assert_allclose(t.grad, numeric_gradient(loss, a), rtol=1e-6, atol=1e-7,
                                   err_msg=f"operand {k} vs finite differences")


def test_every_op_of_the_table_is_tested():
    tested = {"add", "sub", "mul", "div", "pow", "pow_scalar", "matmul", "neg", "transpose", "reshape", "sum", "mean", "max",
              "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "clip", "maximum", "minimum", "getitem"}
    assert set(F.OPS) == tested


def test_float32_stays_float32_with_numbers_and_float64_arrays():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = (2.0 * x + np.ones(3)) / 3 - 1 ** x
    assert y.dtype == np.float32 and (x ** 2).dtype == np.float32 and (x ** 0.5).dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, np.full((2, 3), 2 / 3), rtol=1e-6)


def test_tensors_without_requires_grad_record_nothing():
    a, b = Tensor(np.ones(3)), Tensor(np.ones(3))
    assert (a * b + 1).exp().sum().node is None
    x = Tensor(np.ones(3), requires_grad=True)
    assert (x * b).node is not None
    with no_grad():
        assert F.relu(x @ x).node is None
    with pytest.raises(RuntimeError, match="not on the tape"):
        (a * b).sum().backward()


def test_a_tensor_used_by_several_ops_accumulates():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    (x * x + F.tanh(x) * x.exp() - x.sum()).sum().backward()
    v = x.numpy()
    expected = 2 * v + (1 - np.tanh(v) ** 2) * np.exp(v) + np.tanh(v) * np.exp(v) - 3
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_sigmoid_is_finite_at_large_magnitudes():
    x = Tensor(np.array([-800.0, 0.0, 800.0]), requires_grad=True)
    y = F.sigmoid(x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.25, 0.0])


def test_max_ties_share_the_gradient_as_torch_amax():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.max(axis=1).sum().backward()
    tx.amax(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy())


def test_kinks_follow_torch():
    a = np.array([-1.0, 0.0, 1.0])
    for fn, tfn in [(F.relu, torch.relu), (F.abs, torch.abs), (lambda t: t.clip(0.0, 1.0), lambda t: t.clamp(0, 1))]:
        x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        fn(x).sum().backward()
        tfn(tx).sum().backward()
        np.testing.assert_array_equal(x.grad, tx.grad.numpy())


def test_python_custom_linear_trains_to_the_spec_versions_loss(monkeypatch):
    """examples/custom_layers/python_linear.py: the guide's CustomLinear as
    Tensor ops, same init, data and Adam steps as the compiled spec version."""
    import importlib.util
    import pathlib
    folder = pathlib.Path(__file__).resolve().parent.parent / "examples" / "custom_layers"
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location("layerc_example_python_linear", folder / "python_linear.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    spec_losses, python_losses = example.check()
    np.testing.assert_allclose(python_losses, spec_losses, rtol=1e-5, atol=1e-6)
    assert python_losses[-1] < 0.5 * python_losses[0]
