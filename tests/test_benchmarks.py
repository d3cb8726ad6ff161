"""The benchmark workloads: the depthwise-separable block's three steps (layerc,
hand-written numpy, torch eager) compute the same thing, and the harness times
each of them in its own process, in interleaved rounds (no timing assertions)."""
import argparse

import numpy as np
import pytest

import layerc.nn
from benchmarks import cold_builds, run
from benchmarks.common import EAGER_PEERS
from benchmarks.workloads import WORKLOADS, torch

DW = next(w for w in WORKLOADS if w.name.startswith("DW-separable"))
GRADS = ["y", "x", "depthwise.weight", "bn1.weight", "bn1.bias", "pointwise.weight", "bn2.weight", "bn2.bias"]
FRAMEWORKS = [f for f in EAGER_PEERS if f != "torch" or torch is not None]   # the issue-5 workloads


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


# ---------------------------------------------------------------- the layer and training workloads

from functools import partial  # noqa: E402

from benchmarks import layer_workloads as lw, training  # noqa: E402
from benchmarks.common import COMPILED  # noqa: E402

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

# a tiny version of each kind of layer workload: (twin and rate, input shape)
TINY_LAYERS = {
    "Linear": (lw.linear(7, 5), (3, 7)),
    "Linear rank 3": (lw.linear(6, 4), (2, 3, 6)),
    "Conv2D k3 p1": (lw.conv2d(3, 4, 3, padding=1), (2, 3, 6, 5)),
    "Conv2D k1": (lw.conv2d(4, 6, 1), (2, 4, 5, 5)),
    "Conv2D strided": (lw.conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 7)),
    "Conv2D dilated": (lw.conv2d(3, 4, 3, padding=2, dilation=2), (2, 3, 7, 6)),
    "Conv2D grouped": (lw.conv2d(4, 6, 3, padding=1, groups=2), (2, 4, 5, 5)),
    "Conv2D depthwise": (lw.conv2d(4, 4, 3, padding=1, groups=4), (2, 4, 5, 5)),
    "Conv2D 7x7 stem": (lw.conv2d(3, 4, 7, stride=2, padding=3), (1, 3, 11, 11)),
    "Conv2D 1xK": (lw.conv2d(3, 4, (1, 3), padding=(0, 1)), (2, 3, 1, 9)),
    "Conv1D index notation": (lw.conv1d_index_notation(3, 4, 3, 1), (2, 3, 9)),
    "BatchNorm2D": (lw.batch_norm(3), (4, 3, 5, 5)),
    "LayerNorm": (lw.layer_norm(6), (2, 3, 6)),
    "ReLU": (lw.stateless("ReLU", "ReLU", lw.SAME_SHAPE), (3, 4, 5)),
    "GELU": (lw.stateless("GELU", "GELU", lw.SAME_SHAPE), (3, 8)),
    "Softmax": (lw.stateless("Softmax", "Softmax", lw.SAME_SHAPE, -1), (2, 3, 7)),
    "LogSoftmax": (lw.stateless("LogSoftmax", "LogSoftmax", lw.SAME_SHAPE, 1), (2, 3, 7)),
    "PReLU": (lw.stateless("PReLU", "PReLU", lw.SAME_SHAPE, 3), (2, 3, 7)),
    "ReflectionPad2d": (lw.stateless("ReflectionPad2d", "ReflectionPad2d", lw.no_rate, 2), (2, 3, 5, 4)),
    "Upsample": (lw.upsample(2), (2, 3, 4, 3)),
    "Unflatten": (lw.unflatten((3, 8)), (3, 8)),
    "CircularPad1d": (lw.stateless("CircularPad1d", "CircularPad1d", lw.no_rate, 2), (2, 3, 7)),
    "GLU": (lw.stateless("GLU", "GLU", lw.traffic(3, 2)), (2, 3, 8)),
    "MaxPool2D": (lw.stateless("MaxPool2D", "MaxPool2d", lw.MAX_POOL, 3, 2), (2, 3, 7, 7)),
    "AvgPool2D": (lw.stateless("AvgPool2D", "AvgPool2d", lw.AVG_POOL, 2, 2), (2, 3, 6, 6)),
    "Flatten": (lw.stateless("Flatten", "Flatten", lw.no_rate), (2, 3, 2, 2)),
    "BatchNorm1D": (lw.batch_norm1d(3), (4, 3, 5)),
    "GroupNorm": (lw.group_norm(2, 4), (2, 4, 3, 3)),
    "InstanceNorm2D": (lw.instance_norm(3), (2, 3, 4, 4)),
    "RMSNorm": (lw.rms_norm(6), (2, 3, 6)),
    "Embedding": (lw.embedding(11, 4), (3, 5)),
    "MultiheadAttention": (lw.self_attention(8, 2), (2, 5, 8)),
    "Mish": (lw.stateless("Mish", "Mish", lw.SAME_SHAPE), (3, 4, 5)),
    "Conv2D reflect": (lw.conv2d(3, 4, 3, padding="same", padding_mode="reflect"), (2, 3, 6, 5)),
    "ConvTranspose2D strided": (lw.conv_transpose(2, 3, 4, 4, stride=2, padding=1), (2, 3, 5, 4)),
    "ConvTranspose1D": (lw.conv_transpose(1, 3, 4, 3, stride=2), (2, 3, 7)),
    "AdaptiveAvgPool2D": (lw.stateless("AdaptiveAvgPool2D", "AdaptiveAvgPool2d", lw.AVG_POOL, 3), (2, 3, 7, 5)),
    "AdaptiveMaxPool2D": (lw.stateless("AdaptiveMaxPool2D", "AdaptiveMaxPool2d", lw.MAX_POOL, 2), (2, 3, 5, 5)),
}

