"""Pointwise loops cut where their index tests change (compiler/pieces.py): a
concatenation, a padding and a head split, and their gradients, against numpy
and finite differences; which nests the plan runs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerc import Input, Param, check_grad, layer, ops
from layerc.compiler import ir
from layerc.compiler.ir import IConst, IVar
from layerc.compiler.pipeline import lower_layer
from layerc.compiler.plan import plan_program
from layerc.compiler.schedule import coordinate_in_range
from layerc.nn.pad import pad_spec


@layer
class JoinedHeads:
    """A fused projection's [q | k | v] split into two heads each, each head
    times a matrix, joined back, as an attention's: its input gradient reads
    three head-split products, each under its range test and through ``// D``
    and ``% D``."""
    x = Input("N", "L", "E3")
    m = Param("D", "D")

    def forward(x, m):
        n, length, e3 = x.shape
        e = e3 // 3
        parts = [t.reshape(n, length, 2, e // 2).transpose(0, 2, 1, 3) for t in ops.split(x, 3, axis=2)]
        mixed = [p @ m for p in parts]
        return ops.concatenate([t.transpose(0, 2, 1, 3).reshape(n, length, e) for t in mixed], axis=2)


@layer
class Padded:
    x = Input("N", "W")

    def forward(x):
        return ops.tanh(ops.pad(x, ((0, 0), (3, 5))))


@layer
class Joined:
    x = Input("N", "A")
    y = Input("N", "B")

    def forward(x, y):
        return ops.concatenate([ops.exp(x), y * y, ops.sin(x)], axis=1)


def _pieces(plan, name):
    return [n for n in plan if n.stage.name == name and n.window is not None]


def _program(spec, role, **sizes):
    lowered = lower_layer(spec, **sizes)
    return {"forward": lowered.forward, "backward": lowered.backward}[role]


def test_a_joined_gradient_runs_a_nest_per_piece_without_divisions():
    backward = _program(JoinedHeads, "backward", E3=48, D=8)
    plan = plan_program(backward)
    joined = [n for n in plan if n.stage.name == "grad_x" and n.window is not None]
    assert len(joined) == 3, [(n.stage.name, n.window) for n in plan]
    starts = sorted(split[3] for n in joined for split in n.collapsed.split.values())
    assert starts == [0, 16, 32]
    source = JoinedHeads.build(E3=48, D=8).source
    backward_c = source.split("backward_f32(", 1)[1].split("backward_f64(")[0]
    grad_x = backward_c[backward_c.index("/* grad_x["):]
    assert "lc_floordiv" not in grad_x and "lc_mod" not in grad_x


def _heads(t, d):
    n, length, e = t.shape
    return t.reshape(n, length, e // d, d).transpose(0, 2, 1, 3)


def _joined(t):
    n, h, length, d = t.shape
    return t.transpose(0, 2, 1, 3).reshape(n, length, h * d)


@pytest.mark.parametrize("shape", [(2, 3, 48), (1, 5, 12), (3, 1, 96)])
def test_joined_heads_match_numpy(shape):
    d = shape[2] // 6
    m = JoinedHeads.build(E3=shape[2], D=d, dtype=np.float64)
    rng = np.random.default_rng(0)
    m.m.data[...] = rng.standard_normal((d, d))
    x, gy = rng.standard_normal(shape), rng.standard_normal(shape)
    x[0, 0, :3] = [0.0, -0.0, 1e30]
    parts = np.split(x, 3, axis=2)
    want = np.concatenate([_joined(_heads(p, d) @ m.m.data) for p in parts], axis=2)
    np.testing.assert_allclose(m.forward(x).numpy(), want, rtol=1e-12)
    gx = m.backward(gy)
    grads = [_joined(_heads(g, d) @ m.m.data.T) for g in np.split(gy, 3, axis=2)]
    np.testing.assert_allclose(gx.numpy(), np.concatenate(grads, axis=2), rtol=1e-12, atol=1e-12)


def test_joined_heads_match_finite_differences():
    assert check_grad(JoinedHeads, N=2, L=3, E3=12, D=2).ok


@pytest.mark.parametrize("width", [1, 4, 9])
def test_a_padding_runs_its_zeros_and_its_values_apart(width):
    forward = _program(Padded, "forward", W=width)
    assert len(_pieces(plan_program(forward), forward.outputs[0])) == 3
    m = Padded.build(W=width, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, width))
    np.testing.assert_allclose(m.forward(x).numpy(), np.tanh(np.pad(x, ((0, 0), (3, 5)))), rtol=1e-12)
    assert check_grad(Padded, N=3, W=width).ok


@pytest.mark.parametrize("a, b", [(5, 3), (1, 7), (8, 8)])
def test_a_concatenation_of_odd_widths_matches_numpy(a, b):
    m = Joined.build(A=a, B=b, dtype=np.float64)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, a)), rng.standard_normal((6, b))
    x[0, 0], y[-1, -1] = np.inf, np.nan
    out = m.forward(x, y).numpy()
    with np.errstate(invalid="ignore"):
        want = np.concatenate([np.exp(x), y * y, np.sin(x)], axis=1)
    np.testing.assert_allclose(out, want, rtol=1e-14)
    forward = _program(Joined, "forward", A=a, B=b)
    assert len(_pieces(plan_program(forward), forward.outputs[0])) == 3
    assert check_grad(Joined, N=3, A=a, B=b).ok


def test_a_width_known_only_at_run_time_keeps_one_loop():
    forward = _program(Padded, "forward")
    assert not _pieces(plan_program(forward), forward.outputs[0])


def _random_join(widths, pads, op):
    """A spec joining ``len(widths)`` inputs of those widths, each through ``op``
    or squared in turn, then padded by ``pads`` and put through ``tanh``."""
    names = [f"x{k}" for k in range(len(widths))]
    members = {name: Input("N", f"A{k}") for k, name in enumerate(names)}

    def forward(*xs):
        parts = [ops.elementwise(op, x) if k % 2 == 0 else x * x for k, x in enumerate(xs)]
        return ops.tanh(ops.pad(ops.concatenate(parts, axis=1), ((0, 0), pads)))
    members["forward"] = eval(f"lambda {', '.join(names)}: forward({', '.join(names)})", {"forward": forward})
    return layer(type("RandomJoin", (), members)), {f"A{k}": w for k, w in enumerate(widths)}


@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(widths=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       pads=st.tuples(st.integers(0, 4), st.integers(0, 4)), op=st.sampled_from(["sin", "exp", "softplus"]))
def test_random_joins_and_pads_match_numpy_and_finite_differences(widths, pads, op):
    """Widths and paddings drawn at random: the forward against numpy, the
    gradients against finite differences (pieces at every join and pad)."""
    spec, sizes = _random_join(widths, pads, op)
    m = spec.build(**sizes, dtype=np.float64)
    rng = np.random.default_rng(len(widths))
    xs = [rng.standard_normal((3, w)) for w in widths]
    f = {"sin": np.sin, "exp": np.exp, "softplus": lambda v: np.logaddexp(0, v)}[op]
    parts = [f(x) if k % 2 == 0 else x * x for k, x in enumerate(xs)]
    want = np.tanh(np.pad(np.concatenate(parts, axis=1), ((0, 0), pads)))
    np.testing.assert_allclose(m.forward(*xs).numpy(), want, rtol=1e-12, atol=1e-12)
    assert check_grad(spec, N=2, **sizes).ok



def test_a_test_against_an_infinite_constant_is_not_an_index_bound():
    """A comparison of an index with inf or NaN is no bound to cut at (and no crash)."""
    from layerc.compiler import ir
    from layerc.compiler.pieces import _test
    j = ir.IndexValue(ir.IVar("j"))
    for value in (float("inf"), float("-inf"), float("nan"), 2.5):
        assert _test(ir.Call("lt", (ir.Const(value), j))) is None
    assert _test(ir.Call("lt", (ir.Const(3.0), j))) is not None


def _coordinate_ops(e) -> set:
    return {e.op} | _coordinate_ops(e.a) | _coordinate_ops(e.b) if isinstance(e, ir.IBin) else set()


@pytest.mark.parametrize("mode, numpy_mode", [("reflect", "reflect"), ("replicate", "edge")])
@pytest.mark.parametrize("size, pads", [(9, (3, 2)), (4, (3, 3)), (2, (1, 0)), (30, (0, 5))])
def test_a_mirrored_or_clamped_padding_runs_a_loop_per_stretch(mode, numpy_mode, size, pads):
    """A reflected or replicated padding's read turns at the axis's ends
    (``L - |L - |v - p||``, ``min(max(v - p, 0), L)``): at a size bound at
    build time its row runs as a loop per stretch between the turns, each
    read without ``min``/``max`` (reversed, forwards or one element), and
    the whole agrees with numpy and finite differences, and so does its
    gradient's scatter, a loop per stretch too."""
    if mode == "reflect" and max(pads) >= size:
        pytest.skip("a reflection needs fewer padded elements than the axis")
    spec = pad_spec(3, (pads,), mode)
    forward = _program(spec, "forward", D2=size)
    pieces = _pieces(plan_program(forward), forward.outputs[0])
    assert len(pieces) == (pads[0] > 0) + 1 + (pads[1] > 0)
    for piece in pieces:
        for load in ir.loads(piece.window.body):
            assert not _coordinate_ops(load.index[-1]) & {"min", "max"}, load
    # the gradient adds each stretch into the input: where the target moves
    # along the row (all but a replicated edge's), in SIMD lanes
    backward = _program(spec, "backward", D2=size)
    scatters = [n for n in plan_program(backward) if n.kind == "scatter"]
    assert len(scatters) == len(pieces) and [n.window.adds_on for n in scatters] == [False] + [True] * (len(pieces) - 1)
    moving = [n.loops[-1].simd for n in scatters]
    assert moving == ([mode == "reflect"] * (pads[0] > 0) + [True] + [mode == "reflect"] * (pads[1] > 0))
    x = np.random.default_rng(size).standard_normal((2, 3, size))
    m = spec.build(D2=size, dtype=np.float64)
    np.testing.assert_array_equal(m.forward(x).numpy(), np.pad(x, ((0, 0), (0, 0), pads), mode=numpy_mode))
    assert check_grad(spec, N=2, D1=2, D2=size).ok


