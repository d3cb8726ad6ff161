"""Row-wise plans (compiler/schedule.py, compiler/collapse.py): short reductions
with their rows in SIMD lanes, loops of one iteration dropped and loops over
contiguous memory merged, and a row's statistics run row by row with what reads
them. Each plan checked by its shape, then against numpy and finite differences."""
import numpy as np
import pytest

from layerc import Input, check_grad, layer, ops
from layerc.compiler.ir import IConst, ISym
from layerc.compiler.codegen import PARALLEL_MIN_WORK
from layerc.compiler.schedule import LOCAL_ROW_LIMIT, RUN_TIME_SHORT_ROW, plan_program
from layerc.runtime import isa
from layerc.nn.activation import SoftmaxSpec, gelu
from layerc.nn.norm import BatchNorm2DSpec


@layer
class RowStats:
    """A row's max, log-sum-exp and mean of squares: three short reductions."""
    x = Input("N", "K")

    def forward(x):
        return ops.max(x, axis=1) + ops.logsumexp(x, axis=1) + ops.mean(x * x, axis=1)


@layer
class Gelu4:
    """GELU on a rank-4 input, its axes declared one by one."""
    x = Input("N", "C", "H", "W")

    def forward(x):
        return gelu(x)


def _row_stats(x):
    x = x.astype(np.float64)
    m = x.max(1)
    return m + (m + np.log(np.exp(x - m[:, None]).sum(1))) + (x * x).mean(1)


def _nests(plan):
    """Every nest of a plan, a "rows" nest's own nests in its place."""
    return [m for n in plan for m in n.group or (n,)]


def test_short_reductions_put_rows_in_lanes():
    nests = _nests(plan_program(RowStats.build(K=10).compiled.forward))
    across = [n for n in nests if n.stage.reduce]
    assert across and all(n.across for n in across)
    for n in across:
        row = next(loop for loop in n.loops if loop.simd)
        assert not row.reduction and not n.loops[-1].simd       # the classes: a scalar loop inside


def test_long_reductions_stay_along_the_row():
    nests = _nests(plan_program(RowStats.build(K=64).compiled.forward))
    assert not any(n.across for n in nests)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 7, 17, 33])
@pytest.mark.parametrize("k", [3, 10, 15])
def test_rows_in_lanes_agree_with_numpy(dtype, rows, k):
    """Row counts that are not multiples of any vector width, short rows of
    odd lengths (their reads gathers), both float types."""
    x = np.random.default_rng(rows * 100 + k).standard_normal((rows, k)).astype(dtype)
    got = RowStats.build(K=k, dtype=dtype).forward(x).numpy()
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, _row_stats(x), rtol=tol, atol=tol)


def test_rows_in_lanes_gradient():
    report = check_grad(RowStats, N=9, K=10)
    assert report.ok, str(report)


