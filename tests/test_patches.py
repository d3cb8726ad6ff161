"""compiler/patches.py, compiler/col2im.py, compiler/plan.py: contractions
with a patch operand (convolutions in every form, both gradients, 1-D and 2-D,
strides, padding, dilation, groups, user-written index notation) planned as
GEMM calls over packed workspaces. Plans (no C compiler), float64 gradient
checks, agreement with torch.nn.functional, edge values, the path without a
BLAS and the out-of-memory return."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchmarks.specs import Conv1DIndexNotation as HandConv1D
from layerc import check_grad, nn
from layerc.compiler import ir
from layerc.compiler.patch_gemm_c import private_copies
from layerc.compiler.patches import split_digits
from layerc.compiler.pipeline import lower_layer
from layerc.compiler.plan import folds_start, plan_program
from layerc.runtime import isa

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spec(rank: int):
    return {1: nn.Conv1DSpec, 2: nn.Conv2DSpec}[rank]


def _bindings(rank, C, O, K, stride, padding, dilation, groups):
    """The sizes and attributes of a convolution; ``K`` and ``padding`` one
    number for every axis or a tuple of them."""
    def per_axis(v):
        return tuple(v) if isinstance(v, tuple) else (v,) * rank
    kernel = dict(zip(("K",) if rank == 1 else ("KH", "KW"), per_axis(K)))
    return dict(C=C, O=O, CG=C // groups, **kernel, stride=(stride,) * rank, padding=per_axis(padding),
                dilation=(dilation,) * rank, groups=groups)


def _nests(rank=2, C=8, O=16, K=3, stride=1, padding=1, dilation=1, groups=1, bias=True) -> dict:
    """``{stage: nest}`` of a convolution's forward and backward as they run."""
    low = lower_layer(_spec(rank), bias=bias, **_bindings(rank, C, O, K, stride, padding, dilation, groups))
    return {n.stage.name: n for program in (low.forward, low.backward) for n in plan_program(program)}


# ---------------------------------------------------------------- plans


@pytest.mark.parametrize("rank", [1, 2])
def test_forward_and_both_gradients_are_packed_gemm_calls(rank):
    nests = _nests(rank)
    for name in ("conv_1", "grad_x", "grad_weight"):
        assert nests[name].kind == "patch_gemm", name
    forward, weight = nests["conv_1"].patch, nests["grad_weight"].patch
    # the bias is written first and the product added onto it; images are tasks;
    # the input's patches are the calls' B, read by rows along the image
    assert forward.start is not None and [a.name for a in forward.loops] == ["n"]
    assert [p.name for p in forward.packs] == ["lc_pack_b"] and not forward.b.transposed
    # the weight gradient sums over images (each thread into its own copy) as
    # grad_weight^T = patches . grad_output^T: the smaller side is packed across its grain
    assert weight.accumulate and weight.out.transposed and [p.name for p in weight.packs] == ["lc_pack_a", "lc_pack_b"]


def test_padding_is_cut_from_the_packing_loop():
    """The input's padded read packs along the image row, inside the bounds
    where it is in the image: no test inside the loop (a strided 1x1
    convolution: no taps to read as shifted views)."""
    pack = _nests(K=1, padding=2, stride=2)["conv_1"].patch.packs[0]
    assert pack.loops[-1].var == "w" and pack.lo and pack.hi and pack.tests
    assert ir.format_expr(pack.value) == "x[n, c, 2 * h - 2, 2 * w - 2]"
    assert all(load in pack.in_range for load in ir.loads(pack.value))


def test_input_gradient_packs_the_weight_once_at_stride_1():
    """The weight is packed once; the output gradient is read as shifted views
    of one padded copy per task (compiler/shifted.py), not packed per tap."""
    grad_x = _nests()["grad_x"].patch
    assert [(p.name, p.once) for p in grad_x.packs] == [("lc_pack_a", True), ("lc_pack_b", False)]
    assert grad_x.b.rows is not None and grad_x.scatter.assign


@pytest.mark.parametrize("stride, dilation", [(2, 1), (3, 2)])
def test_strided_input_gradient_is_gemm_then_col2im(stride, dilation):
    """No packed zeros: the columns W^T dY are added into the input gradient
    at s*h - p + i*d, by tasks (image, block of channels) that own what they write."""
    grad_x = _nests(stride=stride, dilation=dilation)["grad_x"].patch
    assert grad_x.scatter is not None and not grad_x.packs
    assert [a.name for a in grad_x.loops] == ["n"] and grad_x.block.axis.name == "c"
    assert grad_x.a.tensor == "weight" and grad_x.a.transposed
    target = [ir.format_iexpr(i) for i in grad_x.scatter.index]
    tap = {1: "", 2: "2 * "}[dilation]
    assert target == ["n", "c", f"{stride} * j2_src + {tap}i - 1", f"{stride} * j3_src + {tap}j - 1"]