TINY_TRAINING = {
    "CIFAR CNN": (partial(training.cifar_cnn, width=3), (2, 3, 32, 32)),
    "ResNet blocks": (partial(training.resnet_blocks, channels=4, size=6), (3, 4, 6, 6)),
    "MLP": (partial(training.mlp, sizes=(20, 16, 12)), (5, 20)),
}


def _relative(got, want):
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)


def _same_results(ours, theirs, tolerance, scale=None):
    """The same keys (output, loss, every gradient and parameter, by torch's
    names), shapes and values; ``scale`` by key overrides the norm compared to."""
    assert sorted(ours) == sorted(theirs)
    for key, want in theirs.items():
        got = ours[key]
        assert got.shape == want.shape, key
        denominator = (scale or {}).get(key) or max(np.linalg.norm(want), 1e-30)
        assert np.linalg.norm(got - want) / denominator < tolerance, (key, got, want)


def test_every_builtin_layer_is_benchmarked_at_three_shapes_or_more():
    """Every layer of nn (not torch's spellings of them, nor the loss modules: the
    losses have workloads of their own) at three shapes or more."""
    import layerc.nn
    layers = set(layerc.nn.__all__) - {"SpecLayer", *layerc.nn.TORCH_SPELLINGS, *layerc.nn.LOSSES}
    for name in layers:
        assert sum(w.name.startswith(name + " ") for w in lw.LAYER_WORKLOADS) >= 3, name


def test_every_loss_module_is_benchmarked_at_three_shapes_or_more():
    import layerc.nn
    for name in layerc.nn.LOSSES:
        assert sum(w.name.startswith(name + " ") for w in lw.LOSS_WORKLOADS) >= 3, name


@needs_torch
@pytest.mark.parametrize("name", [loss[0] for loss in lw.LOSSES])
def test_loss_workload_layerc_and_torch_agree(name):
    """The loss and the input's gradient (float32, quick sizes); the loss to
    within 1e-5 of 1 (NLL of raw logits sums to near 0, where float32's
    summation orders differ relatively more)."""
    workload = next(w for w in lw.LOSS_WORKLOADS if w.name.startswith(name + " "))
    steps = workload.make(True)
    _same_results(steps.layerc(collect=True), steps.torch(collect=True), 1e-5, scale={"y": 1.0})


