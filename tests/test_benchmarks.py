"""The benchmark workloads: the depthwise-separable block's three steps (layerc,
hand-written numpy, torch eager) compute the same thing, and
``benchmarks.run.time_framework`` runs each of them (no timing assertions)."""
import argparse

import numpy as np
import pytest

from benchmarks import run
from benchmarks.workloads import WORKLOADS, torch

DW = next(w for w in WORKLOADS if w.name.startswith("DW-separable"))
GRADS = ["y", "x", "depthwise.weight", "bn1.weight", "bn1.bias", "pointwise.weight", "bn2.weight", "bn2.bias"]
FRAMEWORKS = [f for f in run.FRAMEWORKS if f != "torch" or torch is not None]


def _agree(steps, tolerance):
    """Output and every gradient of layerc (and torch) against the numpy step,
    max |difference| relative to the numpy value's max magnitude (float32)."""
    ref = steps.numpy()
    others = {"layerc": steps.layerc()}
    if steps.torch is not None:
        others["torch"] = steps.torch()
    for name, got in others.items():
        assert sorted(got) == sorted(GRADS), name
        for key in GRADS:
            assert got[key].shape == ref[key].shape, (name, key)
            assert np.all(np.isfinite(got[key])), (name, key)
            error = np.abs(got[key] - ref[key]).max() / np.abs(ref[key]).max()
            assert error < tolerance, (name, key, error)


def test_depthwise_separable_frameworks_agree_quick():
    _agree(DW.make(True), 1e-4)


@pytest.mark.slow
def test_depthwise_separable_frameworks_agree_full_size():
    _agree(DW.make(False), 1e-4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_time_framework_depthwise_separable(framework):
    args = argparse.Namespace(quick=True, seconds=0.05, min_reps=2)
    out = run.time_framework(DW, framework, args)
    assert not out["note"].startswith("skipped"), out["note"]
    assert out["flops"] > 0 and out["bytes"] == 0
    t = out["timing"]
    assert t["reps"] >= 2 and 0 < t["min"] <= t["median"] < 60


def test_depthwise_separable_build_expression():
    """What ``build_times`` runs, in this process (cache warm after the tests above)."""
    namespace = {}
    exec(f"from benchmarks.specs import *\nblock = {DW.make(True).build}", namespace)
    assert [n for n, _ in namespace["block"].named_parameters()] == GRADS[2:]