def test_grouped_gradients_are_one_product_per_group():
    """The gradients read channels as g*CG + c: their output axes split into
    digits (the same memory), and the group is a task loop."""
    nests = _nests(C=16, O=32, groups=2)
    grad_x, grad_weight = nests["grad_x"].patch, nests["grad_weight"].patch
    assert grad_x.view.shape[1:3] == (ir.IConst(2), ir.IConst(8))
    assert "j1_hi" in [a.name for a in grad_x.loops] and "j0_hi" in [a.name for a in grad_weight.loops]
    assert nests["sum_0"].kind == "patch_gemm" and "g" in [a.name for a in nests["sum_0"].patch.loops]


def test_split_digits_leaves_other_reads_alone():
    x, j = ir.Load("x", (ir.IBin("//", ir.IVar("j"), ir.IConst(4)), ir.IBin("%", ir.IVar("j"), ir.IConst(4)))), "j"
    stage = ir.Stage("y", (ir.IConst(8),), (ir.Axis(j, ir.IConst(8)),), x, "sum", (ir.Axis("k", ir.IConst(3)),))
    split = split_digits(stage)
    assert [a.name for a in split.axes] == ["j_hi", "j_lo"] and ir.format_expr(split.body) == "x[j_hi, j_lo]"
    mixed = ir.replace(stage, body=ir.Call("mul", (x, ir.Load("z", (ir.IVar(j),)))))
    assert split_digits(mixed) is mixed


def test_a_user_written_convolution_plans_like_the_builtin():
    low = lower_layer(HandConv1D, C=8, O=16, K=3, pad=1)
    builtin = _nests(rank=1, bias=False)
    mine = {n.stage.name: n for p in (low.forward, low.backward) for n in plan_program(p)}
    assert [n.kind for n in mine.values()] == [n.kind for n in builtin.values()] == ["patch_gemm"] * 3
    for ours, theirs in zip(mine.values(), builtin.values()):
        assert [(p.once, len(p.loops)) for p in ours.patch.packs] == \
            [(p.once, len(p.loops)) for p in theirs.patch.packs]


# ---------------------------------------------------------------- float64 gradient checks

def test_a_unit_kernel_axis_leaves_the_weight_gradient_one_product():
    """A 1xK kernel's weight gradient ``[O, C, 1, K]``: its unit axis, read by
    neither side, leaves ``(c, j)`` one run of the calls' rows, as a 1-D
    convolution's: one call over all channels and taps, not one per channel
    (the calls' loops are unit axes, or the images where the sum runs over
    shifted views of one image at a time)."""
    low = lower_layer(nn.Conv2DSpec, C=8, O=16, CG=8, KH=1, KW=5, padding=(0, 2))
    nests = {n.stage.name: n for n in plan_program(low.backward)}
    weight = nests["grad_weight"].patch
    assert weight.rows == ir.IConst(40)
    assert all(a.extent in (ir.IConst(1), ir.ISym("N")) for a in weight.loops)


@pytest.mark.parametrize("rank, size, stride", [(2, dict(H=16, W=16), 1), (2, dict(H=17, W=15), 2),
                                                 (1, dict(L=999), 2)])
def test_a_weight_gradient_over_a_batch_of_patches_is_split_into_tasks(rank, size, stride):
    """A weight gradient whose sizes are all bound sums a whole batch's
    patches: too large for a thread's workspace to be packed once, they are
    packed by the tasks, a block each, the threads adding into their own
    copies of the gradient; the forward's small weight is still packed once."""
    low = lower_layer(_spec(rank), N=64, **size, **_bindings(rank, 32, 64, 3, stride, 1, 1, 1))
    nests = {n.stage.name: n for program in (low.forward, low.backward) for n in plan_program(program)}
    weight = nests["grad_weight"].patch
    assert weight.accumulate and weight.packs and not any(p.once for p in weight.packs)
    assert weight.block is not None or any(isinstance(a.extent, ir.IConst) and a.extent.value > 1 for a in weight.loops)
    small = lower_layer(_spec(rank), N=2, **{k: 7 for k in size}, **_bindings(rank, 8, 9, 3, stride, 1, 1, 1))
    small_weight = next(n.patch for n in plan_program(small.backward) if n.stage.name == "grad_weight")
    if stride == 1:
        assert all(p.once for p in small_weight.packs) and small_weight.block is None
    else:
        # the calls' sums as short split per image as whole: the phases of each
        # image's copy read as shifted views (see test_strided_reads_phases_of_shifted_views)
        assert small_weight.a.rows is not None and [a.name for a in small_weight.loops] == ["n"]


