"""compiler/codegen.py: outputs larger than the caches, written through tiles
and streaming stores, hold what plain stores write."""
import re

import numpy as np
import pytest

from layerc import Input, Param, layer
from benchmarks.specs import FocalLoss

STREAM_ALL, STREAM_NONE = 1, 1 << 62


@layer
class RowScale:
    """A pointwise forward; a backward pass whose input gradient is stored
    while the scale's gradient is reduced over the leading axes."""
    x = Input("N", "H", "W")
    s = Param("W", init="normal")

    def forward(x, s):
        return x * s


@layer
class Product:
    """A backward of two pointwise gradients over the same loops (siblings)."""
    a = Input("N", "W")
    b = Input("N", "W")

    def forward(a, b):
        return a * b


def steps(module, inputs, seed):
    """Forward, then backward of a fixed output gradient: every array they give."""
    y = module.forward(*inputs)
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(module.dtype)
    grads = module.backward(gy)
    grads = grads if isinstance(grads, tuple) else (grads,)
    params = [p.grad.copy() for p in module.parameters()]
    return [np.array(y.data), *(np.array(g) for g in grads), *params], gy


def streamed_and_plain(module, inputs):
    results = []
    for threshold in (STREAM_ALL, STREAM_NONE):
        module.set_stream_bytes(threshold)
        module.zero_grad()
        results.append(steps(module, inputs, seed=3))
    module.set_stream_bytes(0)
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [130, 200, 256], ids=lambda w: f"W{w}")
def test_streamed_outputs_equal_plain_ones_and_numpy(dtype, width):
    m = RowScale.build(W=width, dtype=dtype)
    # a call storing an output (the module's header defines lc_stream_* for every layer)
    assert f"lc_stream_{'f32' if dtype == np.float32 else 'f64'}(T_" in m.source
    x = np.random.default_rng(1).standard_normal((3, 5, width)).astype(dtype)
    (streamed, gy), (plain, _) = streamed_and_plain(m, (x,))
    for a, b in zip(streamed, plain):
        np.testing.assert_array_equal(a, b)
    s = m.s.data
    y, gx, gs = streamed
    np.testing.assert_allclose(y, x * s, rtol=1e-6)
    np.testing.assert_allclose(gx, gy * s, rtol=1e-6)
    np.testing.assert_allclose(gs, (gy * x).sum(axis=(0, 1)), rtol=1e-4, atol=1e-5)


