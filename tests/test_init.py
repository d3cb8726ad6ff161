"""runtime/init.py and runtime/random.py: named initializers, their
statistics, and draws that depend on the seed only."""
import math

import numpy as np
import pytest

from layerc.runtime import random
from layerc.runtime.init import initialize
from layerc.runtime.random import draw, manual_seed

LARGE = (1024, 600)     # drawn on several threads


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
    """Quantiles of 2^20 draws against the standard normal's (a wrong radius
    or angle in Box-Muller moves them by far more than the tolerance)."""
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


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_values_do_not_depend_on_the_thread_count(kind):
    manual_seed(3)
    one = draw(kind, 3 * 65536 + 5, np.float32, threads=1)
    manual_seed(3)
    assert np.array_equal(draw(kind, 3 * 65536 + 5, np.float32, threads=2), one)


def test_seeded_draws_repeat_and_differ_between_seeds_and_calls():
    first, second = seeded("normal", (1000,)), seeded("normal", (1000,))
    manual_seed(8)
    other, next_call = initialize("normal", (1000,), np.float64), initialize("normal", (1000,), np.float64)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other) and not np.array_equal(other, next_call)


def _draw_in_child(queue):
    queue.put(float(draw("normal", 1 << 17, np.float32).std()))


def test_a_forked_child_draws_after_the_parent_used_threads():
    """libgomp's threads are gone in a child made by fork: the child draws on
    one thread instead of waiting for them forever."""
    import multiprocessing
    draw("normal", 1 << 17, np.float32, threads=2)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_draw_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(1.0, rel=0.02)


def test_other_dtypes_are_refused_by_name():
    with pytest.raises(TypeError, match="float16"):
        draw("normal", 4, np.float16)
