"""Higher-order gradients (layerc/spec_grad.py): ``Spec.grad()`` against
finite differences (check_grad: the grad spec's own backward is the second
derivative) and PyTorch, the gradient penalty example against torch's double
backward, Hessian-vector products, and ``to_torch`` with ``create_graph=True``.

Run: pytest -q tests/test_spec_grad.py
"""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from layerc import Input, Param, SpecError, Sequential, check_grad, layer, nn, ops
from layerc.runtime.tensor import Tensor
from layerc.spec_grad import GradModule, grad_module

torch = pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_example(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def custom_layers():
    sys.path.insert(0, str(ROOT / "examples" / "custom_layers"))
    try:
        yield
    finally:
        sys.path.remove(str(ROOT / "examples" / "custom_layers"))


@pytest.fixture(scope="module")
def penalty_example():
    return load_example(ROOT / "examples" / "gradient_penalty.py", "layerc_example_gradient_penalty")


@layer
class MLP:
    """tanh(x @ w1.T + b1) @ w2.T"""
    x = Input("N", "I")
    w1 = Param("H", "I", init="xavier")
    b1 = Param("H", init=0.1)
    w2 = Param("O", "H", init="xavier")

    def forward(x, w1, b1, w2):
        return ops.tanh(x @ w1.T + b1) @ w2.T


def torch_mlp(x, w1, b1, w2):
    return torch.tanh(x @ w1.T + b1) @ w2.T


def random_weights(module, rng):
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.7
    return [torch.tensor(p.numpy(), requires_grad=True) for p in module.parameters()]


# ---------------------------------------------------------------- Spec.grad against finite differences


def test_grad_spec_declares_inputs_gradients_and_outputs():
    spec = MLP.grad()
    assert spec is MLP.grad() and spec.name == "MLP_grad" and spec.grad().name == "MLP_grad_grad"
    m = spec.build(I=3, H=4, O=2)
    assert isinstance(m, GradModule)
    inputs = [t.name for t in m.record.of_role("input", "data", "index")]
    assert inputs[0] == "x" and len(inputs) == 2 and inputs[1].startswith("grad_")
    assert [t.name for t in m.record.outputs] == ["d_x", "d_w1", "d_b1", "d_w2"]
    assert [n for n, _ in m.named_parameters()] == ["w1", "b1", "w2"]
    assert [t.name for t in MLP.grad(wrt="x").build(I=3, H=4, O=2).record.outputs] == ["d_x"]


def test_grad_spec_values_are_the_spec_modules_backward():
    rng = np.random.default_rng(0)
    m = MLP.build(I=3, H=5, O=2, dtype=np.float64)
    random_weights(m, rng)
    g = grad_module(m)
    x, gy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    m(x)
    gx = m.backward(gy)
    outs = g(x, gy)
    np.testing.assert_allclose(outs[0].numpy(), gx.numpy(), rtol=1e-12, atol=1e-14)
    for p, o in zip(m.parameters(), outs[1:]):
        np.testing.assert_allclose(o.numpy(), p.grad, rtol=1e-12, atol=1e-14)
    assert g.w1 is m.w1                                     # shared, not copied


def test_grad_spec_first_derivatives_match_torch():
    rng = np.random.default_rng(1)
    g = MLP.grad().build(I=3, H=5, O=2, dtype=np.float64)
    weights = random_weights(g, rng)
    x, gy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.autograd.grad(torch_mlp(tx, *weights), [tx, *weights], torch.tensor(gy))
    for ours, theirs in zip(g(x, gy), expected):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("order", [1, 2])
def test_grad_spec_backward_is_checked_by_finite_differences(order):
    spec = MLP.grad() if order == 1 else MLP.grad().grad()
    check_grad(spec, N=3, I=4, H=5, O=2).assert_ok()


# a spread of ops: matrix products, softmax and a gather, index-notation convolutions, batch norm,
# attention; the second derivative of each is checked (the grad spec's backward)
GUIDE_CASES = [
    ("custom_linear", "CustomLinearSpec", dict(N=3, I=5, O=4), None),
    ("prelu_activation", "PReLU4D", dict(N=2, C=3, H=3, W=5, K=3), None),
    ("focal_loss", "FocalLossSpec", dict(N=3, C=5), {"targets": np.array([0, 4, 2])}),
    ("depthwise_separable_conv", "DepthwiseSeparableConvSpec",
     dict(N=2, C=2, O=3, K=3, H=5, W=6, stride=2, padding=1), None),
    ("residual_block", "ResidualBlockSpec", dict(N=2, C=2, H=4, W=5, training=True), None),
]


@pytest.mark.parametrize("file, spec_name, bindings, inputs", GUIDE_CASES, ids=[c[1] for c in GUIDE_CASES])
def test_second_derivatives_of_the_guides_layers(custom_layers, file, spec_name, bindings, inputs):
    spec = getattr(__import__(file), spec_name)
    check_grad(spec.grad(), inputs=inputs, **bindings).assert_ok()


def test_grad_of_an_unknown_tensor_is_refused():
    with pytest.raises(SpecError, match="w3 is not a differentiable input or parameter of MLP"):
        MLP.grad(wrt=("x", "w3")).build(I=3, H=4, O=2)


def test_grad_module_needs_a_built_spec():
    with pytest.raises(TypeError, match="built from a spec"):
        grad_module(Sequential(MLP.build(I=3, H=4, O=2)))


# ---------------------------------------------------------------- Hessian-vector products


def test_hessian_vector_product_of_the_parameters_vs_torch():
    """H v for L(params) = sum(f(x) * gy): the grad spec's backward, given v
    as the gradient of its parameter gradients."""
    rng = np.random.default_rng(2)
    g = MLP.grad().build(I=3, H=5, O=2, dtype=np.float64)
    weights = random_weights(g, rng)
    x, gy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    v = [rng.standard_normal(p.shape) for p in g.parameters()]
    g(x, gy)
    g.backward(np.zeros_like(x), *v)                        # no weight on d_x: parameters only
    hv_layerc = [p.grad for p in g.parameters()]

    def loss(w1, b1, w2):
        return (torch_mlp(torch.tensor(x), w1, b1, w2) * torch.tensor(gy)).sum()
    _, hv_torch = torch.autograd.functional.hvp(loss, tuple(weights), tuple(torch.tensor(a) for a in v))
    for ours, theirs in zip(hv_layerc, hv_torch):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_through_to_torch():
    from layerc.torch_interop import to_torch
    rng = np.random.default_rng(3)
    m = MLP.build(I=3, H=5, O=2, dtype=np.float64)
    weights = random_weights(m, rng)
    tm = to_torch(m)
    x = torch.tensor(rng.standard_normal((4, 3)))
    params = list(tm.parameters())
    v = [torch.randn_like(p) for p in params]
    grads = torch.autograd.grad(tm(x).pow(2).sum(), params, create_graph=True)
    hv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(grads, v)), params)
    _, expected = torch.autograd.functional.hvp(lambda *w: torch_mlp(x, *w).pow(2).sum(), tuple(weights), tuple(v))
    for ours, theirs in zip(hv, expected):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- to_torch(create_graph=True)


