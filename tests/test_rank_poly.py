"""Rank-polymorphic specs (``Input(..., "C")``: one compiled kernel for every
rank) and optional parameters (``Param(..., optional=True)``): forward against
numpy, backward against torch, float64 gradient checks at ranks 2, 3 and 4, the
errors, views and non-contiguous inputs."""
import importlib.util
import pathlib

import numpy as np
import pytest

from layerc import Attr, Input, Param, SpecError, Tensor, check_grad, layer, nn, ops
from layerc.nn.linear import LinearSpec

ROOT = pathlib.Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(11)
SHAPES = [(3, 4), (2, 3, 4), (2, 2, 3, 4)]        # ranks 2, 3 and 4, last axis 4


def _example(name):
    path = ROOT / "examples" / "custom_layers" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"layerc_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@layer
class PReLULast:
    """PReLU with one slope per feature of the last axis, any rank."""
    x = Input(..., "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.where(x > 0, x, alpha * x)


@layer
class RMSNorm:
    x = Input(..., "D")
    weight = Param("D", init="ones")
    eps = Attr(1e-6)

    def forward(x, weight, eps):
        return x / ops.sqrt(ops.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _rms_norm(x, weight, eps=1e-6):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


# ---------------------------------------------------------------- one spec, every rank

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"rank{len(s)}")
def test_prelu_one_spec_serves_every_rank(shape):
    m = PReLULast.build(C=4, dtype="float64")
    m.alpha.numpy()[...] = [0.1, 0.2, 0.3, 0.4]
    x = RNG.standard_normal(shape)
    y = m.forward(x)
    np.testing.assert_allclose(y.numpy(), np.where(x > 0, x, m.alpha.numpy() * x), rtol=1e-12)
    gy = RNG.standard_normal(shape)
    gx = m.backward(gy)
    assert gx.shape == shape
    np.testing.assert_allclose(gx.numpy(), np.where(x > 0, 1.0, m.alpha.numpy()) * gy, rtol=1e-12)
    np.testing.assert_allclose(m.alpha.grad, (np.minimum(x, 0) * gy).reshape(-1, 4).sum(0), rtol=1e-10)
    check_grad(PReLULast, inputs={"x": x}, C=4).assert_ok()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"rank{len(s)}")
def test_prelu_backward_against_torch(shape):
    torch = pytest.importorskip("torch")
    m = PReLULast.build(C=4, dtype="float64")
    m.alpha.numpy()[...] = [0.1, 0.2, 0.3, 0.4]
    x = RNG.standard_normal(shape)
    x[0, 0] = 0.0                                    # the derivative at 0 is alpha, as torch's
    xt = torch.tensor(x, requires_grad=True)
    at = torch.tensor(m.alpha.numpy(), requires_grad=True)
    yt = torch.where(xt > 0, xt, at * xt)
    gy = RNG.standard_normal(shape)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(m.forward(x).numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.backward(gy).numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.alpha.grad, at.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 4), (2, 3, 2, 4)], ids=lambda s: f"rank{len(s)}")
def test_example_prelu_against_torch(shape):
    torch = pytest.importorskip("torch")
    prelu = _example("prelu_activation").PReLU(num_features=3, init_value=0.2, dtype=np.float64)
    prelu.alpha.numpy()[...] = [0.1, 0.2, 0.3]
    ref = torch.nn.PReLU(num_parameters=3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(prelu.alpha.numpy()))
    x = RNG.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    gy = RNG.standard_normal(shape)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(prelu.forward(x).numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(prelu.backward(gy).numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(prelu.alpha.grad, ref.weight.grad.numpy(), rtol=1e-10)


def test_one_compiled_kernel_serves_every_rank():
    m = PReLULast.build(C=4)
    libraries = set()
    for shape in SHAPES:
        m.forward(np.ones(shape, np.float32))
        libraries.add(m.so_path)
    assert len(libraries) == 1 and m.record.tensor("x").ellipsis == 0


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"rank{len(s)}")
def test_example_prelu_one_spec_serves_ranks_2_3_4(shape):
    example = _example("prelu_activation")
    prelu = example.PReLU(num_features=3, init_value=0.2)
    x = RNG.standard_normal((shape[0], 3) + shape[2:]).astype(np.float32) if len(shape) > 2 else \
        RNG.standard_normal((3, 3)).astype(np.float32)
    a = prelu.alpha.numpy().reshape((3,) + (1,) * (x.ndim - 2))
    np.testing.assert_allclose(prelu.forward(x).numpy(), np.where(x > 0, x, a * x), rtol=1e-6)
    assert prelu.compiled.spec is example.PReLUND
    check_grad(example.PReLUND, inputs={"x": x.astype(np.float64)}, C=3, K=3).assert_ok()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 2, 3, 5)], ids=lambda s: f"rank{len(s)}")
