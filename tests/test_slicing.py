"""compiler/slicing.py: numpy's basic indexing on traced tensors and the ops
that pad, flip, roll, concatenate and stack. Each case runs forward against
numpy, backward against PyTorch autograd (a random output gradient), and
through check_grad (finite differences, float64); odd sizes, negative steps
and clipped bounds included. Misuse is a SpecError naming the tensor."""
import difflib

import numpy as np
import pytest

from layerc import Input, SpecError, check_grad, layer, ops
from layerc.compiler.autodiff import gradient_program
from layerc.compiler.ir import format_stage

torch = pytest.importorskip("torch")
F = torch.nn.functional

SHAPE = (4, 5, 7)
SIZES = dict(A=4, B=5, C=7)


def spec_of(name: str, forward, **inputs):
    """A layer with the given inputs (default one ``x`` of ``SHAPE``) returning ``forward(...)``."""
    inputs = inputs or {"x": Input("A", "B", "C")}
    return layer(type(name, (), {**inputs, "forward": forward}))


def run_case(spec, arrays: dict, sizes: dict, reference, torch_reference):
    """Forward against numpy (exactly: these ops only move values), backward
    against torch, and the gradient check."""
    m = spec.build(**sizes, dtype=np.float64)
    out = m.forward(**arrays).numpy()
    want = reference(*arrays.values())
    assert out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    g = np.random.default_rng(1).standard_normal(out.shape)
    grads = m.backward(g)
    grads = grads if isinstance(grads, tuple) else (grads,)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays.values()]
    torch_reference(*tensors).backward(torch.tensor(g))
    for got, t in zip(grads, tensors):
        np.testing.assert_allclose(got.numpy(), t.grad.numpy(), rtol=1e-13, atol=1e-13)
    check_grad(spec, **sizes).assert_ok()
    # every read is solved for its source coordinate: gathers, race-free in parallel loops
    assert not any(s.scatter_index for s in gradient_program(spec.trace(**sizes)).stages)


def torch_index(t, key):
    """``t[key]`` in torch for any basic-indexing key (negative steps too): a
    gather at the flat positions numpy's indexing picks."""
    flat = np.arange(int(np.prod(t.shape))).reshape(tuple(t.shape))[key]
    return t.reshape(-1)[torch.from_numpy(np.ascontiguousarray(flat).reshape(-1))].reshape(flat.shape)


# ---------------------------------------------------------------- basic indexing

S = slice
KEYS = [
    (S(None), S(1, 3)),
    (Ellipsis, S(1, 3)),
    (S(None), S(None, None, 2)),
    (S(None, None, -1),),
    (S(None), S(-1, -6, -2), S(5, 0, -3)),
    (1,),
    (S(None), -1, S(2, None)),
    (None, S(None), None, 2),
    (S(-100, 100), Ellipsis, S(None, None, -3)),
    (Ellipsis, S(6, None, -4)),
    (S(3, 100), S(-100, 2), S(100, -100, -5)),
    (2, 3, Ellipsis),
    (3, -1, 0, Ellipsis),
]


@pytest.mark.torch
@pytest.mark.parametrize("key", KEYS, ids=[str(k) for k in KEYS])
def test_basic_indexing_matches_numpy_and_torch(key):
    spec = spec_of("Slice", lambda x: x[key])
    x = np.random.default_rng(0).standard_normal(SHAPE)
    run_case(spec, {"x": x}, SIZES, lambda x: x[key], lambda t: torch_index(t, key))


def test_a_slice_is_an_affine_read_whose_gradient_is_a_gather():
    spec = spec_of("Strided", lambda x: x[:, 1:4, ::-2])
    forward = spec.trace(**SIZES)
    assert [format_stage(s) for s in forward.stages] == ["slice_0[i0, i1, i2] = x[i0, i1 + 1, -2 * i2 + 6]"]
    backward = gradient_program(forward)
    assert not any(s.scatter_index or s.reduce_axes for s in backward.stages)


def test_float32_slices_are_exact_too():
    spec = spec_of("Slice32", lambda x: x[1:, ::-3] * 1.0)
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    np.testing.assert_array_equal(spec.build(**SIZES, dtype=np.float32).forward(x=x).numpy(), x[1:, ::-3])


