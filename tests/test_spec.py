"""compiler/spec.py and compiler/ops.py: declaring layers, and errors that name
the spec, the source line, the expression and the shapes."""
import numpy as np
import pytest

from layerc import Attr, Input, Param, SpecError, layer, ops


def test_unknown_forward_argument_is_reported_at_declaration():
    with pytest.raises(SpecError, match=r"Bad .*test_spec.py:\d+.*'y'.*not a declared"):
        @layer
        class Bad:
            x = Input("N")

            def forward(x, y):
                return x


def test_incompatible_shapes_name_the_expression_and_shapes():
    @layer
    class Mismatch:
        x = Input("N", "C")
        b = Param("D")

        def forward(x, b):
            return x + b

    with pytest.raises(SpecError, match=r"Mismatch .*test_spec.py:\d+.*add: cannot broadcast shapes \(N, 3\) and \(4,\)"):
        Mismatch.trace(C=3, D=4)


def test_rank_mismatch_in_index_notation():
    @layer
    class Rank:
        x = Input("N", "C")

        def forward(x):
            N, C = x.shape
            return ops.compute((N,), lambda n: x[n])

    with pytest.raises(SpecError, match="has rank 2 but is indexed with 1"):
        Rank.trace(C=3)


def test_unbound_parameter_size_is_a_build_error():
    @layer
    class Unbound:
        x = Input("N", "C")
        w = Param("C")

        def forward(x, w):
            return x * w

    with pytest.raises(SpecError, match="bind C"):
        Unbound.build()


def test_unknown_size_in_build():
    @layer
    class Scale:
        x = Input("N")

        def forward(x):
            return x * 2.0

    with pytest.raises(SpecError, match="unknown size or attribute 'Q'"):
        Scale.build(Q=3)


def test_matmul_reshape_transpose_match_numpy():
    @layer
    class Heads:
        x = Input("B", "S", "E")
        w = Param("E", "E", init="normal")

        def forward(x, w):
            B, S, E = x.shape
            q = (x @ w).reshape(B, S, 2, int(E) // 2).transpose(0, 2, 1, 3)
            return q @ q.transpose(0, 1, 3, 2)

    m = Heads.build(E=6, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 5, 6))
    q = (x @ m.w.numpy()).reshape(3, 5, 2, 3).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(m.forward(x).numpy(), q @ q.transpose(0, 1, 3, 2), rtol=1e-12)


def test_reductions_with_keepdims_match_numpy():
    @layer
    class Stats:
        x = Input("N", "C", "D")

        def forward(x):
            return ops.sum(x, axis=(0, 2), keepdims=True) + ops.max(x, axis=1, keepdims=True).mean(axis=0, keepdims=True)

    m = Stats.build(C=4, D=5, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((3, 4, 5))
    want = x.sum(axis=(0, 2), keepdims=True) + x.max(axis=1, keepdims=True).mean(axis=0, keepdims=True)
    np.testing.assert_allclose(m.forward(x).numpy(), want, rtol=1e-12)


@layer
class Strided:
    """Reads every ``s``-th element (``l // s``) or wraps around ``s`` (``l % s``);
    ``k`` is a size that only divides."""
    x = Input("N", "L")
    k = Input("K")
    s = Attr(2)
    wrap = Attr(False)

    def forward(x, k, s, wrap):
        N, L = x.shape
        (K,) = k.shape
        divisor = K if s == "K" else s
        return ops.compute((N, L), lambda n, l: x[n, l % divisor] if wrap else x[n, l // divisor])


@pytest.mark.parametrize("wrap, op", [(False, "//"), (True, "%")])
def test_a_divisor_bound_to_zero_is_a_spec_error(wrap, op):
    with pytest.raises(SpecError, match=rf"Strided .*test_spec.py:\d+.*index expression l {op} 0 divides by 0"):
        Strided.build(s=0, wrap=wrap)
    with pytest.raises(SpecError, match=rf"Strided .*index expression l {op} 0 divides by 0"):
        Strided.build(s="K", K=0, wrap=wrap)          # a size bound to 0 at build time


@pytest.mark.parametrize("wrap", [False, True])
def test_a_divisor_that_is_zero_when_a_call_runs_is_a_value_error(wrap):
    m = Strided.build(s="K", wrap=wrap, dtype=np.float64)
    x = np.arange(12.0).reshape(2, 6)
    l = np.arange(6)
    want = x[:, l % 4] if wrap else x[:, l // 4]
    np.testing.assert_array_equal(m.forward(x, np.zeros(4)).numpy(), want)
    with pytest.raises(ValueError, match=r"Strided.*divides by a size that is 0"):
        m.forward(x, np.zeros(0))
    # nothing to compute: no index is divided, no error
    assert m.forward(np.zeros((2, 0)), np.zeros(0)).shape == (2, 0)
