"""Convolution and pooling variants of layerc.nn: Conv1D/Conv2D padding
('same', 'valid', asymmetric) and padding modes, ConvTranspose1D/2D, MaxPool2D
and AvgPool2D with padding, dilation, ceil_mode, count_include_pad,
divisor_override, and the adaptive pools. Each against torch.nn (forward, the
input's and every parameter's gradient, float32) on three or more shapes with
odd sizes, and each spec's gradient against finite differences in float64."""
import numpy as np
import pytest

from layerc import check_grad, nn
from layerc.compiler.pipeline import compile_layer
from layerc.compiler.plan import plan_program
from layerc.runtime.module import LayerModule
from layerc.runtime import isa

torch = pytest.importorskip("torch")

F32 = dict(rtol=1e-4, atol=2e-5)
# the vector widths a library is built for (each its own build)
LEVELS = [level for level in isa.supported() if level != "baseline"] or ["baseline"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def against_torch(ours, theirs, shape, seed=0):
    """Forward, input gradient and parameter gradients of ``ours`` and its torch
    twin ``theirs`` (given ``ours``' parameters) on a random input of ``shape``."""
    rng = _rng(seed)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(p.numpy()))
    x = rng.standard_normal(shape).astype(np.float32)
    y = ours(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = ours.backward(gy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = theirs(xt)
    yt.backward(torch.from_numpy(gy))
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **F32)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), **F32)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


# ---------------------------------------------------------------- convolution padding

PADDINGS = [  # (layer arguments, input shapes): three shapes each, odd sizes among them
    (dict(kernel_size=3, padding=1, padding_mode="reflect"), [(2, 3, 7, 6), (1, 3, 5, 9), (3, 3, 4, 4)]),
    (dict(kernel_size=3, padding=(2, 1), padding_mode="replicate"), [(2, 3, 7, 6), (1, 3, 5, 9), (3, 3, 3, 2)]),
    (dict(kernel_size=(3, 2), padding=(1, 2), padding_mode="circular", stride=2),
     [(2, 3, 7, 6), (1, 3, 5, 9), (3, 3, 4, 4)]),
    (dict(kernel_size=(2, 3), padding="same", dilation=(1, 2)), [(2, 3, 7, 6), (1, 3, 5, 9), (3, 3, 1, 1)]),
    (dict(kernel_size=4, padding="same", padding_mode="reflect"), [(2, 3, 7, 6), (1, 3, 5, 9), (3, 3, 4, 4)]),
    (dict(kernel_size=3, padding="valid", groups=3), [(2, 3, 7, 6), (1, 3, 5, 9), (3, 3, 3, 3)]),
]


@pytest.mark.parametrize("args, shapes", PADDINGS, ids=[str(a) for a, _ in PADDINGS])
def test_conv2d_padding_matches_torch(args, shapes):
    """Each padding against torch; a padded copy (any mode but zeros) is built per
    image size (its turns constants), zero padding once for every size."""
    ours = nn.Conv2D(3, 6, **args)
    theirs = torch.nn.Conv2d(3, 6, **args)
    copied = args.get("padding_mode", "zeros") != "zeros"
    for k, shape in enumerate(shapes):
        ours.zero_grad()
        theirs.zero_grad()
        against_torch(ours, theirs, shape, seed=k)
        bound = {name: ours._active.compiled.sizes.get(name) for name in ("H", "W")}
        assert bound == (dict(zip(("H", "W"), shape[2:])) if copied else {"H": None, "W": None})


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv1d_same_padding_matches_torch(mode):
    ours = nn.Conv1D(2, 4, 4, padding="same", padding_mode=mode, bias=False)
    theirs = torch.nn.Conv1d(2, 4, 4, padding="same", padding_mode=mode, bias=False)
    for k, shape in enumerate([(2, 2, 9), (1, 2, 4), (3, 2, 17)]):
        ours.zero_grad()
        theirs.zero_grad()
        against_torch(ours, theirs, shape, seed=k)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("padding", [("reflect", ((1, 1), (2, 1))), ("replicate", ((0, 2), (1, 1))),
                                     ("circular", ((2, 1), (1, 0))), ("zeros", ((1, 2), (0, 1)))])