def test_free_sizes_take_whole_axis_slices_and_integers():
    spec = spec_of("Free", lambda x: (x[::2, ::-1], x[..., -1], x[:, 0]), x=Input("N", "L"))
    m = spec.build(dtype=np.float64)
    for shape in ((5, 7), (6, 1)):
        x = np.random.default_rng(3).standard_normal(shape)
        for got, want in zip(m.forward(x=x), (x[::2, ::-1], x[..., -1], x[:, 0])):
            np.testing.assert_array_equal(got.numpy(), want)
    check_grad(spec, N=5, L=7).assert_ok()


def test_index_notation_reads_are_unchanged():
    spec = spec_of("Shift", lambda x: ops.compute((4, 5, 5), lambda a, b, c: x[a, b, c + 2] * x[0, 1, 2]))
    x = np.random.default_rng(4).standard_normal(SHAPE)
    out = spec.build(**SIZES, dtype=np.float64).forward(x=x).numpy()
    np.testing.assert_array_equal(out, x[:, :, 2:] * x[0, 1, 2])


# ---------------------------------------------------------------- pad, flip, roll


def _torch_pad(widths, mode, value=0.0):
    """``F.pad`` with numpy's widths: torch's list starts at the last axis;
    reflect and replicate take a leading (batch or channel) axis."""
    flat = [w for pair in reversed(widths) for w in pair]
    while flat[-2:] == [0, 0]:
        flat = flat[:-2]
    if mode == "constant":
        return lambda t: F.pad(t, flat, value=value)
    return lambda t: F.pad(t[None], flat, mode=mode)[0]


PADS = [  # (pad_width, mode, value, numpy's widths as pairs)
    (((1, 2), (0, 3)), "constant", 0.0, ((1, 2), (0, 3))),
    (2, "constant", 1.5, ((2, 2), (2, 2))),
    ((0, 3), "constant", -2.0, ((0, 3), (0, 3))),
    (((2, 1), (3, 3)), "reflect", 0.0, ((2, 1), (3, 3))),
    (((0, 0), (6, 1)), "reflect", 0.0, ((0, 0), (6, 1))),
    (((2, 3), (1, 0)), "replicate", 0.0, ((2, 3), (1, 0))),
    (((0, 0), (0, 4)), "replicate", 0.0, ((0, 0), (0, 4))),
]


@pytest.mark.torch
@pytest.mark.parametrize("pad_width,mode,value,pairs", PADS, ids=[f"{p[1]}{p[0]}" for p in PADS])
def test_pad_matches_numpy_and_torch(pad_width, mode, value, pairs):
    spec = spec_of("Pad", lambda x: ops.pad(x, pad_width, mode=mode, value=value), x=Input("B", "C"))
    x = np.random.default_rng(5).standard_normal((5, 7))
    np_mode = {"replicate": "edge"}.get(mode, mode)
    extra = {"constant_values": value} if mode == "constant" else {}
    run_case(spec, {"x": x}, dict(B=5, C=7), lambda x: np.pad(x, pairs, mode=np_mode, **extra),
             _torch_pad(pairs, mode, value))


def test_replicate_sums_the_edge_gradient_once_per_row():
    spec = spec_of("Edge", lambda x: ops.pad(x, ((0, 0), (3, 3)), mode="replicate"), x=Input("B", "C"))
    backward = gradient_program(spec.trace(B=5, C=7))
    for s in backward.stages:
        assert all(a.extent.value <= 13 for a in s.reduce_axes)
        assert len(s.reduce_axes) <= 1