@pytest.mark.parametrize("C, O", [(8, 16), (64, 48)])
def test_a_pointwise_input_gradient_writes_its_rows_where_they_lie(C, O):
    """A 1x1 convolution's input gradient, weight^T . grad_output per image:
    of the two orientations of its calls, the one writing the output by rows
    (the tiles store a transposed output element by element)."""
    grad_x = _nests(C=C, O=O, K=1, padding=0)["grad_x"].patch
    assert not grad_x.packs and not grad_x.out.transposed and grad_x.a.transposed


@pytest.mark.parametrize("stride", [1, 2])
def test_a_weight_gradient_written_transposed_adds_into_copies_laid_out_as_the_calls(stride):
    """grad_weight[O, C, KH, KW] as (C*KH*KW) x O calls: their tiles add into a
    copy per thread laid out as the calls' C, summed into the gradient at the
    end (stored where it lies, each element of a tile is a cache line of its
    own); outputs the tasks write in parts, or by rows, are written in place."""
    nests = _nests(stride=stride)
    weight = nests["grad_weight"].patch
    assert weight.accumulate and weight.out.transposed and private_copies(weight)
    assert not private_copies(nests["conv_1"].patch) and not private_copies(nests["grad_x"].patch)


TRANSPOSE_CASES = [
    # rank, C, O, K, stride, padding, size
    (2, 3, 32, 3, 1, 1, (32, 32)),     # a first layer: its output gradient spread by position, channels a plane apart
    (2, 32, 64, 3, 1, 1, (16, 16)),
    (2, 8, 10, 1, 2, 0, (7, 9)),       # a unit kernel, strided: the packed gradient
    (2, 8, 9, 3, 3, 2, (10, 8)),       # phases of a strided copy
    (1, 8, 9, 5, 1, 2, (13,)),
]


def _plans_sized(rank, C, O, K, stride, padding, size) -> dict:
    low = lower_layer(_spec(rank), bias=True, **dict(zip(("L",) if rank == 1 else ("H", "W"), size)),
                      **_bindings(rank, C, O, K, stride, padding, 1, 1))
    return {n.stage.name: n.patch for program in (low.forward, low.backward) for n in plan_program(program)
            if n.kind == "patch_gemm"}


def _along_memory(pack) -> set:
    """The pack's loops in the last coordinate of the read spanning the most of them."""
    names = {l.var for l in pack.loops}
    reads = sorted(ir.loads(pack.value), key=lambda r: -len(names & set().union(*map(ir.ivars, r.index))))
    return names & ir.ivars(reads[0].index[-1])


def _spread_gradient(plans: dict):
    return next(p for p in plans["grad_weight"].packs if p.name == "lc_pack_b")


@pytest.mark.parametrize("rank, C, O, K, stride, padding, size", TRANSPOSE_CASES)
def test_a_pack_across_its_read_s_grain_is_copied_along_it(rank, C, O, K, stride, padding, size):
    """A workspace whose rows run across its read's memory, further apart
    than its rows (a weight gradient's B: the output gradient by position,
    its channels along each row, a plane apart), is copied with the loop
    along the read innermost, its writes a workspace row (the channels)
    apart (compiler/patches.py along_reads); every other pack reads along
    memory in its innermost loop already."""
    plans = _plans_sized(rank, C, O, K, stride, padding, size)
    for pack in (p for plan in plans.values() for p in plan.packs):
        assert pack.loops[-1].var in _along_memory(pack), pack.name
    transposing = _spread_gradient(plans)
    channels = transposing.loops[-2]
    assert transposing.stride == ir.isub(channels.stop, channels.start) and transposing.stride != ir.IConst(1)


@pytest.mark.parametrize("size, why", [((5, 300), "rows longer than TRANSPOSE_LINES"),
                                       ((40,), "channels 20 apart, rows of 24")])
def test_a_pack_keeps_the_workspace_s_order(size, why):
    """Past TRANSPOSE_LINES positions a row the writes would leave L1 before
    the next channel fills their lines; channels nearer than a row's length
    read as close as the other order would write."""
    C, O, stride = (3, 8, 1) if len(size) == 2 else (16, 24, 2)
    pack = _spread_gradient(_plans_sized(len(size), C, O, 3, stride, 1, size))
    assert pack.stride == ir.IConst(1) and pack.loops[-1].var == "o", why
    if len(size) == 2:
        assert _spread_gradient(_plans_sized(2, C, O, 3, 1, 1, (5, 200))).stride == ir.IConst(O)


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("size", [(3, 200), (3, 300)])
def test_a_transposing_pack_agrees_with_finite_differences(monkeypatch, level, size):
    """Both sides of TRANSPOSE_LINES, at every instruction-set level."""
    monkeypatch.setenv(isa.ENV, level)
    check_grad(nn.Conv2DSpec, N=1, C=3, O=8, CG=3, KH=3, KW=3, H=size[0], W=size[1], stride=(1, 1),
               padding=(1, 1), dilation=(1, 1), groups=1).assert_ok()


