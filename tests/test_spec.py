"""compiler/spec.py and compiler/ops.py: declaring layers, and errors that name
the spec, the source line, the expression and the shapes."""
import numpy as np
import pytest

from layerc import Input, Param, SpecError, layer, ops


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
