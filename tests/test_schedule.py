"""Loop planning: sibling stages in one pass, parallel reductions that match the
serial result, vectorized inner loops, and output buffers reused across calls."""
import re
import subprocess

import numpy as np
import pytest

from layerc import Attr, Input, Param, check_grad, layer, ops
from layerc.compiler.cc import BuildOptions
from layerc.compiler import ir
from layerc.compiler.ir import IConst
from layerc.compiler.linear_sums import split_late_sums
from layerc.compiler.schedule import fuse_pair, plan_program
from layerc.compiler.simplify import simplify_stages
from layers import PReLU
from test_rank_poly import PReLULast
from benchmarks.specs import FocalLoss, LinearSpec
from layerc.nn import Conv2DSpec
from layerc.nn.activation import GELUSpec, SoftmaxSpec
from layerc.nn.norm import BatchNorm2DSpec, layer_norm_spec
from layerc.compiler.codegen import PARALLEL_MIN_WORK
from layerc.runtime import isa

RNG = np.random.default_rng(5)


def _flat(plan):
    """Every nest of a plan, a "rows" nest's own nests in its place."""
    return [m for n in plan for m in n.group or (n,)]


@layer
class ColumnMax:
    x = Input("N", "C")

    def forward(x):
        return ops.max(x, axis=0) * 2.0


def _prelu_reference(x, alpha, gy):
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    gx = np.where(x > 0, gy, np.where(x < 0, gy * alpha, gy * (1 + alpha) / 2))
    return gx, (gy * np.minimum(x, 0)).sum(0)