FLIPS_AND_ROLLS = [
    ("flip 1", lambda x: ops.flip(x, 1), lambda x: np.flip(x, 1), lambda t: torch.flip(t, (1,))),
    ("flip all", lambda x: ops.flip(x), lambda x: np.flip(x), lambda t: torch.flip(t, (0, 1, 2))),
    ("flip -1, 0", lambda x: ops.flip(x, (-1, 0)), lambda x: np.flip(x, (-1, 0)), lambda t: torch.flip(t, (2, 0))),
    ("roll 2", lambda x: ops.roll(x, 2, 1), lambda x: np.roll(x, 2, 1), lambda t: torch.roll(t, 2, 1)),
    ("roll -9", lambda x: ops.roll(x, -9, -1), lambda x: np.roll(x, -9, -1), lambda t: torch.roll(t, -9, -1)),
    ("roll flat", lambda x: ops.roll(x, 11), lambda x: np.roll(x, 11), lambda t: torch.roll(t, 11)),
    ("roll two axes", lambda x: ops.roll(x, (1, -2), (0, 2)), lambda x: np.roll(x, (1, -2), (0, 2)),
     lambda t: torch.roll(t, (1, -2), (0, 2))),
    ("roll by the size", lambda x: ops.roll(x, 5, 1) * 1.0, lambda x: np.roll(x, 5, 1), lambda t: t * 1.0),
]


@pytest.mark.torch
@pytest.mark.parametrize("name,expr,reference,torch_reference", FLIPS_AND_ROLLS, ids=[c[0] for c in FLIPS_AND_ROLLS])
def test_flip_and_roll_match_numpy_and_torch(name, expr, reference, torch_reference):
    x = np.random.default_rng(6).standard_normal(SHAPE)
    run_case(spec_of("Move", expr), {"x": x}, SIZES, reference, torch_reference)


def test_roll_and_flip_along_a_free_size_wrap_at_run_time():
    spec = spec_of("FreeRoll", lambda x: ops.roll(ops.flip(x, 0), 3, 0), x=Input("N", "L"))
    m = spec.build(L=2, dtype=np.float64)
    for n in (1, 2, 7):
        x = np.random.default_rng(n).standard_normal((n, 2))
        np.testing.assert_array_equal(m.forward(x=x).numpy(), np.roll(np.flip(x, 0), 3, 0))
    check_grad(spec, N=5, L=2).assert_ok()


# ---------------------------------------------------------------- concatenate and stack


@pytest.mark.torch
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_concatenate_matches_numpy_and_torch(axis):
    shapes = {1: ((3, 2, 4), (3, 5, 4), (3, 1, 4)), -1: ((3, 2, 4), (3, 2, 1), (3, 2, 3)),
              0: ((1, 2, 4), (3, 2, 4), (2, 2, 4))}[axis]
    names = ("x", "y", "z")
    inputs = {n: Input(*(f"{n.upper()}{k}" if k == axis % 3 else f"D{k}" for k in range(3))) for n in names}
    sizes = {f"D{k}": d for k, d in enumerate(shapes[0]) if k != axis % 3}
    sizes |= {f"{n.upper()}{axis % 3}": s[axis] for n, s in zip(names, shapes)}
    spec = spec_of("Concat", lambda x, y, z: ops.concatenate([x, y, z, x], axis=axis), **inputs)
    rng = np.random.default_rng(7)
    arrays = {n: rng.standard_normal(s) for n, s in zip(names, shapes)}
    run_case(spec, arrays, sizes, lambda x, y, z: np.concatenate([x, y, z, x], axis),
             lambda x, y, z: torch.cat([x, y, z, x], axis))


@pytest.mark.torch
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_stack_matches_numpy_and_torch(axis):
    spec = spec_of("Stack", lambda x, y: ops.stack([x, y, x * 2.0], axis=axis), x=Input("B", "C"), y=Input("B", "C"))
    rng = np.random.default_rng(8)
    arrays = {"x": rng.standard_normal((5, 7)), "y": rng.standard_normal((5, 7))}
    run_case(spec, arrays, dict(B=5, C=7), lambda x, y: np.stack([x, y, x * 2.0], axis),
             lambda x, y: torch.stack([x, y, x * 2.0], axis))


def test_joins_read_each_piece_through_an_affine_gather():
    spec = spec_of("Join", lambda x, y: ops.concatenate([ops.flip(x, 0), y[::-1]], axis=0),
                   x=Input("B", "C"), y=Input("B", "C"))
    backward = gradient_program(spec.trace(B=5, C=7))
    assert not any(s.scatter_index for s in backward.stages)
    assert not any(s.reduce_axes for s in backward.stages)


