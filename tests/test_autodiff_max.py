"""The gradient of a max reduction over a libm function (``max(sin(x))``)
reaches its maximal element whichever loops the forward and the backward
evaluate the function in.

Fusion recomputes ``sin(x)`` wherever it is read; gcc vectorizes one loop
(libmvec) and not another (scalar libm), and the two can differ by an ulp: the
backward's argmax test, the recomputed value against the forward's maximum,
then failed for every element of a row and the gradient vanished (at the avx2
and baseline levels, for about half the rows). The backward now stores the
values once and takes both their maximum and its argmax from memory."""
import numpy as np
import pytest

from layerc import Input, check_grad, layer, ops
from layerc.compiler.autodiff import gradient_program
from layerc.runtime import isa

torch = pytest.importorskip("torch")

LENGTH = 1003      # long enough for the reduction to take the vector path, with a scalar tail


@layer
class MaxOfSine:
    x = Input("N", "L")

    def forward(x):
        return ops.max(ops.sin(x) * 3.0, axis=1)


@layer
class MinOfExp:
    x = Input("N", "L")

    def forward(x):
        return ops.min(ops.exp(x), axis=-1)


@layer
class RowMax:
    x = Input("N", "L")

    def forward(x):
        return ops.max(x, axis=1)


TORCH = {MaxOfSine: lambda t: torch.sin(t).mul(3.0).max(dim=1).values,
         MinOfExp: lambda t: torch.exp(t).min(dim=-1).values}


def test_the_argmax_is_taken_from_stored_values_only_when_libm_is_recomputed():
    stored = {s.name.split("_")[0] for s in gradient_program(MaxOfSine.trace(L=5)).stages}
    assert {"values", "top", "first"} <= stored
    plain = gradient_program(RowMax.trace(L=5))
    assert not any(s.scatter_index for s in plain.stages)     # a pool reads its input as is


@pytest.mark.torch
@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("spec", [MaxOfSine, MinOfExp])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_row_keeps_its_gradient_at_every_instruction_set_level(spec, dtype, level, monkeypatch):
    monkeypatch.setenv(isa.ENV, level)
    m = spec.build(L=LENGTH, dtype=dtype)
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, (64, LENGTH))
    g = rng.uniform(0.5, 1.5, 64)
    m.forward(x=x.astype(dtype))
    got = m.backward(g.astype(dtype)).numpy()
    t = torch.tensor(x, requires_grad=True)
    TORCH[spec](t).backward(torch.tensor(g))
    want = t.grad.numpy()
    assert (np.count_nonzero(got, axis=1) == 1).all()
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    else:
        # float32 rounds near-equal values together: the first of them takes the gradient
        picked, best = np.argmax(got != 0, axis=1), np.argmax(want != 0, axis=1)
        values = np.sin(x) if spec is MaxOfSine else -np.exp(x)
        rows = np.arange(len(x))
        np.testing.assert_allclose(values[rows, picked], values[rows, best], rtol=1e-6)


def test_max_over_a_libm_function_passes_the_gradient_check():
    check_grad(MaxOfSine, N=3, L=LENGTH).assert_ok()
    check_grad(MinOfExp, N=2, L=37).assert_ok()


# ---------------------------------------------------------------- windows autodiff cannot invert

# adaptive windows that do not tile their input: (output_size, input shape).
# Overlapping (13 -> 7, 5 -> 3), non-square, one row (1 x N), an output larger
# than half the input (10 -> 7) or than the input (3 -> 5: windows of one
# element read twice), batch 1; the last large enough for threads (the
# gradient's writes too: 137200 outputs)
UNEVEN = [((7, 7), (2, 3, 13, 13)), ((3, 2), (1, 2, 5, 7)), ((1, 4), (2, 1, 1, 11)), ((7, 3), (1, 3, 10, 8)),
          ((5, 5), (1, 2, 3, 3)), ((4, 6), (3, 2, 9, 7)), ((7, 7), (4, 700, 13, 13))]


def _adaptive_reference(x, size):
    """torch's adaptive maximum in numpy, and each output's first maximal
    element (row-major), or its first NaN: ``(y, rows, cols)``."""
    (oh, ow), (H, W) = size, x.shape[2:]
    y = np.empty(x.shape[:2] + size, x.dtype)
    rows, cols = (np.empty(y.shape, np.int64) for _ in range(2))
    for h in range(oh):
        r0, r1 = h * H // oh, -(-(h + 1) * H // oh)
        for w in range(ow):
            c0, c1 = w * W // ow, -(-(w + 1) * W // ow)
            window = x[:, :, r0:r1, c0:c1].reshape(x.shape[:2] + (-1,))
            nan = np.isnan(window)
            at = np.where(nan.any(-1), nan.argmax(-1), np.argmax(np.where(nan, 0, window), -1))
            y[:, :, h, w] = np.take_along_axis(window, at[..., None], -1)[..., 0]
            rows[:, :, h, w], cols[:, :, h, w] = r0 + at // (c1 - c0), c0 + at % (c1 - c0)
    return y, rows, cols