def test_conv2d_padding_gradcheck(padding, level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    check_grad(nn.Conv2DSpec, N=2, C=2, O=3, CG=2, KH=2, KW=3, H=5, W=4, padding=padding, stride=(1, 2)).assert_ok()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padded_copy_and_its_gradient_in_threads_match_torch(mode, level, monkeypatch):
    """A padding large enough (N*C*Hp*Wp >= 2 * PARALLEL_MIN_WORK) that its
    copy and its gradient run in threads (reflect and replicate: a gather, and
    a scatter where each thread owns its images)."""
    monkeypatch.setenv(isa.ENV, level)
    m = nn.Conv2DSpec.build(C=4, O=4, CG=4, KH=3, KW=2, padding=(mode, ((1, 2), (2, 1))), bias=False)
    x = _rng(3).standard_normal((4, 4, 187, 189)).astype(np.float32)
    weight = torch.from_numpy(m.weight.numpy().copy()).requires_grad_()
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (2, 1, 1, 2), mode=mode), weight)
    gy = _rng(4).standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(gy))
    m.set_threads(2)
    try:
        y = m.forward(x)
        gx = m.backward(gy)
    finally:
        m.set_threads(0)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **F32)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), **F32)
    # sums of 4 * 187 * 189 float32 products each
    np.testing.assert_allclose(m.weight.grad, weight.grad.numpy(), rtol=1e-3, atol=1e-2)


# ---------------------------------------------------------------- grouped and depthwise convolution

# (in, out, layer arguments, input shapes): the weight gradient sums each
# window offset's products inside the batch and row loops ("taps" nests)
GROUPED = [
    (4, 4, dict(kernel_size=3, padding=1, groups=4), [(2, 4, 7, 9), (1, 4, 3, 3), (3, 4, 10, 5)]),
    (6, 6, dict(kernel_size=3, padding=1, stride=2, groups=6), [(2, 6, 9, 7), (1, 6, 4, 5)]),
    (3, 3, dict(kernel_size=5, padding=2, groups=3), [(2, 3, 11, 9), (1, 3, 5, 6)]),
    (4, 8, dict(kernel_size=3, padding=1, groups=2), [(2, 4, 7, 9), (1, 4, 5, 3)]),
    (8, 8, dict(kernel_size=(3, 2), padding=(1, 0), groups=8, dilation=(2, 1)), [(2, 8, 9, 10)]),
    # rows longer than a tile of the weight gradient's partial sums (LC_TILE), and a
    # kernel 5 at dilation 3 with two outputs per channel
    (16, 16, dict(kernel_size=3, padding=1, groups=16), [(1, 16, 9, 67), (2, 16, 5, 131)]),
    (5, 10, dict(kernel_size=5, padding=6, dilation=3, groups=5), [(1, 5, 23, 70), (2, 5, 13, 17)]),
    (4, 6, dict(kernel_size=3, padding=3, dilation=3), [(1, 4, 11, 29), (3, 4, 7, 8)]),
]


@pytest.mark.parametrize("cin, cout, args, shapes", GROUPED, ids=[str(a) for _, _, a, _ in GROUPED])
def test_grouped_conv2d_matches_torch(cin, cout, args, shapes):
    ours = nn.Conv2D(cin, cout, **args)
    theirs = torch.nn.Conv2d(cin, cout, **args)
    for k, shape in enumerate(shapes):
        ours.zero_grad()
        theirs.zero_grad()
        against_torch(ours, theirs, shape, seed=k)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("bindings", [dict(C=3, O=3, CG=1, KH=3, KW=3, H=6, W=17, groups=3, padding=(1, 1)),
                                      dict(C=4, O=6, CG=2, KH=2, KW=3, H=7, W=17, groups=2, padding=(0, 1),
                                           stride=(2, 1))])
def test_grouped_conv2d_gradcheck(bindings, level, monkeypatch):
    """Rows long enough (W=17) for a vector loop: the weight gradient is a
    "taps" nest; its rows of a bound length keep a partial sum per offset and
    column (lanes), added across at the end."""
    monkeypatch.setenv(isa.ENV, level)
    m = nn.Conv2DSpec.build(**bindings, dtype=np.float64)
    assert "taps" in [nest.kind for nest in plan_program(m.compiled.backward)]
    assert "lc_lanes" in m.source
    check_grad(nn.Conv2DSpec, N=2, **bindings).assert_ok()


