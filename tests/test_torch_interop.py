"""layerc layers inside PyTorch: autograd.Function, shared memory, torch.optim,
and two-process torch.distributed data-parallel training."""
import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from layerc import Buffer, Input, layer, ops  # noqa: E402
import layerc  # noqa: E402
from layerc.torch_interop import TorchModule, to_torch  # noqa: E402
from layers import Dense, PReLU


@layer
class RunningMean:
    x = Input("N", "C")
    running = Buffer("C", init=0.0)

    def forward(x, running):
        ops.assign(running, 0.5 * running + 0.5 * ops.mean(x, axis=0))
        return x - ops.mean(x, axis=0)


@layer
class Pick:
    logits = Input("N", "K")
    target = Input("N", 1, dtype="int64")

    def forward(logits, target):
        return -ops.take_along_axis(ops.log_softmax(logits, axis=1), target, axis=1)


def f64(*shape, requires_grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=requires_grad)


# ------------------------------------------------------------------ autograd

def test_gradcheck_prelu_float64():
    t = to_torch(PReLU.build(C=5, dtype="float64"))
    with torch.no_grad():
        t.alpha.copy_(torch.linspace(-0.5, 0.7, 5, dtype=torch.float64))
    x = f64(4, 5)
    assert torch.autograd.gradcheck(lambda x, a: t(x), (x, t.alpha))


def test_gradcheck_dense_float64_all_arguments():
    t = to_torch(Dense.build(I=3, O=4, dtype="float64"))
    x = f64(6, 3)
    assert torch.autograd.gradcheck(lambda x, w, b: t(x), (x, t.weight, t.bias))


def test_integer_input_is_not_differentiated():
    t = to_torch(Pick.build(K=4, dtype="float64"))
    logits = f64(5, 4)
    target = torch.tensor([[0], [3], [1], [2], [3]])
    assert torch.autograd.gradcheck(lambda z: t(z, target), (logits,))
    ref = -torch.log_softmax(logits, 1).gather(1, target)
    torch.testing.assert_close(t(logits, target).reshape(ref.shape), ref)


