"""Window reductions (compiler/windows.py, templates/window.c.j2): pooling and
any small window written in index notation, recognized in the IR, their
column loop vectorized, their gradients checked against finite differences,
numpy and PyTorch (max: the first maximal element, or the first NaN, gets the
gradient)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from layerc import Attr, Input, Param, check_grad, compile_layer, layer, nn, ops
from layerc.compiler import ir
from layerc.compiler.autodiff import gradient_program
from layerc.compiler.build import BuildOptions
from layerc.compiler.schedule import plan_program
from layerc.compiler.windows import plan_sliding
from layers import Dense
from test_codegen_safety import REPO, _asan_env, vector_report

SIZES = [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]     # (kernel, stride)
POOLS = {"max": nn.MaxPool2DSpec, "avg": nn.AvgPool2DSpec}


@layer
class StridedMax1D:
    """A 1-D max window written by hand: overlapping (3 wide, every 2)."""
    x = Input("N", "L")
    size = Attr(3)
    stride = Attr(2)

    def forward(x, size, stride):
        N, L = x.shape
        k = ops.reduce_axis(size, "k")
        return ops.compute((N, (L - size) // stride + 1), lambda n, l: ops.max(x[n, l * stride + k], over=k))


@layer
class PaddedPool2D:
    """A 3x3 window every 2, padded by 1 (reads outside x are zero): a mean
    counting the padding (PyTorch's count_include_pad), or a max over it."""
    x = Input("N", "C", "H", "W")
    reduce = Attr("sum")

    def forward(x, reduce):
        N, C, H, W = x.shape
        i, j = ops.reduce_axis(3, "i"), ops.reduce_axis(3, "j")
        pool = {"sum": lambda v: ops.sum(v / 9.0, over=(i, j)), "max": lambda v: ops.max(v, over=(i, j))}[reduce]
        return ops.compute((N, C, (H - 1) // 2 + 1, (W - 1) // 2 + 1),
                           lambda n, c, h, w: pool(x[n, c, 2 * h + i - 1, 2 * w + j - 1]))


@layer
class DilatedMax2D:
    """A 3x3 max every 2, its taps 2 apart (PyTorch's dilation=2)."""
    x = Input("N", "C", "H", "W")

    def forward(x):
        N, C, H, W = x.shape
        i, j = ops.reduce_axis(3, "i"), ops.reduce_axis(3, "j")
        return ops.compute((N, C, (H - 5) // 2 + 1, (W - 5) // 2 + 1),
                           lambda n, c, h, w: ops.max(x[n, c, 2 * h + 2 * i, 2 * w + 2 * j], over=(i, j)))


@layer
class ChannelsLastMax:
    """A 3x3 max every 2 over [N, H, W, C]: the channels are the column."""
    x = Input("N", "H", "W", "C")

    def forward(x):
        N, H, W, C = x.shape
        i, j = ops.reduce_axis(3, "i"), ops.reduce_axis(3, "j")
        return ops.compute((N, (H - 3) // 2 + 1, (W - 3) // 2 + 1, C),
                           lambda n, h, w, c: ops.max(x[n, 2 * h + i, 2 * w + j, c], over=(i, j)))


def _stage(program, name):
    return next(s for s in program.stages if s.name.startswith(name))


# ---------------------------------------------------------------- the IR: what is a window


def test_a_max_pool_runs_its_columns_innermost_with_the_window_inside():
    forward = nn.MaxPool2DSpec.trace(kernel_size=(2, 2), stride=(2, 2))
    plan = plan_sliding(forward.stages[0])
    assert [a.name for a in plan.planes] == ["n", "c", "h"] and plan.column.name == "w"
    assert [a.name for a in plan.inner] == ["i", "j"] and not plan.scatter


def test_a_strided_gradient_is_the_scatter_it_inverts():
    """The gather autodiff derives (divisions, divisibility guards) runs as
    dx[n, c, 2h + i, 2w + j] += ..., parallel over the planes n, c, the
    column's window offset inside the column loop (one term per element)."""
    backward = gradient_program(nn.AvgPool2DSpec.trace(kernel_size=(2, 2), stride=(2, 2)))
    plan = plan_sliding(_stage(backward, "grad_x"))
    h, w = (a.name for a in plan.stage.axes[2:])
    assert [ir.format_iexpr(c) for c in plan.stage.scatter_index] == ["n", "c", f"i + 2 * {h}", f"j + 2 * {w}"]
    assert "//" not in ir.format_stage(plan.stage) and "%" not in ir.format_stage(plan.stage)
    assert [a.name for a in plan.planes] == ["n", "c"] and [a.name for a in plan.rows] == [h]
    assert [a.name for a in plan.inner] == ["j"] and [a.name for a in plan.outer] == ["i"] and plan.injective


def test_overlapping_windows_gather_each_phase_of_the_column():
    """3 wide every 2: two columns of the scatter would write one element, so
    the column runs over pairs of elements (2m + p), each gathering its terms
    and stored once per row of the window."""
    backward = gradient_program(nn.AvgPool2DSpec.trace(kernel_size=(3, 3), stride=(2, 2)))
    plan = plan_sliding(_stage(backward, "grad_x"))
    phase, m = plan.inner[0].name, plan.column.name
    assert ir.format_iexpr(plan.stage.scatter_index[-1]) == f"2 * {m} + {phase}"
    assert [a.name for a in plan.inner] == [phase, "j"] and [a.name for a in plan.outer] == ["i"]
    assert not plan.injective and plan.clear


def test_reductions_that_do_not_slide_are_no_windows():
    """A row's maximum over its (few) classes, and a matrix product."""
    assert plan_sliding(_stage(nn.SoftmaxSpec.trace(C=7), "max")) is None
    assert plan_sliding(Dense.trace(I=4, O=3).stages[0]) is None


def test_a_stride_one_gradient_is_a_window_itself():
    backward = gradient_program(nn.MaxPool2DSpec.trace(kernel_size=(2, 2), stride=(1, 1)))
    plan = plan_sliding(_stage(backward, "grad_x"))
    assert plan is not None and not plan.scatter and plan.column.name == "j3"


# ---------------------------------------------------------------- gradients and oracles


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("kernel,stride", SIZES)
def test_pool_gradients_match_finite_differences(kind, kernel, stride):
    check_grad(POOLS[kind], N=2, C=2, H=7, W=9, kernel_size=(kernel, kernel), stride=(stride, stride)).assert_ok()


@pytest.mark.parametrize("spec,bindings", [
    (StridedMax1D, dict(N=2, L=11)),
    (StridedMax1D, dict(N=2, L=8, size=2, stride=2)),
    (PaddedPool2D, dict(N=2, C=2, H=7, W=6)),
    (PaddedPool2D, dict(N=2, C=2, H=6, W=7, reduce="max")),
    (DilatedMax2D, dict(N=2, C=2, H=9, W=8)),
    (ChannelsLastMax, dict(N=2, H=9, W=7, C=5)),
], ids=["1d-overlapping", "1d", "padded-avg", "padded-max", "dilated", "channels-last"])
def test_hand_written_windows_gradients_match_finite_differences(spec, bindings):
    check_grad(spec, **bindings).assert_ok()


def test_a_hand_written_window_matches_numpy():
    m = StridedMax1D.build(dtype="float64")
    assert [n.kind for n in plan_program(m.compiled.forward)] == ["window"]
    x = np.random.default_rng(1).standard_normal((3, 12))
    y = m.forward(x).numpy()
    np.testing.assert_array_equal(y, np.stack([x[:, 2 * l:2 * l + 3].max(1) for l in range(5)], 1))


def _torch_pool(torch, kind, x, kernel, stride, padding=0):
    if kind == "max":
        x = torch.nn.functional.pad(x, (padding,) * 4)     # layerc pads with zeros
        return torch.nn.functional.max_pool2d(x, kernel, stride)
    return torch.nn.functional.avg_pool2d(x, kernel, stride, padding=padding, count_include_pad=True)


def _against_torch(torch, layer_module, kind, x, kernel, stride, padding=0, rtol=1e-5, atol=1e-6):
    """Forward and input gradient of ``layer_module`` and of torch, equal."""
    y = layer_module.forward(x).numpy()
    gy = np.random.default_rng(2).standard_normal(y.shape).astype(x.dtype)
    gx = layer_module.backward(gy).numpy()
    xt = torch.from_numpy(x).requires_grad_()
    yt = _torch_pool(torch, kind, xt, kernel, stride, padding)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.torch
@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("kernel,stride", SIZES)
@pytest.mark.parametrize("height,width", [(7, 9), (33, 31)])
def test_pools_match_torch(kind, kernel, stride, height, width):
    torch = pytest.importorskip("torch")
    layer_module = (nn.MaxPool2D if kind == "max" else nn.AvgPool2D)(kernel, stride=stride)
    x = np.random.default_rng(kernel * stride).standard_normal((2, 3, height, width)).astype(np.float32)
    _against_torch(torch, layer_module, kind, x, kernel, stride)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["sum", "max"])
def test_padded_windows_match_torch(kind):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 8)).astype(np.float32)
    layer_module = PaddedPool2D.build(reduce=kind)
    _against_torch(torch, layer_module, "max" if kind == "max" else "avg", x, 3, 2, padding=1)


@pytest.mark.torch
def test_a_dilated_window_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((2, 3, 13, 12)).astype(np.float32)
    layer_module = DilatedMax2D.build()
    y = layer_module.forward(x).numpy()
    gy = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.max_pool2d(xt, 3, 2, dilation=2)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(layer_module.backward(gy).numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_gradients_are_the_same_every_run():
    """Each plane of the gradient belongs to one thread, and its terms are
    added in one order: overlapping windows give bit-identical gradients."""
    x = np.random.default_rng(8).standard_normal((4, 8, 33, 31)).astype(np.float32)
    for layer_module in (nn.AvgPool2D(3, stride=2), nn.MaxPool2D(3, stride=2)):
        y = layer_module(x)
        gy = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
        first = layer_module.backward(gy).numpy().copy()
        for _ in range(3):
            layer_module(x)
            np.testing.assert_array_equal(layer_module.backward(gy).numpy(), first)


def _special_values():
    """Windows (2x2, stride 2) holding a NaN, two NaNs, -inf, all -inf,
    ties of finite values and of zeros (a ReLU's output)."""
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 8)).astype(np.float32)
    plane = x[0, 0]
    plane[0, 1] = np.nan
    plane[0, 2:4] = -np.inf
    plane[0:2, 4:6] = -np.inf
    plane[2:4, 0:2] = 1.5
    plane[2:4, 2:4] = 0.0
    plane[3, 5] = plane[2, 4] = 2.5
    plane[4, 6] = plane[5, 7] = np.nan
    x[0, 1] = np.maximum(x[0, 1], 0)
    return x