@pytest.mark.parametrize("stride, inside", [(1, True), (2, False)])
def test_weight_gradient_offsets_run_inside_a_contiguous_row(stride, inside):
    """Where every read walks the row one element at a time, the weight
    gradient's window offsets run unrolled inside the vectorized row loop (a
    row vector loaded once for all nine); a strided read keeps them around it."""
    m = nn.Conv2DSpec.build(C=8, O=8, CG=1, KH=3, KW=3, groups=8, padding=(1, 1), stride=(stride, stride))
    (taps,) = [nest for nest in plan_program(m.compiled.backward) if nest.kind == "taps"]
    assert (not taps.loops[-1].simd) == inside
    nest = m.source.split("/* grad_weight[o, j1, i, j] = sum")[1].split("/*")[0]
    assert ("#pragma GCC unroll 3" in nest) == inside


@pytest.mark.parametrize("args", [dict(kernel_size=3, padding=1), dict(kernel_size=5, padding=2),
                                  dict(kernel_size=3, padding=1, stride=2)])
def test_depthwise_conv2d_matches_torch_at_edge_values(args):
    """inf, -inf and NaN on the image's border and inside, the largest float and
    a subnormal: the bias the sum starts at, the padding read as zero (never
    0 * inf), and the weight gradient's guarded row reads agree with torch."""
    ours, theirs = nn.Conv2D(4, 4, groups=4, **args), torch.nn.Conv2d(4, 4, groups=4, **args)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(p.numpy()))
    rng = _rng(7)
    x = rng.standard_normal((2, 4, 9, 23)).astype(np.float32)
    x[0, 0, 0, 0], x[0, 1, 4, 22], x[1, 2, 8, 5] = np.inf, -np.inf, np.nan
    x[1, 3, 3, 3], x[0, 3, 5, 7] = 3e38, 1e-40
    y = ours(x)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = ours.backward(gy)
    xt = torch.from_numpy(x).requires_grad_()
    theirs(xt).backward(torch.from_numpy(gy))
    with torch.no_grad():
        np.testing.assert_allclose(y.numpy(), theirs(xt).numpy(), rtol=1e-4, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4, equal_nan=True)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-4, atol=1e-3,
                                   equal_nan=True, err_msg=name)


# free rows (the layers' own build): the weight gradient's rows of a run-time
# length keep their partial sums per position of a tile (LC_TILE)
FREE_ROWS = [
    (nn.Conv2DSpec, dict(C=3, O=3, CG=1, KH=3, KW=3, groups=3, padding=(1, 1)), dict(N=2, H=5, W=21)),
    (nn.Conv2DSpec, dict(C=2, O=4, CG=1, KH=5, KW=5, groups=2, padding=(6, 6), dilation=(3, 3)),
     dict(N=1, H=9, W=19)),
    (nn.Conv2DSpec, dict(C=2, O=3, CG=2, KH=3, KW=3, padding=(3, 3), dilation=(3, 3)), dict(N=1, H=7, W=11)),
    (nn.Conv1DSpec, dict(C=3, O=3, CG=1, K=3, groups=3, padding=(2,), dilation=(2,), stride=(1,)),
     dict(N=2, L=70)),
]


@pytest.mark.parametrize("spec, bindings, sizes", FREE_ROWS, ids=[str(b) for _, b, _ in FREE_ROWS])
def test_conv_of_free_rows_gradcheck(spec, bindings, sizes):
    module = LayerModule(compile_layer(spec, bias=False, **bindings), dtype=np.float64)
    assert "* LC_TILE +" in module.source          # the weight gradient's tiles
    check_grad(spec, module=module, **sizes).assert_ok()


@pytest.mark.parametrize("groups", [16, 4])
def test_grouped_conv2d_in_threads_matches_one_thread(groups):
    """Large enough that every kernel of forward and backward runs in threads."""
    m = nn.Conv2DSpec.build(C=16, O=16, CG=16 // groups, KH=3, KW=3, padding=(1, 1), groups=groups)
    x = _rng(5).standard_normal((4, 16, 40, 37)).astype(np.float32)
    gy = _rng(6).standard_normal((4, 16, 40, 37)).astype(np.float32)
    results = []
    assert "taps" in [nest.kind for nest in plan_program(m.compiled.backward)]
    for threads in (1, 2, 3):
        m.set_threads(threads)
        try:
            m.zero_grad()
            y, gx = m.forward(x).numpy().copy(), m.backward(gy).numpy().copy()
            results.append((y, gx, m.weight.grad.copy(), m.bias.grad.copy()))
        finally:
            m.set_threads(0)
    for many in results[1:]:
        for a, b in zip(results[0], many):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)