@pytest.mark.parametrize("stride", [1, 2])
def test_a_bias_is_added_as_the_calls_results_are_copied_out(stride):
    """Where each output element is one element of one task's calls (a
    convolution read as shifted views), the bias is added as the results are
    copied into the output, not written into it first by a nest of its own;
    calls writing the output in place (a strided 1x1 convolution's) start
    from it written first."""
    forward = _nests(stride=stride)["conv_1"].patch
    assert forward.start is not None and forward.prologue is None and folds_start(forward)
    in_place = _nests(stride=2, K=1, padding=0)["conv_1"].patch
    assert in_place.start is not None and in_place.prologue is not None and not folds_start(in_place)


GRAD_CASES = [
    # rank, C, O, K, stride, padding, dilation, groups, bias, spatial size
    (2, 8, 9, 3, 1, 1, 1, 1, True, (7, 9)),
    (2, 8, 9, 3, 2, 1, 1, 1, False, (7, 9)),
    (2, 9, 8, 5, 3, 2, 1, 1, True, (9, 7)),
    (2, 8, 8, 3, 1, 2, 2, 1, True, (7, 9)),
    (2, 8, 10, 1, 2, 0, 1, 1, True, (7, 9)),
    (2, 16, 16, 3, 2, 1, 1, 2, True, (7, 9)),
    (2, 16, 16, 3, 1, 0, 2, 2, False, (9, 7)),
    (2, 8, 8, 3, 2, 1, 1, 8, True, (7, 9)),       # depthwise
    (2, 5, 5, 3, 1, 1, 1, 1, True, (7, 9)),       # few channels: loop nests
    (2, 8, 9, (1, 5), 1, (0, 2), 1, 1, True, (1, 11)),     # a unit kernel height over a unit image height
    (2, 8, 9, (5, 1), 1, (2, 0), 1, 1, False, (9, 3)),     # a unit kernel width: shifted views down the columns
    (1, 8, 9, 5, 1, 2, 1, 1, True, (13,)),
    (1, 8, 9, 3, 2, 1, 2, 1, False, (15,)),
    (1, 16, 16, 3, 3, 0, 1, 2, True, (17,)),
    # strided, read as phases of shifted views: odd sizes, stride 3, kernels 2 and 5, padding 0 and 2
    (2, 8, 9, 5, 2, 0, 1, 1, True, (11, 9)),
    (2, 8, 9, 3, 3, 2, 1, 1, False, (10, 8)),
    (2, 8, 8, 3, 2, 1, 2, 1, True, (9, 11)),      # dilated by the stride: one phase read
    (2, 8, 8, 3, 3, 1, 2, 1, False, (13, 10)),
    (2, 8, 9, 2, 2, 0, 1, 1, True, (8, 7)),
    (2, 8, 9, 2, 3, 1, 1, 1, False, (8, 10)),     # fewer taps than phases: two of three read
    (2, 8, 9, (3, 1), 2, (1, 0), 1, 1, True, (9, 7)),     # phases of the rows only
    (1, 8, 9, 7, 2, 3, 1, 1, True, (19,)),
]


@pytest.mark.parametrize("rank, C, O, K, stride, padding, dilation, groups, bias, size", GRAD_CASES)
def test_convolution_gradcheck(rank, C, O, K, stride, padding, dilation, groups, bias, size):
    spatial = dict(zip(("L",) if rank == 1 else ("H", "W"), size))
    check_grad(_spec(rank), N=2, **spatial, bias=bias,
               **_bindings(rank, C, O, K, stride, padding, dilation, groups)).assert_ok()


@pytest.mark.parametrize("level", isa.supported())
def test_a_weight_gradient_packed_by_the_tasks_agrees_with_finite_differences(monkeypatch, level):
    """Sizes whose batch of patches overflows a thread's workspace (packed
    per task, summed per thread): at every instruction-set level."""
    monkeypatch.setenv(isa.ENV, level)
    check_grad(nn.Conv2DSpec, N=2, C=4, O=3, CG=4, KH=5, KW=5, H=40, W=40, stride=(1, 1), padding=(2, 2),
               dilation=(1, 1), groups=1).assert_ok()


@pytest.mark.parametrize("rank, C, O, K, stride, padding, size", [(2, 32, 64, 3, 1, 1, (16, 16)),
                                                                  (2, 24, 40, 3, 2, 1, (33, 31)),
                                                                  (1, 48, 48, 7, 2, 3, (999,))])