def test_streamed_sibling_gradients_equal_plain_ones():
    m = Product.build(W=300)
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((4, 300)).astype(np.float32) for _ in range(2))
    (streamed, gy), (plain, _) = streamed_and_plain(m, (a, b))
    for got, want in zip(streamed, plain):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(streamed[1], gy * b)
    np.testing.assert_array_equal(streamed[2], gy * a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", ["layer", "instance", "group"])
def test_streamed_rows_equal_plain_ones(dtype, which):
    """A norm's output and input gradient written in the rows of their
    statistics: streamed (the choice made once, around the rows) or not, the
    same values; odd row lengths; a group norm's along each channel's plane,
    its two axes one loop (merged), its channels a loop split by groups."""
    from layerc.nn.norm import layer_norm_spec
    from layerc.nn.normalization import group_norm_spec, per_channel_spec
    if which == "layer":
        m, shape = layer_norm_spec(1).build(L1=263, dtype=dtype), (5, 263)
    elif which == "instance":
        m, shape = per_channel_spec("InstanceNorm2D", 4, True, True, False, True).build(C=3, dtype=dtype), (2, 3, 9, 31)
    else:
        m, shape = group_norm_spec(4, True).build(C=6, groups=2, D2=9, D3=31, dtype=dtype), (3, 6, 9, 31)
        assert m.source.count(f"lc_stream_{'f32' if dtype == np.float32 else 'f64'}(T_") == 2   # y, grad_x
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    assert "lc_stream_" in m.source and "(row by row)" in m.source
    (streamed, _), (plain, _) = streamed_and_plain(m, (x,))
    for a, b in zip(streamed, plain):
        np.testing.assert_array_equal(a, b)


def test_a_misaligned_output_is_written_whole():
    """An ``out=`` array 4 bytes off a 16-byte boundary: no tile is streamed,
    each is copied, and every element arrives."""
    m = RowScale.build(W=256)
    m.set_stream_bytes(STREAM_ALL)
    x = np.random.default_rng(4).standard_normal((2, 3, 256)).astype(np.float32)
    storage = np.zeros(x.size + 4, np.float32)
    offset = next(k for k in range(4) if (storage[k:].ctypes.data % 16) == 4)
    out = storage[offset:offset + x.size].reshape(x.shape)
    try:
        m.forward(x, out=out)
    finally:
        m.set_stream_bytes(0)
    np.testing.assert_array_equal(out, x * m.s.data)
    assert not storage[:offset].any() and not storage[offset + x.size:].any()


def test_rows_shorter_than_two_tiles_are_not_tiled():
    assert "lc_stream_" not in FocalLoss.build(K=10).source.split("#if !defined(LC_PARTS) || (LC_PARTS >> 1 & 1)")[1]


# ---------------------------------------------------------------- the plan and the renderers

import ast  # noqa: E402
import pathlib  # noqa: E402

from layerc.compiler import codegen, schedule  # noqa: E402
from layerc.compiler.pipeline import lower_layer  # noqa: E402
from layerc.nn import Conv2DSpec, MaxPool2DSpec  # noqa: E402
from benchmarks.specs import LinearSpec, MultiHeadAttentionSpec  # noqa: E402

SPECS = [(RowScale, dict(W=256)), (Product, dict(W=300)), (FocalLoss, dict(K=1000)), (LinearSpec, dict(I=64, O=32)),
         (MultiHeadAttentionSpec, dict(E=64, num_heads=4, causal=False)), (MaxPool2DSpec, {}),
         (Conv2DSpec, dict(C=4, O=4, CG=2, KH=3, KW=3, groups=2, padding=(1, 1)))]


def test_each_program_is_planned_once_and_codegen_plans_nothing(monkeypatch):
    """The pipeline plans each program once; codegen renders the plan it is
    handed (the scheduler's planning functions are not called while it renders)."""
    planned = []
    plan_program = schedule.plan_program
    monkeypatch.setattr(schedule, "plan_program", lambda p, *a: planned.append(p.name) or plan_program(p, *a))
    lowered = lower_layer(LinearSpec, I=64, O=32)
    # the forward, the backward, and the backward without the input gradient
    programs = {role: sig.program for role, sig in lowered.signatures.items()}
    assert list(programs) == ["forward", "backward", "backward_params"]
    assert programs["forward"] == lowered.forward and programs["backward"] == lowered.backward
    assert sorted(planned) == sorted(p.name for p in programs.values())
    plans = {role: plan_program(p) for role, p in programs.items()}

    def refuse(*args, **kwargs):
        raise AssertionError("codegen planned")
    for name in ("plan_program", "plan_stage", "plan_loops", "plan_contraction", "plan_gemm", "plan_window"):
        monkeypatch.setattr(schedule, name, refuse)
    source, _, _, _ = codegen.render_module(lowered.prefix, lowered.spec.name, plans)
    assert source == lowered.source
    assert lowered.calls_blas == any(plan.calls_blas for plan in plans.values()) is True


@pytest.mark.parametrize("spec, sizes", SPECS, ids=lambda v: getattr(v, "name", ""))
def test_every_planned_nest_has_a_renderer(spec, sizes):
    lowered = lower_layer(spec, **sizes)
    for program in (lowered.forward, lowered.backward):
        for nest in schedule.plan_program(program):
            assert nest.form in codegen.RENDERERS, nest.form


def _string_constants(path: pathlib.Path) -> list:
    """The string literals of a module, f-strings' literal parts included (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@pytest.mark.parametrize("module", ["codegen.py", "nests_c.py", "contract_c.py", "cprint.py", "cstatements.py"])
def test_no_c_statement_is_written_in_python(module):
    """Statements, blocks, loops and pragmas are the templates'; Python prints
    expressions only (``Printer``, the op table)."""
    path = pathlib.Path(codegen.__file__).with_name(module)
    # "; " joins the stages a nest's comment names
    found = [s for s in _string_constants(path) if s != "; " and re.search(r";|[{}]|\bfor \(|#pragma", s)]
    assert not found, found


def test_short_functions_share_a_translation_unit_and_long_ones_get_their_own():
    from layerc.compiler.codegen import SEPARATE_UNIT_BYTES, _units
    from layerc.compiler.pipeline import lower_layer
    from layerc.nn.activation import ReLUSpec
    from layerc.nn.conv import Conv2DSpec
    short, long = "x" * (SEPARATE_UNIT_BYTES - 1), "x" * SEPARATE_UNIT_BYTES
    assert _units([(1, long), (2, short), (3, long), (4, short)]) == ((2, 4), (1,), (3,))
    assert _units([(3, long)]) == ((3,),)
    assert lower_layer(ReLUSpec).libraries["f32"].units == ((1, 2),)
    conv = lower_layer(Conv2DSpec, C=32, O=64, CG=32, KH=3, KW=3, padding=(1, 1))
    # forward, backward, and the backward without the input gradient (a product)
    assert {dtype: plan.units for dtype, plan in conv.libraries.items()} == {"f32": ((1,), (2,), (3,)),
                                                                             "f64": ((4,), (5,), (6,))}


def test_index_values_convert_through_32_bits_where_their_range_fits():
    """An index used as a value converts through int32_t when its loops'
    extents bound it (AVX2 has no vector int64-to-float conversion: a global
    max pool's first-maximum search ran scalar); a free size keeps 64 bits."""
    from layerc.compiler.cprint import Printer
    from layerc.compiler.ir import IConst, IndexValue, ISym, IVar, iadd, imul
    bounded = Printer({}, {"i": IConst(14), "j": IConst(14)}, "f32")
    assert "(float)(int32_t)" in bounded.value(IndexValue(iadd(imul(-14, IVar("i")), IVar("j"))))
    free = Printer({}, {"i": ISym("N")}, "f32")
    assert "int32_t" not in free.value(IndexValue(IVar("i")))
    huge = Printer({}, {"i": IConst(2 ** 20)}, "f64")
    assert "int32_t" not in huge.value(IndexValue(imul(4096, IVar("i"))))


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_tests_on_values_are_integers_in_scalar_loops_only(dtype):
    """A comparison of values is an int32_t in a nest of scalar loops (gcc 12
    branches on a float 0/1 there: an adaptive max pool's first-maximum search
    mispredicted); in a vectorized nest it stays a float of the lanes' width."""
    from layerc.compiler.cprint import Printer
    from layerc.compiler.ir import Call, IConst, IVar, Load
    x = Load("x", (IVar("i"),))
    hit = Call("add", (Call("eq", (x, Load("y", (IVar("i"),)))), Call("ne", (x, x))))
    kinds = {}
    for scalar in (False, True):
        printer = Printer({"x": (IConst(4),), "y": (IConst(4),)}, {"i": IConst(4)}, dtype)
        printer.scalar = scalar
        printer.value(Call("mul", (hit, x)))
        kinds[scalar] = [let.ctype for let in printer.lets]
    assert kinds[True].count("int32_t") == 3 and kinds[True][-1] != "int32_t"
    assert "int32_t" not in kinds[False]


def test_a_first_maximum_is_searched_without_float_tests():
    """An adaptive max pool's backward finds each window's first maximum in
    scalar loops (its windows overlap unevenly), its tests as integers and its
    position as a product, not a select of minus infinity."""
    from layerc.nn.pool import AdaptiveMaxPool2DSpec
    source = AdaptiveMaxPool2DSpec.build(N=2, C=3, H=13, W=13, output_size=(7, 7)).source
    backward = source[source.index("_backward_f32("):]
    backward = backward[:backward.index("\n}\n")]
    assert re.search(r"const int32_t t\d+ = \(t\d+ == t\d+\);", backward)
    assert not re.search(r"const float t\d+ = \(t\d+ [=!<>]=? ", backward)
    assert "INFINITY)) : " not in backward