def test_linear_one_spec_any_rank_against_torch(shape, bias):
    torch = pytest.importorskip("torch")
    layer_ = nn.Linear(5, 4, bias=bias).double()
    ref = torch.nn.Linear(5, 4, bias=bias).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer_.weight.numpy()))
        if bias:
            ref.bias.copy_(torch.from_numpy(layer_.bias.numpy()))
    x = RNG.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = layer_(x), ref(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    gy = RNG.standard_normal(y.shape)
    gx = layer_.backward(gy)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer_.weight.grad, ref.weight.grad.numpy(), rtol=1e-10)
    if bias:
        np.testing.assert_allclose(layer_.bias.grad, ref.bias.grad.numpy(), rtol=1e-10)
    check_grad(LinearSpec, inputs={"x": x}, I=5, O=4, bias=bias).assert_ok()


@pytest.mark.parametrize("shape", [(4, 8), (2, 3, 8)], ids=["[N, D]", "[B, S, D]"])
def test_rms_norm_written_once_serves_both(shape):
    m = RMSNorm.build(D=8, dtype="float64")
    m.weight.numpy()[...] = RNG.uniform(0.5, 1.5, 8)
    x = RNG.standard_normal(shape)
    np.testing.assert_allclose(m.forward(x).numpy(), _rms_norm(x, m.weight.numpy()), rtol=1e-12)
    check_grad(RMSNorm, inputs={"x": x}, D=8).assert_ok()


def test_the_tape_runs_through_the_collapse():
    m = RMSNorm.build(D=8, dtype="float64")
    x = Tensor(RNG.standard_normal((2, 3, 8)), requires_grad=True)
    y = m(x)
    assert y.shape == (2, 3, 8)
    (y * y).sum().backward()
    m2 = RMSNorm.build(D=8, dtype="float64")
    m2.forward(x.numpy().reshape(6, 8))
    expected = m2.backward(2 * m2.forward(x.numpy().reshape(6, 8)).numpy())
    assert x.grad.shape == (2, 3, 8)
    np.testing.assert_allclose(x.grad, expected.numpy().reshape(2, 3, 8), rtol=1e-12)


@pytest.mark.parametrize("needs", ["x", "g", "both"])
def test_a_collapsed_call_is_one_node_on_the_tape(needs):
    """The collapse and the expand fold into the call's own node, which takes
    the caller's tensors; gradients reach each input at its own shape."""
    m = Gate.build(C=4, dtype="float64")
    x0, g0 = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 3, 4))
    x = Tensor(x0, requires_grad=needs in ("x", "both"))
    g_leaf = Tensor(g0 / 2, requires_grad=needs in ("g", "both"))
    g = g_leaf * 2.0 if needs != "x" else Tensor(g0)          # a tape tensor, or a plain one
    y = m(x, g)
    assert y.shape == (2, 3, 4) and y.node.name == "Gate"
    taped = [id(t) for t in (x, g) if t.requires_grad or t.node]
    assert [id(t) for t in y.node.inputs if t.requires_grad or t.node] == taped
    w = RNG.standard_normal((2, 3, 4))
    (y * Tensor(w)).sum().backward()
    s = 1 / (1 + np.exp(-g0))
    if needs != "g":
        np.testing.assert_allclose(x.grad, w * s, rtol=1e-12)
    if needs != "x":
        np.testing.assert_allclose(g_leaf.grad, 2 * w * x0 * s * (1 - s), rtol=1e-10)


def test_out_takes_the_callers_shape():
    m = LinearSpec.build(I=5, O=3)
    x = RNG.standard_normal((2, 4, 5)).astype(np.float32)
    buffer = np.empty((2, 4, 3), np.float32)
    y = m.forward(x, out=buffer)
    assert np.shares_memory(y.numpy(), buffer)
    np.testing.assert_allclose(buffer, x @ m.weight.numpy().T + m.bias.numpy(), rtol=1e-5, atol=1e-6)


def test_an_empty_span_is_one_axis_of_size_one():
    m = PReLULast.build(C=4)
    x = np.array([-1.0, 2.0, -3.0, 4.0], np.float32)
    y = m.forward(x)
    assert y.shape == (4,)
    np.testing.assert_allclose(y.numpy(), [-0.25, 2.0, -0.75, 4.0])
    assert m.backward(np.ones(4, np.float32)).shape == (4,)


