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


def _agree(steps):
    """Output and every gradient of layerc (and torch) against the numpy step (float32).

    The output must match to 1e-4 of its largest value. The gradients are compared
    by relative Frobenius norm, to 2e-2: float32 rounding differs between the three
    (summation order of the batch statistics), so a few of the 1.6M pre-ReLU
    values (~1e-6 from 0) land on opposite sides of the kink in different
    frameworks; each such flip changes the input gradient of ~C*9 elements by
    O(1) (max relative error up to 0.2 seen) and the parameter gradients by
    ~1e-3 relative (measured: 0-2 flips per run at [16,32,56,56], relative norm
    error <= 3e-3). A wrong formula is off by O(1)."""
    ref = steps.numpy()
    others = {"layerc": steps.layerc()}
    if steps.torch is not None:
        others["torch"] = steps.torch()
    for name, got in others.items():
        assert sorted(got) == sorted(GRADS), name
        for key in GRADS:
            assert got[key].shape == ref[key].shape, (name, key)
            assert np.all(np.isfinite(got[key])), (name, key)
            if key == "y":
                error = np.abs(got[key] - ref[key]).max() / np.abs(ref[key]).max()
                assert error < 1e-4, (name, key, error)
            else:
                error = np.linalg.norm(got[key] - ref[key]) / np.linalg.norm(ref[key])
                assert error < 2e-2, (name, key, error)


def test_depthwise_separable_frameworks_agree_quick():
    _agree(DW.make(True))


@pytest.mark.slow
def test_depthwise_separable_frameworks_agree_full_size():
    _agree(DW.make(False))


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


def test_load_times_runs_the_warm_load_of_one_workload(capsys):
    """``--load-times``: warm loads in new processes (no timing assertion)."""
    assert run.main(["--load-times", "--load-reps", "1", "--only", "Scaled", "--quick", "--json"]) == 0
    rows = __import__("json").loads(capsys.readouterr().out)["rows"]
    assert [r["workload"] for r in rows] == ["Scaled [4096,4096]"]
    assert rows[0]["build"].startswith("Scaled.build(") and 0 < rows[0]["warm_load_min_s"] < 60
