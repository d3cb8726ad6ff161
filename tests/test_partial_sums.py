"""Sums over a batch split into per-row partial sums that run in a later
row pass (compiler/partial_sums.py, schedule._split_to_rows): where they
apply, what they leave alone, and that the gradients stay numpy's, finite
differences' and torch's, at edge values too."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from layerc import check_grad
from layerc.compiler import ir
from layerc.compiler.partial_sums import split_batch_sums
from layerc.compiler.schedule import plan_program
from layerc.nn import GroupNorm
from layerc.nn.normalization import group_norm_spec


def _nests_reading(program, tensor):
    """The top-level nests of ``program``'s plan that read ``tensor`` (each a pass over memory)."""
    return [n for n in plan_program(program).nests
            if any(tensor in ir.tensors_read(s.body) for _, s in n.members)]


@pytest.mark.parametrize("sizes", [dict(C=32, groups=4, D2=8, D3=8), dict(C=6, groups=6, D2=5, D3=3),
                                   dict(C=12, groups=3, D2=1, D3=7)])
def test_a_group_norms_backward_reads_its_input_in_one_pass(sizes):
    """The parameter gradients' partial sums per sample and channel run in the
    rows of the input's gradient: one pass over ``x`` and ``g`` (two before)."""
    backward = group_norm_spec(4, True).build(N=4, **sizes).compiled.backward
    names = [s.name for s in backward.stages]
    assert "grad_weight_part" in names and "grad_bias_part" in names, names
    assert len(_nests_reading(backward, "x")) == 1
    (rows,) = _nests_reading(backward, "x")
    assert rows.group and {"grad_weight_part", "grad_bias_part"} <= {s.name for _, s in rows.members}


def _reference(x, weight, bias, groups, gy, eps=1e-5):
    """A group norm's output and gradients in float64 numpy."""
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    mean, var = g.mean(2, keepdims=True), g.var(2, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = ((g - mean) * rstd).reshape(x.shape)
    channel = (1, c) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    dxhat = (gy * weight.reshape(channel)).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    dx = rstd * (dxhat - dxhat.mean(2, keepdims=True) - xh * (dxhat * xh).mean(2, keepdims=True))
    return (xhat * weight.reshape(channel) + bias.reshape(channel), dx.reshape(x.shape),
            (gy * xhat).sum(axes), gy.sum(axes))


def _run(groups, channels, shape, x, gy):
    m = GroupNorm(groups, channels, dtype=np.float64)
    rng = np.random.default_rng(1)
    m.weight.data[...] = rng.standard_normal(channels)
    m.bias.data[...] = rng.standard_normal(channels)
    y = np.array(m.forward(x).numpy())
    gx = np.array(m.backward(gy).numpy())
    return m, y, gx


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 5), groups=st.integers(1, 4), per_group=st.integers(1, 5), h=st.integers(1, 6),
       w=st.integers(1, 9), seed=st.integers(0, 2 ** 16))