@pytest.mark.torch
def test_max_pool_special_values_match_torch():
    """NaN wins its window and takes its gradient, -inf is a value like any
    other, and ties send the gradient to the first (row-major) maximum. Of
    two NaNs layerc picks the first, PyTorch the last: that window is left out."""
    torch = pytest.importorskip("torch")
    x = _special_values()
    layer_module = nn.MaxPool2D(2)
    y = layer_module.forward(x).numpy()
    gy = np.arange(1, y.size + 1, dtype=np.float32).reshape(y.shape)
    gy[0, 1, 1, 1] = np.inf         # reaches that window's maximum, not its other elements
    gx = layer_module.backward(gy).numpy()
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.max_pool2d(xt, 2)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 2] == -np.inf
    two_nans = (slice(None), slice(None), slice(4, 6), slice(6, 8))
    torch_gx = xt.grad.numpy()
    assert gx[0, 0, 4, 6] == gy[0, 0, 2, 3] and torch_gx[0, 0, 5, 7] == gy[0, 0, 2, 3]
    gx[two_nans], torch_gx[two_nans] = 0, 0
    np.testing.assert_array_equal(gx, torch_gx)


# ---------------------------------------------------------------- the generated C


def _simd_loops(source: str, function: str) -> list:
    """``(first, last)`` lines (1-based) of each loop marked ``omp simd`` in ``function``."""
    lines = source.splitlines()
    start = next(i for i, l in enumerate(lines) if re.match(rf"int {function}\(", l) and not l.endswith(";"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == "}")
    loops = []
    for i in range(start, end):
        if lines[i].strip().startswith("#pragma omp simd"):
            depth, j = 0, i + 1
            while True:
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0:
                    break
                j += 1
            loops.append((i + 2, j + 1))
    return loops


@pytest.mark.parametrize("kind,kernel", [("max", 2), ("max", 3), ("avg", 3)])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_window_column_loops_vectorize(kind, kernel, dtype, tmp_path):
    """Forward, the max's first-maximum pass and the strided scatter: every
    column loop vectorizes (gcc reports a line inside it)."""
    source = compile_layer(POOLS[kind], kernel_size=(kernel, kernel), stride=(2, 2)).source
    reported, report = vector_report(source, tmp_path)
    for role in ("forward", "backward"):
        function = f"lc_{POOLS[kind].name.lower()}_{role}_{dtype}"
        loops = _simd_loops(source, function)
        assert loops, f"no simd loop in {function}"
        missed = [first for first, last in loops if not any(first <= r <= last for r in reported)]
        assert not missed, f"{function}: loops at lines {missed} not vectorized:\n{report}"


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_depthwise_conv_loops_vectorize(dtype, bias, tmp_path):
    """A depthwise convolution of free rows: forward (its sum started at the
    bias) and input gradient (window nests, their all-edge rows included) and
    the weight gradient's tiles."""
    from layerc.nn import Conv2DSpec
    source = compile_layer(Conv2DSpec, C=4, O=4, CG=1, KH=3, KW=3, groups=4, padding=(1, 1), bias=bias).source
    reported, report = vector_report(source, tmp_path)
    for role in ("forward", "backward"):
        function = f"lc_conv2dspec_{role}_{dtype}"
        loops = _simd_loops(source, function)
        assert loops, f"no simd loop in {function}"
        missed = [first for first, last in loops if not any(first <= r <= last for r in reported)]
        assert not missed, f"{function}: loops at lines {missed} not vectorized:\n{report}"


@layer
class ResidualDepthwise:
    """``x + bias + depthwise(x)`` (3x3, zero padding 1, one weight per
    channel): a window sum whose only reader adds a value that changes along
    the column."""
    x = Input("N", "C", "H", "W")
    weight = Param("C", 3, 3)
    bias = Param("C")

    def forward(x, weight, bias):
        N, C, H, W = x.shape
        i, j = ops.reduce_axis(3, "i"), ops.reduce_axis(3, "j")
        window = ops.compute((N, C, H, W), lambda n, c, h, w: ops.sum(
            x[n, c, h + i - 1, w + j - 1] * weight[c, i, j], over=(i, j)))
        return x + bias.reshape(C, 1, 1) + window


def _depthwise_reference(x, weight, bias):
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    H, W = x.shape[2:]
    window = sum(padded[:, :, i:i + H, j:j + W] * weight[None, :, i, j, None, None]
                 for i in range(3) for j in range(3))
    return window + bias[None, :, None, None]


@pytest.mark.parametrize("spec, bindings", [
    (nn.Conv2DSpec, dict(C=5, O=5, CG=1, KH=3, KW=3, groups=5, padding=(1, 1))),
    (ResidualDepthwise, dict(C=5))])
def test_a_window_sum_read_by_one_addition_starts_at_the_addend(spec, bindings):
    """The bias of a depthwise convolution, or a residual added to it, is where
    the window's sum starts: one nest writes the output (no sum stored and read
    again), on rows narrower and wider than a run of vectors, the edges too."""
    m = spec.build(**bindings)
    nests = plan_program(m.compiled.forward)
    assert [n.form for n in nests] == ["window"] and nests[0].sliding.start is not None
    rng = np.random.default_rng(3)
    weight, bias = (rng.standard_normal(p.data.shape).astype(np.float32) for p in m.parameters())
    m.weight.data[...] = weight.reshape(m.weight.data.shape)
    m.bias.data[...] = bias
    for shape in [(2, 5, 4, 3), (1, 5, 9, 37), (3, 5, 1, 20)]:
        x = rng.standard_normal(shape).astype(np.float32)
        want = _depthwise_reference(x, weight.reshape(5, 3, 3), bias) + (x if spec is ResidualDepthwise else 0)
        np.testing.assert_allclose(m.forward(x).numpy(), want, rtol=1e-5, atol=1e-5)
    assert check_grad(spec, N=2, H=4, W=19, **bindings).ok


def sanitized_run() -> None:
    """Forward and backward of odd-sized windows built with AddressSanitizer and
    UBSan (run in a process with the ASan runtime preloaded); prints the cases."""
    rng = np.random.default_rng(0)
    ran = []
    for spec, bindings, shape in [
            (nn.MaxPool2DSpec, dict(kernel_size=(3, 3), stride=(2, 2)), (2, 3, 7, 9)),
            (nn.AvgPool2DSpec, dict(kernel_size=(2, 2), stride=(3, 3)), (1, 2, 5, 11)),
            (PaddedPool2D, dict(reduce="max"), (1, 2, 5, 3)),
            (PaddedPool2D, {}, (3, 1, 4, 1)),
            (StridedMax1D, {}, (2, 4)),
            (DilatedMax2D, {}, (1, 2, 9, 8)),
            (nn.MaxPool2DSpec, dict(kernel_size=(10, 20), stride=(10, 20)), (1, 2, 21, 41)),   # in lanes
            (ResidualDepthwise, dict(C=2), (2, 2, 3, 19)),                                      # started sums
            (nn.Conv2DSpec, dict(C=2, O=2, CG=1, KH=3, KW=3, groups=2, padding=(1, 1)), (2, 2, 5, 7))]:  # flat planes
        m = spec.build(options=BuildOptions(sanitize=True), dtype="float64", **bindings)
        y = m.forward(rng.standard_normal(shape))
        m.backward(np.ones(y.shape))
        ran.append(spec.name)
    print(json.dumps(ran))


@pytest.mark.sanitizer
def test_windows_run_clean_under_asan_and_ubsan():
    env = _asan_env()
    env["PYTHONPATH"] = f"{REPO}{':' + str(REPO / 'tests')}"
    result = subprocess.run([sys.executable, "-c", "import test_windows; test_windows.sanitized_run()"],
                            env=env, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr[-5000:]
    assert len(json.loads(result.stdout.strip().splitlines()[-1])) == 9


def test_a_wide_window_that_tiles_its_input_is_differentiated_as_one_read_per_element():
    """A global pool (16 x 16 over 16 x 16): its input gradient reads the output
    gradient once per element (y // 16), not the window's 256 taps per element,
    and agrees with finite differences."""
    backward = gradient_program(nn.AvgPool2DSpec.trace(kernel_size=(16, 16), stride=(16, 16)))
    grad = _stage(backward, "grad_x")
    assert grad.reduce is None and "//" in ir.format_stage(grad)
    assert check_grad(nn.AvgPool2DSpec, N=2, C=2, H=16, W=16, kernel_size=(16, 16), stride=(16, 16)).ok


# ---------------------------------------------------------------- short rows: the window's columns in SIMD lanes

# (layer, its arguments, input shape): rows of 1 to 5 outputs, wide windows
# (global, whole rows, adaptive 3 / 5 / 7, padded with ceil_mode, dilated), odd planes
LANES = [("MaxPool2D", dict(kernel_size=7), (2, 3, 7, 7)),
         ("MaxPool2D", dict(kernel_size=5, padding=2, ceil_mode=True), (2, 3, 13, 11)),
         ("MaxPool2D", dict(kernel_size=4, stride=3, dilation=2), (2, 3, 11, 13)),
         ("AdaptiveMaxPool2D", dict(output_size=1), (2, 3, 9, 7)),
         ("AdaptiveMaxPool2D", dict(output_size=1), (2, 3, 5, 5)),
         ("AdaptiveMaxPool2D", dict(output_size=(3, 1)), (2, 3, 9, 6)),
         ("AdaptiveMaxPool2D", dict(output_size=3), (2, 3, 27, 27)),
         ("AdaptiveMaxPool2D", dict(output_size=5), (2, 3, 13, 11)),
         ("AdaptiveMaxPool2D", dict(output_size=7), (2, 3, 23, 19)),
         # windows wider than WINDOW_LIMIT: whole rows (182) and 10 x 20 in lanes,
         # 9 x 9 (rows too short for lanes) in loops
         ("AdaptiveMaxPool2D", dict(output_size=1), (2, 3, 14, 13)),
         ("MaxPool2D", dict(kernel_size=9), (2, 3, 19, 18)),
         ("AdaptiveMaxPool2D", dict(output_size=2), (2, 3, 20, 40)),
         ("AvgPool2D", dict(kernel_size=7), (2, 3, 7, 7)), ("AvgPool2D", dict(kernel_size=6), (2, 3, 13, 20)),
         ("AdaptiveAvgPool2D", dict(output_size=3), (2, 3, 27, 27))]


def test_a_short_row_runs_its_window_columns_in_lanes():
    """A max over a row of one output (a global pool) vectorizes along the
    window's columns; a row long enough keeps its columns in lanes."""
    short = compile_layer(nn.AdaptiveMaxPool2DSpec, output_size=(1, 1), H=7, W=7).source
    long = compile_layer(nn.MaxPool2DSpec, kernel_size=(5, 5), stride=(1, 1), H=20, W=20).source
    assert "reduction(max:lc_acc) reduction(+:lc_nan)" in short
    assert "reduction(max:lc_acc)" not in long


def test_a_window_of_whole_rows_runs_them_as_one_offset():
    """A window spanning its rows (global, or 3 whole rows of 6) is one offset
    over the rows' elements, in lanes, the first maximum's position its
    index; a window narrower than its rows keeps its two offsets."""
    for output_size, H, W in (((1, 1), 7, 7), ((3, 1), 9, 6)):
        source = compile_layer(nn.AdaptiveMaxPool2DSpec, output_size=output_size, H=H, W=W).source
        merged = f"for (int64_t v_ij = 0; v_ij < {H // output_size[0] * W}; ++v_ij)"
        # per dtype: the maximum, and the first maximum's position
        assert source.count(merged) == 4 and "(-1 * v_ij)" in source
        assert "reduction(max:lc_acc) reduction(+:lc_nan)" in source
    narrow = compile_layer(nn.MaxPool2DSpec, kernel_size=(3, 3), stride=(3, 3), H=9, W=9).source
    assert "v_ij" not in narrow


def test_a_maximum_over_a_window_too_wide_to_unroll_runs_its_rows_in_lanes():
    """10 x 20 elements (over WINDOW_LIMIT): the forward's maximum and the
    backward's first maximum are windows, the rows in lanes, the 10 row
    offsets unrolled; a sum over as wide a window is no window, nor a maximum
    whose rows are shorter than two runs of lanes (9 x 9)."""
    traced = nn.AdaptiveMaxPool2DSpec.trace(output_size=(2, 2), H=20, W=40)
    for program, name in ((traced, traced.outputs[0]), (gradient_program(traced), None)):
        stage = _stage(program, name) if name else next(s for s in program.stages if s.reduce == "max")
        plan = plan_sliding(stage)
        assert plan is not None and [a.extent.value for a in plan.inner] == [10, 20]
    source = compile_layer(nn.AdaptiveMaxPool2DSpec, output_size=(2, 2), H=20, W=40).source
    assert "#pragma GCC unroll 10" in source and "reduction(max:lc_acc)" in source
    wide_sum = nn.AvgPool2DSpec.trace(kernel_size=(10, 20), stride=(10, 20), H=20, W=40)
    assert plan_sliding(_stage(wide_sum, wide_sum.outputs[0])) is None
    short_rows = nn.MaxPool2DSpec.trace(kernel_size=(9, 9), stride=(9, 9), H=27, W=27)
    assert all(nest.kind != "window" for nest in plan_program(short_rows))


def test_a_tiling_windows_gradient_is_split_into_windows_and_their_columns():
    """The gradient autodiff gives a wide window that tiles its input (one read
    per element, g[.., j // 7]) runs as the scatter over the windows and their
    columns, with no division by 7 left, also where the row's length is known
    only at run time (its last window may hang past the row's end)."""
    for bindings in ({"H": 7, "W": 7}, {}):
        backward = gradient_program(nn.AvgPool2DSpec.trace(kernel_size=(7, 7), stride=(7, 7), **bindings))
        plan = plan_sliding(_stage(backward, "grad_x"))
        assert plan is not None and plan.scatter and plan.injective
        assert [a.extent.value for a in plan.inner] == [7]
        split = {plan.column.name, plan.inner[0].name}
        assert not any(ir.ivars(d) & split for load in ir.loads(plan.stage.body) for i in load.index
                       for d in _index_divisions(i))
        assert (plan.write_guard is None) == bool(bindings)


def _index_divisions(e):
    if isinstance(e, ir.IBin):
        if e.op in ("//", "%"):
            yield e
        yield from _index_divisions(e.a)
        yield from _index_divisions(e.b)


@pytest.mark.parametrize("level", ["avx512", "avx2"])
@pytest.mark.parametrize("name,args,shape", LANES, ids=[f"{n}{sorted(a.items())}" for n, a, _ in LANES])
def test_window_columns_in_lanes_match_finite_differences(monkeypatch, level, name, args, shape):
    from layerc.runtime import isa
    if level not in isa.supported():
        pytest.skip(f"the CPU does not run {level}")
    monkeypatch.setenv(isa.ENV, level)
    layer_module = getattr(nn, name)(**args)
    spec, bindings = layer_module._select([np.zeros(shape)])
    N, C, H, W = shape
    check_grad(spec, N=N, C=C, **{"H": H, "W": W, **layer_module._spec_bindings, **bindings}).assert_ok()


@pytest.mark.torch
@pytest.mark.parametrize("level", ["avx512", "avx2"])
@pytest.mark.parametrize("name,args,shape", LANES, ids=[f"{n}{sorted(a.items())}" for n, a, _ in LANES])
def test_window_columns_in_lanes_match_torch_on_special_values(monkeypatch, level, name, args, shape):
    """Ties, +-inf and a NaN per plane (of two NaNs in a window PyTorch takes
    the last, layerc the first: one per plane keeps them apart); maxima
    exactly as torch's."""
    torch = pytest.importorskip("torch")
    from layerc.runtime import isa
    if level not in isa.supported():
        pytest.skip(f"the CPU does not run {level}")
    monkeypatch.setenv(isa.ENV, level)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[::7], flat[3::29], flat[5::31] = 0.5, np.inf, -np.inf
    x[:, ::2, 1, 2] = np.nan
    ours, theirs = getattr(nn, name)(**args), getattr(torch.nn, name.replace("2D", "2d"))(**args)
    y = ours.forward(x).numpy()
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = ours.backward(gy).numpy()
    xt = torch.from_numpy(x).requires_grad_()
    yt = theirs(xt)
    yt.backward(torch.from_numpy(gy))
    # a maximum picks an element (exactly torch's); a mean rounds its own way
    tolerance = {"rtol": 0} if "Max" in name else {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(y, yt.detach().numpy(), **tolerance)
    np.testing.assert_allclose(gx, xt.grad.numpy(), **tolerance)


# ---------------------------------------------------------------- narrow planes as one row

# (layerc module, torch module, torch arguments) of stride-1 windows over whole planes
FLAT_LAYERS = {
    "depthwise 3x3": (lambda: nn.Conv2D(3, 3, 3, padding=1, groups=3), "Conv2d", (3, 3, 3), dict(padding=1, groups=3)),
    "depthwise 5x3 dilated": (lambda: nn.Conv2D(3, 3, (5, 3), padding=(4, 2), dilation=(2, 2), groups=3),
                              "Conv2d", (3, 3, (5, 3)), dict(padding=(4, 2), dilation=(2, 2), groups=3)),
    "max 3x3": (lambda: nn.MaxPool2D(3, stride=1, padding=1), "MaxPool2d", (3,), dict(stride=1, padding=1)),
    "avg 3x3": (lambda: nn.AvgPool2D(3, stride=1, padding=1), "AvgPool2d", (3,), dict(stride=1, padding=1)),
}
# shapes whose planes run as one row (narrow, FLAT_LIMIT elements at most), then as rows
FLAT_SHAPES = [(2, 3, 7, 7), (1, 3, 1, 1), (2, 3, 13, 5), (1, 3, 100, 39), (1, 3, 120, 39), (1, 3, 5, 40)]


def test_narrow_planes_are_planned_as_one_row():
    """Stride-1 windows over planes the size of the output (forward and input
    gradient) and a weight gradient's sum over them get a flat form; strided
    and 1-D (whose row is a channel) convolutions do not."""
    from layerc.compiler.windows import FLAT_LIMIT, FLAT_ROW
    assert all(w < FLAT_ROW and h * w <= FLAT_LIMIT for _, _, h, w in FLAT_SHAPES[:4])
    assert all(w >= FLAT_ROW or h * w > FLAT_LIMIT for _, _, h, w in FLAT_SHAPES[4:])

    def flat_windows(module, shape):
        module.forward(np.zeros(shape, np.float32))
        return [[n.flat is not None for n in plan_program(getattr(module.compiled, role)) if n.form == "window"]
                for role in ("forward", "backward")]

    for name, (make, *_) in FLAT_LAYERS.items():
        forward, backward = flat_windows(make(), (1, 3, 7, 7))
        assert forward == [True] and backward and all(backward), name
    # the depthwise weight gradient sums over the planes as one row too
    depthwise = FLAT_LAYERS["depthwise 3x3"][0]()
    depthwise.forward(np.zeros((1, 3, 7, 7), np.float32))
    taps = [n for n in plan_program(depthwise.compiled.backward) if n.form == "taps"]
    assert len(taps) == 1 and taps[0].flat is not None and taps[0].flat.plan.kind == "taps"
    assert flat_windows(nn.Conv2D(3, 3, 3, padding=1, stride=2, groups=3), (1, 3, 7, 7)) == [[False], [False]]
    assert flat_windows(nn.Conv1D(3, 3, 3, padding=1, groups=3), (1, 3, 7)) == [[False], [False]]


@pytest.mark.torch
@pytest.mark.parametrize("name", FLAT_LAYERS)
def test_narrow_planes_match_torch_on_special_values(name):
    """Forward and every gradient against torch on planes that run as one row
    and planes that do not, with inf, -inf, a huge value and a NaN on the
    first and last columns: a flat row's read past a row's end must not
    reach the next row's first column."""
    torch = pytest.importorskip("torch")
    make, torch_name, args, kwargs = FLAT_LAYERS[name]
    rng = np.random.default_rng(7)
    ours = make()
    theirs = getattr(torch.nn, torch_name)(*args, **kwargs)
    with torch.no_grad():
        for ours_p, theirs_p in zip(ours.parameters(), theirs.parameters()):
            theirs_p.copy_(torch.from_numpy(ours_p.data.copy()))
    for shape in FLAT_SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        x[0, 0, ::3, -1], x[0, -1, 1::4, 0], x[-1, 1, -1, ::5] = np.inf, -np.inf, 3e38
        x[-1, -1, shape[2] // 2, 0] = np.nan       # one per plane: torch and layerc agree on its window
        ours.zero_grad()
        y = ours.forward(x).numpy()
        gy = rng.standard_normal(y.shape).astype(np.float32)
        gx = ours.backward(gy).numpy()
        xt = torch.from_numpy(x).requires_grad_()
        theirs.zero_grad()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(gy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-4, err_msg=f"{name} {shape}")
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-4, err_msg=f"{name} {shape}")
        for ours_p, theirs_p in zip(ours.parameters(), theirs.parameters()):
            finite = np.isfinite(theirs_p.grad.numpy())     # inf - inf in a sum: NaN in both, or ordered differently
            np.testing.assert_allclose(ours_p.grad[finite], theirs_p.grad.numpy()[finite], rtol=1e-4, atol=1e-2,
                                       err_msg=f"{name} {shape}")


@pytest.mark.parametrize("name", FLAT_LAYERS)
def test_narrow_planes_match_finite_differences(name):
    """float64 gradients of the flat form, its sizes bound at build time (the
    flat form alone; the torch comparison above runs the choice at run time)."""
    module = FLAT_LAYERS[name][0]()
    for shape in [(2, 3, 5, 7), (1, 3, 3, 2)]:
        spec, bindings = module._select([np.zeros(shape)])
        N, C, H, W = shape
        check_grad(spec, **{"N": N, "C": C, "H": H, "W": W, **module._spec_bindings, **bindings}).assert_ok()