@needs_torch
@pytest.mark.parametrize("kind", sorted(TINY_LAYERS))
def test_layer_workload_layerc_and_torch_agree(kind):
    """Forward output, input gradient and every parameter gradient (float32)."""
    (twin, rate), shape = TINY_LAYERS[kind]
    steps = lw.layer_workload(kind, twin, shape, rate).make(False)
    ours, theirs = steps.layerc(collect=True), steps.torch(collect=True)
    assert {"y", "grad:x"} <= set(ours) or (kind == "Embedding" and "grad:weight" in ours)
    _same_results(ours, theirs, 1e-5)
    assert steps.layerc() is None and steps.torch() is None       # the timed call returns nothing


@needs_torch
@pytest.mark.parametrize("kind", sorted(TINY_TRAINING))
def test_training_step_layerc_and_torch_agree(kind):
    """One training step from the same parameters: the loss, every gradient, and
    every parameter after Adam's update (compared on the update's scale, lr per
    element: far smaller than the parameters themselves)."""
    recipe, shape = TINY_TRAINING[kind]
    steps = training.training_workload(kind, recipe, shape, lambda batch: 1.0).make(False)
    ours, theirs = steps.layerc(collect=True), steps.torch(collect=True)
    assert any(k.startswith("param:") for k in ours) and "loss" in ours
    params = {k for k in theirs if k.startswith("param:")}
    _same_results({k: v for k, v in ours.items() if k not in params},
                  {k: v for k, v in theirs.items() if k not in params}, 2e-4)
    # Adam steps every element by about lr whatever its gradient's size: an
    # element whose gradient is float32 noise (a BatchNorm's weight gradient
    # summed in another order) may step differently, so a step agrees to 1% of
    # lr per element; a wrong gradient moves most elements by about lr
    update = {k: training.LR * np.sqrt(theirs[k].size) for k in params}
    _same_results({k: ours[k] for k in params}, {k: theirs[k] for k in params}, 1e-2, update)


def test_rates_count_three_times_the_forward_contraction():
    (_, rate), _ = TINY_LAYERS["Conv2D grouped"]
    assert rate((2, 4, 5, 5), (2, 6, 5, 5)) == {"flops": 3 * 2.0 * (2 * 6 * 5 * 5) * (2 * 3 * 3)}
    assert lw.SAME_SHAPE((2, 3), (2, 3)) == {"bytes": 5 * 4 * 6}
    assert lw.MAX_POOL((1, 1, 4, 4), (1, 1, 2, 2)) == {"bytes": 4 * (3 * 16 + 2 * 4)}


def test_frameworks_of_adds_torch_compile_where_asked():
    conv = next(w for w in lw.LAYER_WORKLOADS if w.compile)
    relu = next(w for w in lw.LAYER_WORKLOADS if w.name.startswith("ReLU"))
    eager = ["layerc", "torch"] if torch is not None else ["layerc"]
    assert run.frameworks_of(relu, "auto") == eager and run.frameworks_of(conv, "none") == eager
    if torch is not None:
        assert run.frameworks_of(relu, "all") == eager + [COMPILED]
        assert run.frameworks_of(conv, "auto") == eager + [COMPILED]
    assert run.frameworks_of(DW, "all") == FRAMEWORKS


def test_only_selects_by_name_or_tag():
    names = [w.name for w in WORKLOADS if w.matches(["pool"])]
    assert names and all("Pool2D" in n for n in names)
    assert all(w.matches(["training"]) == w.name.startswith("Train") for w in WORKLOADS)
    assert all(w.matches([]) for w in WORKLOADS)


@needs_torch
@pytest.mark.slow
def test_torch_compile_step_agrees_with_eager():
    """The torch.compile peer computes what the eager one does (compiling takes ~30 s)."""
    recipe, shape = TINY_TRAINING["MLP"]
    make = training.training_workload("MLP", recipe, shape, lambda batch: 1.0).make
    eager, compiled = make(False).torch(collect=True), make(False).torch_compile()(collect=True)
    _same_results(compiled, eager, 1e-4)


