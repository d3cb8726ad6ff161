"""compiler/ir.py and compiler/simplify.py: structural identity, index algebra,
printing, and algebraic rules."""
from layerc.compiler.ir import (Call, Const, IConst, ISym, IVar, Load, affine, format_expr, format_iexpr,
                         ifloordiv, iadd, imax, imin, imul, isub, istride, ievaluate, map_calls)
from layerc.compiler.schedule import coordinate_in_range
from layerc.compiler.simplify import simplify_expr

x = Load("x", (IVar("i"),))


def test_structurally_equal_nodes_are_equal_and_hash_alike():
    a = Call("mul", (x, Const(2.0)))
    b = Call("mul", (Load("x", (IVar("i"),)), Const(2.0)))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_affine_split_and_constant_folding():
    e = isub(iadd(imul(2, IVar("h")), IVar("k")), 1)
    coefs, rest = affine(e, {"h", "k"})
    assert coefs == {"h": 2, "k": 1} and rest == IConst(-1)
    assert affine(e, {"h"})[0] == {"h": 2}
    assert iadd(iadd(IVar("a"), 1), 2) == iadd(IVar("a"), 3)
    assert ievaluate(imul(ISym("N"), 3), {"N": 4}) == 12


def test_stride_of_a_row_major_offset_keeps_symbolic_lengths():
    q, o, width = IVar("q"), IVar("o"), isub(IVar("c_stop"), IVar("c_start"))
    offset = iadd(imul(iadd(imul(IVar("p"), 34), q), width), o)
    assert istride(offset, "q") == width and istride(offset, "o") == IConst(1)
    assert istride(offset, "absent") == IConst(0)
    sizes = {"p": 2, "q": 5, "o": 3, "c_stop": 40, "c_start": 8}
    assert ievaluate(istride(offset, "q"), sizes) == \
        ievaluate(offset, {**sizes, "q": 6}) - ievaluate(offset, sizes)
    assert istride(ifloordiv(q, 2), "q") is None and istride(imax(q, 0), "q") is None


def test_min_and_max_of_indices_fold_evaluate_and_bound():
    i = IVar("i")
    mirrored = isub(3, imax(isub(3, imax(i, imul(-1, i))), imul(-1, isub(3, imax(i, imul(-1, i))))))
    assert [ievaluate(mirrored, {"i": v}) for v in range(-2, 6)] == [2, 1, 0, 1, 2, 3, 2, 1]
    assert imin(2, 5) == IConst(2) and imax(i, i) == i and affine(imax(i, 0), {"i"}) is None
    assert format_iexpr(imin(imax(iadd(i, -1), 0), isub(ISym("L"), 1))) == "min(max(i - 1, 0), L - 1)"
    # a clamped read stays inside its tensor: no guard
    assert coordinate_in_range(imin(imax(iadd(i, -2), 0), 6), IConst(7), {"i": IConst(11)})
    assert not coordinate_in_range(imax(iadd(i, -2), 0), IConst(7), {"i": IConst(11)})


def test_printing_is_math_notation():
    assert format_iexpr(isub(IVar("j"), iadd(IVar("i"), -1))) == "j - (i - 1)"
    assert format_expr(Call("sub", (x, Call("sub", (x, Const(1.0)))))) == "x[i] - (x[i] - 1)"


def test_simplify_rules():
    assert simplify_expr(Call("mul", (Call("add", (x, Const(0.0))), Const(1.0)))) == x
    assert simplify_expr(Call("mul", (x, Const(0.0)))) == Const(0.0)
    assert simplify_expr(Call("add", (Const(2.0), Const(3.0)))) == Const(5.0)
    assert simplify_expr(Call("select", (Const(1.0), x, Const(0.0)))) == x
    assert simplify_expr(Call("pow", (x, Const(2.0)))) == Call("mul", (x, x))
    assert simplify_expr(Call("neg", (Call("neg", (x,)),))) == x


def test_map_calls_rewrites_calls_after_their_arguments():
    """Each call is offered once its arguments are rebuilt; shared
    subexpressions are rewritten alike."""
    x, y = Load("x", (IVar("i"),)), Load("y", (IVar("i"),))
    ex = Call("exp", (x,))
    e = Call("add", (Call("mul", (ex, ex)), Call("exp", (y,))))
    seen = []

    def rewrite(call):
        seen.append(call.op)
        return Const(1.0) if call == ex else call

    assert map_calls(e, rewrite) == Call("add", (Call("mul", (Const(1.0), Const(1.0))), Call("exp", (y,))))
    assert seen == ["exp", "mul", "exp", "add"]


def test_a_programs_shapes_and_readers():
    from layerc.compiler.ir import Axis, Program, Stage, TensorDecl
    i = Axis("i", IConst(4))
    double = Stage("double", (IConst(4),), (i,), Call("mul", (Load("x", (IVar("i"),)), Const(2.0))))
    total = Stage("total", (IConst(4),), (i,), Call("add", (Load("double", (IVar("i"),)), Load("x", (IVar("i"),)))))
    p = Program("p", (TensorDecl("x", (IConst(4),), "input"),), (double, total), ("total",))
    assert p.shapes() == {"x": (IConst(4),), "double": (IConst(4),), "total": (IConst(4),)}
    assert p.readers() == {"x": ["double", "total"], "double": ["total"]}
