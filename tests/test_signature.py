"""compiler/signature.py: which outputs may be written over a saved input."""
import pytest

from layerc.compiler import ir
from layerc.compiler.signature import signature


@pytest.mark.parametrize("index, over", [(("i", "j"), "t"), (("j", "i"), ""), (("i", "j+1"), "")],
                         ids=["same element", "transposed", "shifted"])
def test_an_output_is_written_over_a_saved_input_only_at_its_own_elements(index, over):
    """``Arg.over`` pairs an output with a saved input only when the output's
    stage reads it at the element it writes (and is its only reader)."""
    n = ir.IConst(4)
    coords = {"i": ir.IVar("i"), "j": ir.IVar("j"), "j+1": ir.iadd(ir.IVar("j"), 1)}
    read = ir.Load("t", tuple(coords[c] for c in index))
    stage = ir.Stage("g", (n, n), (ir.Axis("i", n), ir.Axis("j", n)), ir.Call("mul", (read, ir.Const(2.0))))
    program = ir.Program("P", (ir.TensorDecl("t", (n, n), "saved"),), (stage,), ("g",))
    (out,) = [a for a in signature(program, "f").args if a.kind == "out"]
    assert out.over == over