def test_group_norm_matches_numpy_at_random_shapes(n, groups, per_group, h, w, seed):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    x, gy = rng.standard_normal((n, c, h, w)), rng.standard_normal((n, c, h, w))
    m, y, gx = _run(groups, c, (n, c, h, w), x, gy)
    ry, rgx, rgw, rgb = _reference(x, m.weight.data, m.bias.data, groups, gy)
    np.testing.assert_allclose(y, ry, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gx, rgx, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(m.weight.grad, rgw, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.bias.grad, rgb, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_group_norm_edge_values_stay_in_their_group(bad):
    """A NaN, an infinity or a huge value in one sample's group reaches that
    group's outputs and the parameter gradients of its channels, as in numpy;
    the other groups and samples are untouched."""
    rng = np.random.default_rng(2)
    x, gy = rng.standard_normal((3, 8, 4, 5)), rng.standard_normal((3, 8, 4, 5))
    x[1, 5, 2, 3] = bad
    with np.errstate(all="ignore"):
        m, y, gx = _run(2, 8, x.shape, x, gy)
        ry, rgx, rgw, rgb = _reference(x, m.weight.data, m.bias.data, 2, gy)
    np.testing.assert_allclose(y, ry, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(gx, rgx, rtol=1e-7, atol=1e-7, equal_nan=True)
    np.testing.assert_allclose(m.weight.grad, rgw, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(m.bias.grad, rgb, rtol=1e-9)
    assert np.isfinite(y[0]).all() and np.isfinite(y[1, :4]).all()


@pytest.mark.parametrize("sizes", [dict(C=6, groups=3, N=3, D2=2, D3=4), dict(C=4, groups=1, N=2, D2=3, D3=3)])
def test_split_group_norm_matches_finite_differences(sizes):
    assert check_grad(group_norm_spec(4, True), **sizes).ok


def test_group_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, gy = rng.standard_normal((5, 12, 7, 6)), rng.standard_normal((5, 12, 7, 6))
    m, y, gx = _run(3, 12, x.shape, x, gy)
    ref = torch.nn.GroupNorm(3, 12).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(m.weight.data))
        ref.bias.copy_(torch.from_numpy(m.bias.data))
    tx = torch.from_numpy(x).requires_grad_()
    ty = ref(tx)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(m.weight.grad, ref.weight.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.bias.grad, ref.bias.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_prelu_on_images_sums_its_alpha_gradient_in_the_input_gradients_rows():
    from benchmarks.specs import PReLU2D
    m = PReLU2D.build(C=5, K=5, dtype=np.float64)
    backward = m.compiled.backward
    assert len(_nests_reading(backward, "x")) == 1 and "grad_alpha_part" in {s.name for s in backward.stages}
    rng = np.random.default_rng(5)
    x, gy = rng.standard_normal((3, 5, 4, 6)), rng.standard_normal((3, 5, 4, 6))
    alpha = np.array(m.alpha.data).reshape(1, 5, 1, 1)
    np.testing.assert_allclose(np.array(m.forward(x).numpy()), np.where(x > 0, x, alpha * x), rtol=1e-12)
    np.testing.assert_allclose(np.array(m.backward(gy).numpy()), np.where(x > 0, gy, alpha * gy), rtol=1e-12)
    np.testing.assert_allclose(m.alpha.grad, np.where(x > 0, 0, gy * x).sum((0, 2, 3)), rtol=1e-10)


def test_sums_that_share_a_pass_or_find_no_row_are_left_alone():
    """A batch norm's ``grad_bias`` sums beside its statistics' gradients, which
    read the same rows; a convolution's bias gradient finds no row pass."""
    from layerc.nn.conv import Conv2DSpec
    from layerc.nn.norm import BatchNorm2DSpec
    bn = BatchNorm2DSpec.build(C=5).compiled.backward
    conv = Conv2DSpec.build(C=3, O=4, KH=3, KW=3, CG=3).compiled.backward
    for program in (bn, conv):
        assert not any(s.name == "grad_bias_part" for s in program.stages), ir.format_program(program)


def _program(reader_between: bool) -> ir.Program:
    """``t[c] = sum_{n, p} x[n, c, p]``, then (optionally ``u = t * 2``) a row
    statistic ``r[n, c] = sum_p x``, ``y = x - r``; ``t`` returned."""
    n, c, p = ir.ISym("N"), ir.IConst(8), ir.ISym("P")
    i, j, k = ir.Axis("i", n), ir.Axis("j", c), ir.Axis("k", p)
    x = ir.Load("x", (ir.IVar("i"), ir.IVar("j"), ir.IVar("k")))
    t = ir.Stage("t", (c,), (j,), x, "sum", (i, k))
    u = ir.Stage("u", (c,), (j,), ir.Call("mul", (ir.Load("t", (ir.IVar("j"),)), ir.Const(2.0))))
    r = ir.Stage("r", (n, c), (i, j), x, "sum", (k,))
    y = ir.Stage("y", (n, c, p), (i, j, k), ir.Call("sub", (x, ir.Load("r", (ir.IVar("i"), ir.IVar("j"))))))
    stages = (t, u, r, y) if reader_between else (t, r, y)
    return ir.Program("p", (ir.TensorDecl("x", (n, c, p), "input"),), stages, ("t", "y"))


def test_the_partial_sums_go_before_the_row_pass_and_the_total_after():
    split = split_batch_sums(_program(False))
    assert [s.name for s in split.stages] == ["r", "t_part", "y", "t"]
    part, total = split.stage("t_part"), split.stage("t")
    assert [a.name for a in part.axes] == ["i", "j"] and [a.name for a in part.reduce_axes] == ["k"]
    assert [a.name for a in total.reduce_axes] == ["i"] and ir.tensors_read(total.body) == {"t_part"}


def test_a_reader_of_the_sum_before_the_row_pass_keeps_it_whole():
    p = _program(True)
    assert split_batch_sums(p) is p
