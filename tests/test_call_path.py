"""The fast call path of ``LayerModule`` (runtime/module.py).

A call whose inputs are already fit for C (the module's dtype, C-contiguous,
aligned; int64 indices) at shapes that passed the checks before reuses a call
plan: the sizes, output shapes, buffer pools and argument list worked out by the
checked path. Everything else goes through the checked path, so every check and
error message of runtime/validate.py holds after a plan exists, and the results
of both paths are the same.
"""
from __future__ import annotations

import numpy as np
import pytest

from layerc import Input, Param, layer, ops
from layerc.losses import mse_loss
from layerc.runtime.call_plans import PLAN_LIMIT
from layerc.runtime.module import LayerModule
from layerc.nn import BatchNorm2D
from layerc.runtime.tensor import Tensor, no_grad
from layers import PReLU

C = 6


@layer
class Pick:
    """A gather by an integer index input."""
    x = Input("N", "C")
    idx = Input("N", 1, dtype="int64")
    scale = Param(1, init=2.0)

    def forward(x, idx, scale):
        return ops.take_along_axis(x, idx, axis=-1) * scale


def data(shape=(4, C), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def planned(**bindings):
    """A PReLU module that has run once at x[4, C] (so it holds a plan for that shape)."""
    m = PReLU.build(**bindings)
    m.forward(data())
    assert m._plans
    return m


def fresh(m):
    """A module of the same compiled layer that has never run (no plan)."""
    return LayerModule(m.compiled, dtype=m.dtype)


def error_of(fn):
    try:
        fn()
    except Exception as e:          # noqa: BLE001 - compared below
        return type(e), str(e)
    return None


def test_repeated_calls_take_the_fast_path_and_match_the_checked_path():
    m = planned(C=C)
    x, g = data(seed=1), data(seed=2)
    y = m.forward(x).data.copy()
    assert "pointers" in m._last                      # the planned call ran
    gx = m.backward(g).data.copy()
    cold = fresh(m)
    np.testing.assert_array_equal(y, cold.forward(x).data)
    assert "pointers" not in cold._last               # a first call is checked
    np.testing.assert_array_equal(gx, cold.backward(g).data)
    np.testing.assert_array_equal(m.alpha.grad, cold.alpha.grad)


BAD_INPUTS = {
    "float64": lambda: data(dtype=np.float64),
    "big-endian": lambda: data().astype(">f4"),
    "int64": lambda: np.ones((4, C), np.int64),
    "wrong feature size": lambda: data((4, C + 1)),
    "rank too high": lambda: data((1, 4, C)),
    "rank too low": lambda: data((C,)),
    "a string": lambda: "1.0",
    "None": lambda: None,
    "list of strings": lambda: [["a"] * C] * 4,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_the_same_errors_once_a_plan_exists(case):
    m = planned(C=C)
    warm = error_of(lambda: m.forward(BAD_INPUTS[case]()))
    cold = error_of(lambda: fresh(m).forward(BAD_INPUTS[case]()))
    assert warm is not None and warm == cold
    assert warm[1].startswith("PReLU:") and "x" in warm[1]


def _views(x):
    raw = np.empty(x.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(x.dtype).reshape(x.shape)
    unaligned[...] = x
    readonly = x.copy()
    readonly.flags.writeable = False
    return {
        "Fortran order": np.asfortranarray(x),
        "strided": np.repeat(x, 2, axis=1)[:, ::2],
        "unaligned": unaligned,
        "read-only": readonly,
        "Tensor": Tensor(x.copy()),
        "list": x.tolist(),
    }


@pytest.mark.parametrize("case", list(_views(np.zeros((4, C), np.float32))))
def test_other_layouts_after_a_plan_match_contiguous(case):
    m = planned(C=C)
    x = data(seed=3)
    expected = m.forward(x).data.copy()
    np.testing.assert_array_equal(m.forward(_views(x)[case]).data, expected)


def test_a_new_batch_size_gets_its_own_plan_and_plans_are_bounded():
    m = planned(C=C)
    for n in range(1, PLAN_LIMIT + 5):
        x = data((n, C), seed=n)
        for _ in range(2):
            np.testing.assert_array_equal(m.forward(x).data, np.maximum(x, 0) + np.float32(0.25) * np.minimum(x, 0))
        assert len(m._plans) <= PLAN_LIMIT


@pytest.mark.parametrize("replacement,error", [
    (np.full(C, 0.25, np.float64), TypeError),
    (np.full(C + 2, 0.25, np.float32), ValueError),
    (np.full((1, C), 0.25, np.float32), ValueError),
])
def test_a_replaced_parameter_is_checked_once_a_plan_exists(replacement, error):
    m = planned(C=C)
    m.alpha.data = replacement
    with pytest.raises(error, match=r"PReLU.*alpha"):
        m.forward(data())


def test_a_parameter_in_another_layout_is_copied_once_a_plan_exists():
    m = planned(C=C)
    x = -np.ones((4, C), np.float32)
    m.alpha.data = np.repeat(np.full(C, 0.5, np.float32), 2)[::2]     # strided
    np.testing.assert_array_equal(m.forward(x).data, np.full((4, C), -0.5, np.float32))
    m.alpha.data = np.full(C, 0.75, np.float32)                        # edited between planned calls
    np.testing.assert_array_equal(m.forward(x).data, np.full((4, C), -0.75, np.float32))


@pytest.mark.parametrize("grad,error,pattern", [
    (lambda: np.ones((4, C), np.float64), TypeError, r"PReLU.*grad_output"),
    (lambda: np.ones((3, C), np.float32), ValueError, r"PReLU.*grad_output.*\(3, 6\)"),
    (lambda: np.ones(4 * C, np.float32), ValueError, r"PReLU.*grad_output"),
])
def test_bad_grad_outputs_raise_after_a_planned_forward(grad, error, pattern):
    m = planned(C=C)
    m.forward(data())
    with pytest.raises(error, match=pattern):
        m.backward(grad())
    m.backward(np.ones((4, C), np.float32))          # the forward's state is still usable


def test_grad_output_in_another_layout_after_a_planned_forward():
    m = planned(C=C)
    x = data(seed=4)
    g = data(seed=5)
    m.forward(x)
    expected = m.backward(g).data.copy()
    m.forward(x)
    np.testing.assert_array_equal(m.backward(np.asfortranarray(g)).data, expected)
    m.forward(x)
    np.testing.assert_array_equal(m.backward(Tensor(g)).data, expected)


def test_index_inputs_take_the_fast_path_only_as_int64():
    m = Pick.build(C=C)
    x = data(seed=6)
    idx = np.array([[0], [5], [2], [3]])
    expected = 2 * np.take_along_axis(x, idx, axis=-1)
    for targets in (idx, idx, idx.astype(np.int32), idx.astype(np.uint8), idx.tolist(), idx):
        np.testing.assert_array_equal(m.forward(x, targets).data, expected)
    gx = m.backward(np.ones((4, 1), np.float32)).data
    np.testing.assert_array_equal(gx, np.eye(C, dtype=np.float32)[idx[:, 0]] * 2)
    with pytest.raises(TypeError, match="Pick.*idx"):
        m.forward(x, idx.astype(np.float32))


def test_keyword_inputs_and_out_take_the_checked_path():
    m = Pick.build(C=C)
    x = data(seed=7)
    idx = np.zeros((4, 1), np.int64)
    m.forward(x, idx)
    y = m.forward(idx=idx, x=x).data.copy()
    out = np.empty((4, 1), np.float32)
    r = m.forward(x, idx, out=out)
    assert np.shares_memory(r.data, out)
    np.testing.assert_array_equal(out, y)
    with pytest.raises(TypeError, match="Pick.*missing.*idx"):
        m.forward(x)


def test_outputs_kept_by_the_caller_are_never_overwritten_on_the_fast_path():
    m = planned(C=C)
    x = data(seed=8)
    kept = [m.forward(x * k) for k in range(1, 6)]     # five results alive at once
    for k, y in enumerate(kept, start=1):
        np.testing.assert_array_equal(y.data, m.forward(x * k).data)
    assert len({y.data.ctypes.data for y in kept}) == len(kept)


@pytest.mark.parametrize("planned_first", [False, True])
def test_an_output_the_backward_reads_stays_the_callers(planned_first):
    """tanh's gradient reads its output; written elementwise over a saved array
    it could take that array's place, but the output is the caller's."""
    @layer
    class Squash:
        x = Input("N", "C")

        def forward(x):
            return ops.tanh(x)

    m = Squash.build(C=C)
    x = data((5, C), seed=12)
    if planned_first:
        m.forward(x)
    xt = Tensor(x, requires_grad=True)
    y = m(xt)
    kept = y.data.copy()
    y.sum().backward()
    np.testing.assert_array_equal(y.data, kept)
    np.testing.assert_allclose(xt.grad, 1 - kept * kept, rtol=1e-6)


def test_tape_through_the_fast_path():
    m = PReLU.build(C=C)
    x = data(seed=9)
    target = data(seed=10)
    grads = []
    for step in range(3):
        m.zero_grad()
        xt = Tensor(x, requires_grad=True)
        loss = mse_loss(m(xt), target)
        loss.backward()
        grads.append((xt.grad.copy(), m.alpha.grad.copy(), float(loss.numpy())))
    for later in grads[1:]:
        for a, b in zip(grads[0], later):
            np.testing.assert_array_equal(a, b)


def test_running_statistics_update_on_the_fast_path():
    x = data((4, 3, 5, 5), seed=11)
    fast, checked = BatchNorm2D(3), BatchNorm2D(3)
    for _ in range(3):
        fast.forward(x)
        checked.forward(np.asfortranarray(x))           # never planned-fast: a copy each call
    np.testing.assert_array_equal(fast.running_mean, checked.running_mean)
    np.testing.assert_array_equal(fast.running_var, checked.running_var)
    assert not np.all(fast.running_var == 1.0)


def test_no_grad_calls_leave_no_state():
    m = planned(C=C)
    with no_grad():
        m.forward(data())
    assert m._last is None
    with pytest.raises(RuntimeError, match="PReLU.*before forward"):
        m.backward(np.ones((4, C), np.float32))


def test_a_free_buffer_of_another_shape_is_replaced_not_kept_beside():
    m = planned(C=C)
    for n in (4, 5, 4, 5, 4):
        for _ in range(2):                      # the second call of each shape is planned
            m.forward(data((n, C)))
    (name,) = m._outputs
    pool = m._pool[("forward", name)]
    assert len(pool) == 1 and pool[0][0].shape == (4, C)


def test_a_gradient_written_over_the_kept_terms_is_right_and_stays_the_callers():
    """Cross-entropy's gradient may be written over the exponentials its forward
    kept (its backward is their last reader): on the fast path it is, and the
    result equals the checked path's and numpy's; a gradient the caller keeps
    is not overwritten by later steps."""
    from benchmarks.specs import SoftmaxCrossEntropy
    (over,) = [a for a in SoftmaxCrossEntropy.build(K=7).compiled.signatures["backward"].args if a.over]
    assert (over.name, over.over) == ("grad_logits", "sum_4_terms")
    rng = np.random.default_rng(0)
    m = SoftmaxCrossEntropy.build(K=7, dtype=np.float64)
    kept = []
    for step in range(4):
        z = rng.standard_normal((5, 7))
        t = rng.integers(0, 7, (5, 1))
        m.forward(z, t)                      # the first call plans; later ones take the fast path
        gz = m.backward(np.ones(()))
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(5), t[:, 0]] -= 1
        np.testing.assert_allclose(gz.numpy(), p / 5, rtol=1e-12, atol=1e-15)
        kept.append((gz, p / 5))
    saved = m._last["arrays"]["sum_4_terms"]
    assert np.shares_memory(kept[-1][0].numpy(), saved)    # written over the terms
    for gz, expected in kept:
        np.testing.assert_allclose(gz.numpy(), expected, rtol=1e-12, atol=1e-15)



def test_backward_leaves_out_the_gradient_no_input_needs(monkeypatch):
    """A layer whose input is data (a model's first layer) runs the backward
    without the input gradient, on the checked path and the fast path; its
    parameters' gradients are the full backward's. The variant is compiled
    where it leaves out a matrix product (a Linear's, not a layer norm's)."""
    from layerc.nn import LayerNorm, Linear
    norm = LayerNorm(16, dtype=np.float64)
    norm(data((4, 16), np.float64, seed=11))
    assert "backward_params" not in norm.compiled.signatures
    roles = []
    run_backward = LayerModule._run_backward

    def spy(self, context, grads, role="backward"):
        roles.append(role)
        return run_backward(self, context, grads, role)

    monkeypatch.setattr(LayerModule, "_run_backward", spy)
    layer = Linear(70, 50, dtype=np.float64)
    x, target = data((4, 70), np.float64, seed=12), data((4, 50), np.float64, seed=13)
    grads = {}
    for needs_input_gradient in (True, False, False, True, False):
        layer.zero_grad()
        xt = Tensor(x, requires_grad=needs_input_gradient)
        mse_loss(layer(xt), target).backward()
        assert roles[-1] == ("backward" if needs_input_gradient else "backward_params")
        assert (xt.grad is not None) == needs_input_gradient
        for name, p in layer.named_parameters():
            want = grads.setdefault(name, p.grad.copy())
            np.testing.assert_allclose(p.grad, want, rtol=1e-13, atol=1e-15)
    params_only = layer.compiled.signatures["backward_params"]
    assert sorted(a.name for a in params_only.of_kind("out")) == ["grad_bias", "grad_weight"]