def test_conv_padding_arguments_are_checked():
    with pytest.raises(ValueError, match="Conv2D: padding='same' needs stride 1"):
        nn.Conv2D(3, 4, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match="Conv2D: padding_mode must be one of"):
        nn.Conv2D(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="Conv1D: padding must be an integer >= 0 or 1 of them, 'valid' or 'same'"):
        nn.Conv1D(3, 4, 3, padding="full")
    layer = nn.Conv2D(1, 1, 5, padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"Conv2D: padding \(3, 3\) in reflect mode needs an input size of at least 4"):
        layer(np.zeros((1, 1, 3, 8), np.float32))
    assert nn.Conv2D(3, 4, 3, padding="same").padding == "same"       # as torch keeps it


# ---------------------------------------------------------------- transposed convolution

TRANSPOSED = [
    (dict(kernel_size=3), [(2, 4, 5, 6), (1, 4, 1, 1), (3, 4, 4, 3)]),
    (dict(kernel_size=4, stride=2, padding=1), [(2, 4, 5, 6), (1, 4, 1, 1), (3, 4, 4, 3)]),
    (dict(kernel_size=3, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, dilation=(2, 1)),
     [(2, 4, 5, 7), (1, 4, 2, 1), (3, 4, 3, 3)]),
    (dict(kernel_size=(1, 3), stride=(3, 2), padding=(0, 2), bias=False), [(2, 4, 4, 5), (1, 4, 3, 3), (2, 4, 1, 4)]),
    (dict(kernel_size=1, stride=2), [(2, 4, 4, 5), (1, 4, 3, 3), (2, 4, 1, 1)]),
]


@pytest.mark.parametrize("args, shapes", TRANSPOSED, ids=[str(a) for a, _ in TRANSPOSED])
def test_conv_transpose2d_matches_torch(args, shapes):
    ours = nn.ConvTranspose2D(4, 6, **args)
    theirs = torch.nn.ConvTranspose2d(4, 6, **args)
    assert ours.weight.shape == tuple(theirs.weight.shape)          # [in, out/groups, kh, kw]
    for k, shape in enumerate(shapes):
        ours.zero_grad()
        theirs.zero_grad()
        against_torch(ours, theirs, shape, seed=k)


def test_conv_transpose1d_matches_torch():
    ours = nn.ConvTranspose1D(3, 4, 5, stride=3, padding=2, output_padding=1)
    theirs = torch.nn.ConvTranspose1d(3, 4, 5, stride=3, padding=2, output_padding=1)
    for k, shape in enumerate([(2, 3, 7), (1, 3, 1), (3, 3, 10)]):
        ours.zero_grad()
        theirs.zero_grad()
        against_torch(ours, theirs, shape, seed=k)


@pytest.mark.parametrize("bindings", [
    dict(stride=(2, 2), padding=(1, 1), output_padding=(1, 0), dilation=(1, 1), groups=1, C=2, OG=3, O=3),
    dict(stride=(1, 3), padding=(0, 1), output_padding=(0, 2), dilation=(2, 1), groups=2, C=4, OG=1, O=2),
])
def test_conv_transpose2d_gradcheck_and_written_backward(bindings):
    """The spec's backward (convolutions) against finite differences, and
    against the backward autodiff derives from the forward (``checked=True``)."""
    sizes = dict(N=2, H=3, W=4, KH=3, KW=2)
    check_grad(nn.ConvTranspose2DSpec, **sizes, **bindings).assert_ok()
    bindings.pop("O")
    nn.ConvTranspose2DNoBiasSpec.build(dtype="float64", checked=True, **sizes, **bindings)