def test_to_torch_double_and_triple_backward_in_the_input():
    from layerc.torch_interop import to_torch
    rng = np.random.default_rng(4)
    m = MLP.build(I=3, H=5, O=2, dtype=np.float64)
    weights = [w.detach() for w in random_weights(m, rng)]
    tm = to_torch(m)
    x = torch.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    ours, theirs = tm(x).sum(), torch_mlp(x2, *weights).sum()
    for _ in range(3):                                       # first, second and third derivatives
        (ours,) = torch.autograd.grad(ours.sum(), x, create_graph=True)
        (theirs,) = torch.autograd.grad(theirs.sum(), x2, create_graph=True)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_to_torch_double_backward_of_a_built_in_layer_reaches_its_parameters():
    from layerc.torch_interop import to_torch
    torch.manual_seed(0)
    lin = nn.Linear(3, 2, dtype=np.float64)
    tlin = to_torch(lin)
    w, b = (torch.tensor(p.numpy(), requires_grad=True) for p in lin.parameters())
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    penalties = []
    for out, inp in ((torch.tanh(tlin(x)), x), (torch.tanh(x2 @ w.T + b), x2)):
        (gx,) = torch.autograd.grad(out.sum(), inp, create_graph=True)
        penalties.append(gx.pow(2).sum())
        penalties[-1].backward()
    np.testing.assert_allclose(penalties[0].item(), penalties[1].item(), rtol=1e-12)
    for p, q in zip(tlin.parameters(), (w, b)):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_to_torch_create_graph_of_a_composition_says_what_to_do():
    from layerc.torch_interop import to_torch
    model = to_torch(Sequential(MLP.build(I=3, H=4, O=2, dtype=np.float64)))
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(NotImplementedError, match="wrap each layer with to_torch"):
        torch.autograd.grad(model(x).sum(), x, create_graph=True)


# ---------------------------------------------------------------- the gradient penalty example


