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


# ---------------------------------------------------------------- checked when a call runs

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import layerc  # noqa: E402


def _pick():
    return Pick.build(dtype=np.float64)


@pytest.mark.parametrize("bad, position", [(7, [2]), (-1, [0]), (5, [1])])
def test_an_out_of_range_target_is_an_index_error_naming_input_position_and_value(bad, position):
    module = _pick()
    logits = np.zeros((3, 5))
    targets = np.array([0, 4, 2])
    targets[position[0]] = bad
    for _ in range(2):                       # the checked path, then the planned fast path
        module(logits, np.array([0, 1, 2]))
        with pytest.raises(IndexError, match=rf"Pick: targets\[{position[0]}\] = {bad} is out of range: .*\[0, 5\)"):
            module(logits, targets)


def test_an_embedding_id_past_the_table_is_refused_and_in_range_ids_read_their_rows():
    module = Embed.build(V=4, D=2, dtype=np.float64)
    np.testing.assert_array_equal(module(np.array([3, 0])).numpy(), module.table.numpy()[[3, 0]])
    with pytest.raises(IndexError, match=r"Embed: ids\[1\] = 4 is out of range"):
        module(np.array([0, 4]))


def test_the_built_in_loss_and_an_offset_read_are_checked_too():
    with pytest.raises(IndexError, match="out of range"):
        layerc.cross_entropy(layerc.Tensor(np.zeros((2, 3), np.float32)), np.array([0, 3]))
    shifted = Shifted.build(C=5, dtype=np.float64)
    x = np.arange(10.0).reshape(2, 5)
    np.testing.assert_array_equal(shifted(x, np.array([-1, 3])).numpy(), [0.0, 9.0])
    with pytest.raises(IndexError, match=r"k\[0\] = 4 is out of range: k indexes 5 entries, .*\[-1, 4\)"):
        shifted(x, np.array([4, 0]))


def test_the_check_can_be_turned_off_for_data_known_to_be_in_range():
    module = _pick()
    logits = np.arange(10.0).reshape(2, 5)
    with pytest.raises(IndexError):
        module(logits, np.array([0, 9]))
    module.check_indices = False                        # unchecked: an outside read gives zero
    np.testing.assert_array_equal(module(logits, np.array([0, 9])).numpy(), [0.0, 0.0])