def test_concatenating_along_a_free_size_offsets_at_run_time():
    spec = spec_of("FreeCat", lambda x, y: ops.concatenate([x, y], axis=0), x=Input("N", "C"), y=Input("M", "C"))
    m = spec.build(C=3, dtype=np.float64)
    for n, k in ((1, 4), (5, 2)):
        x, y = np.random.default_rng(n).standard_normal((n, 3)), np.random.default_rng(k).standard_normal((k, 3))
        np.testing.assert_array_equal(m.forward(x=x, y=y).numpy(), np.concatenate([x, y]))


# ---------------------------------------------------------------- misuse


MISUSE = [
    ("empty slice", lambda x: x[:, 3:1], "empty"),
    ("empty by step", lambda x: x[:, :, 100::2], "empty"),
    ("zero step", lambda x: x[::0], "step is 0"),
    ("too many", lambda x: x[0, 0, 0, 0:1], "rank 3 but is indexed with 4"),
    ("two ellipses", lambda x: x[..., 0, ...], "more than one"),
    ("out of range", lambda x: x[:, 5], "index 5 is out of range for axis 1 of size 5"),
    ("array index", lambda x: x[[0, 1]], "basic indexing"),
    ("mixed", lambda x: ops.compute((4,), lambda a: x[a, 1:2, 0]), "do not mix"),
    ("reflect too wide", lambda x: ops.pad(x, ((0, 0), (0, 0), (7, 0)), mode="reflect"), "less than the axis size 7"),
    ("pad mode", lambda x: ops.pad(x, 1, mode="wrap"), "constant, reflect, replicate"),
    ("pad width", lambda x: ops.pad(x, ((1, 2, 3),)), "pad widths"),
    ("negative width", lambda x: ops.pad(x, -1), "negative"),
    ("value with reflect", lambda x: ops.pad(x, 1, mode="reflect", value=1.0), "mode='constant'"),
    ("concat shapes", lambda x: ops.concatenate([x, x[:, 1:]], axis=0), "same shape but along axis 0"),
    ("stack shapes", lambda x: ops.stack([x, x[1:]]), "same shape"),
    ("concat list", lambda x: ops.concatenate(x), "list of tensors"),
    ("flip axis", lambda x: ops.flip(x, 3), "axis 3 is out of range"),
]


@pytest.mark.parametrize("name,expr,message", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_is_a_spec_error(name, expr, message):
    with pytest.raises(SpecError, match="Misuse") as info:
        spec_of("Misuse", expr).trace(**SIZES)
    assert message in str(info.value)


def test_slicing_a_free_size_asks_for_it_to_be_bound():
    with pytest.raises(SpecError, match=r"size N is free at build time.*build\(N=...\)"):
        spec_of("FreeSlice", lambda x: x[1:], x=Input("N", "L")).trace(L=3)
    with pytest.raises(SpecError, match="must be bound at build time"):
        spec_of("FreeReflect", lambda x: ops.pad(x, 1, mode="reflect"), x=Input("N")).trace()


def test_integer_tensors_index_but_are_not_sliced():
    spec = spec_of("IntSlice", lambda x, ids: x[ids], x=Input("N", "C"), ids=Input("N", dtype="int64"))
    with pytest.raises(SpecError, match="take_along_axis"):
        spec.trace(C=3)
    spec = spec_of("IntSlice", lambda x, ids: ids[1:] * x, x=Input("N"), ids=Input("N", dtype="int64"))
    with pytest.raises(SpecError, match="cannot be sliced"):
        spec.trace()


@pytest.mark.parametrize("typo,meant", [("concat", "concatenate"), ("pads", "pad"), ("flipud", "flip"),
                                        ("stacks", "stack"), ("rolls", "roll")])
def test_unknown_ops_suggest_the_new_ones(typo, meant):
    with pytest.raises(AttributeError, match=f"ops.{meant}"):
        getattr(ops, typo)
    assert meant in difflib.get_close_matches(typo, ops.__all__, n=3, cutoff=0.5)