def test_prelu_backward_is_one_pass_with_its_column_reduction():
    m = PReLU.build(C=8)
    nests = plan_program(m.compiled.backward)
    assert len(nests) == 1
    kinds = sorted(kind for kind, _ in nests[0].members)
    assert kinds == ["accumulate", "inner"] and nests[0].is_pass
    assert "lc_part0" in m.source       # per-thread partial rows


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_column_reduction_matches_serial_and_is_deterministic(threads):
    m = PReLU.build(C=64)
    rng = np.random.default_rng(1)
    rows = 2 * PARALLEL_MIN_WORK // 64 + 1                     # above the parallel threshold
    x = rng.standard_normal((rows, 64)).astype(np.float32)
    x[::7, ::5] = 0
    gy = rng.standard_normal((rows, 64)).astype(np.float32)
    alpha = m.alpha.data.astype(np.float64)
    m.set_threads(threads)
    try:
        runs = []
        for _ in range(3):
            m.zero_grad()
            m.forward(x)
            gx = m.backward(gy).data.copy()
            runs.append((gx, m.alpha.grad.copy()))
    finally:
        m.set_threads(0)
    ref_gx, ref_ga = _prelu_reference(x, alpha, gy)
    np.testing.assert_allclose(runs[0][0], ref_gx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(runs[0][1], ref_ga, rtol=1e-4, atol=1e-3)
    for gx, ga in runs[1:]:
        assert np.array_equal(gx, runs[0][0]) and np.array_equal(ga, runs[0][1])


def test_parallel_max_reduction_over_rows():
    m = ColumnMax.build(C=40)
    x = np.random.default_rng(2).standard_normal((2 * PARALLEL_MIN_WORK // 40 + 3, 40)).astype(np.float32)
    np.testing.assert_array_equal(m.forward(x).data, x.max(0) * 2)
    m.zero_grad()
    gx = m.backward(np.ones(40, np.float32)).data
    np.testing.assert_array_equal(gx, 2.0 * (x == x.max(0)))


@layer
class WherePReLU:
    """PReLU written with a select, as torch defines its derivative at 0."""
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.where(x > 0, x, alpha * x)


@layer
class LogSumExp:
    x = Input("N", "K")

    def forward(x):
        return ops.logsumexp(x, axis=1)


DEPTHWISE = dict(C=8, O=8, CG=1, KH=3, KW=3, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=8, bias=False)
DENSE = dict(C=16, O=32, CG=16, KH=3, KW=3, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1,
             bias=False)
STRIDED = dict(DENSE, stride=(2, 2), dilation=(2, 2))


@pytest.mark.parametrize("spec, sizes", [(PReLU, dict(C=256)), (WherePReLU, dict(C=256)),
                                         (Conv2DSpec, DEPTHWISE), (LogSumExp, dict(K=1000)),
                                         (FocalLoss, dict(K=10)), (LinearSpec, dict(I=784, O=256)),
                                         (Conv2DSpec, DENSE), (Conv2DSpec, STRIDED),
                                         ("ShortRowSums", dict(K=10)), (GELUSpec, {}),
                                         (SoftmaxSpec, {}), (BatchNorm2DSpec, dict(C=8)),
                                         (layer_norm_spec(1), dict(L1=64)), ("PReLUChannels", dict(C=16, K=16)),
                                         ("HalfSum", dict(C=64, H=56, W=56)), ("TokenScale", dict(T=1, D=300001))],
                         ids=["PReLU", "WherePReLU", "depthwise", "logsumexp", "focal", "linear", "conv", "conv-s2-d2",
                              "rows-in-lanes", "gelu", "softmax-rows", "batchnorm", "layernorm-rows",
                              "trailing-ellipsis", "shared-blocks", "pass-shared-blocks"])
@pytest.mark.parametrize("level", [level for level in isa.supported() if level != "baseline"] or ["baseline"])
def test_inner_loops_vectorize(tmp_path, spec, sizes, level):
    """Every ``omp simd`` loop of a layer's float kernels is vectorized by gcc
    (a padded depthwise convolution's too: its rows are cut at the padding;
    the online max-and-sum's two block loops; focal loss's per-row stages,
    whose keepdims axis of one iteration leaves the row loop innermost;
    Linear's bias written before the product is added onto it; a
    convolution's packed patches, strided and dilated too). The
    double kernels serve gradient checks: gcc may leave some scalar (AVX2 has
    no int64-to-double vector conversion). Checked at each vector level this
    CPU loads (AVX-512 and AVX2 here). Row plans too: ten classes with the
    rows in lanes (the row loop vectorized, its reads gathers), GELU's inlined
    erf, a batch norm's merged planes, softmax and layer norm row by row; a
    spec whose ``...`` comes last, and its variant for an empty ``...``; blocks
    of a vector loop the threads share with the batch, in a pass too."""
    spec = globals()[spec] if isinstance(spec, str) else spec
    source = spec.build(**sizes).source
    path = tmp_path / "k.c"
    path.write_text(source)
    flags = list(BuildOptions(isa=level).final_flags())
    flags = [f for f in flags if f not in ("-shared", "-lm")]
    out = subprocess.run(["cc", *flags, "-c", str(path), "-o", str(tmp_path / "k.o"),
                          "-fopt-info-vec-optimized"], capture_output=True, text=True, check=True).stderr
    # gcc names a vectorized loop by its first line or by a statement of its body
    vectorized = {int(n) for n in re.findall(r"k\.c:(\d+):\d+: optimized: loop vectorized", out)}
    lines = source.splitlines()
    simd_loops, function = [], None
    for k, line in enumerate(lines, start=1):
        if re.match(r"(static )?int ", line):
            function = line
        elif function and "_f32(" in function and re.match(r"#pragma omp (parallel for )?simd", line.strip()):
            end = next(j for j in range(k + 1, len(lines) + 1)
                       if re.match(r"(\s*#pragma omp|\s*/\*|}|(static )?int )", lines[j - 1]))
            simd_loops.append((k + 1, end))
    assert simd_loops
    missed = [first for first, end in simd_loops if not any(first <= n < end for n in vectorized)]
    assert not missed, [lines[n - 1] for n in missed]


@layer
class PReLUChannels:
    """PReLU on [N, C, ...]: the ``...`` comes last."""
    x = Input("N", "C", ...)
    alpha = Param("K", init=0.25)

    def forward(x, alpha):
        K, = alpha.shape
        return ops.where(x > 0, x, alpha.reshape(K, 1) * x)


def test_an_empty_trailing_group_runs_its_own_variant_in_one_pass():
    """``Input("N", "C", ...)`` on ``[N, C]``: each function calls its
    variant for ``E == 1``, scheduled with that axis gone (loops over C,
    vectorized), the backward one pass with its column reduction (the unit
    loop does not keep the two stages apart); its results match numpy's."""
    m = PReLUChannels.build(C=16, K=16)
    assert "if (S_E == 1)" in m.source and "static int lc_preluchannels_backward_E1_f32(" in m.source
    # the variant plans the backward whose sums over a batch stay whole (compiler/partial_sums.py)
    whole = split_late_sums(fuse_pair(m.compiled.traced, m.compiled.derived)[1])
    backward = simplify_stages(ir.bind_sizes(whole, {"E": 1}))
    nests = plan_program(backward)
    variant = m.source[m.source.index("static int lc_preluchannels_backward_E1_f32("):]
    variant = variant[:variant.index("\n}\n")]
    assert variant.count("#pragma omp parallel") == 1 and "grad_alpha_part" not in variant
    assert len(nests) == 1 and nests[0].is_pass and all(loop.extent != ir.IConst(1) for loop in nests[0].loops)
    x = RNG.standard_normal((37, 16)).astype(np.float32)
    x[0, :3] = 0.0
    alpha = m.alpha.numpy()
    gy = RNG.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(m.forward(x).numpy(), np.where(x > 0, x, alpha * x), rtol=1e-6)
    gx = m.backward(gy).numpy()
    np.testing.assert_allclose(gx, np.where(x > 0, gy, alpha * gy), rtol=1e-6)
    np.testing.assert_allclose(m.alpha.grad, (gy * np.where(x > 0, 0, x)).sum(0), rtol=1e-4, atol=1e-5)
    for shape in [(5, 3), (2, 3, 4), (2, 3, 1), (2, 3, 2, 2)]:
        check_grad(PReLUChannels, inputs={"x": RNG.standard_normal(shape)}, C=3, K=3).assert_ok()


@layer
class Rectify:
    """ReLU on any shape: the ``...`` group is all of it."""
    x = Input(...)

    def forward(x):
        return ops.relu(x)


def test_a_group_that_is_every_loop_gets_no_variant():
    """``Input(...)`` alone: at ``E == 1`` no loop is left, so no variant is
    compiled; the general functions run one element, on any shape."""
    m = Rectify.build()
    assert "_E1_" not in m.source
    for shape in [(1,), (1, 1, 1), (7,), (2, 3, 5)]:
        x = RNG.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(m.forward(x).numpy(), np.maximum(x, 0))
        check_grad(Rectify, inputs={"x": RNG.standard_normal(shape) + 0.5}).assert_ok()


def test_a_leading_group_gets_no_variant():
    """``Input(..., "C")``: an empty group is the outermost loop, one
    iteration, harmless; no second variant is compiled."""
    assert "_E1_" not in PReLULast.build(C=4).source


@layer
class ShortRowSums:
    """Two short row reductions and no first maximum in the backward."""
    x = Input("N", "K")

    def forward(x):
        return ops.logsumexp(x, axis=1) + ops.mean(x * x, axis=1)


@layer
class RowMaxThenExpSum:
    x = Input("N", "C")

    def forward(x):
        return ops.max(x, axis=1) + ops.sum(ops.exp(x), axis=1)


@pytest.mark.parametrize("c, across", [(10, True), (64, False)])
def test_short_reductions_run_across_rows(c, across):
    """A row max and a row sum of exponentials over few classes vectorize
    across rows (the row loop ``simd``, the classes a scalar loop inside it);
    over many, along the row."""
    reductions = [n for n in _flat(plan_program(RowMaxThenExpSum.build(C=c).compiled.forward)) if n.stage.reduce]
    assert sorted(n.stage.reduce for n in reductions) == ["max", "sum"]
    for n in reductions:
        assert n.across == across
        assert n.loops[-1].reduction and n.loops[-1].simd != across
        assert any(loop.simd and not loop.reduction for loop in n.loops) == across


def test_one_hot_sum_of_a_gather_gradient_is_one_read():
    """log_softmax's backward sums the gathered gradient over the classes: only
    the target's term is nonzero, so no stage of the backward loops over them to reduce."""
    from benchmarks.specs import FocalLoss, LinearSpec
    m = FocalLoss.build(K=10)
    assert not [s.name for s in m.compiled.backward.stages if s.reduce]
    rng = np.random.default_rng(1)
    report = check_grad(FocalLoss, N=5, K=7, inputs={"target": rng.integers(0, 7, (5, 1))})
    assert report.ok, str(report)


def test_outputs_are_reused_only_when_released():
    m = PReLU.build(C=16)
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    y1 = m.forward(x)
    kept = y1.data.copy()
    y2 = m.forward(-x)                       # y1 is still held: a new buffer
    assert not np.shares_memory(y1.data, y2.data)
    np.testing.assert_array_equal(y1.data, kept)
    ptr = y2.data.ctypes.data
    del y2
    y3 = m.forward(x)                        # y2's buffer is free again: reused
    assert y3.data.ctypes.data == ptr
    view = y3.data[1:]
    del y3
    y4 = m.forward(-x)                       # a view keeps the buffer alive
    assert not np.shares_memory(view, y4.data)


def test_steady_state_training_step_reuses_every_buffer():
    m = PReLU.build(C=16)
    x = np.random.default_rng(4).standard_normal((8, 16)).astype(np.float32)
    seen = []
    for step in range(6):
        m.zero_grad()
        y = m.forward(x)
        gx = m.backward(np.ones_like(x))
        seen.append((y.data.ctypes.data, gx.data.ctypes.data, m.alpha.grad.ctypes.data))
        del y, gx
    assert len(set(seen[2:])) <= 2          # at most two alternating buffer sets after warm-up


def test_parameter_gradient_accumulates_into_its_own_array():
    m = PReLU.build(C=4)
    x = -np.ones((2, 4), np.float32)
    m.zero_grad()
    m.forward(x)
    m.backward(np.ones_like(x))
    first = m.alpha.grad
    m.forward(x)
    m.backward(np.ones_like(x))
    assert m.alpha.grad is first
    np.testing.assert_array_equal(first, np.full(4, -4.0, np.float32))


def test_forward_out_form_writes_the_given_array():
    m = PReLU.build(C=4)
    x = np.ones((2, 4), np.float32)
    out = np.empty((2, 4), np.float32)
    y = m.forward(x, out=out)
    assert np.shares_memory(y.data, out)
    np.testing.assert_array_equal(out, x)


@layer
class Window1D:
    """y[n, w] = sum_j x[n, sign * w + j + shift] * k[j]: a padded 1-D stencil
    (sign -1: the window runs against w)."""
    x = Input("N", "W")
    k = Param("J", init="normal")
    sign = Attr(1)
    shift = Attr(-1)

    def forward(x, k, sign, shift):
        N, W = x.shape
        j = ops.reduce_axis(k.shape[0], "j")
        return ops.compute((N, W), lambda n, w: ops.sum(x[n, w * sign + j + shift] * k[j], over=j))


def _window_reference(x, k, shift, sign):
    n, width = x.shape
    y = np.zeros((n, width))
    for w in range(width):
        for j in range(len(k)):
            c = sign * w + j + shift
            if 0 <= c < width:
                y[:, w] += x[:, c] * k[j]
    return y


@pytest.mark.parametrize("shift, sign", [(-1, 1), (2, -1)])
@pytest.mark.parametrize("width", [1, 2, 5, 9])
def test_stencil_rows_cut_at_the_padding_match_numpy(shift, sign, width):
    m = Window1D.build(J=3, sign=sign, shift=shift, dtype=np.float64)
    nest = plan_program(m.compiled.forward)[0]
    assert nest.kind == "window" and nest.window is not None and nest.window.in_range
    x = np.random.default_rng(width).standard_normal((3, width))
    k = m.k.data
    np.testing.assert_allclose(m.forward(x).numpy(), _window_reference(x, k, shift, sign), atol=1e-12)
    report = check_grad(Window1D, inputs={"x": x}, J=3, sign=sign, shift=shift)
    assert report.ok, report


def test_split_indices_are_known_in_range():
    """A reshape's split index (e // 32, e % 32) needs no bounds test."""
    from layerc.compiler import ir
    from layerc.compiler.ir import IConst, IVar
    from layerc.compiler.schedule import coordinate_in_range
    e = IVar("e")
    head, lane = ir.ifloordiv(e, IConst(32)), ir.imod(e, IConst(32))
    assert coordinate_in_range(head, IConst(8), {"e": IConst(256)})
    assert not coordinate_in_range(head, IConst(8), {"e": IConst(257)})
    assert coordinate_in_range(lane, IConst(32), {"e": IConst(1000)})
    assert not coordinate_in_range(lane, IConst(16), {"e": IConst(1000)})
    shifted = ir.ifloordiv(ir.isub(e, IConst(1)), IConst(2))   # may be -1
    assert not coordinate_in_range(shifted, IConst(4), {"e": IConst(8)})


@pytest.mark.parametrize("width", [1, 7, 513, 1300])
def test_max_and_exp_sum_run_in_one_pass_and_match_numpy(width):
    """logsumexp's row maximum and sum of exponentials are one online pass
    (exponentials against the maximum of the first 32 elements, rescaled),
    equal to the two-pass result, with infinities and NaN where numpy has them;
    rows far above their first elements take the two passes."""
    m = LogSumExp.build(K=width, dtype=np.float64)
    if width > 512:                           # shorter rows take two passes over L1
        assert _flat(plan_program(m.compiled.forward))[0].kind == "online"
    x = np.random.default_rng(width).standard_normal((6, width)) * 30
    x[1, -1] = 500.0                          # far above the first elements: summed again
    x[2, :] = -np.inf                         # all -inf: NaN, as exp(-inf - -inf)
    x[3, width // 2] = np.inf
    x[4, 0] = np.nan
    with np.errstate(invalid="ignore"):
        top = x.max(axis=1, keepdims=True)
        expected = np.log(np.exp(x - top).sum(axis=1)) + top[:, 0]
    np.testing.assert_allclose(m.forward(x).numpy(), expected, rtol=1e-12, equal_nan=True)
    report = check_grad(LogSumExp, inputs={"x": np.random.default_rng(0).standard_normal((3, width))}, K=width)
    assert report.ok, report


def test_a_keepdims_axis_leaves_the_loop_above_it_vectorized():
    """A per-row stage of shape [N, 1] (focal loss's per-row factors) vectorizes
    over the rows: its inner loop has one iteration, and is dropped."""
    nests = _flat(plan_program(FocalLoss.build(K=10).compiled.backward))
    per_row = [n for n in nests if n.kind == "inner" and n.collapsed and n.stage.shape[1:] == (IConst(1),)]
    assert per_row and all(len(n.loops) == 1 and n.loops[0].simd for n in per_row)


@layer
class Softmax:
    x = Input("N", "K")

    def forward(x):
        return ops.softmax(x, axis=-1)


@pytest.mark.parametrize("spec", [LogSumExp, Softmax, FocalLoss], ids=["logsumexp", "softmax", "focal"])
def test_a_sum_of_exponentials_keeps_its_terms_for_the_backward(spec):
    """The forward stores exp(x - max) while it sums it (in the same nest), and
    no later stage, forward or backward, takes those exponentials again.
    Softmax's backward takes them from its output times the sum instead
    (``terms_from_quotients``): they are kept a row at a time, not saved."""
    lowered = spec.build(K=1000).compiled
    forward = _flat(plan_program(lowered.forward))
    kept = [n for n in forward if n.terms is not None]
    assert len(kept) == 1 and kept[0].kind == "online"
    terms = kept[0].terms.name
    assert (terms not in lowered.saved) == (spec is Softmax)
    rows = [n for n in plan_program(lowered.forward) if n.group]
    assert (rows and rows[0].local == ((terms, 1),)) == (spec is Softmax)
    assert not any(s.name == terms for n in forward for _, s in n.members)   # no nest of its own
    for program in (lowered.forward, lowered.backward):
        for s in program.stages:
            if s.name != terms:
                body = ir.format_expr(s.body)
                assert "exp(x[" not in body and "exp(logits[" not in body, ir.format_stage(s)
    # the input gradient may be written over the terms where it is their only reader
    # (softmax's backward also sums them into another gradient first)
    over = {a.name: a.over for a in lowered.signatures["backward"].args if a.over}
    assert over == ({} if spec is Softmax else {f"grad_{lowered.traced.tensors[0].name}": terms})


@pytest.mark.parametrize("width", [7, 1300])
def test_kept_terms_give_numpys_softmax_gradient_on_every_row(width):
    """The gradient read from the kept terms, on the rows the online nest
    treats apart: far above the first elements (summed again), all -inf,
    +inf inside the row or among the first elements, NaN."""
    m = LogSumExp.build(K=width, dtype=np.float64)
    x = np.random.default_rng(width).standard_normal((7, width)) * 30
    x[1, -1] = 500.0
    x[2, :] = -np.inf
    x[3, width // 2] = np.inf
    x[4, 0] = np.nan
    x[5, 0] = np.inf
    gy = np.random.default_rng(1).standard_normal(7)
    with np.errstate(invalid="ignore"):
        top = x.max(axis=1, keepdims=True)
        e = np.exp(x - top)
        expected = e / e.sum(axis=1, keepdims=True) * gy[:, None]
    m.forward(x)
    gx = m.backward(gy)
    np.testing.assert_allclose(gx.numpy(), expected, rtol=1e-12, atol=1e-300, equal_nan=True)


def test_only_exponentials_inside_the_kept_terms_read_them():
    """An ``exp`` of the terms' argument reads the stored terms where its
    index is provably inside them; elsewhere it is computed as before."""
    from layerc.compiler.ir import Axis, Call, IVar, Load, Stage, iadd
    from layerc.compiler.schedule import _read_terms
    r, j = IVar("r"), IVar("j")
    terms = Stage("t", (IConst(8),), (Axis("r", IConst(8)),), Call("exp", (Load("x", (r,)),)))
    inside = Call("exp", (Load("x", (j,)),))
    shifted = Call("exp", (Load("x", (iadd(j, 1),)),))
    stage = Stage("y", (IConst(8),), (Axis("j", IConst(8)),), Call("add", (inside, shifted)))
    assert _read_terms(stage, terms).body == Call("add", (Load("t", (j,)), shifted))


# ---------------------------------------------------------------- sums started at a value


@layer
class BiasedProduct:
    """A product plus a bias, a residual and another product: each addition
    may start a product's sum."""
    x = Input("N", "K")
    w = Param("O", "K")
    v = Param("O", "K")
    b = Param("O")

    def forward(x, w, v, b):
        return ops.matmul(x, w.T) + b + ops.matmul(x, v.T)


@layer
class ProductReadTwice:
    x = Input("N", "K")
    w = Param("K", "K")

    def forward(x, w):
        y = ops.matmul(x, w)
        return y + 1.0, y * 2.0


def _stages_started(program):
    from layerc.compiler.schedule import starting_value
    return [s.name for s in program.stages if starting_value(s)[0] is not None]


def test_a_product_plus_a_bias_is_one_sum_started_at_the_bias():
    m = LinearSpec.build(I=40, O=24)
    forward = m.compiled.forward
    assert [s.name for s in forward.stages] == list(forward.outputs) == _stages_started(forward)
    nests = plan_program(forward)
    assert len(nests) == 1 and nests[0].kind == "contract" and nests[0].contraction.start is not None
    assert not m.compiled.signatures["forward"].of_kind("work")        # no buffer for the bare product
    assert re.search(r"lc_gemm_f32\([^;]*, 1, T_add_\d+ \+", m.source)     # beta 1: onto the bias
    x = np.random.default_rng(0).standard_normal((33, 40)).astype(np.float32)
    w, b = m.weight.data, m.bias.data
    np.testing.assert_allclose(m.forward(x).numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)


def test_started_sums_match_numpy_and_finite_differences():
    m = BiasedProduct.build(K=24, O=16, dtype=np.float64)
    started = _stages_started(m.compiled.forward)
    assert started, [ir.format_stage(s) for s in m.compiled.forward.stages]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 24))
    w, v, b = m.w.data, m.v.data, m.b.data
    np.testing.assert_allclose(m.forward(x).numpy(), x @ w.T + b + x @ v.T, rtol=1e-12, atol=1e-12)
    assert check_grad(BiasedProduct, K=24, O=16, N=20).ok


def test_a_product_read_twice_or_kept_is_not_started():
    m = ProductReadTwice.build(K=16)
    assert not _stages_started(m.compiled.forward)
    assert any(s.reduce == "sum" for s in m.compiled.forward.stages)


@layer
class InputProductPlusBias:
    x = Input("N", "K")
    y = Input("K", "M")
    b = Param("M")

    def forward(x, y, b):
        return ops.matmul(x, y) + b


@pytest.mark.parametrize("k", [0, 1, 37])
def test_a_started_sum_over_nothing_is_its_starting_value(k):
    m = InputProductPlusBias.build(M=12)
    assert _stages_started(m.compiled.forward)
    rng = np.random.default_rng(k)
    x, y = rng.standard_normal((9, k)).astype(np.float32), rng.standard_normal((k, 12)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x, y).numpy(), x @ y + m.b.data, rtol=1e-5, atol=1e-5)


def test_an_adaptive_maximum_runs_its_gradient_writes_in_threads():
    """The gradient of an uneven adaptive maximum, one write per output at a
    position read from the first maximum (``first[n, c, h, w]``): each ``n``
    writes its own image, the data-dependent read picking the element inside
    it, so the batch loop runs in threads; the first maximum's search, over
    values that are never NaN, updates without a NaN test."""
    from layerc import nn
    from layerc.compiler.autodiff import gradient_program
    from layerc.compiler.pipeline import compile_layer
    backward = gradient_program(nn.AdaptiveMaxPool2DSpec.trace(output_size=(7, 7), H=13, W=13))
    [scatter] = [nest for nest in plan_program(backward) if nest.stage.scatter_index is not None]
    assert scatter.loops[0].var == "n" and scatter.loops[0].parallel
    source = compile_layer(nn.AdaptiveMaxPool2DSpec, output_size=(7, 7), H=13, W=13).source
    updates = re.findall(r"\n\s*acc = (.*);", source)
    # per dtype: the forward's maximum (NaN wins) and the backward's search (none)
    assert len(updates) == 4 and sum("!=" in u for u in updates) == 2, updates


def test_a_window_with_uneven_starts_runs_each_output_over_its_window():
    """An adaptive window's column ``13 * w // 7 + j`` walks memory along
    ``j``: the first maximum's search loops over each output's window inside
    it, where taking ``w`` (of the saved output) for the contiguous axis put
    the window's offsets outermost, streaming the input once per offset."""
    from layerc import nn
    from layerc.compiler.autodiff import gradient_program
    backward = gradient_program(nn.AdaptiveMaxPool2DSpec.trace(output_size=(7, 7), H=13, W=13))
    [search] = [nest for nest in plan_program(backward) if nest.stage.reduce == "max"]
    reduced = {a.name for a in search.stage.reduce_axes}
    order = [loop.var in reduced for loop in search.loops]
    assert search.kind != "accumulate" and order == sorted(order), [loop.var for loop in search.loops]


@layer
class HalfSum:
    x = Input("N", "C", "H", "W")
    y = Input("N", "C", "H", "W")

    def forward(x, y):
        return x + 0.5 * y


def _pragmas(source: str) -> list:
    return re.findall(r"#pragma omp parallel for[^\n]*\n\s*for \(int64_t (\w+)[^\n]*\n\s*for \(int64_t (\w+)", source)


def test_a_batch_of_one_shares_its_first_two_loops_among_threads():
    """A nest whose parallel loop runs over the batch (a size known only at
    run time) has the threads share it with the next loop: a batch of 1 would
    leave every thread but one idle. The vectorized loop over the rest of the
    image is cut into blocks, the threads sharing batch and blocks; a loop
    long enough by itself (64 channels) runs in threads alone."""
    source = HalfSum.build(C=64, H=56, W=56).source
    # forward and backward, in float and double (each also streamed, for outputs beyond the caches)
    assert _pragmas(source).count(("v_i0", "v_i1_block")) == source.count("collapse(2)") == 8
    bound = HalfSum.build(N=64, C=64, H=56, W=56).source
    assert "collapse(" not in bound


def test_a_scatter_shares_its_loops_only_where_each_owns_its_slice():
    """The adaptive maximum's gradient writes at the first maximum of each
    window: each (n, c) its own plane, so the threads share both loops."""
    from layerc import nn
    source = nn.AdaptiveMaxPool2DSpec.build(output_size=(3, 5), H=10, W=17).source
    assert ("v_n", "v_c") in _pragmas(source)


@pytest.mark.parametrize("make, shapes", [
    (lambda: HalfSum.build(C=64, H=56, W=56), [(1, 64, 56, 56)] * 2),
    (lambda: HalfSum.build(C=5, H=99, W=301), [(3, 5, 99, 301)] * 2),
    (lambda: __import__("layerc").nn.AdaptiveMaxPool2D((3, 5)), [(1, 512, 40, 37)]),
    (lambda: __import__("layerc").nn.BatchNorm2D(64).eval(), [(1, 64, 56, 56)]),
], ids=["pointwise", "pointwise-odd", "adaptive-max", "batchnorm-eval"])
def test_shared_loops_give_one_threads_results(make, shapes):
    """Above the parallel threshold, batches of 1 and 3: two threads give the
    one thread's outputs and gradients, bit for bit."""
    m = make()
    xs = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    assert np.prod(shapes[0]) >= PARALLEL_MIN_WORK
    runs = []
    for threads in (1, 2):
        y = m(*xs)
        (m.set_threads if hasattr(type(m), "set_threads") else m._active.set_threads)(threads)
        y = m(*xs).data.copy()
        g = m.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        runs.append((y, (g[0] if isinstance(g, tuple) else g).data.copy()))
    (m.set_threads if hasattr(type(m), "set_threads") else m._active.set_threads)(0)
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


@layer
class TokenScale:
    x = Input("N", "T", "D")
    alpha = Param("D", init=0.5)

    def forward(x, alpha):
        return x * alpha


@pytest.mark.parametrize("shape", [(1, 197, 768), (3, 1, 70001)], ids=["tokens", "blocks"])
def test_a_pass_over_a_batch_of_one_splits_pairs_of_loops(shape):
    """A pass (``alpha``'s gradient summed over batch and tokens, the input's
    gradient beside it) splits between threads the pairs of its batch and
    token loops (or blocks of its vector loop): each thread's partial sums
    are its own, and two threads match one within rounding."""
    m = TokenScale.build(T=shape[1], D=shape[2])
    assert re.search(r"const int64_t v_i0 = lc_floordiv\(v_i0_pair, ", m.source)
    x, gy = (RNG.standard_normal(shape).astype(np.float32) for _ in range(2))
    runs = []
    for threads in (1, 2):
        m.set_threads(threads)
        m.zero_grad()
        m(x)
        runs.append((m.backward(gy).data.copy(), m.alpha.grad.copy()))
    m.set_threads(0)
    assert np.array_equal(runs[0][0], runs[1][0])
    reference = (gy.astype(np.float64) * x).reshape(-1, shape[2]).sum(0)
    for _, grad in runs:
        np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-3)


@layer
class TokenSum:
    x = Input("N", "T", "D")

    def forward(x):
        return ops.sum(x, axis=(0, 1))


def test_a_sum_over_a_batch_of_one_splits_pairs_of_loops():
    """A sum over batch and tokens alone (a pass of one stage) splits their
    pairs between threads too, and matches numpy on one thread and two."""
    m = TokenSum.build(T=197, D=768)
    assert re.search(r"const int64_t v_r0 = lc_floordiv\(v_r0_pair, 197\)", m.source)
    x = RNG.standard_normal((1, 197, 768)).astype(np.float32)
    for threads in (1, 2):
        m.set_threads(threads)
        np.testing.assert_allclose(m(x).data, x.astype(np.float64).sum((0, 1)), rtol=1e-4, atol=1e-4)
    m.set_threads(0)