def test_a_weight_gradient_split_into_tasks_is_the_same_on_any_number_of_threads(rank, C, O, K, stride, padding,
                                                                                  size):
    spatial = dict(zip(("L",) if rank == 1 else ("H", "W"), size))
    layer = _spec(rank).build(N=16, **spatial, **_bindings(rank, C, O, K, stride, padding, 1, 1))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, C, *size)).astype(np.float32)
    gy = rng.standard_normal(layer(x).shape).astype(np.float32)
    _assert_the_same_on_any_threads(layer, x, gy, (1, 2, 3), ("weight", "bias"))


def _assert_the_same_on_any_threads(layer, x, gy, counts, params):
    """The output, the input gradient and the gradients of ``params`` agree
    at each count of threads."""
    results = []
    try:
        for threads in counts:
            layer.set_threads(threads)
            layer.zero_grad()
            y = layer(x).numpy().copy()
            results.append((y, layer.backward(gy).numpy().copy(), *(getattr(layer, p).grad.copy() for p in params)))
    finally:
        layer.set_threads(0)
    for many in results[1:]:
        for a, b in zip(results[0], many):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))


SMALL_BATCH_CASES = [
    # C, O, K, padding, dilation, groups, spatial size: the batch of 1 smaller than the threads, groups
    # not dividing into the tasks evenly, images whose rows do not divide into blocks
    (12, 9, 3, 1, 1, 3, (13, 11)),
    (6, 6, 3, 1, 1, 6, (11, 13)),         # depthwise
    (8, 8, 3, 2, 2, 1, (13, 11)),         # dilated
    (10, 5, 3, 3, 3, 5, (17, 9)),         # dilated and grouped
    (48, 48, 3, 1, 1, 3, (37, 29)),       # images split into several blocks
]


@pytest.mark.parametrize("C, O, K, padding, dilation, groups, size", SMALL_BATCH_CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_a_small_batch_runs_the_same_on_any_number_of_threads(C, O, K, padding, dilation, groups, size, batch):
    """Fewer images (times groups) than threads split the images into more
    blocks of rows; every count of threads gives the same gradients."""
    layer = nn.Conv2DSpec.build(N=batch, H=size[0], W=size[1], **_bindings(2, C, O, K, 1, padding, dilation, groups))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, C, *size)).astype(np.float32)
    gy = rng.standard_normal(layer(x).shape).astype(np.float32)
    _assert_the_same_on_any_threads(layer, x, gy, (1, 2, 3, 5), ("weight", "bias"))


def test_a_transposed_convolution_s_weight_gradient_is_the_same_on_any_number_of_threads():
    """Its weight gradient adds each image's products into copies per thread
    (``private_copies``), summed in thread order."""
    layer = nn.ConvTranspose2DNoBiasSpec.build(C=24, OG=20, KH=4, KW=4, stride=(2, 2), padding=(1, 1))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 24, 13, 11)).astype(np.float32)
    gy = rng.standard_normal(layer(x).shape).astype(np.float32)
    _assert_the_same_on_any_threads(layer, x, gy, (1, 2, 3), ("weight",))


STRIDED_BATCH_CASES = [
    # C, O, K, stride, padding, spatial size: one image split into blocks of rows of its phases
    (16, 12, 3, 2, 1, (41, 23)),
    (8, 8, 5, 3, 2, (35, 17)),
]


@pytest.mark.parametrize("C, O, K, stride, padding, size", STRIDED_BATCH_CASES)
def test_a_strided_batch_of_one_runs_the_same_on_any_number_of_threads(C, O, K, stride, padding, size):
    layer = nn.Conv2DSpec.build(N=1, H=size[0], W=size[1], **_bindings(2, C, O, K, stride, padding, 1, 1))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, C, *size)).astype(np.float32)
    gy = rng.standard_normal(layer(x).shape).astype(np.float32)
    results = []
    try:
        for threads in (1, 2, 3, 5):
            layer.set_threads(threads)
            layer.zero_grad()
            y = layer(x).numpy().copy()
            results.append((y, layer.backward(gy).numpy().copy(), layer.weight.grad.copy()))
    finally:
        layer.set_threads(0)
    for many in results[1:]:
        for a, b in zip(results[0], many):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))


@pytest.mark.parametrize("C, O, K, stride, padding, size", STRIDED_BATCH_CASES)
def test_a_strided_batch_of_one_agrees_with_finite_differences(C, O, K, stride, padding, size):
    check_grad(nn.Conv2DSpec, N=1, H=size[0], W=size[1], **_bindings(2, C, O, K, stride, padding, 1, 1)).assert_ok()


@pytest.mark.parametrize("C, O, K, padding, dilation, groups, size", SMALL_BATCH_CASES[:4])
def test_a_small_batch_agrees_with_finite_differences(C, O, K, padding, dilation, groups, size):
    check_grad(nn.Conv2DSpec, N=1, H=size[0], W=size[1], **_bindings(2, C, O, K, 1, padding, dilation, groups)).assert_ok()