def test_conv_transpose_arguments_are_checked():
    with pytest.raises(ValueError, match="ConvTranspose2D: output_padding"):
        nn.ConvTranspose2D(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.ConvTranspose2D(3, 4, 3, groups=2)


# ---------------------------------------------------------------- pooling

POOLS = [  # (layerc layer, torch layer, input shapes)
    ("MaxPool2D", dict(kernel_size=3, stride=2, padding=1), [(2, 3, 7, 8), (1, 2, 5, 5), (2, 1, 2, 3)]),
    ("MaxPool2D", dict(kernel_size=3, stride=2, padding=1, dilation=2), [(2, 3, 9, 8), (1, 2, 5, 6), (2, 1, 7, 5)]),
    ("MaxPool2D", dict(kernel_size=2, ceil_mode=True), [(2, 3, 7, 5), (1, 2, 5, 5), (2, 1, 3, 2)]),
    ("MaxPool2D", dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
     [(2, 3, 8, 6), (1, 2, 5, 5), (2, 1, 4, 3)]),
    ("AvgPool2D", dict(kernel_size=3, stride=2, padding=1), [(2, 3, 7, 8), (1, 2, 5, 5), (2, 1, 2, 3)]),
    ("AvgPool2D", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
     [(2, 3, 7, 8), (1, 2, 5, 5), (2, 1, 2, 3)]),
    ("AvgPool2D", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), [(2, 3, 8, 8), (1, 2, 5, 6), (2, 1, 4, 3)]),
    ("AvgPool2D", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
     [(2, 3, 8, 6), (1, 2, 5, 6), (2, 1, 4, 3)]),
    ("AvgPool2D", dict(kernel_size=2, divisor_override=3), [(2, 3, 6, 6), (1, 2, 5, 7), (2, 1, 2, 3)]),
]


@pytest.mark.parametrize("name, args, shapes", POOLS, ids=[f"{n} {a}" for n, a, _ in POOLS])
def test_pool_matches_torch(name, args, shapes):
    ours, theirs = getattr(nn, name)(**args), getattr(torch.nn, name.replace("2D", "2d"))(**args)
    for k, shape in enumerate(shapes):
        against_torch(ours, theirs, shape, seed=k)


ADAPTIVE = [
    ("AdaptiveAvgPool2D", 3, [(2, 3, 7, 8), (1, 2, 3, 3), (2, 1, 5, 4)]),
    ("AdaptiveAvgPool2D", (1, 2), [(2, 3, 7, 8), (1, 2, 3, 3), (2, 1, 5, 4)]),
    ("AdaptiveAvgPool2D", 1, [(2, 3, 7, 8), (1, 2, 1, 1), (2, 1, 5, 4)]),
    ("AdaptiveMaxPool2D", (3, 2), [(2, 3, 7, 5), (1, 2, 3, 3), (2, 1, 8, 4)]),
]


@pytest.mark.parametrize("name, size, shapes", ADAPTIVE, ids=[f"{n} {s}" for n, s, _ in ADAPTIVE])
def test_adaptive_pool_matches_torch(name, size, shapes):
    ours, theirs = getattr(nn, name)(size), getattr(torch.nn, name.replace("2D", "2d"))(size)
    for k, shape in enumerate(shapes):
        against_torch(ours, theirs, shape, seed=k)


@pytest.mark.parametrize("spec, bindings", [
    (nn.MaxPool2DSpec, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 1), ceil_mode=False)),
    (nn.MaxPool2DSpec, dict(kernel_size=(2, 2), stride=(2, 2), padding=(1, 0), dilation=(1, 1), ceil_mode=True)),
    (nn.AvgPool2DSpec, dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True,
                            count_include_pad=False, divisor_override=0)),
    (nn.AvgPool2DSpec, dict(kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=False,
                            count_include_pad=True, divisor_override=5)),
    (nn.AdaptiveAvgPool2DSpec, dict(output_size=(3, 2))),
    (nn.AdaptiveMaxPool2DSpec, dict(output_size=(2, 3))),
])
def test_pool_gradcheck(spec, bindings):
    check_grad(spec, N=2, C=2, H=7, W=5, **bindings).assert_ok()


def test_max_pool_padding_reads_minus_infinity():
    """An all-negative image: zero padding would win every border window."""
    x = -np.ones((1, 1, 3, 3), np.float32) - np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    y = nn.MaxPool2D(3, stride=1, padding=1)(x).numpy()
    assert (y < 0).all()
    np.testing.assert_array_equal(y, torch.nn.MaxPool2d(3, 1, 1)(torch.from_numpy(x)).numpy())


def test_pool_arguments_are_checked():
    with pytest.raises(ValueError, match="MaxPool2D: padding"):
        nn.MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match="AvgPool2D: divisor_override"):
        nn.AvgPool2D(2, divisor_override=0)
    with pytest.raises(ValueError, match=r"AvgPool2D: input must be \[N, C, H, W\]"):
        nn.AvgPool2D(2)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="smaller than the window"):
        nn.MaxPool2D(3)(np.zeros((1, 1, 2, 2), np.float32))
