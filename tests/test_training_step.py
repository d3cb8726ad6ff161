"""The training step's machinery: the optimizers' one compiled call over every
parameter (multi-tensor apply) against the numpy rules one parameter at a time,
and a steady-state step of a Sequential model that allocates no new arrays."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from layerc import SGD, Adam, AdamW, Sequential, Tensor
from layerc.losses import cross_entropy
from layerc.nn import Linear, ReLU
from layerc.optim_kernels import CHUNK
from layerc.runtime import optim

# sizes across the driver's chunks: several chunks and a remainder, one chunk, tiny
SIZES = [(2 * CHUNK + 17,), (CHUNK,), (3, 5), (1,)]
CASES = [(Adam, dict(lr=0.01, weight_decay=0.1)), (AdamW, dict(lr=0.02)), (SGD, dict(lr=0.1)),
         (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01))]


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in SIZES]


def _train(cls, kw, dtype, multi: bool, skip_first_step_of=None):
    saved = dict(optim.MULTI_RULES)
    if not multi:
        optim.MULTI_RULES.clear()          # the numpy rules, one parameter at a time
    try:
        params = _params(dtype)
        opt = cls(params, **kw)
        rng = np.random.default_rng(1)
        for step in range(3):
            for k, p in enumerate(params):
                p.grad = None if (step == 0 and k == skip_first_step_of) else \
                    rng.standard_normal(p.shape).astype(dtype)
            opt.step()
        return [p.numpy().copy() for p in params]
    finally:
        optim.MULTI_RULES.update(saved)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,kw", CASES)
def test_one_call_over_all_parameters_equals_the_numpy_rules(cls, kw, dtype):
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for multi, reference in zip(_train(cls, kw, dtype, True), _train(cls, kw, dtype, False)):
        np.testing.assert_allclose(multi, reference, **tolerance)


def test_adam_parameters_at_different_step_counts_update_apart():
    # the second parameter has no gradient at the first step: its bias correction lags one step
    multi = _train(Adam, dict(lr=0.01), np.float64, True, skip_first_step_of=1)
    reference = _train(Adam, dict(lr=0.01), np.float64, False, skip_first_step_of=1)
    for a, b in zip(multi, reference):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(multi[1], _train(Adam, dict(lr=0.01), np.float64, True)[1])


def _mlp_step():
    rng = np.random.default_rng(0)
    model = Sequential([Linear(256, 256, bias=False), ReLU(), Linear(256, 64, bias=False)])
    x = rng.standard_normal((64, 256)).astype(np.float32)
    labels = rng.integers(0, 64, 64)
    opt = Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
    return model, opt, step


def _addresses(model, opt) -> dict:
    found = {}
    for name, p in model.named_parameters():
        found[f"data:{name}"] = p.data.ctypes.data
        found[f"grad:{name}"] = p.grad.ctypes.data
        for key, buffer in opt.state[id(p)][1].items():
            if key != "t":
                found[f"{key}:{name}"] = buffer.ctypes.data
    return found


def test_a_steady_state_step_allocates_no_new_arrays():
    model, opt, step = _mlp_step()
    for _ in range(3):
        step()
    seen = [_addresses(model, opt) for _ in range(4) if step() is None]
    for key in seen[0]:
        values = {s[key] for s in seen}
        if key.startswith("grad:"):
            assert len(values) <= 2, key    # the backward's pooled outputs, taken in turn
        else:
            assert len(values) == 1, key    # parameters and optimizer state updated in place
    # and nothing the size of an array of the model is made, even for a moment:
    # the smallest (a 64 x 64 float32 output) is 16 KiB; Python objects (Tensors,
    # the tape's nodes, small dicts) take a few KiB
    tracemalloc.start()
    try:
        for _ in range(3):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            step()
            assert tracemalloc.get_traced_memory()[1] - before < 12 * 1024
    finally:
        tracemalloc.stop()


def test_two_optimizers_share_the_compiled_driver_and_a_parameter_listed_twice_is_updated_once():
    def run(multi: bool):
        saved = dict(optim.MULTI_RULES)
        if not multi:
            optim.MULTI_RULES.clear()
        try:
            a, b = _params(np.float32, seed=2), _params(np.float32, seed=3)[:2]
            first, second = Adam(a + [a[0]], lr=0.01), Adam(b, lr=0.02)
            rng = np.random.default_rng(4)
            for _ in range(3):
                for opt, params in ((first, a), (second, b)):
                    for p in params:
                        p.grad = rng.standard_normal(p.shape).astype(np.float32)
                    opt.step()
            assert first.state[id(a[0])][1]["t"] == 3
            return [p.numpy().copy() for p in a + b]
        finally:
            optim.MULTI_RULES.update(saved)
    for got, want in zip(run(True), run(False)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
