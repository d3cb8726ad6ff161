"""The benchmark workloads: the depthwise-separable block's three steps (layerc,
hand-written numpy, torch eager) compute the same thing, and the harness times
each of them in its own process, in interleaved rounds (no timing assertions)."""
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


def test_time_workload_samples_every_round_of_every_framework():
    """Each framework's step process answers every round, at least
    ceil(min_reps / rounds) samples a slice (the smallest workload: the cost is
    the processes' start)."""
    args = argparse.Namespace(quick=True, seconds=0.03, min_reps=5, rounds=3)
    info, timings = run.time_workload(next(w for w in WORKLOADS if w.name == "PReLU [256,4096]"), args)
    assert info["bytes"] > 0 and info["step"]
    assert sorted(timings) == sorted(FRAMEWORKS)
    for t in timings.values():
        assert len(t["round_medians"]) == 3 and t["reps"] >= 3 * 2
        assert 0 < t["min"] <= t["median"] < 60 and t["min"] <= min(t["round_medians"])


class FakeStepProcess:
    """Stands in for ``run.StepProcess``: records the order of the turns."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def time_slice(self, seconds, min_reps, max_reps):
        self.calls.append(self.name)
        return [seconds] * min_reps


def test_interleave_takes_turns_in_rotated_order():
    calls = []
    processes = {name: FakeStepProcess(name, calls) for name in "abc"}
    per_round = run.interleave(processes, rounds=4, seconds=2.0, min_reps=7)
    assert calls == list("abc" "bca" "cab" "abc")
    assert per_round == {name: [[0.5, 0.5]] * 4 for name in "abc"}


def test_step_process_failure_shows_its_stderr():
    process = run.StepProcess("no such workload", "numpy", quick=True)
    try:
        with pytest.raises(RuntimeError, match="(?s)'no such workload' numpy exited.*StopIteration"):
            process.ready()
    finally:
        process.close()


def test_step_process_silent_too_long_is_killed():
    process = run.StepProcess(DW.name, "numpy", quick=True, timeout=0.01)
    try:
        with pytest.raises(RuntimeError, match="no answer within 0.01 s"):
            process.ready()
        assert process.proc.returncode is not None
    finally:
        process.close()


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