def _adaptive_gradient(x, g, rows, cols):
    gx = np.zeros_like(x)
    n, c = np.indices(rows.shape[:2])
    for h, w in np.ndindex(*rows.shape[2:]):
        np.add.at(gx, (n, c, rows[:, :, h, w], cols[:, :, h, w]), g[:, :, h, w])
    return gx


def test_an_adaptive_maximum_writes_its_gradient_once_per_output():
    """The backward of an uneven adaptive maximum is a scatter over the
    outputs alone (its window's offsets decoded from the first maximum's
    position), not over every element of every window; a tiling pool keeps
    the gather."""
    from layerc import nn
    backward = gradient_program(nn.AdaptiveMaxPool2DSpec.trace(output_size=(7, 7), H=13, W=13))
    [scatter] = [s for s in backward.stages if s.scatter_index is not None]
    assert [a.name for a in scatter.axes] == ["n", "c", "h", "w"] and scatter.reduce_axes == ()
    tiling = gradient_program(nn.AdaptiveMaxPool2DSpec.trace(output_size=(3, 3), H=27, W=27))
    assert not any(s.scatter_index for s in tiling.stages)


@layer
class GatheredMax:
    """A maximum over a gathered read (not invertible) whose window length is a run-time size."""
    x = Input("N", "V")
    idx = Input("N", "K", dtype="int64")

    def forward(x, idx):
        k = ops.reduce_axis(idx.shape[1], "k")
        return ops.compute((x.shape[0],), lambda n: ops.max(x[n, idx[n, k]], over=k))


def test_a_maximum_over_a_window_of_run_time_length_keeps_its_scatter():
    """Only a window of known, positive length writes at its first maximum:
    one of a run-time length (empty, perhaps) keeps the scatter over the
    window, the gradient still at the first maximal element (repeated indices)."""
    backward = gradient_program(GatheredMax.trace())
    [scatter] = [s for s in backward.stages if s.scatter_index is not None]
    assert [a.name for a in scatter.reduce_axes] == ["k"]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 9))
    idx = np.array([[1, 4, 4], [0, 8, 2], [5, 5, 5], [7, 3, 7]], np.int64)
    m = GatheredMax.build(dtype="float64")
    np.testing.assert_array_equal(m.forward(x, idx).numpy(), np.take_along_axis(x, idx, 1).max(1))
    g = rng.standard_normal(4)
    expected = np.zeros_like(x)
    expected[np.arange(4), idx[np.arange(4), np.take_along_axis(x, idx, 1).argmax(1)]] = g
    np.testing.assert_array_equal(m.backward(g).numpy(), expected)
    check_grad(GatheredMax, inputs={"idx": idx}, N=4, V=9, K=3).assert_ok()


@pytest.mark.torch
@pytest.mark.parametrize("size, shape", UNEVEN, ids=[f"{s}-{'x'.join(map(str, x))}" for s, x in UNEVEN])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_uneven_adaptive_maximum_matches_torch(size, shape, dtype):
    from layerc import nn
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    m = nn.AdaptiveMaxPool2D(size, dtype=dtype)
    y = m(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    gx = m.backward(g).numpy()
    t = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_max_pool2d(t, size)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_allclose(gx, t.grad.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


@pytest.mark.parametrize("size, shape", UNEVEN[:4])
def test_an_uneven_adaptive_maximum_passes_the_gradient_check(size, shape):
    from layerc import nn
    N, C, H, W = shape
    check_grad(nn.AdaptiveMaxPool2DSpec, N=N, C=C, H=H, W=W, output_size=size).assert_ok()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_uneven_adaptive_maximum_at_ties_infinities_and_nan(dtype):
    """Ties (every window of a constant image, and values rounded to a few
    levels) give the gradient to the first maximal element, row-major; a
    window of -inf to its first element; +inf is the maximum; a window with
    NaN outputs NaN and its first NaN takes the gradient (several NaN in a
    window: torch's kernel would take its last). Windows overlap (13 -> 7,
    5 -> 3), so an element can take the gradient of several outputs."""
    from layerc import nn
    rng = np.random.default_rng(7)
    for size, shape in (((7, 7), (2, 3, 13, 13)), ((3, 2), (1, 2, 5, 7))):
        m = nn.AdaptiveMaxPool2D(size, dtype=dtype)
        rounded = np.round(rng.standard_normal(shape)).astype(dtype)
        edges = rng.standard_normal(shape).astype(dtype)
        flat = edges.reshape(-1)
        picks = rng.choice(flat.size, (3, flat.size // 6), replace=False)
        flat[picks[0]], flat[picks[1]], flat[picks[2]] = np.nan, np.inf, -np.inf
        edges[0, 0] = -np.inf
        for x in (np.ones(shape, dtype), rounded, edges):
            y = m(x)
            g = rng.uniform(0.5, 1.5, y.shape).astype(dtype)
            want, rows, cols = _adaptive_reference(x, size)
            np.testing.assert_array_equal(y.numpy(), want)
            np.testing.assert_array_equal(m.backward(g).numpy(), _adaptive_gradient(x, g, rows, cols))