STRIDED_CASES = [case for case in GRAD_CASES if case[4] > 1 and case[7] < case[1] and case[1] > 5
                 and (case[3] if isinstance(case[3], int) else max(case[3])) > 1]


@pytest.mark.parametrize("rank, C, O, K, stride, padding, dilation, groups, bias, size", STRIDED_CASES)
def test_strided_reads_phases_of_shifted_views(rank, C, O, K, stride, padding, dilation, groups, bias, size):
    """A strided convolution reads each phase of its input (every stride-th
    position from each offset) as a plane of one copy per task, the taps as
    shifted views of the planes (compiler/shifted.py); its weight gradient
    reads the taps' rows of that copy. The copy's innermost loop walks the
    input at the stride, its phases are loops outside the columns' (none
    where the dilation is a multiple of the stride: the taps read one)."""
    plans = {name: n.patch for name, n in _nests(rank, C, O, K, stride, padding, dilation, groups, bias).items()
             if n.kind == "patch_gemm"}
    (forward,) = [p for name, p in plans.items() if not name.startswith("grad_")]
    assert forward.b.rows is not None and forward.scatter.assign
    assert plans["grad_weight"].a.rows is not None
    (copy,) = [p for p in forward.packs if p.name == "lc_pack_b"]
    phases = [l for l in copy.loops if l.var.startswith("r")]
    assert all(l.stop.value <= stride for l in phases) and (bool(phases) == (dilation % stride != 0))
    assert f"{stride} * {copy.loops[-1].var}" in ir.format_expr(copy.value)


SHIFTED_CASES = [case for case in GRAD_CASES if isinstance(case[3], int) and case[4] == 1
                 and case[5] + case[6] * (case[3] - 1) > 0 and case[7] < case[1] and case[1] > 5]


@pytest.mark.parametrize("rank, C, O, K, stride, padding, dilation, groups, bias, size", SHIFTED_CASES)
def test_stride_1_reads_shifted_views(rank, C, O, K, stride, padding, dilation, groups, bias, size):
    """A stride-1 convolution (padded, dilated, grouped, 1-D) and its input
    gradient read one padded copy of their input per task at a row offset per
    tap (compiler/shifted.py); a weight gradient reads the input so as its
    taps' rows, summed over the copy's positions (the output gradient spread
    over them, zero past each row's end), one image a task."""
    plans = {name: n.patch for name, n in _nests(rank, C, O, K, stride, padding, dilation, groups, bias).items()
             if n.kind == "patch_gemm"}
    forward = next(p for name, p in plans.items() if name.startswith(("conv", "gconv")))
    assert forward.b.rows is not None and forward.scatter.assign
    assert plans["grad_x"].b.rows is not None
    assert plans["grad_weight"].a.rows is not None and plans["grad_weight"].b.rows is None



COMPACT_CASES = [
    # rank, C, O, K, stride, padding, dilation, size: rows (channels) enough on
    # both sides (the forward's, the input gradient's) to repay the blended copy
    (2, 24, 24, 3, 1, 1, 1, (5, 7)),       # runs shorter than a tile: a panel spans several
    (2, 24, 26, 3, 1, 2, 2, (6, 17)),      # runs longer than a tile, dilated
    (2, 17, 32, 3, 2, 1, 1, (9, 11)),      # phases of a strided copy: the forward's columns
    (2, 24, 24, (1, 3), 1, (0, 1), 1, (4, 9)),
]


def _plans_at(rank, C, O, K, stride, padding, dilation, size) -> dict:
    """``{stage: patch plan}`` of a convolution's GEMM nests, its image size bound."""
    low = lower_layer(_spec(rank), bias=True, **dict(zip(("H", "W"), size)),
                      **_bindings(rank, C, O, K, stride, padding, dilation, 1))
    return {n.stage.name: n.patch for program in (low.forward, low.backward) for n in plan_program(program)
            if n.kind == "patch_gemm"}


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("rank, C, O, K, stride, padding, dilation, size", COMPACT_CASES)
def test_columns_skip_the_padding_between_an_image_s_rows(monkeypatch, level, rank, C, O, K, stride, padding,
                                                          dilation, size):
    """With rows enough (more than COMPACT_MIN_ROWS, and rows * gap over
    BLEND_ROWS * pitch), the calls' columns are the output's positions only,
    read from runs of the output's width in the padded copy
    (compiler/shifted.py), at every vector width: runs shorter and longer than
    a tile, padded, dilated, strided."""
    plans = _plans_at(rank, C, O, K, stride, padding, dilation, size)
    assert {name for name, p in plans.items() if p.b.runs is not None} == \
        ({"conv_1", "grad_x"} if stride == 1 else {"conv_1"})
    width = (size[1] + 2 * padding[1] if isinstance(padding, tuple) else size[1] + 2 * padding) \
        - dilation * ((K[1] if isinstance(K, tuple) else K) - 1)
    for plan in (p for p in plans.values() if p.b.runs is not None):
        run, pitch = (e.value for e in plan.b.runs)       # the output's rows, the padding after each between
        assert run == (width - 1) // stride + 1 and pitch > run
    monkeypatch.setenv(isa.ENV, level)
    check_grad(_spec(rank), N=2, **dict(zip(("H", "W"), size)), bias=True,
               **_bindings(rank, C, O, K, stride, padding, dilation, 1)).assert_ok()


