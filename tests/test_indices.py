"""compiler/indices.py: which integer inputs index which dimensions (pure IR, no C)."""
from layerc import Input, Param, layer, ops
from layerc.compiler.indices import index_ranges
from layerc.compiler.ir import IConst, ISym


@layer
class Pick:
    logits = Input("N", "C")
    targets = Input("N", dtype="int64")

    def forward(logits, targets):
        N, C = logits.shape
        return ops.compute((N,), lambda n: logits[n, targets[n]])


@layer
class Embed:
    ids = Input("N", dtype="int64")
    table = Param("V", "D", init="normal")

    def forward(ids, table):
        N, = ids.shape
        V, D = table.shape
        return ops.compute((N, D), lambda n, d: table[ids[n], d])


@layer
class Shifted:
    x = Input("N", "C")
    k = Input("N", dtype="int64")

    def forward(x, k):
        N, C = x.shape
        return ops.compute((N,), lambda n: x[n, k[n] + 1])


@layer
class NoIndex:
    x = Input("N", "C")

    def forward(x):
        return x * 2


def test_a_gathered_class_is_bounded_by_the_class_dimension():
    assert index_ranges(Pick.trace()) == {"targets": ((0, ISym("C")),)}


def test_an_id_is_bounded_by_the_table_rows_at_their_bound_size():
    assert index_ranges(Embed.trace(V=7, D=3)) == {"ids": ((0, IConst(7)),)}


def test_an_offset_read_keeps_its_offset():
    assert index_ranges(Shifted.trace(C=5)) == {"k": ((1, IConst(5)),)}


def test_a_layer_without_integer_inputs_has_no_ranges():
    assert index_ranges(NoIndex.trace()) == {}


def test_the_derived_backward_scatters_into_the_same_range():
    from layerc.compiler.autodiff import gradient_program
    backward = gradient_program(Embed.trace(V=7, D=3))
    assert index_ranges(backward) == {"ids": ((0, IConst(7)),)}
