"""Row-wise plans (compiler/schedule.py, compiler/collapse.py): short reductions
with their rows in SIMD lanes, loops of one iteration dropped and loops over
contiguous memory merged, and a row's statistics run row by row with what reads
them. Each plan checked by its shape, then against numpy and finite differences."""
import numpy as np
import pytest

from layerc import Input, check_grad, layer, ops
from layerc.compiler.ir import ISym
from layerc.compiler.schedule import RUN_TIME_SHORT_ROW, plan_program
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
