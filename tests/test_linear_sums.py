"""Sums split by linearity (compiler/linear_sums.py) and sums side by side in
one pass (schedule.sums_nest): which stages move and share loops, and that the
gradients stay numpy's, finite differences' and, where a large mean tests
rounding, float64's."""
import numpy as np
import pytest

from layerc import Input, Param, check_grad, layer, ops
from layerc.compiler import ir
from layerc.compiler.linear_sums import split_late_sums
from layerc.compiler.schedule import plan_program
from layerc.nn.norm import BatchNorm2DSpec, layer_norm_spec
from layerc.nn.normalization import group_norm_spec


def _flat(plan):
    return [m for n in plan for m in n.group or (n,)]


def _sums_nests(program):
    return [n for n in _flat(plan_program(program)) if n.form == "sums"]


def _passes_over(program, tensor):
    """How many nests of ``program``'s plan read ``tensor``."""
    return sum(any(tensor in ir.tensors_read(st.body) for _, st in n.members) for n in _flat(plan_program(program)))


@layer
class CenteredEnergy:
    """A user's layer with a norm's shape of backward: a row's mean, then a sum
    of the centred values times a row constant."""
    x = Input("N", "E")
    w = Param("E", init="ones")

    def forward(x, w):
        centered = x - ops.mean(x, axis=1, keepdims=True)
        scale = ops.rsqrt(ops.mean(centered * centered, axis=1, keepdims=True) + 1e-3)
        return ops.tanh(centered * scale * w)


@pytest.mark.parametrize("spec, sizes", [
    (group_norm_spec(4, True), dict(C=12, groups=3)),
    (layer_norm_spec(1), dict(L1=40)),
    (CenteredEnergy, dict(E=16)),
])
def test_a_norms_backward_reads_each_row_once_from_memory(spec, sizes):
    """The sums after a row's scale join the sum the scale comes from: a row
    is read by three nests of its row's pass (the sums, the input's gradient,
    the parameters' gradients), from memory only by the first; before, four
    nests in two passes."""
    backward = spec.build(**sizes).compiled.backward
    assert any(st.name.endswith("_part") for st in backward.stages), ir.format_program(backward)
    assert _sums_nests(backward)
    reading = [n for n in plan_program(backward) if any("x" in ir.tensors_read(st.body) for _, st in n.members)]
    assert len(reading) == 1 and reading[0].group
    assert sum(any("x" in ir.tensors_read(st.body) for _, st in m.members) for m in reading[0].group) == 3


@pytest.mark.parametrize("spec, sizes", [
    (group_norm_spec(4, True), dict(C=6, groups=3, N=2, D2=3, D3=5)),
    (layer_norm_spec(1), dict(L1=7, E=5)),
    (CenteredEnergy, dict(N=4, E=9)),
])
def test_split_sums_match_finite_differences(spec, sizes):
    assert check_grad(spec, **sizes).ok


def test_a_large_mean_keeps_its_precision():
    """``s * sum(x - m)`` keeps ``x - m`` whole: split into ``s * sum(x) -
    s * sum(m)`` it would cancel; float32 against float64 at a mean of 1e4."""
    rng = np.random.default_rng(3)
    x = (1e4 + rng.standard_normal((6, 64))).astype(np.float32)
    gy = rng.standard_normal((6, 64)).astype(np.float32)
    grads = []
    for dtype in (np.float32, np.float64):
        m = CenteredEnergy.build(E=64, dtype=dtype)
        m.forward(x.astype(dtype))
        grads.append(m.backward(gy.astype(dtype)).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=2e-3, atol=2e-3)


def test_sibling_sums_share_one_pass_and_match_numpy():
    """A batch norm's backward sums per channel ``g`` (``grad_bias``), ``g * (x -
    m)`` (``grad_weight``'s) and the parts of the mean's gradient: one nest, an
    accumulator each, and ``x`` read twice in all (that nest, then ``grad_x``)."""
    m = BatchNorm2DSpec.build(C=5, dtype=np.float64)
    backward = m.compiled.backward
    nests = _sums_nests(backward)
    assert len(nests) == 1 and "grad_bias" in {st.name for _, st in nests[0].members}
    assert len(nests[0].members) == 4 and _passes_over(backward, "x") == 2
    rng = np.random.default_rng(0)
    x, gy = rng.standard_normal((4, 5, 3, 7)), rng.standard_normal((4, 5, 3, 7))
    m.forward(x)
    m.backward(gy)
    xhat = (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(m.bias.grad, gy.sum((0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(m.weight.grad, (gy * xhat).sum((0, 2, 3)), rtol=1e-10)


def _program(output: str) -> ir.Program:
    """``r = sum_j x``, ``s = r * 2`` (late), ``t = sum_j s * x + x``; ``output`` is returned."""
    n, e = ir.ISym("N"), ir.ISym("E")
    i, j = ir.Axis("i", n), ir.Axis("j", e)
    x = ir.Load("x", (ir.IVar("i"), ir.IVar("j")))
    r = ir.Stage("r", (n,), (i,), x, "sum", (j,))
    s = ir.Stage("s", (n,), (i,), ir.Call("mul", (ir.Load("r", (ir.IVar("i"),)), ir.Const(2.0))))
    t = ir.Stage("t", (n,), (i,), ir.Call("add", (ir.Call("mul", (ir.Load("s", (ir.IVar("i"),)), x)), x)), "sum", (j,))
    u = ir.Stage("u", (n,), (i,), ir.Call("add", (ir.Load("t", (ir.IVar("i"),)), ir.Load("s", (ir.IVar("i"),)))))
    return ir.Program("p", (ir.TensorDecl("x", (n, e), "input"),), (r, s, t, u), (output,))


def test_a_sum_moves_up_split_by_its_late_coefficient():
    p = split_late_sums(_program("u"))
    names = [st.name for st in p.stages]
    assert names[0] == "r" and names[-2:] == ["t", "u"] and len(names) == 6, names
    parts = p.stages[1:3]
    assert all(st.reduce == "sum" and "s" not in ir.tensors_read(st.body) for st in parts)
    assert p.stage("t").reduce is None and "s" in ir.tensors_read(p.stage("t").body)


def test_a_sum_the_program_returns_is_not_split():
    p = _program("t")
    assert split_late_sums(p) == p
