"""runtime/init.py and runtime/random.py: named initializers, their
statistics, draws that depend on the seed only (numpy's Generator, nothing
compiled), and parameters with no elements."""
import math

import numpy as np
import pytest

from layerc.runtime import random
from layerc import Input, Param, layer, nn
from layerc.runtime.init import NAMED, initialize
from layerc.runtime.random import draw, manual_seed

LARGE = (1024, 600)


def seeded(name, shape, dtype=np.float64):
    manual_seed(7)
    return initialize(name, shape, dtype)


@pytest.mark.parametrize("shape", [(5, 3), LARGE], ids=["small", "large"])
def test_float32_and_float64_draw_the_same_values(shape):
    assert np.array_equal(seeded("xavier", shape, np.float32), seeded("xavier", shape).astype(np.float32))


@pytest.mark.parametrize("name, std, bound", [("xavier", np.sqrt(2 / 1624), None),
                                             ("kaiming", np.sqrt(2 / 600), None),
                                             ("fan_in_uniform", None, 1 / np.sqrt(600))])
def test_a_draw_has_the_initializers_statistics(name, std, bound):
    w = seeded(name, LARGE)
    assert w.shape == LARGE and abs(w.mean()) < 1e-3
    if std is not None:
        assert w.std() == pytest.approx(std, rel=0.01)
    else:
        assert -bound <= w.min() and w.max() < bound and w.std() == pytest.approx(bound / np.sqrt(3), rel=0.01)


def test_normal_draws_follow_the_normal_distribution():
    """Quantiles of 2^20 draws against the standard normal's (a wrong scale,
    shift or float32 conversion moves them by far more than the tolerance)."""
    v = np.sort(draw("normal", 1 << 20, np.float64))
    for p in (0.001, 0.023, 0.159, 0.5, 0.841, 0.977, 0.999):
        expected = math.sqrt(2) * _inverse_erf(2 * p - 1)
        # four standard errors of the sample quantile
        density = math.exp(-expected ** 2 / 2) / math.sqrt(2 * math.pi)
        tolerance = 4 * math.sqrt(p * (1 - p) / v.size) / density
        assert v[int(p * v.size)] == pytest.approx(expected, abs=tolerance), p
    raw = draw("normal", 1 << 20, np.float64)
    assert abs(np.corrcoef(raw[:-1], raw[1:])[0, 1]) < 0.005


def _inverse_erf(y):
    lo, hi = -6.0, 6.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return lo


def test_uniform_draws_cover_the_interval_evenly():
    v = draw("uniform", 1 << 20, np.float32, scale=2.0, shift=-1.0)
    assert v.min() >= -1 and v.max() < 1
    counts = np.histogram(v, bins=16, range=(-1, 1))[0]
    assert np.all(np.abs(counts - v.size / 16) < 5 * np.sqrt(v.size / 16))


def test_draws_are_numpys_generator_in_float32():
    """The seed fixes the values: numpy's PCG64 stream, drawn in float32, then
    scaled and shifted in float32 (so a float64 module starts from the same values)."""
    manual_seed(3)
    normal = draw("normal", 1000, np.float64, scale=0.5, shift=1.0)
    uniform = draw("uniform", 1000, np.float32, scale=2.0, shift=-1.0)
    rng = np.random.default_rng(3)
    expected = rng.standard_normal(1000, dtype=np.float32) * np.float32(0.5) + np.float32(1.0)
    np.testing.assert_array_equal(normal, expected.astype(np.float64))
    assert normal.dtype == np.float64
    np.testing.assert_array_equal(uniform, rng.random(1000, dtype=np.float32) * np.float32(2) - np.float32(1))


def test_seeded_draws_repeat_and_differ_between_seeds_and_calls():
    first, second = seeded("normal", (1000,)), seeded("normal", (1000,))
    manual_seed(8)
    other, next_call = initialize("normal", (1000,), np.float64), initialize("normal", (1000,), np.float64)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other) and not np.array_equal(other, next_call)


def test_other_dtypes_are_refused_by_name():
    with pytest.raises(TypeError, match="float16"):
        draw("normal", 4, np.float16)


def test_unknown_distribution_and_initializer_are_refused_by_name():
    with pytest.raises(ValueError, match="'cauchy'"):
        draw("cauchy", 4, np.float32)
    with pytest.raises(ValueError, match="unknown initializer 'xavir'"):
        initialize("xavir", (2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown initializer 'xavir'"):
        initialize("xavir", (0, 2), np.float32)       # refused even with nothing to draw


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0,), (2, 0, 3, 3)])
@pytest.mark.parametrize("name", sorted(NAMED))
def test_every_initializer_gives_an_empty_array_for_an_empty_shape(name, shape):
    """Fans of 0 (a weight with no inputs): no scale to compute, no values to draw."""
    manual_seed(0)
    values = initialize(name, shape, np.float32)
    assert values.shape == shape and values.dtype == np.float32
    after = random.generator().standard_normal(3)
    manual_seed(0)
    np.testing.assert_array_equal(after, random.generator().standard_normal(3))   # nothing was drawn


def test_a_callable_initializer_is_called_for_an_empty_shape_too():
    seen = []
    values = initialize(lambda shape, rng: seen.append(shape) or np.zeros(shape), (0, 5), np.float64)
    assert seen == [(0, 5)] and values.shape == (0, 5)


@layer
class ScaleShift:
    x = Input("N", "C")
    weight = Param("C", init="kaiming")
    bias = Param("C", init="fan_in_uniform")

    def forward(x, weight, bias):
        return x * weight + bias


@pytest.mark.parametrize("make, x_shape, y_shape", [
    (lambda: nn.Linear(0, 2), (4, 0), (4, 2)),
    (lambda: nn.Linear(3, 0), (4, 3), (4, 0)),
    (lambda: nn.LayerNorm(0), (4, 0), (4, 0)),
    (lambda: ScaleShift.build(C=0), (4, 0), (4, 0)),
], ids=["Linear(0, 2)", "Linear(3, 0)", "LayerNorm(0)", "Param at C=0"])
def test_layers_with_empty_parameters_build_and_run(make, x_shape, y_shape):
    m = make()
    for name, p in m.named_parameters():
        assert 0 in p.shape or name == "bias", (name, p.shape)
    x = np.ones(x_shape, np.float32)
    y = m(x)
    assert y.shape == y_shape
    if x_shape[1] == 0 and y_shape[1]:           # Linear(0, 2): nothing to sum, the bias (zero, as in torch)
        np.testing.assert_array_equal(y.numpy(), np.zeros(y_shape))
    gx = m.backward(np.ones(y_shape, np.float32))
    assert gx.shape == x_shape
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
