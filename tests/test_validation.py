"""Input at the C boundary: every array is checked in Python before a call
reaches C (runtime/validate.py). Wrong dtypes raise TypeError, never a
reinterpretation; other layouts are copied; shape disagreements name the layer,
the argument and both shapes; special values travel through C as IEEE says.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from layerc import Input, Param, layer, ops
from layerc.runtime import validate
from layerc.runtime.tensor import Tensor
from layers import PReLU

C = 6


@layer
class Affine:
    x = Input("N", "I")
    weight = Param("O", "I", init="normal")
    bias = Param("O", init=0.5)

    def forward(x, weight, bias):
        return x @ weight.T + bias


@layer
class Pair:
    a = Input("N", "C")
    b = Input("N", "C")

    def forward(a, b):
        return a * b + a


@layer
class MeanSquare:
    x = Input("N", "C")

    def forward(x):
        return ops.mean(x * x)


@layer
class Outer:
    """Output of N*N*N*N elements from an input of N: sized to overflow."""
    x = Input("N")

    def forward(x):
        N = x.shape[0]
        return ops.compute((N, N, N, N), lambda a, b, c, d: x[a] * x[b] + x[c] * x[d])


def prelu_ref(x, alpha):
    return np.maximum(x, 0) + alpha * np.minimum(x, 0)


@pytest.fixture(scope="module")
def m32():
    return PReLU.build(C=C)


@pytest.fixture(scope="module")
def m64():
    return PReLU.build(C=C, dtype="float64")


def data(shape=(4, C), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def unaligned(array: np.ndarray) -> np.ndarray:
    """A view of a copy of ``array`` whose data pointer is off by one byte."""
    raw = np.empty(array.nbytes + 1, np.uint8)
    view = raw[1:].view(array.dtype).reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned
    return view


# ------------------------------------------------------------ 1. dtypes

WRONG_DTYPES = {
    "float32 into a float64 module": lambda: ("f64", data()),
    "float64 into a float32 module": lambda: ("f32", data(dtype=np.float64)),
    "int64": lambda: ("f32", np.ones((4, C), np.int64)),
    "int32": lambda: ("f64", np.ones((4, C), np.int32)),
    "bool": lambda: ("f32", np.ones((4, C), bool)),
    "float16": lambda: ("f32", data(dtype=np.float16)),
    "complex64": lambda: ("f32", data().astype(np.complex64)),
    "big-endian >f4": lambda: ("f32", data().astype(">f4")),
    "big-endian >f8": lambda: ("f64", data(dtype=np.float64).astype(">f8")),
    "object array": lambda: ("f32", data().astype(object)),
    "unaligned big-endian view": lambda: ("f32", unaligned(data().astype(">f4"))),
    "unaligned float64 view into float32": lambda: ("f32", unaligned(data(dtype=np.float64))),
    "bytes viewed as float32 (uint8)": lambda: ("f32", data().view(np.uint8)),
    "list of strings": lambda: ("f32", [["1.5"] * C] * 4),
    "a string": lambda: ("f32", "1.0"),
    "None": lambda: ("f32", None),
}


@pytest.mark.parametrize("case", list(WRONG_DTYPES))
def test_wrong_dtype_is_a_type_error(case, m32, m64):
    which, x = WRONG_DTYPES[case]()
    module = m32 if which == "f32" else m64
    with pytest.raises(TypeError) as info:
        module.forward(x)
    message = str(info.value)
    assert "PReLU" in message and "x" in message


def test_wrong_dtype_for_grad_output_is_a_type_error(m32):
    m32.forward(data())
    with pytest.raises(TypeError, match=r"PReLU.*grad_output"):
        m32.backward(np.ones((4, C), np.float64))


def test_wrong_dtype_parameter_is_a_type_error():
    m = PReLU.build(C=C)
    m.alpha.data = np.full(C, 0.25, np.float64)
    with pytest.raises(TypeError, match=r"PReLU.*alpha"):
        m.forward(data())


def test_cast_mode_converts_floats_explicitly():
    m = PReLU.build(C=C, dtype="float64", cast=True)
    x = data()
    np.testing.assert_array_equal(m.forward(x).data, prelu_ref(x.astype(np.float64), 0.25))
    with pytest.raises(TypeError):   # cast converts floats, nothing else
        m.forward(x.astype(object))


def test_unaligned_view_of_the_right_dtype_is_copied_not_reinterpreted(m32):
    x = data()
    np.testing.assert_array_equal(m32.forward(unaligned(x)).data, m32.forward(x).data)


def test_python_lists_take_the_module_dtype(m64):
    x = data(dtype=np.float64)
    np.testing.assert_array_equal(m64.forward(x.tolist()).data, m64.forward(x).data)


# ------------------------------------------------------------ 2. layouts

def _layouts(x: np.ndarray) -> dict:
    """Views with the values of ``x`` (4, C) laid out differently."""
    row = x[0]
    return {
        ".T of a transposed copy": (np.ascontiguousarray(x.T).T, x),
        "[:, ::2]": (np.repeat(x, 2, axis=1)[:, ::2], x),
        "[::-1]": (np.ascontiguousarray(x[::-1])[::-1], x),
        "[::-1, ::-1]": (np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1], x),
        "Fortran order": (np.asfortranarray(x), x),
        "broadcast_to": (np.broadcast_to(row, x.shape), np.tile(row, (x.shape[0], 1))),
        "read-only": (_readonly(x), x),
    }


def _readonly(x):
    y = x.copy()
    y.flags.writeable = False
    return y


LAYOUTS = list(_layouts(np.zeros((4, C))))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_contiguous_inputs_match_contiguous(layout, dtype):
    m = PReLU.build(C=C, dtype=dtype)
    view, same = _layouts(data(dtype=dtype, seed=3))[layout]
    assert np.array_equal(view, same)
    y = m.forward(view).data
    gx = m.backward(np.ones_like(same)).data
    ga = m.alpha.grad.copy()
    m.zero_grad()
    np.testing.assert_array_equal(y, m.forward(same).data)
    np.testing.assert_array_equal(gx, m.backward(np.ones_like(same)).data)
    np.testing.assert_array_equal(ga, m.alpha.grad)
    np.testing.assert_allclose(y, prelu_ref(same, 0.25), rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_contiguous_grad_output_and_parameters(layout):
    m = Affine.build(I=C, O=3, dtype="float64")
    x = data((4, C), np.float64, seed=5)
    weight = m.weight.data.copy()
    m.weight.data = np.asfortranarray(weight)          # a parameter in another layout
    g = data((4, 3), np.float64, seed=6)
    gview = {"broadcast_to": np.broadcast_to(g[0], g.shape)}.get(layout, np.asfortranarray(g))
    gsame = np.ascontiguousarray(gview)
    y = m.forward(x).data
    gx = m.backward(gview).data
    np.testing.assert_allclose(y, x @ weight.T + 0.5, rtol=1e-12)
    np.testing.assert_allclose(gx, gsame @ weight, rtol=1e-12)
    np.testing.assert_allclose(m.weight.grad, gsame.T @ x, rtol=1e-12)


def test_out_buffer_is_written_and_returned(m32):
    x = data()
    out = np.full((4, C), np.nan, np.float32)
    y = m32.forward(x, out=out)
    assert np.shares_memory(y.data, out)
    np.testing.assert_array_equal(out, prelu_ref(x, np.float32(0.25)))


def test_out_buffer_adjacent_to_the_input_is_fine(m32):
    buf = data((8, C))
    x, out = buf[:4], buf[4:]
    expected = prelu_ref(x.copy(), np.float32(0.25))
    m32.forward(x, out=out)
    np.testing.assert_array_equal(out, expected)


def _bad_outs(x):
    ro = np.empty((4, C), np.float32)
    ro.flags.writeable = False
    shared = np.empty((5, C), np.float32)
    return {
        "Fortran order": (ValueError, np.empty((4, C), np.float32, order="F")),
        "strided": (ValueError, np.empty((4, 2 * C), np.float32)[:, ::2]),
        "read-only": (ValueError, ro),
        "unaligned": (ValueError, unaligned(np.empty((4, C), np.float32))),
        "the input itself": (ValueError, x),
        "overlapping the input": (ValueError, None),
        "wrong shape": (ValueError, np.empty((4, C + 1), np.float32)),
        "wrong rank": (ValueError, np.empty(4 * C, np.float32)),
        "wrong dtype": (TypeError, np.empty((4, C), np.float64)),
        "big-endian": (TypeError, np.empty((4, C), ">f4")),
        "a list": (TypeError, [[0.0] * C] * 4),
        "shared with a parameter": (ValueError, shared),
    }


@pytest.mark.parametrize("case", list(_bad_outs(np.zeros(1))))
def test_bad_out_buffers_are_refused(case):
    m = PReLU.build(C=C)
    x = data()
    error, out = _bad_outs(x)[case]
    if case == "overlapping the input":
        buf = data((6, C))
        x, out = buf[:4], buf[2:]
    if case == "shared with a parameter":
        # the parameter lives in row 0 of the buffer and out= in rows 0..3
        m.alpha.data = out[0]
        out = out[:4]
    before = x.copy()
    with pytest.raises(error, match=r"PReLU.*out="):
        m.forward(x, out=out)
    np.testing.assert_array_equal(x, before)     # nothing ran


# ------------------------------------------------------------ 3. ranks and sizes

def _shape_cases():
    return {
        "feature size": lambda m: m.forward(np.ones((4, C + 1), np.float32)),
        "rank too low": lambda m: m.forward(np.ones(C, np.float32)),
        "rank too high": lambda m: m.forward(np.ones((2, 4, C), np.float32)),
        "scalar": lambda m: m.forward(np.float32(1.0)),
        "batch of grad_output": lambda m: (m.forward(np.ones((4, C), np.float32)),
                                           m.backward(np.ones((3, C), np.float32))),
        "features of grad_output": lambda m: (m.forward(np.ones((4, C), np.float32)),
                                              m.backward(np.ones((4, C - 1), np.float32))),
        "rank of grad_output": lambda m: (m.forward(np.ones((4, C), np.float32)),
                                          m.backward(np.ones(4 * C, np.float32))),
        "parameter replaced by a wrong shape": lambda m: (setattr(m.alpha, "data", np.ones(C + 2, np.float32)),
                                                          m.forward(np.ones((4, C), np.float32))),
    }


@pytest.mark.parametrize("case", list(_shape_cases()))
def test_shape_disagreements_raise_clear_errors(case):
    m = PReLU.build(C=C)
    with pytest.raises(ValueError) as info:
        _shape_cases()[case](m)
    message = str(info.value)
    assert message.startswith("PReLU:")
    assert re.search(r"\(\d+(, \d+)*,?\)|\(\)", message), message          # the actual shape
    assert "expected" in message and ("C" in message or str(C) in message)


def test_inputs_disagreeing_on_a_size_name_both():
    m = Pair.build(C=C)
    with pytest.raises(ValueError) as info:
        m.forward(np.ones((4, C), np.float32), np.ones((5, C), np.float32))
    message = str(info.value)
    assert "Pair" in message and "argument b" in message and "(5, 6)" in message and "N=4" in message


def test_missing_and_extra_inputs():
    m = Pair.build(C=C)
    with pytest.raises(TypeError, match="Pair.*missing.*b"):
        m.forward(np.ones((4, C), np.float32))
    with pytest.raises(TypeError, match="Pair"):
        m.forward(*[np.ones((4, C), np.float32)] * 3)


def test_backward_before_forward():
    m = PReLU.build(C=C)
    with pytest.raises(RuntimeError, match="PReLU.*before forward"):
        m.backward(np.ones((4, C), np.float32))


def test_backward_twice_after_one_forward():
    m = PReLU.build(C=C)
    m.forward(data())
    m.backward(np.ones((4, C), np.float32))
    grad = m.alpha.grad.copy()
    with pytest.raises(RuntimeError, match="PReLU.*backward already ran"):
        m.backward(np.ones((4, C), np.float32))
    np.testing.assert_array_equal(m.alpha.grad, grad)     # not accumulated twice


def test_failed_backward_can_be_retried_with_the_right_shape():
    m = PReLU.build(C=C)
    x = data()
    m.forward(x)
    with pytest.raises(ValueError):
        m.backward(np.ones((3, C), np.float32))
    gx = m.backward(np.ones((4, C), np.float32)).data
    np.testing.assert_array_equal(gx, np.where(x > 0, 1, np.where(x < 0, 0.25, 0.625)).astype(np.float32))


def test_backward_after_no_grad_forward():
    from layerc.runtime.tensor import no_grad
    m = PReLU.build(C=C)
    with no_grad():
        m.forward(data())
    with pytest.raises(RuntimeError, match="PReLU"):
        m.backward(np.ones((4, C), np.float32))


# ------------------------------------------------------------ 4. empty batches, IEEE values

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_size_batch(dtype):
    m = Affine.build(I=C, O=3, dtype=dtype)
    y = m.forward(np.empty((0, C), dtype))
    assert y.shape == (0, 3) and y.dtype == np.dtype(dtype)
    gx = m.backward(np.empty((0, 3), dtype))
    assert gx.shape == (0, C) and gx.dtype == np.dtype(dtype)
    assert m.weight.grad.shape == (3, C) and m.bias.grad.shape == (3,)
    np.testing.assert_array_equal(m.weight.grad, 0)
    np.testing.assert_array_equal(m.bias.grad, 0)

    p = PReLU.build(C=C, dtype=dtype)
    assert p.forward(np.empty((0, C), dtype)).shape == (0, C)
    assert p.backward(np.empty((0, C), dtype)).shape == (0, C)
    np.testing.assert_array_equal(p.alpha.grad, np.zeros(C))


def test_zero_size_batch_mean_is_nan_like_numpy():
    m = MeanSquare.build(C=C, dtype="float64")
    y = m.forward(np.empty((0, C)))
    assert y.shape == () and np.isnan(y.data)
    assert m.backward(np.array(1.0)).shape == (0, C)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_and_inf_propagate(dtype):
    m = PReLU.build(C=4, dtype=dtype)
    x = np.array([[np.nan, np.inf, -np.inf, -0.0], [0.0, 1.0, -1.0, np.nan]], dtype)
    y = m.forward(x).data
    with np.errstate(invalid="ignore"):
        expected = prelu_ref(x, np.asarray(0.25, dtype))
    np.testing.assert_array_equal(y, expected)          # equal_nan: NaN where numpy has NaN
    assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and y[0, 2] == -np.inf
    gx = m.backward(np.array([[1, 1, 1, 1], [np.nan, np.inf, 1, 1]], dtype)).data
    assert np.isnan(gx[1, 0]) and gx[1, 2] == np.asarray(0.25, dtype)

    s = MeanSquare.build(C=3, dtype=dtype)
    assert np.isnan(s.forward(np.array([[1, np.nan, 2]], dtype)).data)
    assert s.forward(np.array([[1, np.inf, 2]], dtype)).data == np.inf
    assert np.isnan(s.forward(np.array([[1, np.inf, -np.inf]], dtype)).data * 0)


def test_build_flags_keep_ieee_semantics(m32):
    from layerc.compiler.cc import BuildOptions
    flags = " ".join(BuildOptions().final_flags())
    assert "fast-math" not in flags and "finite-math" not in flags and "-Ofast" not in flags


def _literal_layer(value):
    @layer
    class Literal:
        x = Input("N", "C")

        def forward(x):
            # a value the simplifier cannot fold away: selected where x > 100 is false
            return ops.where(x > 100.0, x, value)

    return Literal


LITERALS = {
    "inf": math.inf, "-inf": -math.inf, "nan": math.nan, "-0.0": -0.0, "1e-310": 1e-310,
    "5e-324": 5e-324, "max float64": 1.7976931348623157e308, "1/3": 1 / 3, "0.1": 0.1,
    "np.float32(0.1)": np.float32(0.1), "np.float64(2/3)": np.float64(2 / 3), "np.int64(7)": np.int64(7),
    "np.float32(1e-40) subnormal": np.float32(1e-40), "float32 max": float(np.finfo(np.float32).max),
    "-1e-300": -1e-300,
}


@pytest.mark.parametrize("name", list(LITERALS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_literals_round_trip_exactly(name, dtype):
    value = LITERALS[name]
    m = _literal_layer(value).build(C=3, dtype=dtype)
    y = m.forward(np.zeros((2, 3), dtype)).data
    with np.errstate(over="ignore"):
        expected = np.full((2, 3), float(value)).astype(dtype)
    assert y.dtype == expected.dtype
    # bit for bit: the sign of zero, subnormals and the last ulp included
    if np.isnan(expected).all():
        assert np.isnan(y).all()
    else:
        np.testing.assert_array_equal(y.view(f"u{y.itemsize}"), expected.view(f"u{y.itemsize}"))


# ------------------------------------------------------------ 5. sizes overflowing index arithmetic

def test_output_overflowing_index_arithmetic_is_rejected_up_front():
    m = Outer.build(dtype="float64")
    x = np.ones(3)
    np.testing.assert_array_equal(m.forward(x).data, np.full((3, 3, 3, 3), 2.0))
    with pytest.raises(ValueError, match=r"Outer.*64-bit"):
        m.forward(np.ones(2 ** 16))              # 2**64 output elements


def test_broadcast_input_overflowing_index_arithmetic_is_rejected_before_any_copy(m32):
    huge = np.broadcast_to(np.float32(1), (2 ** 58, C))     # no memory behind it
    with pytest.raises(ValueError, match=r"PReLU.*x.*64-bit"):
        m32.forward(huge)


def test_check_total_size_limits():
    validate.check_total_size("L", "y", (2 ** 30, 2 ** 30))
    with pytest.raises(ValueError, match="64-bit"):
        validate.check_total_size("L", "y", (2 ** 31, 2 ** 31, 2))
    with pytest.raises(ValueError, match="negative"):
        validate.check_total_size("L", "y", (4, -1))


def test_index_inputs():
    @layer
    class Pick:
        logits = Input("N", "K")
        target = Input("N", "One", dtype="int64")

        def forward(logits, target):
            return ops.take_along_axis(logits, target, axis=-1)

    m = Pick.build(K=4, dtype="float64")
    x = np.arange(8.0).reshape(2, 4)
    expected = np.take_along_axis(x, np.array([[1], [3]]), axis=-1)
    np.testing.assert_array_equal(m.forward(x, np.array([[1], [3]], np.int32)).data, expected)
    np.testing.assert_array_equal(m.forward(x, np.array([[1], [3]], np.uint8)).data, expected)
    with pytest.raises(TypeError, match="Pick.*target"):
        m.forward(x, np.array([[1.0], [3.0]]))
    with pytest.raises(TypeError, match="Pick.*target"):
        m.forward(x, np.array([[1], [3]], ">i8"))
    with pytest.raises(ValueError, match="Pick.*target"):
        m.forward(x, np.array([[1], [2 ** 64 - 1]], np.uint64))
    # out-of-range targets are refused before any memory is read
    with pytest.raises(IndexError, match=r"Pick: target\[0, 0\] = 4 is out of range"):
        m.forward(x, np.array([[4], [-1]]))
    m.check_indices = False            # unchecked, a read outside the tensor still reads zero
    np.testing.assert_array_equal(m.forward(x, np.array([[4], [-1]])).data, np.zeros((2, 1)))


def test_tensors_are_accepted_like_arrays(m32):
    x = data()
    np.testing.assert_array_equal(m32.forward(Tensor(x)).data, m32.forward(x).data)