def test_a_free_row_length_plans_both_ways_and_branches_at_run_time():
    """With the row length K free at build time, the plan's nests reduce
    along the rows (the maximum and sum of exponentials in one online pass);
    its short rows' nests, run while K < RUN_TIME_SHORT_ROW, reduce each row
    in a nest of its own, no loop ``simd`` (gcc puts rows in lanes only around
    a row of a known length)."""
    plan = plan_program(RowStats.build().compiled.forward)
    assert not any(n.across for n in _nests(plan)) and any(n.form == "online" for n in _nests(plan))
    assert plan.short is not None and plan.short.lengths == (ISym("K"),)
    reductions = [n for n in _nests(plan.short.nests) if n.stage.reduce]
    assert len(reductions) == 4 and all(n.across and not any(l.simd for l in n.loops) for n in reductions)
    assert plan_program(RowStats.build(K=10).compiled.forward).short is None     # decided at build time


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_free_row_lengths_agree_with_numpy_on_both_sides_of_the_branch(dtype, level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    m = RowStats.build(dtype=dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for k in (1, 3, 10, RUN_TIME_SHORT_ROW - 1, RUN_TIME_SHORT_ROW, RUN_TIME_SHORT_ROW + 1, 40):
        x = np.random.default_rng(k).standard_normal((33, k)).astype(dtype)
        np.testing.assert_allclose(m.forward(x).numpy(), _row_stats(x), rtol=tol, atol=tol)


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("k", [3, 10, RUN_TIME_SHORT_ROW + 1])
def test_free_row_length_gradient(k, level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    check_grad(RowStats, module=RowStats.build(dtype=np.float64), N=9, K=k).assert_ok()


def test_pointwise_loops_merge_into_one_run():
    """An activation on a rank-4 input: the three inner axes walk memory as
    one, one vector loop under the batch loop (which stays apart: its
    iterations end streamed stores with a fence)."""
    (nest,) = plan_program(Gelu4.build().compiled.forward)
    assert len(nest.loops) == 2 and nest.loops[-1].simd
    assert nest.collapsed.merged == {nest.loops[1].var: tuple(f"i{k}" for k in (2, 3))}


def test_channel_statistics_run_channel_by_channel():
    """A batch norm's per-channel statistics: the channels in threads, each
    channel's sums in turn (its second pass reads the channel from the
    cache), each image's H*W plane one vector loop."""
    plan = plan_program(BatchNorm2DSpec.build(C=4).compiled.forward)
    (rows,) = [n for n in plan if n.form == "rows"]
    assert [loop.extent.value for loop in rows.loops if loop.parallel] == [4]
    sums = [n for n in rows.group if n.stage.reduce == "sum"]
    assert len(sums) == 2
    for n in sums:
        assert len(n.loops) == 2 and n.loops[-1].simd


def test_softmax_runs_row_by_row():
    """Maximum, sum of exponentials and quotients in one nest over the rows."""
    plan = plan_program(SoftmaxSpec.build().compiled.forward)
    (rows,) = [n for n in plan if n.form == "rows"]
    names = {st.name for _, st in rows.members}
    assert {s.name for s in plan.program.stages} <= names


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 5), (7, 33), (3, 5, 700)])
def test_softmax_row_by_row_agrees_with_numpy(dtype, shape):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype) * 4
    gy = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    m = SoftmaxSpec.build(dtype=dtype)
    y = m.forward(x).numpy()
    gx = m.backward(gy).numpy()
    e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    want = e / e.sum(-1, keepdims=True)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, want * (gy - (gy * want).sum(-1, keepdims=True)), rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("k", [64, 197, LOCAL_ROW_LIMIT + 3])
def test_softmax_exponentials_stay_in_a_row_buffer_where_a_row_fits(k):
    """The exponentials are neither saved nor written to memory (the backward
    reads the output times the sum) while a row has at most LOCAL_ROW_LIMIT
    elements; a longer row keeps them in a tensor."""
    m = SoftmaxSpec.build(C=k)
    (rows,) = [n for n in plan_program(m.compiled.forward) if n.form == "rows"]
    assert bool(rows.local) == (k <= LOCAL_ROW_LIMIT)
    assert not any(name.endswith("_terms") for name in m.compiled.saved)
    assert ("lc_row0" in m.source) == (k <= LOCAL_ROW_LIMIT)


@pytest.mark.parametrize("k", [16, 197, LOCAL_ROW_LIMIT, LOCAL_ROW_LIMIT + 1])
def test_run_time_rows_use_the_thread_buffer_when_they_fit(k):
    """A row whose length is known only at run time is kept in the thread's
    buffer when it has at most LOCAL_ROW_LIMIT elements, else in its own
    place in the tensor; both agree with numpy, on several threads."""
    m = SoftmaxSpec.build()
    (rows,) = [n for n in plan_program(m.compiled.forward) if n.form == "rows"]
    assert [name for name, _ in rows.local] == [st.name for _, st in rows.members if st.name.endswith("_terms")]
    assert f"<= {LOCAL_ROW_LIMIT}) ? lc_row0_space" in m.source
    x = np.random.default_rng(k).standard_normal((37, k)).astype(np.float32) * 5
    e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    np.testing.assert_allclose(m.forward(x).numpy(), e / e.sum(-1, keepdims=True), rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 9, 197, LOCAL_ROW_LIMIT + 3])