def test_too_little_padding_for_the_rows_keeps_the_copy_s_positions():
    """A first layer's 32 rows over 34-wide rows (3x3, pad 1, 32x32 images)
    would not repay the blended copy: its columns stay the copy's positions;
    64 rows over 18-wide ones do."""
    assert _plans_at(2, 3, 32, 3, 1, 1, 1, (32, 32))["conv_1"].b.runs is None
    assert _plans_at(2, 32, 64, 3, 1, 1, 1, (16, 16))["conv_1"].b.runs is not None


def test_blocks_of_a_sequence_s_positions_are_whole_tiles():
    """A 1-D convolution's tasks take blocks of its positions, each a multiple
    of the tiles' width (rounded up to it, blocks of 100 ran 28% zeros); a 2-D
    one's take rows, which need no such grain."""
    for rank, grain in ((1, 32), (2, 1)):
        nests = _nests(rank, 16, 16, 3, 1, 1, 1, 1, False)
        forward = next(n.patch for name, n in nests.items() if name.startswith("conv"))
        assert forward.block.grain == grain


# ---------------------------------------------------------------- against torch

TORCH_CASES = [
    # rank, C, O, K, stride, padding, dilation, groups, spatial size
    (2, 8, 16, 3, 1, 1, 1, 1, (9, 7)),
    (2, 8, 16, 3, 2, 1, 1, 1, (9, 7)),
    (2, 12, 16, 5, 3, 2, 2, 1, (17, 13)),
    (2, 16, 32, 3, 2, 1, 1, 2, (9, 8)),
    (2, 16, 16, 3, 1, 1, 1, 16, (9, 7)),
    (2, 16, 32, 1, 1, 0, 1, 1, (9, 7)),
    (1, 8, 16, 5, 1, 2, 1, 1, (21,)),
    (1, 16, 16, 3, 2, 1, 2, 4, (22,)),
    (2, 64, 64, 3, 1, 1, 1, 1, (40, 37)),       # shifted views, in blocks of rows (the last shorter)
    (2, 32, 48, 3, 1, 0, 2, 1, (30, 33)),
    (2, 32, 48, 3, 2, 1, 1, 1, (33, 31)),       # phases of shifted views, odd sizes
    (2, 16, 24, 5, 3, 2, 1, 1, (20, 23)),
    (2, 3, 16, 7, 2, 3, 1, 1, (37, 35)),        # a first layer's few channels
    (2, 24, 18, 3, 2, 0, 2, 3, (19, 21)),       # dilated and grouped
    (1, 48, 48, 7, 2, 3, 1, 1, (99,)),
    # AVX-512's 12-row tiles over sums of 64 terms or more, then 8-row ones: 44
    # and 76 rows (tall tiles, 8-row tiles, an edge), and products 8 columns wide
    # (groups of 8 channels), which take 8-row tiles only
    (2, 16, 44, 3, 1, 1, 1, 1, (9, 11)),
    (2, 24, 76, 3, 1, 1, 1, 1, (7, 13)),
    (2, 64, 64, 3, 1, 1, 1, 8, (10, 10)),
    # columns in runs of the output's width: several a tile, and a strided copy's
    (2, 24, 24, 3, 1, 1, 1, 1, (5, 7)),
    (2, 20, 40, 3, 2, 1, 1, 1, (11, 13)),
    # sequences in blocks of whole tiles of positions, the last one shorter
    (1, 64, 64, 5, 1, 2, 1, 1, (1000,)),
    (1, 96, 32, 3, 1, 1, 1, 1, (1001,)),
]


def _layer_and_torch(torch, rank, C, O, K, stride, padding, dilation, groups, dtype):
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    layer = (nn.Conv1D if rank == 1 else nn.Conv2D)(C, O, K, dtype=dtype, **kw)
    ref = (torch.nn.Conv1d if rank == 1 else torch.nn.Conv2d)(C, O, K, **kw).to(
        torch.float32 if dtype == np.float32 else torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.numpy()))
        ref.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    return layer, ref


