"""Built-in layers (layerc.nn): float64 gradient checks of every spec on odd
sizes, and forward/gradients against torch.nn where torch is installed."""
import numpy as np
import pytest

from layerc import check_grad
from layerc import nn
from layerc.runtime.tensor import Tensor


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- Linear

@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias):
    check_grad(nn.LinearSpec, E=3, I=5, O=7, bias=bias).assert_ok()


def test_linear3_gradcheck():
    x = _rng().standard_normal((2, 3, 5))
    check_grad(nn.LinearSpec, inputs={"x": x}, I=5, O=7).assert_ok()


def test_linear_layout_and_init():
    layer = nn.Linear(13, 7)
    assert layer.weight.shape == (7, 13) and layer.bias.shape == (7,)
    bound = 1 / np.sqrt(13)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_tape_accumulates_into_shared_parameters():
    layer = nn.Linear(5, 3)
    x = Tensor(_rng().standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.weight.grad, np.tile(x.numpy().sum(0), (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(layer.bias.grad, np.full(3, 4.0))
    np.testing.assert_allclose(x.grad, np.tile(layer.weight.numpy().sum(0), (4, 1)), rtol=1e-5)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = _rng(1)
    for bias, shape in ((True, (3, 11)), (False, (3, 11)), (True, (2, 5, 11))):
        layer = nn.Linear(11, 6, bias=bias)
        ref = torch.nn.Linear(11, 6, bias=bias)
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(layer.weight.numpy()))
            if bias:
                ref.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        x = rng.standard_normal(shape).astype(np.float32)
        gy = rng.standard_normal(shape[:-1] + (6,)).astype(np.float32)
        y = layer(x)
        gx = layer.backward(gy)
        xt = torch.from_numpy(x).requires_grad_()
        yt = ref(xt)
        yt.backward(torch.from_numpy(gy))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-5, atol=1e-5)
        if bias:
            np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- float64 gradient checks, odd sizes

CONV_CASES = [
    # (C, O, (KH, KW), stride, padding, dilation, groups)
    (3, 5, (3, 3), (2, 2), (1, 1), (1, 1), 1),
    (3, 4, (3, 2), (2, 1), (1, 0), (2, 1), 1),
    (6, 4, (3, 3), (2, 2), (1, 1), (1, 1), 2),
    (5, 5, (3, 3), (1, 1), (1, 1), (1, 1), 5),      # depthwise
]


@pytest.mark.parametrize("C,O,K,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_gradcheck(C, O, K, stride, padding, dilation, groups):
    check_grad(nn.Conv2DSpec, N=3, C=C, H=5, W=7, O=O, CG=C // groups, KH=K[0], KW=K[1], stride=stride,
               padding=padding, dilation=dilation, groups=groups).assert_ok()


def test_conv2d_no_bias_gradcheck():
    check_grad(nn.Conv2DSpec, N=3, C=3, H=5, W=7, O=5, CG=3, KH=3, KW=3, stride=(2, 2),
               padding=(1, 1), bias=False).assert_ok()


def test_conv2d_input_gradient_is_gather_form():
    """stride 2 and padding 1: every grad_x element is owned by one loop iteration."""
    layer = nn.Conv2D(3, 5, 3, stride=2, padding=1)
    layer(np.zeros((1, 3, 5, 7), np.float32))
    grad_x = [s for s in layer.compiled.derived.stages if s.name == "grad_x"]
    assert len(grad_x) == 1 and grad_x[0].scatter_index is None
    assert grad_x[0].reduce == "sum"


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_gradcheck(training):
    check_grad(nn.BatchNorm2DSpec, N=3, C=3, H=5, W=7, training=training).assert_ok()


@pytest.mark.parametrize("spec,sizes,attrs", [
    (nn.ReLUSpec, dict(E=3 * 3 * 5 * 7), {}),
    (nn.GELUSpec, dict(E=3 * 7), {}),
    (nn.softmax_spec(1), dict(D0=3, C=5, E=7), {}),
    (nn.SoftmaxSpec, dict(E=3, C=7), {}),
    (nn.FlattenSpec, dict(N=3, E=3 * 5 * 7), {}),
    (nn.layer_norm_spec(1), dict(E=3 * 5, L1=7), {}),
    (nn.layer_norm_spec(2), dict(E=3 * 2, L1=5, L2=7), {}),
    (nn.MaxPool2DSpec, dict(N=3, C=3, H=5, W=7), dict(kernel_size=(3, 3), stride=(2, 2))),
    (nn.AvgPool2DSpec, dict(N=3, C=3, H=5, W=7), dict(kernel_size=(3, 2), stride=(2, 2))),
], ids=lambda v: getattr(v, "name", None))
def test_stateless_and_norm_gradcheck(spec, sizes, attrs):
    check_grad(spec, **sizes, **attrs).assert_ok()


# ---------------------------------------------------------------- module behaviour

def test_batchnorm2d_modes_share_parameters_and_buffers():
    bn = nn.BatchNorm2D(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var"]
    x = _rng().standard_normal((4, 3, 5, 7)).astype(np.float32) * 2 + 1
    bn(x)
    mean = bn.running_mean.copy()
    np.testing.assert_allclose(mean, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)
    bn.weight.numpy()[...] = 2.0
    bn.eval()
    y = bn(x)
    np.testing.assert_array_equal(bn.running_mean, mean)          # eval leaves the statistics alone
    expected = (x - mean[:, None, None]) / np.sqrt(bn.running_var[:, None, None] + 1e-5) * 2.0
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_stateless_layers_follow_input_dtype_and_rank():
    relu = nn.ReLU()
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(relu(x).numpy(), np.maximum(x, 0))
    assert relu(x.astype(np.float32)).dtype == np.float32
    assert nn.Flatten()(np.zeros((2, 3, 4, 5), np.float32)).shape == (2, 60)
    sm = nn.Softmax(dim=1)(np.zeros((2, 4, 3), np.float32))
    np.testing.assert_allclose(sm.numpy(), 0.25)


def test_layers_refuse_bad_input():
    with pytest.raises(ValueError, match="LayerNorm"):
        nn.LayerNorm(4)(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="float64"):
        nn.Linear(3, 2)(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="divisible"):
        nn.Conv2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="more than one value per statistic"):
        nn.BatchNorm2D(3)(np.ones((1, 3, 1, 1), np.float32))


def test_double_converts_parameters():
    layer = nn.Linear(3, 2).double()
    assert layer.weight.dtype == np.float64
    assert layer(np.ones((1, 3))).dtype == np.float64


# ---------------------------------------------------------------- against torch

def _copy_params(layer, ref, torch):
    with torch.no_grad():
        for name, p in layer.named_parameters():
            dict(ref.named_parameters())[name].copy_(torch.from_numpy(p.numpy()))


def _compare(layer, ref, x, torch, rtol=1e-4, atol=1e-5):
    """Forward, input gradient and every parameter gradient, float32."""
    rng = _rng(7)
    y = layer(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(gy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol)
    ref_params = dict(ref.named_parameters())
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, ref_params[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    layer.zero_grad()
    ref.zero_grad()


@pytest.mark.parametrize("C,O,K,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_matches_torch(C, O, K, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    kw = dict(kernel_size=K, stride=stride, padding=padding, dilation=dilation, groups=groups)
    layer, ref = nn.Conv2D(C, O, **kw), torch.nn.Conv2d(C, O, **kw)
    assert layer.weight.shape == tuple(ref.weight.shape)
    _copy_params(layer, ref, torch)
    for H, W in ((5, 7), (8, 9)):       # image sizes stay free at run time
        _compare(layer, ref, _rng(H).standard_normal((3, C, H, W)).astype(np.float32), torch)


def test_batchnorm2d_matches_torch_train_and_eval():
    torch = pytest.importorskip("torch")
    layer, ref = nn.BatchNorm2D(5), torch.nn.BatchNorm2d(5)
    rng = _rng(3)
    layer.weight.numpy()[...] = rng.uniform(0.5, 1.5, 5)
    layer.bias.numpy()[...] = rng.standard_normal(5)
    _copy_params(layer, ref, torch)
    for step in range(3):
        x = (rng.standard_normal((3, 5, 5, 7)) * 3 + step).astype(np.float32)
        _compare(layer, ref, x, torch)
        np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5, atol=1e-6)
    layer.eval()
    ref.eval()
    _compare(layer, ref, rng.standard_normal((3, 5, 5, 7)).astype(np.float32), torch)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda torch: (nn.ReLU(), torch.nn.ReLU(), (3, 4, 5, 7)),
    lambda torch: (nn.GELU(), torch.nn.GELU(), (3, 11)),
    lambda torch: (nn.Softmax(dim=1), torch.nn.Softmax(dim=1), (3, 5, 7)),
    lambda torch: (nn.Flatten(), torch.nn.Flatten(), (3, 4, 5, 7)),
    lambda torch: (nn.LayerNorm(7), torch.nn.LayerNorm(7), (3, 5, 7)),
    lambda torch: (nn.LayerNorm((5, 7)), torch.nn.LayerNorm((5, 7)), (3, 2, 5, 7)),
    lambda torch: (nn.MaxPool2D(2), torch.nn.MaxPool2d(2), (3, 4, 5, 7)),
    lambda torch: (nn.MaxPool2D(3, stride=2), torch.nn.MaxPool2d(3, stride=2), (3, 4, 5, 7)),
    lambda torch: (nn.AvgPool2D((3, 2), stride=(2, 1)), torch.nn.AvgPool2d((3, 2), stride=(2, 1)), (3, 4, 5, 7)),
], ids=["relu", "gelu", "softmax", "flatten", "layernorm", "layernorm2", "maxpool", "maxpool3s2", "avgpool"])
def test_layers_match_torch(make):
    torch = pytest.importorskip("torch")
    layer, ref, shape = make(torch)
    rng = _rng(5)
    if isinstance(layer, nn.LayerNorm):
        layer.weight.numpy()[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
        layer.bias.numpy()[...] = rng.standard_normal(layer.bias.shape)
        _copy_params(layer, ref, torch)
    _compare(layer, ref, rng.standard_normal(shape).astype(np.float32), torch)


def test_torch_state_dict_moves_into_a_composed_model():
    """Same names and layouts as torch.nn: a torch Sequential's state_dict loads as is
    (minus torch's num_batches_tracked counter), and the whole model trains alike."""
    torch = pytest.importorskip("torch")
    from layerc.runtime.containers import Sequential
    from layerc.losses import cross_entropy

    model = Sequential(nn.Conv2D(3, 4, 3, stride=2, padding=1), nn.BatchNorm2D(4), nn.ReLU(), nn.Flatten(),
                       nn.Linear(4 * 3 * 4, 6))
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 4, 6))
    state = {k: v.numpy() for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert sorted(state) == sorted(model.state_dict())
    model.load_state_dict(state)
    rng = _rng(11)
    x = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    target = np.array([0, 5, 2])
    loss = cross_entropy(model(Tensor(x)), target)
    loss.backward()
    ref_loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(target))
    ref_loss.backward()
    np.testing.assert_allclose(loss.numpy(), ref_loss.item(), rtol=1e-5)
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, ref_params[name].grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    ref_buffers = dict(ref.named_buffers())
    for name, b in model.named_buffers():
        np.testing.assert_allclose(b, ref_buffers[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["depthwise_separable_conv", "residual_block"])
def test_custom_layer_examples_check_themselves(name):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).parent.parent / "examples" / "custom_layers" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for report in module.check():
        assert report.ok