def test_softmax_gradient_from_its_output_on_edge_rows(dtype, k):
    """Rows of huge, tiny, +-inf and NaN values: the gradient taken from the
    output times the sum is numpy's (NaN where numpy's is NaN)."""
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((8, k)) * 3).astype(dtype)
    x[1] *= 1e30
    x[2] *= 1e-30
    x[3, k // 2] = np.inf
    x[4, :] = -np.inf
    x[5, 0] = np.nan
    x[6, -1] = -np.inf
    x[7] = np.finfo(dtype).max
    gy = rng.standard_normal((8, k)).astype(dtype)
    m = SoftmaxSpec.build(dtype=dtype)
    y, gx = m.forward(x).numpy(), m.backward(gy).numpy()
    with np.errstate(all="ignore"):
        x64 = x.astype(np.float64)
        e = np.exp(x64 - x64.max(-1, keepdims=True))
        want = e / e.sum(-1, keepdims=True)
        want_gx = want * (gy - (gy * want).sum(-1, keepdims=True))
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol, equal_nan=True)
    np.testing.assert_allclose(gx, want_gx, rtol=10 * tol, atol=10 * tol, equal_nan=True)


def _instance_norm():
    from layerc.nn.normalization import per_channel_spec
    return per_channel_spec("InstanceNorm2D", 4, True, True, False, True)


def test_statistics_and_their_readers_share_the_rows():
    """A layer norm's and an instance norm's statistics keep an axis of one
    element (keepdims); their output still runs in the same rows, forward and
    backward (the rows' loops of one element move inside each nest), and an
    instance's H*W plane is one vector loop in each."""
    from layerc.nn.norm import layer_norm_spec
    for spec, sizes in ((layer_norm_spec(1), dict(L1=40)), (_instance_norm(), dict(C=3))):
        compiled = spec.build(**sizes).compiled
        for program in (compiled.forward, compiled.backward):
            plan = plan_program(program)
            rows = [n for n in plan if n.form == "rows"]
            assert rows and {s.name for s in program.stages if not s.reduce} - {
                st.name for _, st in rows[-1].members} <= {"grad_bias", "grad_weight"}
            for n in rows[-1].group:
                assert sum(loop.extent != IConst(1) for loop in n.loops) <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 1, 33), (3, 1, 9, 9)])
