"""compiler/autodiff.py: adjoints in gather form, scatter fallback, max ties,
and gradients of index-notation layers against finite differences."""
import numpy as np
import pytest

from layerc import Attr, Input, Param, check_grad, layer, ops
from layerc.compiler.autodiff import gradient_program
from layerc.compiler.ir import ISym, format_program


@layer
class Conv1D:
    x = Input("N", "C", "L")
    w = Param("O", "C", "K", init="kaiming")
    stride = Attr(2)
    pad = Attr(1)

    def forward(x, w, stride, pad):
        N, C, L = x.shape
        O, _, K = w.shape
        c, k = ops.reduce_axis(C, "c"), ops.reduce_axis(K, "k")
        out = (L + 2 * pad - K) // stride + 1
        return ops.compute((N, O, out), lambda n, o, l: ops.sum(
            x[n, c, l * stride + k - pad] * w[o, c, k], over=(c, k)), name="conv")


@layer
class Embedding:
    table = Param("V", "E", init="normal")
    ids = Input("N", dtype="int64")

    def forward(table, ids):
        N, = ids.shape
        V, E = table.shape
        return ops.compute((N, E), lambda n, e: table[ids[n], e], name="lookup")


@layer
class RowMax:
    x = Input("N", "C")

    def forward(x):
        return ops.max(x, axis=1)


def test_strided_padded_convolution_input_gradient_is_a_gather():
    backward = gradient_program(Conv1D.trace(C=3, O=2, K=3, L=9))
    text = format_program(backward)
    assert not any(s.scatter_index for s in backward.stages), text
    grad_x = backward.stage("grad_x")
    # the pivot is the output position, solved with a divisibility guard
    assert "% 2 == 0" in text and grad_x.axes[0].name == "n"


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_convolution_gradients(stride, pad):
    assert check_grad(Conv1D, N=3, C=3, O=2, K=3, L=11, stride=stride, pad=pad).assert_ok()


def test_data_dependent_read_falls_back_to_scatter():
    backward = gradient_program(Embedding.trace(V=6, E=4))
    assert backward.stage("grad_table").scatter_index is not None
    ids = np.array([0, 5, 5, 2, 0])
    assert check_grad(Embedding, inputs={"ids": ids}, V=6, E=4, N=5).assert_ok()


def test_max_sends_the_gradient_to_the_first_of_ties_and_to_nan():
    m = RowMax.build(C=4, dtype=np.float64)
    m.forward(np.array([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0], [1.0, np.nan, 2.0, np.nan]]))
    grad = m.backward(np.array([1.0, 2.0, 3.0])).numpy()
    np.testing.assert_array_equal(grad, [[0, 1, 0, 0], [2, 0, 0, 0], [0, 3, 0, 0]])


def test_backward_is_ordinary_ir_that_prints():
    fwd = RowMax.trace(C=4)
    text = format_program(gradient_program(fwd))
    assert "grad_x" in text and "max_0" in text


def test_gradient_of_a_shared_intermediate_accumulates():
    @layer
    class Twice:
        x = Input("N")

        def forward(x):
            y = ops.exp(x)
            return y * y + y

    assert check_grad(Twice, N=5).assert_ok()


def test_free_sizes_stay_symbolic():
    fwd = Conv1D.trace(C=3, O=2, K=3)
    assert ISym("N") in fwd.decl("x").shape and ISym("L") in fwd.decl("x").shape


def test_the_backward_can_be_differentiated_again():
    from cffi import FFI

    from layerc.compiler.build import compile_c
    from layerc.compiler.codegen import render_module
    from layerc.compiler.ir import ISym, ievaluate
    from layerc.compiler.schedule import fuse, plan_program
    from layerc.compiler.spec import trace_function

    cube = trace_function("Cube", lambda x: ops.sum(x * x * x), {"x": ((ISym("N"),), "input")}, {})
    backward = gradient_program(cube, self_contained=True)                      # grad_x = 3 x^2 g
    second = fuse(gradient_program(backward, wrt=("x",), self_contained=True))  # 6 x g v
    assert not [t for t in second.tensors if t.role == "saved"]
    source, cdef, signatures, _ = render_module("lc_second", "Second", {"second": plan_program(second)})
    lib = compile_c(source, cdef, name="second").lib
    x, g, v = np.array([1.0, -2.0, 0.5]), np.array(2.0), np.array([1.0, 3.0, -1.0])
    arrays = {"x": x, "grad_sum_2": g, "grad_grad_x": v}
    ffi = FFI()
    call = []
    for a in signatures["second"].args:
        if a.kind == "size":
            call.append(3)
            continue
        if a.name not in arrays:
            arrays[a.name] = np.empty([ievaluate(d, {"N": 3}) for d in a.shape])
        call.append(ffi.cast("double *", arrays[a.name].ctypes.data))
    lib.lc_second_second_f64(*call)
    np.testing.assert_allclose(arrays["grad_x"], 6 * x * 2.0 * v)


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "exp"])
def test_a_derivative_written_in_the_result_reads_the_stored_output(op):
    # d tanh = 1 - out^2, d sigmoid = out (1 - out), d exp = out: the forward's
    # output is kept anyway, so the backward reads it rather than calling op again
    from layerc.compiler.ir import Call, postorder
    from layerc.compiler.pipeline import lower_layer

    @layer
    class Activation:
        x = Input("N")

        def forward(x):
            return getattr(ops, op)(x)

    lowered = lower_layer(Activation)
    output = lowered.forward.outputs[0]
    assert [t.name for t in lowered.backward.tensors if t.role == "saved"] == [output]
    calls = {e.op for s in lowered.backward.stages for e in postorder(s.body) if isinstance(e, Call)}
    assert op not in calls
    # the caller holds the output: the gradient is never written over it
    assert not any(a.over for a in lowered.signatures["backward"].args)
    assert check_grad(Activation, N=7).assert_ok()


def test_an_intermediate_result_is_recomputed_not_stored():
    # the same rule on a stage that is not an output: fusion inlines it again,
    # so the forward stores nothing more than its output
    from layerc.compiler.pipeline import lower_layer

    @layer
    class Squashed:
        x = Input("N")

        def forward(x):
            return ops.tanh(x) * x

    lowered = lower_layer(Squashed)
    assert [t.role for t in lowered.backward.tensors if t.role == "saved"] == []
    assert lowered.forward.outputs == (lowered.forward.stages[-1].name,)
    assert check_grad(Squashed, N=7).assert_ok()