def test_a_non_contiguous_input_works():
    m = PReLULast.build(C=4, dtype="float64")
    base = RNG.standard_normal((4, 3, 2))
    x = base.transpose(2, 1, 0)                       # (2, 3, 4), not C-contiguous
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(m.forward(x).numpy(), np.where(x > 0, x, 0.25 * x))
    assert m.backward(np.ones_like(x)).shape == (2, 3, 4)


# ---------------------------------------------------------------- errors

@layer
class Gate:
    x = Input(..., "C")
    g = Input(..., "C")

    def forward(x, g):
        return x * ops.sigmoid(g)


def test_mismatched_spans_name_the_layer_the_argument_and_the_shape():
    m = Gate.build(C=4)
    with pytest.raises(ValueError, match=r"Gate: argument g has shape \(3, 2, 4\), expected \(\.\.\., 4\) "
                                         r"with the \.\.\. axes of x, \(2, 3\)"):
        m.forward(np.ones((2, 3, 4), np.float32), np.ones((3, 2, 4), np.float32))
    y = m.forward(np.ones((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.float32))
    np.testing.assert_allclose(y.numpy(), 0.5)


def test_a_wrong_fixed_axis_or_rank_is_refused():
    m = PReLULast.build(C=4)
    with pytest.raises(ValueError, match=r"PReLULast: argument x has shape \(2, 5\), expected \(\.\.\., 4\)"):
        m.forward(np.ones((2, 5), np.float32))
    lin = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"LinearSpec: argument x has shape \(\) \(rank 0\), "
                                         r"expected rank 1 or more: \(\.\.\., 3\)"):
        lin(np.float32(1.0))


def test_declarations_refuse_two_ellipses_and_ellipsis_parameters():
    with pytest.raises(SpecError, match="one ... per shape"):
        Input(..., "C", ...)
    with pytest.raises(SpecError, match="fixed when the layer is built"):
        Param(..., "C")


# ---------------------------------------------------------------- flatten is a view

def test_flatten_returns_a_view_and_runs_no_kernel():
    flatten = nn.Flatten()
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = flatten(x)
    assert y.shape == (2, 60) and np.shares_memory(y.numpy(), x)
    assert flatten._active.record.views
    gx = flatten.backward(np.arange(120, dtype=np.float32).reshape(2, 60))
    np.testing.assert_array_equal(gx.numpy(), np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5))
    xt = Tensor(x, requires_grad=True)
    (flatten(xt) * 2.0).sum().backward()
    np.testing.assert_array_equal(xt.grad, np.full(x.shape, 2.0))
    assert flatten(np.ones((3, 7), np.float32)).shape == (3, 7)
    assert flatten(np.ones((3,), np.float32)).shape == (3, 1)      # [N]: its empty ... is one axis of size 1


# ---------------------------------------------------------------- optional parameters

@pytest.mark.parametrize("bias", [True, False])
def test_optional_conv_bias_matches_torch(bias):
    torch = pytest.importorskip("torch")
    conv = nn.Conv2D(3, 4, 3, padding=1, bias=bias).double()
    ref = torch.nn.Conv2d(3, 4, 3, padding=1, bias=bias).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(conv.weight.numpy()))
        if bias:
            ref.bias.copy_(torch.from_numpy(conv.bias.numpy()))
    assert [n for n, _ in conv.named_parameters()] == (["weight", "bias"] if bias else ["weight"])
    x = RNG.standard_normal((2, 3, 5, 6))
    xt = torch.tensor(x, requires_grad=True)
    y, yt = conv(x), ref(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10)
    gy = RNG.standard_normal(y.shape)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(conv.backward(gy).numpy(), xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(conv.weight.grad, ref.weight.grad.numpy(), rtol=1e-10)


def test_an_optional_parameter_is_removed_at_build():
    without = LinearSpec.build(I=3, O=2, bias=False)
    assert "bias" not in dict(without.named_parameters())
    assert [t.name for t in without.record.tensors] == ["x", "weight"]
    with pytest.raises(SpecError, match="bias is an optional parameter"):
        LinearSpec.build(I=3, O=2, bias="no")


def test_a_none_default_in_forward_makes_a_parameter_optional():
    @layer
    class Shift:
        x = Input(..., "C")
        shift = Param("C", init=1.0)

        def forward(x, shift=None):
            return x if shift is None else x + shift

    assert Shift.optional == ("shift",)
    x = np.zeros((2, 3), np.float32)
    np.testing.assert_allclose(Shift.build(C=3).forward(x).numpy(), 1.0)
    np.testing.assert_allclose(Shift.build(C=3, shift=False).forward(x).numpy(), 0.0)
