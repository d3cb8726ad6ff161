"""The torch.nn layers of layerc.nn beyond the first ones (normalization.py,
embedding.py, activation.py, attention.py, torch_state.py): each against
torch.nn forward and backward (float32) on three shapes or more, a float64
gradient check of its spec, and every layer's state_dict moved from torch to
layerc and back."""
import numpy as np
import pytest

import layerc.losses
from layerc import check_grad, nn
from layerc.nn import activation as activations
from layerc.runtime.tensor import Tensor

def _torch():
    """torch, imported per test: the gradient checks run without it."""
    return pytest.importorskip("torch")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _randomize(module, rng, scale=0.5, weight=1.0):
    """Random parameters (weights about ``weight``; positive running variances) on a torch module."""
    t = _torch()
    with t.no_grad():
        for name, p in module.named_parameters():
            p.copy_(t.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * scale
                                   + weight * ("weight" in name)))
        for name, b in module.named_buffers():
            if b.is_floating_point():
                b.copy_(t.from_numpy(rng.random(tuple(b.shape)).astype(np.float32) + 0.5 * ("var" in name)))


def _close(got, want, what, tolerance=1e-5):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * scale, err_msg=what)


def against_torch(ours, theirs, x, rng, call=None, train=True):
    """Forward, input gradient, parameter gradients and buffers of ``ours``
    against ``theirs`` (given ours' parameters and buffers first)."""
    t = _torch()
    theirs.load_state_dict(nn.to_torch_state_dict(ours))
    ours.train(train), theirs.train(train)
    ours.zero_grad(), theirs.zero_grad()
    y = ours(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = ours.backward(gy)
    floating = x.dtype.kind == "f"
    tx = t.from_numpy(x).requires_grad_(floating)
    ty = (call or (lambda m, v: m(v)))(theirs, tx)
    ty.backward(t.from_numpy(gy))
    _close(y.numpy(), ty.detach().numpy(), "output")
    if floating:
        _close(gx.numpy(), tx.grad.numpy(), "input gradient")
    grads = {n: p.grad for n, p in theirs.named_parameters()}
    for name, p in ours.named_parameters():
        _close(p.grad, grads[name].numpy(), f"gradient of {name}")
    buffers = dict(theirs.named_buffers())
    for name, b in ours.named_buffers():
        _close(b, buffers[name].numpy(), f"buffer {name}")


def _data(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- normalization

NORM_CASES = [
    # (name, layerc factory, torch factory, shapes)
    ("GroupNorm", lambda: nn.GroupNorm(2, 6), lambda t: t.nn.GroupNorm(2, 6), [(3, 6), (4, 6, 5), (2, 6, 3, 5)]),
    ("GroupNorm no affine", lambda: nn.GroupNorm(3, 6, affine=False), lambda t: t.nn.GroupNorm(3, 6, affine=False),
     [(3, 6, 4), (2, 6, 3, 3), (2, 6, 2, 2, 3)]),
    ("BatchNorm1D", lambda: nn.BatchNorm1D(5), lambda t: t.nn.BatchNorm1d(5), [(4, 5), (3, 5, 7), (2, 5, 1)]),
    ("BatchNorm1D no stats", lambda: nn.BatchNorm1D(5, track_running_stats=False, affine=False),
     lambda t: t.nn.BatchNorm1d(5, track_running_stats=False, affine=False), [(4, 5), (3, 5, 7), (9, 5)]),
    ("InstanceNorm2D", lambda: nn.InstanceNorm2D(3), lambda t: t.nn.InstanceNorm2d(3),
     [(2, 3, 4, 5), (1, 3, 3, 3), (4, 3, 1, 7)]),
    ("InstanceNorm2D affine tracked", lambda: nn.InstanceNorm2D(3, affine=True, track_running_stats=True),
     lambda t: t.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
     [(2, 3, 4, 5), (1, 3, 3, 3), (4, 3, 2, 6)]),
    ("RMSNorm", lambda: nn.RMSNorm(6), lambda t: t.nn.RMSNorm(6), [(6,), (3, 6), (2, 4, 6)]),
    ("RMSNorm 2 axes eps", lambda: nn.RMSNorm((3, 4), eps=1e-3), lambda t: t.nn.RMSNorm((3, 4), eps=1e-3),
     [(3, 4), (2, 3, 4), (2, 2, 3, 4)]),
    ("RMSNorm no affine", lambda: nn.RMSNorm(5, elementwise_affine=False),
     lambda t: t.nn.RMSNorm(5, elementwise_affine=False), [(4, 5), (2, 3, 5), (1, 1, 5)]),
    # torch's options and keyword names for the norms layerc also runs on kernels of their own
    ("LayerNorm no affine", lambda: nn.LayerNorm(normalized_shape=6, eps=1e-3, elementwise_affine=False),
     lambda t: t.nn.LayerNorm(normalized_shape=6, eps=1e-3, elementwise_affine=False), [(4, 6), (2, 3, 6), (6,)]),
    ("LayerNorm no bias", lambda: nn.LayerNorm((3, 4), bias=False), lambda t: t.nn.LayerNorm((3, 4), bias=False),
     [(3, 4), (2, 3, 4), (2, 2, 3, 4)]),
    ("BatchNorm2D no affine", lambda: nn.BatchNorm2D(num_features=3, momentum=0.2, affine=False),
     lambda t: t.nn.BatchNorm2d(num_features=3, momentum=0.2, affine=False),
     [(4, 3, 5, 5), (2, 3, 1, 7), (3, 3, 2, 2)]),
    ("BatchNorm2D no stats", lambda: nn.BatchNorm2D(3, eps=1e-3, track_running_stats=False),
     lambda t: t.nn.BatchNorm2d(3, eps=1e-3, track_running_stats=False), [(4, 3, 5, 5), (2, 3, 1, 7), (3, 3, 2, 2)]),
    ("BatchNorm2D no bias", lambda: nn.BatchNorm2D(3, bias=False), lambda t: t.nn.BatchNorm2d(3, bias=False),
     [(4, 3, 5, 5), (2, 3, 1, 7), (3, 3, 2, 2)]),
]


@pytest.mark.parametrize("name,ours,theirs,shapes", NORM_CASES, ids=[c[0] for c in NORM_CASES])
def test_normalization_matches_torch(name, ours, theirs, shapes):
    t, rng = _torch(), _rng(1)
    layer, twin = ours(), theirs(t)
    _randomize(twin, rng)
    nn.from_torch_state_dict(layer, twin.state_dict())
    for shape in shapes:
        for train in (True, False):
            against_torch(layer, twin, _data(rng, shape) * 2 + 0.5, rng, train=train)


@pytest.mark.parametrize("ours,theirs,shapes", [
    (lambda: nn.Linear(in_features=5, out_features=3, bias=False),
     lambda t: t.nn.Linear(in_features=5, out_features=3, bias=False), [(4, 5), (2, 3, 5), (5,)]),
    (lambda: nn.Softmax(dim=1), lambda t: t.nn.Softmax(dim=1), [(2, 5), (2, 5, 3), (3, 4, 2, 2)]),
    (lambda: nn.LogSoftmax(dim=-1), lambda t: t.nn.LogSoftmax(dim=-1), [(2, 5), (2, 5, 3), (4, 1000)]),
    (lambda: nn.LogSoftmax(dim=0), lambda t: t.nn.LogSoftmax(dim=0), [(2, 5), (7, 5, 3), (3, 4, 2, 2)]),
    (lambda: nn.PReLU(), lambda t: t.nn.PReLU(), [(5,), (2, 5), (3, 4, 2, 2)]),
    (lambda: nn.PReLU(num_parameters=4, init=0.1), lambda t: t.nn.PReLU(num_parameters=4, init=0.1),
     [(2, 4), (2, 4, 3), (3, 4, 2, 2)]),
    (lambda: nn.Flatten(start_dim=0, end_dim=1), lambda t: t.nn.Flatten(start_dim=0, end_dim=1),
     [(2, 5), (2, 5, 3), (3, 4, 2, 2)]),
    (lambda: nn.Flatten(2), lambda t: t.nn.Flatten(2), [(2, 5, 3), (3, 4, 2, 2), (1, 1, 1, 1, 7)]),
    (lambda: nn.Flatten(-3, -2), lambda t: t.nn.Flatten(-3, -2), [(2, 5, 3), (3, 4, 2, 2), (1, 2, 3, 4, 5)]),
    (lambda: nn.GLU(dim=-1), lambda t: t.nn.GLU(dim=-1), [(3, 6), (2, 3, 10), (1, 2)]),
    (lambda: nn.GLU(dim=0), lambda t: t.nn.GLU(dim=0), [(4, 3), (2, 3, 5), (6,)]),
    (lambda: nn.Unflatten(dim=-1, unflattened_size=(2, 2, 3)),
     lambda t: t.nn.Unflatten(dim=-1, unflattened_size=(2, 2, 3)), [(12,), (2, 12), (2, 3, 12)]),
    (lambda: nn.Unflatten(0, (-1, 2)), lambda t: t.nn.Unflatten(0, (-1, 2)), [(4, 3), (6,), (2, 3, 4)]),
], ids=["Linear", "Softmax", "LogSoftmax -1", "LogSoftmax 0", "PReLU", "PReLU channels",
    "Flatten 0-1", "Flatten 2-", "Flatten -3--2", "GLU -1", "GLU 0", "Unflatten -1", "Unflatten 0"])
def test_torch_s_keyword_arguments_build_the_same_layer(ours, theirs, shapes):
    """A port writes torch's keyword names (``in_features``, ``dim``): they
    build the layer torch builds, state_dict keys and all."""
    t, rng = _torch(), _rng(3)
    layer, twin = ours(), theirs(t)
    _randomize(twin, rng)
    assert sorted(nn.to_torch_state_dict(layer)) == sorted(twin.state_dict())
    nn.from_torch_state_dict(layer, twin.state_dict())
    for shape in shapes:
        against_torch(layer, twin, _data(rng, shape), rng)


def test_inplace_is_accepted_and_leaves_the_input_as_it_was():
    """``inplace`` (torch's positional place included) builds the layer; the
    output is a new array, the input unchanged, the gradient torch's."""
    t, rng = _torch(), _rng(4)
    for ours, theirs in ((nn.ReLU(True), t.nn.ReLU()), (nn.LeakyReLU(0.2, True), t.nn.LeakyReLU(0.2)),
                         (nn.ELU(0.5, inplace=True), t.nn.ELU(0.5)), (nn.SiLU(inplace=True), t.nn.SiLU()),
                         (nn.Hardswish(inplace=True), t.nn.Hardswish()), (nn.Dropout(0.5, True), t.nn.Dropout(0.5))):
        assert ours.inplace, ours
        x = _data(rng, (3, 4))
        before = x.copy()
        ours.eval(), theirs.eval()
        against_torch(ours, theirs, x, rng, train=False)
        np.testing.assert_array_equal(x, before, err_msg=repr(ours))


def test_reshaping_layers_name_their_arguments_in_errors():
    with pytest.raises(ValueError, match=r"Flatten: start_dim=3 and end_dim=1 .* rank 4"):
        nn.Flatten(3, 1)(np.ones((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"Unflatten: unflattened_size \(3, -1\) does not split axis 1 of size 8"):
        nn.Unflatten(1, (3, -1))(np.ones((2, 8), np.float32))
    for bad in (4, (2, 2.5), (-1, -1)):
        with pytest.raises(ValueError, match=r"Unflatten: unflattened_size"):
            nn.Unflatten(1, bad)
    with pytest.raises(ValueError, match=r"GLU: the input's size along dim=-1 must be even, got shape \(2, 3\)"):
        nn.GLU()(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"Hardtanh: min_val must be less than max_val"):
        nn.Hardtanh(1.0, 0.0)


def test_norm_defaults_and_names_are_torchs():
    t = _torch()
    pairs = [(nn.InstanceNorm2D(4), t.nn.InstanceNorm2d(4)), (nn.BatchNorm1D(4), t.nn.BatchNorm1d(4)),
             (nn.GroupNorm(2, 4), t.nn.GroupNorm(2, 4)), (nn.RMSNorm(4), t.nn.RMSNorm(4)),
             (nn.InstanceNorm2D(4, affine=True, bias=False), t.nn.InstanceNorm2d(4, affine=True, bias=False))]
    for ours, theirs in pairs:
        assert sorted(nn.to_torch_state_dict(ours)) == sorted(theirs.state_dict()), ours
        for key, value in theirs.state_dict().items():
            np.testing.assert_array_equal(nn.to_torch_state_dict(ours)[key].numpy(), value.numpy(), err_msg=key)


def test_rmsnorm_default_eps_is_the_dtypes():
    x = np.full((1, 3), 1e-4)
    for dtype in (np.float32, np.float64):
        y = nn.RMSNorm(3, dtype=dtype)(x.astype(dtype)).numpy()
        np.testing.assert_allclose(y, 1e-4 / np.sqrt(1e-8 + np.finfo(dtype).eps), rtol=1e-5)


def test_norm_errors_name_the_layer_and_the_argument():
    with pytest.raises(ValueError, match="GroupNorm: num_channels .7. must be divisible by num_groups .2."):
        nn.GroupNorm(2, 7)
    with pytest.raises(ValueError, match=r"BatchNorm1D: input must be \[N, C\] or \[N, C, L\] with C = 4"):
        nn.BatchNorm1D(4)(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2D: training needs more than one value"):
        nn.InstanceNorm2D(2)(np.ones((3, 2, 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"RMSNorm: input of shape \(2, 5\) does not end with \(4,\)"):
        nn.RMSNorm(4)(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="BatchNorm1D: momentum=None"):
        nn.BatchNorm1D(4, momentum=None)


NORM_GRADCHECKS = [
    (nn.per_channel_spec("BatchNorm1D", 3, True, True, True, True), dict(N=3, C=2, D2=4)),
    (nn.per_channel_spec("BatchNorm1D", 2, True, True, True, False), dict(N=3, C=2)),
    (nn.per_channel_spec("InstanceNorm2D", 4, True, True, True, True), dict(N=2, C=2, D2=3, D3=2)),
    (nn.per_channel_spec("InstanceNorm2D", 4, False, True, False, True), dict(N=2, C=3, D2=2, D3=3)),
    (nn.group_norm_spec(4, True), dict(N=2, C=4, D2=3, D3=2, groups=2)),
    (nn.group_norm_spec(3, False), dict(N=2, C=6, D2=3, groups=3)),
    (nn.rms_norm_spec(3, 1, True), dict(N=2, D1=3, R1=5, eps=1e-6)),
    (nn.rms_norm_spec(3, 2, False), dict(N=2, R1=3, R2=4, eps=1e-6)),
    (nn.per_channel_spec("BatchNorm2D", 4, False, True, True, True), dict(N=2, C=3, D2=2, D3=3)),
    (nn.layer_norm_spec(1, affine=False), dict(E=3, L1=5)),
    (nn.layer_norm_spec(2, bias=False), dict(E=2, L1=3, L2=4)),
    (nn.activation.prelu_spec(4, True), dict(N=2, C=3, D2=2, D3=3)),
    (nn.activation.prelu_spec(0, False), dict(E=7)),
    (nn.activation.glu_spec(3, 1), dict(N=2, D1=4, D2=3)),
]


@pytest.mark.parametrize("spec,sizes", NORM_GRADCHECKS, ids=[s.name for s, _ in NORM_GRADCHECKS])
def test_normalization_gradcheck(spec, sizes):
    check_grad(spec, **sizes).assert_ok()


# ---------------------------------------------------------------- embedding


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(padding_idx):
    t, rng = _torch(), _rng(2)
    layer = nn.Embedding(7, 3, padding_idx=padding_idx)
    twin = t.nn.Embedding(7, 3, padding_idx=padding_idx)
    for shape in [(5,), (3, 4), (2, 3, 2), (1,)]:
        ids = rng.integers(0, 7, shape)
        ids.reshape(-1)[0] = 2                         # the padding row is read at least once
        against_torch(layer, twin, ids, rng)


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    layer = nn.Embedding(5, 4, padding_idx=-2)
    assert layer.padding_idx == 3 and not layer.weight.numpy()[3].any() and layer.weight.numpy()[2].any()
    layer.weight.numpy()[3] = 1.0                      # read as it is, as torch
    assert np.array_equal(layer(np.array([3, 3])).numpy(), np.ones((2, 4)))
    layer.backward(np.ones((2, 4), np.float32))
    assert not layer.weight.grad[3].any()


def test_embedding_out_of_range_ids_name_the_layer():
    layer = nn.Embedding(6, 2)
    for bad, where in ((np.array([[0, 6]]), r"ids\[0, 1\] = 6"), (np.array([-1]), r"ids\[0\] = -1")):
        with pytest.raises(IndexError, match=f"Embedding: {where} is out of range"):
            layer(bad)
    with pytest.raises(ValueError, match="Embedding: padding_idx must be within num_embeddings"):
        nn.Embedding(6, 2, padding_idx=6)


def test_embedding_gradcheck():
    ids = np.array([[0, 3, 3], [1, 2, 0]])
    check_grad(nn.embedding_spec(2, False), inputs={"ids": ids}, N=2, D1=3, V=4, D=3).assert_ok()


def test_embedding_padded_gradient_is_the_scatter_without_the_padding_row():
    """Finite differences see the padding row (its forward reads it); the
    gradient leaves it out on purpose, so the check is against the scatter-add."""
    ids, rng = np.array([[0, 3, 3], [1, 2, 0]]), _rng(3)
    layer = nn.Embedding(4, 3, padding_idx=3, dtype=np.float64)
    gy = rng.standard_normal((2, 3, 3))
    layer(ids)
    layer.backward(gy)
    want = np.zeros((4, 3))
    np.add.at(want, ids.reshape(-1), gy.reshape(-1, 3))
    want[3] = 0.0
    np.testing.assert_allclose(layer.weight.grad, want, rtol=1e-12)


# ---------------------------------------------------------------- activations

ACTIVATION_CASES = [
    # (layerc layer, torch layer name, constructor arguments)
    *[(name, name, ()) for name in ("SELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid", "ReLU6", "Softsign",
                                    "Tanh", "Sigmoid", "LogSigmoid")],
    ("LeakyReLU", "LeakyReLU", (0.2,)),
    ("ELU", "ELU", (0.7,)),
    ("CELU", "CELU", (1.3,)),
    ("Softplus", "Softplus", (2.0, 3.0)),
    ("Softplus", "Softplus", ()),
    ("GELU", "GELU", ("tanh",)),
    ("Hardtanh", "Hardtanh", ()),
    ("Hardtanh", "Hardtanh", (0.0, 6.0)),
]
SHAPES = [(3, 5), (2, 3, 4), (1, 17)]


@pytest.mark.parametrize("ours,theirs,args", ACTIVATION_CASES, ids=[f"{c[0]}{c[2]}" for c in ACTIVATION_CASES])
def test_activation_matches_torch(ours, theirs, args):
    t, rng = _torch(), _rng(4)
    layer, twin = getattr(nn, ours)(*args), getattr(t.nn, theirs)(*args)
    for shape in SHAPES:
        x = _data(rng, shape) * 4
        x.reshape(-1)[:3] = (0.0, 3.0, -3.0)           # kinks of relu6, hardswish, hardsigmoid, leaky_relu
        against_torch(layer, twin, x, rng)
    assert layer(np.zeros((2, 2))).dtype == np.float64  # parameterless: follows the input's dtype


@pytest.mark.parametrize("ours,theirs,args", ACTIVATION_CASES, ids=[f"{c[0]}{c[2]}" for c in ACTIVATION_CASES])
def test_activation_gradcheck(ours, theirs, args):
    layer = getattr(nn, ours)(*args)
    spec, _ = layer._select((np.ones((2, 3)),))          # one spec, [...]; its attributes are the layer's
    check_grad(spec, inputs={"x": np.random.default_rng(3).standard_normal((4, 3))},
               **layer._spec_bindings).assert_ok()


def test_activation_arguments_are_checked():
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh', got 'erf'"):
        nn.GELU(approximate="erf")
    assert repr(nn.LeakyReLU(0.3)) == "LeakyReLU(negative_slope=0.3)"


# ---------------------------------------------------------------- attention

ATTENTION_CASES = [
    # (constructor arguments, B, L, S, cross-attention, masks)
    (dict(embed_dim=8, num_heads=2, batch_first=True), 3, 5, 5, False, ()),
    (dict(embed_dim=8, num_heads=2), 2, 4, 6, True, ("padding", "bool")),
    (dict(embed_dim=12, num_heads=3, batch_first=True, bias=False), 2, 3, 7, True, ("float3",)),
    (dict(embed_dim=8, num_heads=4, batch_first=True, kdim=5, vdim=6), 2, 4, 3, True, ("padding", "float")),
    (dict(embed_dim=6, num_heads=1), 1, 7, 7, False, ("bool", "padding")),
]


def _attention_inputs(rng, args, B, L, S, cross, masks):
    E, H = args["embed_dim"], args["num_heads"]
    layout = (lambda n, e: (B, n, e)) if args.get("batch_first") else (lambda n, e: (n, B, e))
    q = _data(rng, layout(L, E))
    k = _data(rng, layout(S, args.get("kdim", E))) if cross else q
    v = _data(rng, layout(S, args.get("vdim", E))) if cross else q
    padding = rng.random((B, S)) < 0.3
    padding[:, 0] = False                                # no row masked whole (torch gives NaN there too)
    options = {"padding": ("key_padding_mask", padding),
               "bool": ("attn_mask", np.triu(np.ones((L, S), bool), 1)),
               "float": ("attn_mask", _data(rng, (L, S))),
               "float3": ("attn_mask", _data(rng, (B * H, L, S)))}
    return q, k, v, dict(options[m] for m in masks)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")     # torch's, on bool with float
@pytest.mark.parametrize("args,B,L,S,cross,masks", ATTENTION_CASES)
def test_attention_matches_torch(args, B, L, S, cross, masks):
    t, rng = _torch(), _rng(5)
    layer, twin = nn.MultiheadAttention(**args), t.nn.MultiheadAttention(**args)
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in twin.named_parameters()]
    _randomize(twin, rng, 0.3, weight=0.0)             # about 1 would make the softmax one-hot
    nn.from_torch_state_dict(layer, twin.state_dict())
    q, k, v, kw = _attention_inputs(rng, args, B, L, S, cross, masks)
    y = layer(q, k, v, **kw)
    gy = _data(rng, y.shape)
    grads = layer.backward(gy)
    tq = t.from_numpy(q).requires_grad_()
    tk, tv = (t.from_numpy(k).requires_grad_(), t.from_numpy(v).requires_grad_()) if cross else (tq, tq)
    ty, weights = twin(tq, tk, tv, need_weights=False, **{n: t.from_numpy(m) for n, m in kw.items()})
    ty.backward(t.from_numpy(gy))
    assert weights is None
    _close(y.numpy(), ty.detach().numpy(), "output")
    for got, want in zip(grads if cross else (grads,), (tq, tk, tv)):
        _close(got.numpy(), want.grad.numpy(), "input gradient")
    for name, p in twin.named_parameters():
        _close(dict(layer.named_parameters())[name].grad, p.grad.numpy(), name)


def test_attention_self_attention_on_the_tape():
    """``attention(x)`` is ``attention(x, x, x)``: one input, its gradient on the tape."""
    rng = _rng(6)
    layer = nn.MultiheadAttention(8, 2, batch_first=True)
    x = Tensor(_data(rng, (2, 3, 8)), requires_grad=True)
    y = layer(x)
    np.testing.assert_array_equal(y.numpy(), layer(x, x, x).numpy())
    y.sum().backward()
    assert x.grad.shape == (2, 3, 8) and layer.out_proj.weight.grad.shape == (8, 8)


def test_attention_errors_name_the_argument():
    layer = nn.MultiheadAttention(8, 2, batch_first=True)
    x = np.ones((2, 3, 8), np.float32)
    with pytest.raises(ValueError, match=r"MultiheadAttention: key_padding_mask must have shape \[2, 3\]"):
        layer(x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \[3, 3\] or \[4, 3, 3\], got \[2, 3, 3\]"):
        layer(x, attn_mask=np.zeros((2, 3, 3), bool))
    with pytest.raises(ValueError, match="need_weights=True is not supported"):
        layer(x, need_weights=True)
    with pytest.raises(ValueError, match=r"must be \[B, L, E\]"):
        layer(np.ones((3, 8), np.float32))
    with pytest.raises(ValueError, match="embed_dim .10. must be divisible by num_heads .3."):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="dropout=0.1 is not supported"):
        nn.MultiheadAttention(8, 2, dropout=0.1)


ATTENTION_GRADCHECKS = [
    (dict(), dict(B=2, L=3, E=4, E3=12, num_heads=2)),
    (dict(self_attention=False, padding_mask=True, mask_rank=2), dict(B=2, L=3, S=2, E=4, E3=12, KD=4, VD=4,
                                                                      num_heads=2)),
    (dict(same_dims=False, self_attention=False, batch_first=False, mask_rank=4, bias=False),
     dict(B=2, L=2, S=3, E=4, KD=3, VD=5, H=2, num_heads=2)),
]


@pytest.mark.parametrize("variant,sizes", ATTENTION_GRADCHECKS)
def test_attention_gradcheck(variant, sizes):
    check_grad(nn.attention_spec(**variant), **sizes).assert_ok()


# ---------------------------------------------------------------- state_dict, torch <-> layerc, every layer


def _ids(shape, high):
    return lambda rng: rng.integers(0, high, shape)


def _floats(shape):
    return lambda rng: _data(rng, shape)


def _self_attention(module, x):
    return module(x, x, x, need_weights=False)[0]


# name: (layerc factory, torch factory, input, torch call or None)
TWINS = {
    "Linear": (lambda: nn.Linear(5, 3), lambda t: t.nn.Linear(5, 3), _floats((4, 5)), None),
    "Conv1D": (lambda: nn.Conv1D(2, 3, 3, padding=1), lambda t: t.nn.Conv1d(2, 3, 3, padding=1),
               _floats((2, 2, 7)), None),
    "Conv2D": (lambda: nn.Conv2D(2, 4, 3, stride=2, groups=2), lambda t: t.nn.Conv2d(2, 4, 3, stride=2, groups=2),
               _floats((2, 2, 7, 6)), None),
    "BatchNorm2D": (lambda: nn.BatchNorm2D(3), lambda t: t.nn.BatchNorm2d(3), _floats((2, 3, 4, 4)), None),
    "BatchNorm1D": (lambda: nn.BatchNorm1D(3), lambda t: t.nn.BatchNorm1d(3), _floats((4, 3, 5)), None),
    "InstanceNorm2D": (lambda: nn.InstanceNorm2D(3, affine=True, track_running_stats=True),
                       lambda t: t.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                       _floats((2, 3, 4, 4)), None),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4), lambda t: t.nn.GroupNorm(2, 4), _floats((2, 4, 3)), None),
    "LayerNorm": (lambda: nn.LayerNorm(6), lambda t: t.nn.LayerNorm(6), _floats((2, 3, 6)), None),
    "RMSNorm": (lambda: nn.RMSNorm(6), lambda t: t.nn.RMSNorm(6), _floats((2, 3, 6)), None),
    "Embedding": (lambda: nn.Embedding(9, 4), lambda t: t.nn.Embedding(9, 4), _ids((3, 5), 9), None),
    "MultiheadAttention": (lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                           lambda t: t.nn.MultiheadAttention(8, 2, batch_first=True), _floats((2, 3, 8)),
                           _self_attention),
    "Softmax": (lambda: nn.Softmax(-1), lambda t: t.nn.Softmax(-1), _floats((2, 5)), None),
    "LogSoftmax": (lambda: nn.LogSoftmax(1), lambda t: t.nn.LogSoftmax(1), _floats((2, 5, 3)), None),
    "PReLU": (lambda: nn.PReLU(3), lambda t: t.nn.PReLU(3), _floats((2, 3, 4)), None),
    "GLU": (lambda: nn.GLU(1), lambda t: t.nn.GLU(1), _floats((2, 4, 3)), None),
    "Unflatten": (lambda: nn.Unflatten(1, (2, -1)), lambda t: t.nn.Unflatten(1, (2, -1)), _floats((3, 8)), None),
    "MaxPool2D": (lambda: nn.MaxPool2D(3, 2), lambda t: t.nn.MaxPool2d(3, 2), _floats((2, 3, 7, 7)), None),
    "AvgPool2D": (lambda: nn.AvgPool2D(2), lambda t: t.nn.AvgPool2d(2), _floats((2, 3, 6, 6)), None),
    "Flatten": (lambda: nn.Flatten(), lambda t: t.nn.Flatten(), _floats((2, 3, 2, 2)), None),
    "ConvTranspose1D": (lambda: nn.ConvTranspose1D(2, 4, 3, stride=2, groups=2),
                        lambda t: t.nn.ConvTranspose1d(2, 4, 3, stride=2, groups=2), _floats((2, 2, 5)), None),
    "ConvTranspose2D": (lambda: nn.ConvTranspose2D(3, 2, 4, stride=2, padding=1),
                        lambda t: t.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1), _floats((2, 3, 5, 4)), None),
    "AdaptiveAvgPool2D": (lambda: nn.AdaptiveAvgPool2D(3), lambda t: t.nn.AdaptiveAvgPool2d(3),
                          _floats((2, 3, 7, 5)), None),
    "AdaptiveMaxPool2D": (lambda: nn.AdaptiveMaxPool2D(2), lambda t: t.nn.AdaptiveMaxPool2d(2),
                          _floats((2, 3, 5, 5)), None),
    "Dropout": (lambda: nn.Dropout(0.5), lambda t: t.nn.Dropout(0.5), _floats((3, 4)), None),
    **{name: (getattr(nn, name), lambda t, name=name: getattr(t.nn, name)(), _floats((3, 4)), None)
       for name in ("ReLU", "GELU", *activations.POINTWISE)},
    "Upsample": (lambda: nn.Upsample(scale_factor=2), lambda t: t.nn.Upsample(scale_factor=2),
                 _floats((2, 3, 3, 4)), None),
    "UpsamplingNearest2d": (lambda: nn.UpsamplingNearest2d(size=(5, 7)),
                            lambda t: t.nn.UpsamplingNearest2d(size=(5, 7)), _floats((2, 3, 3, 4)), None),
    **{name: (lambda name=name: _pad_layer(nn, name), lambda t, name=name: _pad_layer(t.nn, name),
              _floats((2, 3, 5, 6) if name.endswith("2d") else (2, 3, 6)), None) for name in nn.PADS},
}


def _pad_layer(lib, name, padding=None):
    """A padding layer of ``lib`` (layerc.nn or torch.nn): a constant pad's value 1.5."""
    padding = padding if padding is not None else (1, 2, 2, 0) if name.endswith("2d") else (2, 1)
    return getattr(lib, name)(padding, 1.5) if name.startswith("Constant") else getattr(lib, name)(padding)


@pytest.mark.parametrize("name", nn.PADS)
def test_padding_layers_match_torch(name):
    """Every mode, batched and unbatched, an int and torch's tuple (last axis first)."""
    t, rng = _torch(), _rng(6)
    axes = 2 if name.endswith("2d") else 1
    for padding, shape in ((None, (2, 3, 5, 6)[:2 + axes]), (3, (3, 4, 5)[:1 + axes]),
                           ((0, 2) * axes, (1, 2, 4, 3)[:2 + axes])):
        against_torch(_pad_layer(nn, name, padding), _pad_layer(t.nn, name, padding), _data(rng, shape), rng)


@pytest.mark.parametrize("mode,value", [("constant", 0.0), ("constant", -2.0), ("reflect", 0.0),
                                        ("replicate", 0.0), ("circular", 0.0)])
def test_padding_gradcheck(mode, value):
    from layerc.nn.pad import pad_spec
    check_grad(pad_spec(4, ((1, 2), (2, 1)), mode, value), N=2, D1=2, D2=3, D3=4).assert_ok()
    check_grad(pad_spec(2, ((0, 3),), mode, value), N=3, D1=4).assert_ok()


def test_a_padding_builds_per_size_for_its_first_sizes_then_one_build_for_the_rest():
    """Each of the first SIZED_BUILDS lengths a layer meets builds with the length
    bound (its turns constants); further lengths share one build with it free,
    so a stream of many lengths does not compile once per length. Every length
    is numpy's reflection."""
    from layerc.nn.base import SIZED_BUILDS
    layer, rng = nn.ReflectionPad1d((2, 3)), _rng(9)
    lengths = [4 + k for k in range(SIZED_BUILDS + 3)] + [4]
    for length in lengths:
        x = rng.standard_normal((2, 3, length)).astype(np.float32)
        np.testing.assert_array_equal(layer(x).numpy(), np.pad(x, ((0, 0), (0, 0), (2, 3)), mode="reflect"))
        bound = layer._active.compiled.sizes.get("D2")
        assert bound == (length if length < 4 + SIZED_BUILDS else None), length
    assert len(layer._variants) == SIZED_BUILDS + 1


def test_padding_errors_name_the_layer_and_the_argument():
    with pytest.raises(ValueError, match=r"ReflectionPad2d: padding \(5, 5\) in reflect mode needs an input "
                                         r"size of at least 6, got 3"):
        nn.ReflectionPad2d(5)(np.ones((1, 1, 3, 3), np.float32))
    for bad in ((1, 2, 3), 1.5, -1, "same", (1, 2, 3, -4)):
        with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be an integer >= 0 or 4 of them"):
            nn.ZeroPad2d(bad)
    with pytest.raises(ValueError, match=r"ConstantPad1d: input must be \[N, C, 1 axes\] or \[C, 1 axes\]"):
        nn.ConstantPad1d(1, 0.5)(np.ones((2, 3, 4, 5), np.float32))


def test_nearest_sources_are_torchs():
    """``(d * in) // out``, the source the nearest mode reads, is torch's
    ``floor(d * in / out)`` for every input size to 16 and output size to 40."""
    t = _torch()
    for size in range(1, 17):
        x = t.arange(size, dtype=t.float32).reshape(1, 1, size)
        for out in range(1, 41):
            want = t.nn.functional.interpolate(x, size=out, mode="nearest").numpy().ravel()
            np.testing.assert_array_equal((np.arange(out) * size) // out, want, err_msg=f"{size} -> {out}")


@pytest.mark.parametrize("kwargs,shapes", [
    (dict(scale_factor=2), [(2, 3, 4, 5), (2, 3, 7), (1, 1, 1, 1)]),
    (dict(scale_factor=(3, 2)), [(2, 3, 4, 5), (1, 2, 3, 3), (2, 1, 1, 6)]),
    (dict(size=(5, 7)), [(2, 3, 3, 4), (1, 2, 6, 9), (2, 3, 5, 7)]),
    (dict(size=13), [(1, 2, 5), (2, 3, 13), (2, 1, 20)]),
], ids=["x2", "x3x2", "size 5x7", "size 13"])
def test_upsample_matches_torch(kwargs, shapes):
    t, rng = _torch(), _rng(8)
    for shape in shapes:
        against_torch(nn.Upsample(**kwargs), t.nn.Upsample(**kwargs), _data(rng, shape), rng)


def test_upsample_gradcheck_and_errors():
    from layerc.nn.upsample import upsample_spec
    check_grad(upsample_spec((3, 4), (6, 9)), N=2, C=2, H=3, W=4).assert_ok()
    check_grad(upsample_spec((5,), (3,)), N=2, C=3, W=5).assert_ok()
    for kwargs, message in ((dict(scale_factor=2, mode="bilinear"), r"Upsample: mode must be one of 'nearest'"),
                            (dict(size=4, scale_factor=2), r"Upsample: give exactly one of size and scale_factor"),
                            (dict(scale_factor=1.5), r"Upsample: scale_factor must be positive whole numbers"),
                            (dict(size=(2, 0)), r"Upsample: size must be positive integers")):
        with pytest.raises(ValueError, match=message):
            nn.Upsample(**kwargs)
    with pytest.raises(ValueError, match=r"Upsample: size has 3 values for 2 spatial axes"):
        nn.Upsample(size=(2, 3, 4))(np.ones((1, 1, 2, 2), np.float32))


def test_every_layer_has_a_torch_twin():
    assert sorted(set(nn.__all__) - {"SpecLayer", *nn.LOSSES, *nn.TORCH_SPELLINGS}) == sorted(TWINS)


def _ported_model(lib):
    """A small ResNet written once against torch.nn's API: ``lib`` is torch.nn or layerc.nn."""
    class Block(lib.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = lib.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
            self.bn1 = lib.BatchNorm2d(cout)
            self.relu = lib.ReLU(inplace=True)
            self.conv2 = lib.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = lib.BatchNorm2d(cout, eps=1e-3, momentum=0.2)
            self.down = lib.Sequential(lib.Conv2d(cin, cout, 1, stride=stride, bias=False), lib.BatchNorm2d(cout))
            self.tail = lib.ModuleList([lib.Identity(), lib.ReLU()])

        def forward(self, x):
            y = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.down(x))
            for m in self.tail:
                y = m(y)
            return y

    return lib.Sequential(lib.Conv2d(3, 8, 3, padding=1), lib.BatchNorm2d(8), lib.ReLU(inplace=True),
                          lib.MaxPool2d(kernel_size=3, stride=2, padding=1), Block(8, 16, 2),
                          lib.AdaptiveAvgPool2d((1, 1)), lib.Flatten(1), lib.Dropout(p=0.2),
                          lib.Linear(in_features=16, out_features=10), lib.LogSoftmax(dim=1))


@pytest.mark.parametrize("train", [False, True])
def test_a_model_written_for_torch_nn_runs_on_layerc_nn(train):
    """torch.nn's spellings, keywords, Module, Sequential, ModuleList and Identity: the same source
    builds both; torch's weights load; outputs, the input's gradient and every
    parameter's agree (training: batch statistics; Dropout off, its masks differ)."""
    t, rng = _torch(), _rng(5)
    ours, theirs = _ported_model(nn), _ported_model(t.nn)
    _randomize(theirs, rng, 0.3, weight=0.5)
    nn.from_torch_state_dict(ours, theirs.state_dict())
    ours.train(train), theirs.train(train)
    ours[7].eval(), theirs[7].eval()
    x = _data(rng, (4, 3, 12, 10))
    ours.zero_grad()
    ox = layerc.Tensor(x, requires_grad=True)
    y = ours(ox)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)              # the tape, as torch's: a Python block has no backward of its own
    gx = ox.grad
    tx = t.from_numpy(x).requires_grad_(True)
    ty = theirs(tx)
    ty.backward(t.from_numpy(gy))
    _close(y.numpy(), ty.detach().numpy(), "output", 1e-4)
    _close(gx, tx.grad.numpy(), "input gradient", 1e-4)
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        _close(p.grad, grads[name].grad.numpy(), f"gradient of {name}", 1e-4)


def test_the_loss_modules_are_where_torch_has_them():
    """``nn.CrossEntropyLoss()`` as a port writes it: the loss modules of
    ``layerc.losses``, each torch.nn's of that name (tests/test_losses.py checks their values)."""
    t = _torch()
    for name in nn.LOSSES:
        assert getattr(nn, name) is getattr(layerc.losses, name) and hasattr(t.nn, name), name


def _eval_output(layer, twin, x, call):
    t = _torch()
    layer.eval(), twin.eval()
    with t.no_grad():
        want = (call or (lambda m, v: m(v)))(twin, t.from_numpy(x)).numpy()
    _close(layer(x).numpy(), want, "output")


@pytest.mark.parametrize("name", sorted(TWINS))
def test_state_dict_moves_from_torch_and_back(name):
    """torch's state_dict into layerc gives torch's outputs (eval: the running
    statistics count); layerc's state_dict (randomized) into a fresh torch twin,
    strictly, gives layerc's."""
    t, rng = _torch(), _rng(7)
    ours, theirs, make_input, call = TWINS[name]
    layer, twin = ours(), theirs(t)
    _randomize(twin, rng, 0.3, weight=0.5)
    nn.from_torch_state_dict(layer, twin.state_dict())
    x = make_input(rng)
    _eval_output(layer, twin, x, call)
    for p in layer.parameters():
        p.numpy()[...] = rng.standard_normal(p.shape) * 0.3
    for _, b in layer.named_buffers():
        b[...] = rng.random(b.shape) + 0.5
    fresh = theirs(t)
    fresh.load_state_dict(nn.to_torch_state_dict(layer))
    _eval_output(layer, fresh, x, call)


def test_torch_state_dict_counters_round_trip_and_keys_are_checked():
    t = _torch()
    twin = t.nn.Sequential(t.nn.Linear(3, 4), t.nn.BatchNorm1d(4))
    twin(t.randn(5, 3)), twin(t.randn(5, 3))
    from layerc import Sequential
    model = nn.from_torch_state_dict(Sequential(nn.Linear(3, 4), nn.BatchNorm1D(4)), twin.state_dict())
    back = nn.to_torch_state_dict(model)
    assert sorted(back) == sorted(twin.state_dict()) and int(back["1.num_batches_tracked"]) == 2
    with pytest.raises(KeyError, match="missing keys"):
        bigger = Sequential(nn.Linear(3, 4), nn.BatchNorm1D(4), nn.Linear(4, 2))
        nn.from_torch_state_dict(bigger, twin.state_dict())
    with pytest.raises(ValueError, match="shape mismatch"):
        nn.from_torch_state_dict(Sequential(nn.Linear(3, 5), nn.BatchNorm1D(4)), twin.state_dict())