def test_step_pool_keeps_one_process_per_framework_across_workloads():
    """A run's step processes load one workload after another (no new process,
    no new torch import, per workload); each is timed in every round."""
    args = argparse.Namespace(quick=True, seconds=0.02, min_reps=2, rounds=2, compile="none")
    names = ("ReLU [64,512]", "Flatten [64,64,8,8]")
    first, second = (next(w for w in WORKLOADS if w.name == name) for name in names)
    with run.StepPool(quick=True) as pool:
        run.time_workload(first, args, pool)
        pids = {name: p.proc.pid for name, p in pool.processes.items()}
        info, timings = run.time_workload(second, args, pool)
        assert {name: p.proc.pid for name, p in pool.processes.items()} == pids
    assert sorted(timings) == sorted(run.frameworks_of(second, "none"))
    assert all(len(t["round_medians"]) == 2 and t["spread"] >= 1 for t in timings.values())
    assert all(p.proc.returncode is not None for p in pool.processes.values())


def test_report_prints_saved_results_as_markdown_bold_where_layerc_is_slower(tmp_path, capsys):
    def timing(ms):
        return {"median": ms / 1e3, "min": ms / 1e3, "reps": 12, "round_medians": [ms / 1e3] * 6, "spread": 1.0}
    rows = [{"workload": "Conv2D x", "note": "", "layerc": timing(4.0), "torch": timing(2.0), "spread": 1.2,
             "vs": {"torch": 0.5}, "speedup_vs_fastest_other": 0.5, "GFLOP/s": 10.0, "fraction_of_limit": 0.1},
            {"workload": "ReLU y", "note": "", "layerc": timing(1.0), "torch": timing(2.0), "spread": 1.0,
             "vs": {"torch": 2.0}, "speedup_vs_fastest_other": 2.0}]
    saved = tmp_path / "results.json"
    saved.write_text(__import__("json").dumps({"meta": {"load": {"start": [1.0, 2.0, 3.0]}}, "rows": rows,
                                               "limits": {"triad_GBps": 30.0, "sgemm_GFLOPps": 100.0,
                                                          "threads": 2}}))
    assert run.main(["--report", str(saved), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "load average (1, 5, 15 min): start 1.00 2.00 3.00" in lines[0]
    conv, relu = (next(line for line in lines if line.startswith(f"| {name}")) for name in ("Conv2D", "ReLU"))
    assert conv.startswith("| Conv2D x | 4 | 2 | — | — | **0.50x** | — | **0.50x** | 10.0 GFLOP/s | 10% |")
    assert relu.startswith("| ReLU y | 1 | 2 | — | — | 2.00x | — | 2.00x |")


@pytest.mark.parametrize("name", list(cold_builds.LAYERS))
def test_cold_build_jax_twin_computes_what_the_layer_computes(name):
    """The cold-build table compares like with like: each jax twin's output and
    gradients (of the input and of every parameter) equal the layerc layer's."""
    pytest.importorskip("jax")
    make, shape, (twin, args) = cold_builds.LAYERS[name]
    module = eval(make, {"layerc": layerc})
    draw = np.random.default_rng(3)
    x = draw.standard_normal(shape).astype(np.float32)
    y = module.forward(x).numpy()
    gy = draw.standard_normal(y.shape).astype(np.float32)
    gx = module.backward(gy).numpy()
    params = [p for _, p in module.named_parameters()]
    step, _ = cold_builds.jax_twin(twin, args, shape)
    jy, grads = step(x, gy, *[p.data for p in params])
    np.testing.assert_allclose(np.asarray(jy), y, rtol=2e-4, atol=2e-5)
    for ours, theirs in zip([gx, *[p.grad for p in params]], grads):
        np.testing.assert_allclose(np.asarray(theirs), ours, rtol=2e-3, atol=2e-4)
    assert len(grads) == 1 + len(params)


@pytest.mark.slow
def test_cold_build_measures_both_frameworks_in_new_processes():
    pytest.importorskip("jax")
    [row] = cold_builds.run(runs=1, only="ReLU")
    assert row["layer"] == "ReLU" and row["layerc_wall_ms"] > 0 and row["jax_wall_ms"] > 0
    assert "ReLU" in cold_builds.format_rows([row])
