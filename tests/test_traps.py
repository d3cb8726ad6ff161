"""No silent traps while tracing: truth tests, numpy functions, builtins and
unknown ops on traced values each run the right op or raise a clear error."""
import numpy as np
import pytest

from layerc import Input, SpecError, layer, ops


def trace(forward, **declared):
    cls = type("Trap", (), {"forward": staticmethod(forward), **declared})
    cls.forward = forward
    return layer(cls).trace()


X = {"x": Input("N", "C")}


@pytest.mark.parametrize("forward", [
    lambda x: x if x > 0 else -x,
    lambda x: x if ops.sum(x) > 0 else x,
    lambda x: x * bool(x),
    lambda x: (x > 0) and (x < 1),
    lambda x: (x > 0) or x,
    lambda x: x * (not x),
    lambda x: max(x, 0.0),
    lambda x: ops.compute(x.shape, lambda n, c: x[n, c] if x[n, c] > 0 else 0.0),
], ids=["if", "if-sum", "bool", "and", "or", "not", "builtin-max", "index-notation-if"])
def test_a_truth_test_on_a_traced_value_is_a_spec_error_pointing_to_where(forward):
    with pytest.raises(SpecError, match=r"Trap \(.*\): .* has no truth value .*ops.where"):
        trace(forward, **X)


def test_numpy_ufuncs_run_the_layerc_op_and_others_are_refused():
    program = trace(lambda x: np.exp(x) + np.maximum(x, 0.0) * np.abs(x), **X)
    text = "\n".join(str(s.body) for s in program.stages)
    assert "exp" in text and "maximum" in text and "abs" in text
    with pytest.raises(SpecError, match="numpy's arcsinh cannot run on the traced tensor x: use layerc's ops"):
        trace(lambda x: np.arcsinh(x), **X)
    with pytest.raises(SpecError, match="numpy's cumsum cannot run on the traced tensor x"):
        trace(lambda x: np.cumsum(x), **X)


def test_numpy_functions_that_are_tensor_methods_run_them():
    program = trace(lambda x: np.sum(x, axis=1) + np.mean(x, axis=1), **X)
    assert any(s.reduce == "sum" for s in program.stages)


def test_the_builtins_abs_and_round_work_and_round_to_digits_says_what_to_use():
    program = trace(lambda x: abs(x) + ops.compute(x.shape, lambda n, c: abs(x[n, c])), **X)
    assert sum("abs" in str(s.body) for s in program.stages) >= 2
    program = trace(lambda x: round(x) + ops.compute(x.shape, lambda n, c: round(x[n, c])), **X)
    assert sum("round" in str(s.body) for s in program.stages) >= 2
    with pytest.raises(SpecError, match=r"round\(x, 2\): layerc rounds to integers only"):
        trace(lambda x: round(x, 2), **X)


def test_an_unknown_op_names_the_nearest():
    with pytest.raises(AttributeError, match=r"layerc.ops has no 'exps'; did you mean ops.exp\b.* the ops are: "):
        ops.exps
    with pytest.raises(AttributeError, match=r"layerc.ops has no 'hardtanh'; .*the ops are: .*sigmoid"):
        ops.hardtanh