def test_matches_torch_prelu_forward_and_backward():
    t = to_torch(PReLU.build(C=6))
    with torch.no_grad():
        t.alpha.uniform_(-1, 1)
    alpha_ref = t.alpha.detach().clone().requires_grad_()
    x = torch.randn(8, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(8, 6)
    y = t(x)
    y.backward(g)
    y_ref = torch.nn.functional.prelu(x_ref, alpha_ref)
    y_ref.backward(g)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(t.alpha.grad, alpha_ref.grad)


def test_each_call_keeps_its_own_context():
    """The same layer used twice in one graph: each backward uses its own call's inputs."""
    t = to_torch(PReLU.build(C=3, dtype="float64"))
    x = f64(4, 3)
    assert torch.autograd.gradcheck(lambda x, a: t(t(x) * 2.0 - 1.0) + t(-x), (x, t.alpha))
    y1, y2 = t(x), t(x * 3.0)     # backward in the opposite order of the forwards
    (y2.sum() * 2 + y1.sum()).backward()
    alpha = t.alpha.detach()
    expected = 2 * torch.where(3 * x > 0, 3.0, alpha * 3) + torch.where(x > 0, 1.0, alpha)
    torch.testing.assert_close(x.grad, expected.detach())


def test_outputs_of_later_calls_do_not_overwrite_earlier_ones():
    t = to_torch(PReLU.build(C=3))
    x = torch.randn(4, 3)
    y1 = t(x)
    kept = y1.clone()
    for k in range(5):
        t(x * (k + 2))
    torch.testing.assert_close(y1, kept)


def test_retain_graph_runs_backward_twice():
    t = to_torch(PReLU.build(C=3, dtype="float64"))
    x = f64(2, 3)
    y = t(x).sum()
    y.backward(retain_graph=True)
    first = x.grad.clone()
    y.backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_in_place_edit_before_backward_is_caught():
    t = to_torch(PReLU.build(C=3))
    x = torch.randn(2, 3, requires_grad=True)
    h = x * 1.0
    y = t(h).sum()
    with torch.no_grad():
        h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_no_grad_call_saves_nothing():
    t = to_torch(PReLU.build(C=3))
    with torch.no_grad():
        y = t(torch.randn(2, 3))
    assert not y.requires_grad and y.shape == (2, 3)


# ------------------------------------------------------------------ shared memory

def test_parameters_share_memory_with_layerc():
    m = Dense.build(I=3, O=2)
    t = to_torch(m)
    assert {n for n, _ in t.named_parameters()} == {"weight", "bias"}
    assert all(isinstance(p, torch.nn.Parameter) for p in t.parameters())
    assert np.shares_memory(t.weight.detach().numpy(), m.weight.data)
    with torch.no_grad():
        t.bias.fill_(3.0)
    np.testing.assert_array_equal(m.bias.data, np.full(2, 3.0, np.float32))
    m.weight.data[0, 0] = 42.0                     # and the other way round
    assert t.weight[0, 0].item() == 42.0


def test_rebinding_param_data_is_followed():
    m = PReLU.build(C=2)
    t = to_torch(m)
    t.alpha.data = torch.tensor([0.5, 2.0])
    y = t(torch.tensor([[-1.0, -1.0]]))
    torch.testing.assert_close(y, torch.tensor([[-0.5, -2.0]]))
    assert np.shares_memory(m.alpha.data, t.alpha.detach().numpy())


def test_contiguous_inputs_are_not_copied():
    m = PReLU.build(C=4)
    t = to_torch(m)
    x = torch.randn(3, 4)
    t(x)
    # layerc saw the torch storage itself: its saved context holds a view of x
    assert np.shares_memory(m._last["arrays"]["x"], x.numpy())


def test_buffers_shared_and_follow_train_eval():
    m = RunningMean.build(C=3, dtype="float64")
    t = to_torch(m)
    assert dict(t.named_buffers()).keys() == {"running"}
    x = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], dtype=torch.float64)
    t(x)
    torch.testing.assert_close(t.running, torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64))
    assert np.shares_memory(m._buffers["running"], t.running.numpy())
    t.eval()
    assert not m.training
    t(x)
    torch.testing.assert_close(t.running, torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64))
    t.train()
    assert m.training


def test_errors_name_the_layer():
    t = to_torch(PReLU.build(C=3))
    with pytest.raises(TypeError, match="PReLU"):
        t(torch.randn(2, 3, dtype=torch.float64))       # float32 layer, float64 input
    with pytest.raises(TypeError, match="PReLU"):
        t(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(Exception, match="PReLU"):
        t(torch.randn(2, 4))                            # C is bound to 3
    with pytest.raises(TypeError, match="to_torch"):
        to_torch(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------ training with torch.optim

def _reference_prelu_model(torch_model, layerc_model):
    """A pure-torch twin of the model with torch.nn.PReLU in place of the layerc layer."""
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.PReLU(8), torch.nn.Linear(8, 1))
    with torch.no_grad():
        for (_, p_ref), (_, p) in zip(ref.named_parameters(), torch_model.named_parameters()):
            p_ref.copy_(p)
    return ref


def test_trains_inside_a_torch_model_like_torch_prelu():
    torch.manual_seed(0)
    layerc_prelu = PReLU.build(C=8)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), to_torch(layerc_prelu), torch.nn.Linear(8, 1))
    ref = _reference_prelu_model(model, layerc_prelu)
    x = torch.randn(64, 4)
    y = (x[:, :1] - 2 * x[:, 1:2]).abs()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        for m, o in ((model, opt), (ref, opt_ref)):
            o.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            loss.backward()
            o.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    for (name, p), (_, p_ref) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-4, atol=1e-5, msg=name)
    # torch.optim updated the layerc module's own array
    np.testing.assert_array_equal(layerc_prelu.alpha.data, model[1].alpha.detach().numpy())
    assert not np.allclose(layerc_prelu.alpha.data, 0.25)