def test_instance_norm_by_rows_agrees_with_numpy(dtype, shape):
    """Odd planes (tails of every vector width), one channel, one row."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    m = _instance_norm().build(C=shape[1], dtype=dtype)
    y = m.forward(x).numpy()
    gx = m.backward(gy).numpy()
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    mean = x64.mean((2, 3), keepdims=True)
    r = 1 / np.sqrt(x64.var((2, 3), keepdims=True) + 1e-5)
    n = (x64 - mean) * r
    w = np.ones(shape[1])[None, :, None, None]
    want_gx = r * (g64 * w - (g64 * w).mean((2, 3), keepdims=True) - n * (g64 * w * n).mean((2, 3), keepdims=True))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, n, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, want_gx, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("sizes", [dict(C=3, N=2, D2=5, D3=7), dict(C=1, N=3, D2=1, D3=17)])
def test_instance_norm_by_rows_gradient(sizes):
    report = check_grad(_instance_norm(), **sizes)
    assert report.ok, str(report)


def test_layer_norm_by_rows_gradient():
    from layerc.nn.norm import layer_norm_spec
    report = check_grad(layer_norm_spec(2), L1=3, L2=7, E=5)
    assert report.ok, str(report)


def _group_norm():
    from layerc.nn.normalization import group_norm_spec
    return group_norm_spec(4, True)


def test_group_norm_output_splits_its_channels_into_the_groups_rows():
    """A group norm's statistics run over (sample, group) rows; its output and
    input gradient, over channels, run in those rows, the channel loop split
    into groups and the channels of a group."""
    compiled = _group_norm().build(C=6, groups=3).compiled
    for program in (compiled.forward, compiled.backward):
        plan = plan_program(program)
        rows = [n for n in plan if n.form == "rows"][-1]
        last = rows.group[-1]
        assert last.stage.reduce is None and last.collapsed.split
        ((outer, inner, q, offset),) = last.collapsed.split.values()
        assert q == 2 and offset == 0 and outer == rows.loops[1].var and last.loops[0].var == inner


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, groups", [((2, 6, 5, 7), 3), ((3, 4, 1, 9), 2), ((1, 6, 3, 3), 6)])
def test_group_norm_by_rows_agrees_with_numpy(dtype, shape, groups):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    m = _group_norm().build(C=shape[1], groups=groups, dtype=dtype)
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    m.weight.data[...], m.bias.data[...] = w, b
    y = m.forward(x).numpy()
    gx = m.backward(gy).numpy()
    n, c = shape[:2]
    g = x.astype(np.float64).reshape(n, groups, -1)
    r = 1 / np.sqrt(g.var(-1, keepdims=True) + 1e-5)
    norm = (g - g.mean(-1, keepdims=True)) * r
    wide = w[None, :, None, None]
    want = norm.reshape(shape) * wide + b[None, :, None, None]
    dn = (gy.astype(np.float64) * wide).reshape(n, groups, -1)
    want_gx = (r * (dn - dn.mean(-1, keepdims=True) - norm * (dn * norm).mean(-1, keepdims=True))).reshape(shape)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, want_gx, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("sizes", [dict(C=6, groups=3, N=2, D2=3, D3=5), dict(C=4, groups=2, N=1, D2=1, D3=7)])
def test_group_norm_by_rows_gradient(sizes):
    report = check_grad(_group_norm(), **sizes)
    assert report.ok, str(report)



@pytest.mark.parametrize("rows", [1, 3, 2 * PARALLEL_MIN_WORK // 19 + 5])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_layer_norms_parameter_gradients_sum_in_its_rows(rows, threads):
    """A layer norm's ``grad_weight`` and ``grad_bias`` are added into each
    thread's partial sums in the rows its input gradient runs
    (``schedule._rows_with_pass``): few rows (one thread) and, past the
    parallel threshold, uneven blocks of rows per thread; the partials
    combine in thread order, so a thread count gives one result; numpy's in
    float64."""
    from layerc.nn.norm import layer_norm_spec
    m = layer_norm_spec(1).build(L1=19, dtype=np.float64)
    (rows_nest,) = [n for n in plan_program(m.compiled.backward) if n.group]
    assert {"grad_weight", "grad_bias"} <= {st.name for kind, st in rows_nest.members if kind == "accumulate"}
    assert "lc_part0" in m.source           # the threads' partial sums
    rng = np.random.default_rng(rows)
    x, gy = rng.standard_normal((rows, 19)), rng.standard_normal((rows, 19))
    m.weight.data[...] = rng.standard_normal(19)
    m.set_threads(threads)
    try:
        grads = []
        for _ in range(2):
            m.zero_grad()
            m.forward(x)
            gx = np.array(m.backward(gy).numpy())
            grads.append((gx, m.weight.grad.copy(), m.bias.grad.copy()))
    finally:
        m.set_threads(0)
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
    xhat = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    gx, gw, gb = grads[0]
    np.testing.assert_allclose(gw, (gy * xhat).sum(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, gy.sum(0), rtol=1e-10, atol=1e-12)
    dxhat = gy * m.weight.data
    want = (dxhat - dxhat.mean(1, keepdims=True) - xhat * (dxhat * xhat).mean(1, keepdims=True)) / \
        np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(gx, want, rtol=1e-8, atol=1e-10)