def torch_penalty(points, weights):
    points = torch.tensor(points, requires_grad=True)
    (gx,) = torch.autograd.grad(torch_mlp(points, *weights).sum(), points, create_graph=True)
    return ((gx.norm(dim=1) - 1) ** 2).mean()


def test_gradient_penalty_and_its_parameter_gradients_match_torch_double_backward(penalty_example):
    ex = penalty_example
    rng = np.random.default_rng(5)
    critic = ex.Critic.build(I=2, H=6, dtype=np.float64)
    weights = random_weights(critic, rng)
    critic_grad = grad_module(critic, wrt="x")
    real, fake, mix = ex.make_data(16, np.float64, seed=1)
    points = mix[:, None] * real + (1 - mix[:, None]) * fake
    penalty = ex.gradient_penalty(critic_grad, points)
    penalty.backward()
    expected = torch_penalty(points, weights)
    expected.backward()
    np.testing.assert_allclose(float(penalty), expected.item(), rtol=1e-12)
    for p, w in zip(critic.parameters(), weights):
        np.testing.assert_allclose(p.grad, w.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_gradient_penalty_training_follows_torch(penalty_example):
    """Five Adam steps of the WGAN-GP critic objective, layerc against torch
    from the same weights: the same losses and weights (float64)."""
    ex = penalty_example
    critic, critic_grad, _ = ex.train(steps=0, hidden=6, dtype=np.float64)
    weights = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in critic.parameters()]
    opt = torch.optim.Adam(weights, lr=1e-2, betas=(0.5, 0.9))
    _, _, history = ex.train(steps=5, hidden=6, dtype=np.float64)
    for step, (loss, penalty) in enumerate(history):
        real, fake, mix = ex.make_data(64, np.float64, seed=step)
        points = mix[:, None] * real + (1 - mix[:, None]) * fake
        opt.zero_grad()
        gp = torch_penalty(points, weights)
        total = (torch_mlp(torch.tensor(fake), *weights).mean() - torch_mlp(torch.tensor(real), *weights).mean()
                 + 10.0 * gp)
        total.backward()
        opt.step()
        np.testing.assert_allclose([loss, penalty], [total.item(), gp.item()], rtol=1e-9)


def test_gradient_penalty_is_on_the_tape_with_the_critic(penalty_example):
    """A loss of d_x alone reaches the critic's parameters (through the grad
    module's compiled backward), and finite differences agree."""
    from layerc.gradcheck import numeric_gradient
    from layerc.runtime.tensor import no_grad
    ex = penalty_example
    rng = np.random.default_rng(6)
    critic = ex.Critic.build(I=2, H=4, dtype=np.float64)
    random_weights(critic, rng)
    critic_grad = grad_module(critic, wrt="x")
    points = rng.standard_normal((5, 2))
    ex.gradient_penalty(critic_grad, points).backward()

    def value():
        with no_grad():
            return float(ex.gradient_penalty(critic_grad, points))
    for p in critic.parameters():
        np.testing.assert_allclose(p.grad, numeric_gradient(value, p.data), rtol=1e-6, atol=1e-8)
    assert isinstance(ex.gradient_penalty(critic_grad, Tensor(points)), Tensor)


def test_to_torch_passes_torch_gradgradcheck():
    from layerc.torch_interop import to_torch
    rng = np.random.default_rng(7)
    m = MLP.build(I=3, H=4, O=2, dtype=np.float64)
    random_weights(m, rng)
    tm = to_torch(m)
    x = torch.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    assert torch.autograd.gradgradcheck(tm, (x,))


def test_to_torch_double_backward_of_a_convolution_vs_torch():
    """A built-in layer in index notation (Conv2D, strided and padded): the
    penalty of its input gradient and that penalty's weight gradient."""
    from layerc.torch_interop import to_torch
    conv = nn.Conv2D(2, 3, 3, stride=2, padding=1, dtype=np.float64)
    tconv = to_torch(conv)
    w, b = (torch.tensor(p.numpy(), requires_grad=True) for p in conv.parameters())
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    results = []
    for out, inp in ((torch.tanh(tconv(x)), x),
                     (torch.tanh(torch.nn.functional.conv2d(x2, w, b, stride=2, padding=1)), x2)):
        (gx,) = torch.autograd.grad(out.sum(), inp, create_graph=True)
        penalty = (gx.pow(2).sum(dim=(1, 2, 3)).sqrt() - 1).pow(2).mean()
        penalty.backward()
        results.append(penalty.item())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    for p, q in zip(tconv.parameters(), (w, b)):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)