def _both(torch, layer, ref, x, gy):
    """(layerc's, torch's) output, input gradient, weight gradient, bias gradient."""
    layer.zero_grad()
    y = layer(x).numpy().copy()
    ours = (y, layer.backward(gy).numpy().copy(), layer.weight.grad.copy(), layer.bias.grad.copy())
    xt = torch.from_numpy(x).requires_grad_(True)
    ref.zero_grad()
    yt = ref(xt)
    yt.backward(torch.from_numpy(gy))
    theirs = (yt.detach().numpy(), xt.grad.numpy(), ref.weight.grad.numpy(), ref.bias.grad.numpy())
    return ours, theirs


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank, C, O, K, stride, padding, dilation, groups, size", TORCH_CASES)
def test_matches_torch(rank, C, O, K, stride, padding, dilation, groups, size, dtype):
    torch = pytest.importorskip("torch")
    layer, ref = _layer_and_torch(torch, rank, C, O, K, stride, padding, dilation, groups, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, C, *size)).astype(dtype)
    gy = rng.standard_normal(layer(x).shape).astype(dtype)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for ours, theirs, name in zip(*_both(torch, layer, ref, x, gy), ("y", "grad_x", "grad_weight", "grad_bias")):
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.torch
@pytest.mark.parametrize("case", ["zeros", "large", "nan"])
def test_edge_values_like_torch(case):
    """Zeros give zeros, values near float's range overflow alike, and a NaN in
    the input spreads to the outputs (and gradients) whose windows hold it, as in torch."""
    torch = pytest.importorskip("torch")
    layer, ref = _layer_and_torch(torch, 2, 8, 16, 3, 2, 1, 1, 1, np.float32)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 9, 7)).astype(np.float32)
    gy = rng.standard_normal(layer(x).shape).astype(np.float32)
    if case == "zeros":
        x[...] = 0
    elif case == "large":
        x *= np.float32(1e37)
    else:
        x[1, 3, 4, 2] = np.nan
    for ours, theirs, name in zip(*_both(torch, layer, ref, x, gy), ("y", "grad_x", "grad_weight", "grad_bias")):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=name)
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs), err_msg=name)
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=2e-4, atol=2e-4 * max(1, np.abs(theirs[finite]).max(initial=0)),
                                   err_msg=name)


# ---------------------------------------------------------------- without a BLAS, out of memory


def _run(code: str, **env):
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **env}, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


_STEP = """
    import sys
    import numpy as np
    from layerc import nn
    from layerc.runtime import blas
    layer = nn.Conv2D(8, 16, 3, stride=2, padding=1, groups=2, dtype=np.float64)
    layer.weight.data[...] = np.random.default_rng(0).standard_normal(layer.weight.shape)
    layer.bias.data[...] = 0.5
    x = np.random.default_rng(1).standard_normal((2, 8, 9, 7))
    y = layer(x).numpy()
    gx = layer.backward(np.random.default_rng(2).standard_normal(y.shape)).numpy()
    np.savez(sys.argv[1] if len(sys.argv) > 1 else "{path}", y=y, gx=gx, gw=layer.weight.grad, blas=blas.gemm_functions() is not None)
"""


def test_without_a_blas_the_packed_kernel_gives_the_same_results(tmp_path):
    results = {}
    for flag in ("0", "1"):
        path = tmp_path / f"blas{flag}.npz"
        _run(_STEP.format(path=path), LAYERC_BLAS=flag)
        results[flag] = np.load(path)
    assert not results["0"]["blas"] and results["1"]["blas"]
    for name in ("y", "gx", "gw"):
        np.testing.assert_allclose(results["0"][name], results["1"][name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_a_workspace_that_cannot_be_allocated_raises_memory_error():
    """The kernel frees what it holds and returns LC_OUT_OF_MEMORY; the
    runtime raises MemoryError naming the layer."""
    out = _run("""
        import resource
        import numpy as np
        from layerc import nn
        from layerc.runtime.tensor import no_grad
        layer = nn.Conv2D(64, 64, 3, padding=1)
        layer(np.ones((2, 64, 8, 8), np.float32))      # built; small workspaces come and go
        module = layer._active
        x, out = np.ones((2, 64, 56, 56), np.float32), np.empty((2, 64, 56, 56), np.float32)
        # room for the call's Python objects, not for its workspaces (about 1 MB a thread)
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 18), resource.RLIM_INFINITY))
        try:
            with no_grad():
                module.forward(x, out=out)
        except MemoryError as e:
            print("MemoryError:", e)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        with no_grad():
            module.forward(x, out=out)
        print("then", np.allclose(out, layer(x).numpy()))
    """)
    assert "MemoryError: Conv2DSpec: a kernel could not allocate its workspace" in out and "then True" in out