def test_a_mirrored_coordinate_is_known_in_range():
    """``|v|`` as ``max(v, -v)``: the bounds of ``v`` and ``-v`` taken apart
    would put it below 0; a reflected read needs no guard."""
    v = ir.isub(IVar("b"), 3)
    mirror = ir.isub(8, ir.imax(ir.isub(8, ir.imax(v, ir.imul(-1, v))), ir.imul(-1, ir.isub(8, ir.imax(v, ir.imul(-1, v))))))
    extents = {"b": IConst(15)}
    assert coordinate_in_range(mirror, IConst(9), extents)
    assert not coordinate_in_range(mirror, IConst(8), extents)
    assert not coordinate_in_range(mirror, IConst(9), {"b": IConst(21)})      # b - 3 = 17 folds to -1


@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(size=st.integers(1, 12), before=st.integers(0, 11), after=st.integers(0, 11),
       mode=st.sampled_from(["reflect", "replicate"]))
def test_random_mirrored_and_clamped_paddings_match_numpy_and_finite_differences(size, before, after, mode):
    if mode == "reflect":
        before, after = before % size, after % size        # fewer padded elements than the axis
    spec = pad_spec(2, ((before, after),), mode)
    x = np.random.default_rng(size).standard_normal((3, size))
    m = spec.build(D1=size, dtype=np.float64)
    np.testing.assert_array_equal(m.forward(x).numpy(),
                                  np.pad(x, ((0, 0), (before, after)), mode="reflect" if mode == "reflect" else "edge"))
    assert check_grad(spec, N=2, D1=size).ok