# ------------------------------------------------------------------ torch.distributed

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data_parallel_worker(rank, world, port, result_dir, use_ddp):
    import datetime

    import torch.distributed as dist

    from layerc.runtime.random import manual_seed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        manual_seed(100 + rank)                 # different initial weights per rank ...
        torch.manual_seed(rank)
        dense = Dense.build(I=4, O=3, dtype="float64")
        model = torch.nn.Sequential(to_torch(dense), torch.nn.Linear(3, 1, dtype=torch.float64))
        if use_ddp:
            trained = torch.nn.parallel.DistributedDataParallel(model)   # ... equal after DDP's broadcast
        else:
            trained = model
            for p in model.parameters():                                  # ... or after our own
                dist.broadcast(p.data, src=0)
        # plain SGD by hand: constructing a torch.optim optimizer imports torch._dynamo (~10 s per
        # process); torch.optim itself is covered by test_trains_inside_a_torch_model_like_torch_prelu
        g = torch.Generator().manual_seed(1234 + rank)                    # each rank its own data shard
        for _ in range(15):
            x = torch.randn(16, 4, dtype=torch.float64, generator=g)
            y = x.sum(dim=1, keepdim=True).sin()
            model.zero_grad()
            torch.nn.functional.mse_loss(trained(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    if not use_ddp:
                        dist.all_reduce(p.grad)
                        p.grad /= world
                    p -= 0.2 * p.grad
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        np.save(os.path.join(result_dir, f"rank{rank}.npy"), flat.numpy())
        np.save(os.path.join(result_dir, f"layerc{rank}.npy"),
                np.concatenate([dense.weight.data.ravel(), dense.bias.data.ravel()]))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
@pytest.mark.parametrize("use_ddp", [
    False,
    # DistributedDataParallel itself: its constructor imports torch._dynamo (~15 s more per process)
    pytest.param(True, marks=pytest.mark.slow, id="DistributedDataParallel"),
])
def test_data_parallel_two_processes(tmp_path, use_ddp):
    import torch.multiprocessing as mp

    Dense.build(I=4, O=3, dtype="float64")        # compile once here; the workers hit the disk cache
    ctx = mp.start_processes(_data_parallel_worker, args=(2, _free_port(), str(tmp_path), use_ddp), nprocs=2,
                             join=False, start_method="spawn")
    for p in ctx.processes:
        p.join(180)
    alive = [p for p in ctx.processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a torch.distributed worker did not finish within 180 s"
    assert [p.exitcode for p in ctx.processes] == [0, 0]
    r0, r1 = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    np.testing.assert_array_equal(r0, r1)
    # the layerc arrays on each rank are the trained torch parameters (shared memory)
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"layerc{rank}.npy"), r0[:15])
    # and training moved them away from rank 0's initial values
    from layerc.runtime.random import manual_seed
    manual_seed(100)
    initial = Dense.build(I=4, O=3, dtype="float64")
    assert not np.allclose(initial.weight.data.ravel(), r0[:12])


def test_to_torch_is_exported():
    assert isinstance(to_torch(PReLU.build(C=1)), TorchModule)


@layer
class SoftmaxCrossEntropy:
    logits = Input("N", "K")
    target = Input("N", dtype="int64")

    def forward(logits, target):
        N, K = logits.shape
        logp = ops.log_softmax(logits, axis=1)
        return ops.mean(-ops.compute((N,), lambda n: logp[n, target[n]]))


def test_backward_through_a_retained_graph_is_the_same_every_time():
    """The loss's backward writes its gradient over what its forward kept: a
    second backward replays the forward rather than reading the overwritten terms."""
    wrapped = to_torch(SoftmaxCrossEntropy.build(K=7, dtype="float64"))
    logits, target = f64(5, 7), torch.tensor([0, 6, 3, 3, 1])
    for _ in range(2):                                 # the second call at a shape runs the planned path
        loss = wrapped(logits, target)
        grads = []
        for _ in range(3):
            logits.grad = None
            loss.backward(retain_graph=True)
            grads.append(logits.grad.clone())
        for g in grads[1:]:
            torch.testing.assert_close(g, grads[0], rtol=0, atol=0)
    reference = torch.nn.functional.cross_entropy(logits, target)
    torch.testing.assert_close(grads[0], torch.autograd.grad(reference, logits)[0])


# ------------------------------------------------------------------ whole models

class _Residual(layerc.Module):
    """A user's Module subclass: x + body(x), written in Python on the tape."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def _cnn():
    layerc.manual_seed(3)
    nn = layerc.nn
    return layerc.Sequential(nn.Conv2D(2, 3, 3, padding=1, dtype=np.float64), nn.BatchNorm2D(3, dtype=np.float64),
                             nn.ReLU(), _Residual(nn.Conv2D(3, 3, 1, dtype=np.float64)), nn.Flatten(),
                             nn.Linear(3 * 4 * 4, 2, dtype=np.float64))


def test_a_model_is_wrapped_with_its_state_dict_names_and_shared_memory():
    model = _cnn()
    wrapped = to_torch(model)
    assert isinstance(wrapped, TorchModule)
    assert sorted(wrapped.state_dict()) == sorted(model.state_dict())
    for name, p in wrapped.named_parameters():
        layerc_param = dict(model.named_parameters())[name]
        assert p.data_ptr() == layerc_param.data.ctypes.data
    with torch.no_grad():
        wrapped.get_parameter("5.bias").add_(1.0)
    np.testing.assert_array_equal(model[5].bias.numpy(), wrapped.get_parameter("5.bias").detach().numpy())


def test_model_gradients_equal_the_layerc_tape_and_running_stats_update_once():
    model = _cnn()
    wrapped = to_torch(model)
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4))
    before = model[1].running_mean.copy()
    loss = (wrapped(torch.from_numpy(x)) ** 2).sum()
    loss.backward(retain_graph=True)
    first = {n: p.grad.clone() for n, p in wrapped.named_parameters()}
    loss.backward()                                    # a replayed forward, no second running-stats update
    for n, p in wrapped.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), 2 * first[n].numpy(), rtol=1e-12, atol=1e-12)
    once = to_torch(_cnn())
    once(torch.from_numpy(x))
    np.testing.assert_array_equal(model[1].running_mean, once.module[1].running_mean)
    assert not np.array_equal(model[1].running_mean, before)
    reference = _cnn()
    out = reference(layerc.Tensor(x))
    (out * out).sum().backward()
    for name, p in reference.named_parameters():
        np.testing.assert_allclose(first[name].numpy(), p.grad, rtol=1e-10, atol=1e-12)


def test_model_passes_torch_gradcheck_and_follows_train_eval():
    wrapped = to_torch(_cnn())
    x = f64(2, 2, 4, 4)
    wrapped.eval()
    assert not wrapped.module.training and not wrapped.module[1].training
    assert torch.autograd.gradcheck(lambda x, *params: wrapped(x), (x, *wrapped.parameters()))
    wrapped.train()
    assert wrapped.module[1].training
    assert torch.autograd.gradcheck(lambda x, *params: wrapped(x), (x, *wrapped.parameters()))


def test_a_model_trains_under_torch_optim():
    layerc.manual_seed(0)
    model = layerc.Sequential(layerc.nn.Linear(3, 8), PReLU.build(C=8), layerc.nn.Linear(8, 1))
    wrapped = to_torch(model)
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = x[:, :1] - x[:, 1:2].abs()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(wrapped(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_array_equal(model[0].weight.numpy(), wrapped.get_parameter("0.weight").detach().numpy())


def test_to_torch_refuses_what_is_not_a_layerc_module():
    with pytest.raises(TypeError, match="layerc Module"):
        to_torch(object())


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_distributed_example_under_torchrun_two_processes(tmp_path):
    """examples/distributed_train.py as the README runs it: the ranks end equal,
    DDP's first gradients equal one process's on the whole batch, and the
    checkpoint rank 0 saved classifies in a plain layerc model."""
    import json
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         os.path.join(root, "examples", "distributed_train.py"), "--verify", "--report", str(report),
         "--checkpoint", str(tmp_path / "model.npz")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checked = json.loads(report.read_text())
    assert checked["world"] == 2 and checked["ranks_agree"] is True
    assert checked["max_gradient_difference"] < 1e-5
    assert checked["accuracy"] > 0.7
