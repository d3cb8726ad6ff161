"""runtime/init.py: named initializers, their statistics, and large parameters
drawn in chunks on threads."""
import numpy as np
import pytest

from runtime import init
from runtime.init import initialize
from runtime.random import manual_seed


def draw(name, shape, dtype=np.float64):
    manual_seed(7)
    return initialize(name, shape, dtype)


@pytest.mark.parametrize("shape", [(5, 3), (1024, 600)], ids=["small", "chunked"])
def test_float32_and_float64_draw_the_same_values(shape):
    assert np.array_equal(draw("xavier", shape, np.float32), draw("xavier", shape).astype(np.float32))


@pytest.mark.parametrize("name, std, bound", [("xavier", np.sqrt(2 / 1624), None),
                                             ("kaiming", np.sqrt(2 / 600), None),
                                             ("fan_in_uniform", None, 1 / np.sqrt(600))])
def test_a_chunked_draw_has_the_initializers_statistics(name, std, bound):
    w = draw(name, (1024, 600))
    assert w.shape == (1024, 600) and abs(w.mean()) < 1e-3
    if std is not None:
        assert w.std() == pytest.approx(std, rel=0.01)
    else:
        assert -bound <= w.min() and w.max() < bound and w.std() == pytest.approx(bound / np.sqrt(3), rel=0.01)
    # chunks come from distinct streams: no chunk repeats another
    chunks = w.reshape(-1)[: 3 * init.CHUNK].reshape(3, -1)
    assert not np.array_equal(chunks[0], chunks[1]) and not np.array_equal(chunks[1], chunks[2])


def test_chunked_values_do_not_depend_on_the_thread_count(monkeypatch):
    many = draw("normal", (3 * init.CHUNK + 5,))
    monkeypatch.setattr(init.os, "cpu_count", lambda: 1)
    assert np.array_equal(draw("normal", (3 * init.CHUNK + 5,)), many)


def test_seeded_draws_repeat_and_differ_between_seeds():
    first, again = draw("normal", (2 * init.CHUNK,)), draw("normal", (2 * init.CHUNK,))
    manual_seed(8)
    other = initialize("normal", (2 * init.CHUNK,), np.float64)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
