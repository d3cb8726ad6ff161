"""Whole training steps (forward, cross-entropy loss, backward, Adam step) of the
models users train, in layerc and as the same model in PyTorch: a CIFAR-sized
CNN, a stack of ResNet basic blocks, an MLP.

Each model is built twice from the same recipe (``layerc.nn`` / ``torch.nn``
layer for layer, the same names), and the torch twin starts from the layerc
model's parameters and buffers (``copy_into_torch`` checks names and shapes).
The ``torch.compile`` peer compiles the forward and the loss (AOTAutograd
compiles their backward too); its Adam step runs eagerly, as the eager peer's.

Rates count the convolutions' and linear layers' multiply-adds, 3x their
forward (forward, input gradient, weight gradient), as the layer workloads do.
"""
from __future__ import annotations

import numpy as np

from .common import COMPILED, F32, Steps, Workload, as_torch, copy_into_torch, layerc_grads, rng, torch, \
    torch_grads

LR = 1e-3
CLASSES = 10


def _params(model, read) -> dict:
    return {f"param:{n}": read(p) for n, p in model.named_parameters()}


def layerc_training_step(model, x, labels):
    from layerc import Adam
    from layerc.losses import cross_entropy
    optimizer = Adam(model.parameters(), lr=LR)

    def step(collect=False):
        optimizer.zero_grad()
        loss = cross_entropy(model(x), labels)
        loss.backward()
        grads = layerc_grads(model) if collect else None
        optimizer.step()
        if collect:
            return {"loss": np.array(float(loss)), **grads, **_params(model, lambda p: np.array(p.data))}
    return step


def torch_training_step(loss_of, model, x, labels):
    """A step of ``loss_of(x, labels)`` (eager, or compiled) and Adam on ``model``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    tx, tl = as_torch(x), as_torch(labels)

    def step(collect=False):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(tx, tl)
        loss.backward()
        grads = torch_grads(model) if collect else None
        optimizer.step()
        if collect:
            return {"loss": loss.detach().numpy().copy(), **grads,
                    **_params(model, lambda p: p.detach().numpy().copy())}
    return step


def training_workload(name, recipe, shape, flops):
    """A workload timing training steps of ``recipe(nn)`` (``nn`` is
    ``layerc.nn`` or ``torch.nn``, with ``Sequential`` and ``Residual``) on a
    batch of ``shape`` with random labels; ``flops(batch)`` of one step."""
    def make(quick):
        batch = max(shape[0] // 4, 2) if quick else shape[0]
        draw = rng()
        x = draw.standard_normal((batch, *shape[1:]), F32)
        labels = draw.integers(0, CLASSES, batch).astype(np.int64)
        model = recipe(layerc_layers())
        tstep = compiled = None
        if torch is not None:
            tmodel = recipe(torch_layers())
            copy_into_torch(model, tmodel)

            def loss_of(tx, tl):
                return torch.nn.functional.cross_entropy(tmodel(tx), tl)
            tstep = torch_training_step(loss_of, tmodel, x, labels)

            def compiled():
                return torch_training_step(torch.compile(loss_of), tmodel, x, labels)
        return Steps(layerc_training_step(model, x, labels), None, tstep, flops=flops(batch),
                     torch_compile=compiled, note="fwd + cross entropy + bwd + Adam")
    return Workload(name, make, ("layerc", "torch", COMPILED), True, ("training",))


# ---------------------------------------------------------------- the models


def layerc_layers():
    import layerc
    import layerc.nn
    return _Layers(layerc.nn, layerc.Sequential, layerc.Residual)


def torch_layers():
    return _Layers(torch.nn, torch.nn.Sequential, TorchResidual)


class _Layers:
    """The layer classes a recipe builds from; ``Conv2D`` etc. by layerc's names."""

    def __init__(self, nn, sequential, residual):
        torch_names = nn.__name__.startswith("torch")
        for ours in ("Conv2D", "BatchNorm2D", "MaxPool2D", "AvgPool2D"):
            setattr(self, ours, getattr(nn, ours[:-1] + "d" if torch_names else ours))
        self.ReLU, self.Flatten, self.Linear = nn.ReLU, nn.Flatten, nn.Linear
        self.Sequential = (lambda *ms: sequential(*ms)) if torch_names else (lambda *ms: sequential(list(ms)))
        self.Residual = residual


if torch is not None:
    class TorchResidual(torch.nn.Module):
        """``layerc.Residual`` in torch: ``after(x + block(x))``, the same submodule names."""

        def __init__(self, block, after):
            super().__init__()
            self.block, self.after = block, after

        def forward(self, x):
            return self.after(x + self.block(x))
else:
    TorchResidual = None


def cifar_cnn(nn, width=32):
    def stage(c, o):
        return [nn.Conv2D(c, o, 3, padding=1, bias=False), nn.BatchNorm2D(o), nn.ReLU(), nn.MaxPool2D(2)]
    return nn.Sequential(*stage(3, width), *stage(width, 2 * width), nn.Flatten(),
                         nn.Linear(2 * width * 8 * 8, CLASSES))


def resnet_blocks(nn, channels=64, blocks=2, size=16):
    def block():
        return nn.Residual(nn.Sequential(nn.Conv2D(channels, channels, 3, padding=1, bias=False),
                                         nn.BatchNorm2D(channels), nn.ReLU(),
                                         nn.Conv2D(channels, channels, 3, padding=1, bias=False),
                                         nn.BatchNorm2D(channels)), nn.ReLU())
    return nn.Sequential(*[block() for _ in range(blocks)], nn.AvgPool2D(size), nn.Flatten(),
                         nn.Linear(channels, CLASSES))


def mlp(nn, sizes=(784, 512, 512)):
    layers = [m for i, o in zip(sizes, sizes[1:]) for m in (nn.Linear(i, o), nn.ReLU())]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], CLASSES))


def _multiply_adds_x6(*terms):
    """3 x 2 flops per multiply-add of the forward's contractions."""
    return lambda batch: 6.0 * batch * sum(terms)


TRAINING_WORKLOADS = [
    training_workload("Train CIFAR CNN [64,3,32,32]", cifar_cnn, (64, 3, 32, 32),
                      _multiply_adds_x6(32 * 32 * 32 * 3 * 9, 64 * 16 * 16 * 32 * 9, 64 * 8 * 8 * CLASSES)),
    training_workload("Train ResNet 2 blocks [16,64,16,16]", resnet_blocks, (16, 64, 16, 16),
                      _multiply_adds_x6(4 * 64 * 16 * 16 * 64 * 9, 64 * CLASSES)),
    training_workload("Train MLP 784-512-512-10 [64,784]", mlp, (64, 784),
                      _multiply_adds_x6(784 * 512, 512 * 512, 512 * CLASSES)),
]


def overhead_report(reps: int = 300) -> str:
    """The MLP's training step (layerc) split into its compiled kernels' own time
    and the rest (the Python of the tape, modules and optimizer), and torch
    eager's step in the same process: ``python -m benchmarks.training``."""

    from .measure import kernel_share, time_step
    draw = rng()
    x = draw.standard_normal((64, 784), F32)
    labels = draw.integers(0, CLASSES, 64).astype(np.int64)
    model = mlp(layerc_layers())
    share = kernel_share(layerc_training_step(model, x, labels), reps)
    lines = [f"MLP 784-512-512-10, batch 64: step {share['step_s'] * 1e3:.3f} ms, kernels "
             f"{share['kernels_s'] * 1e3:.3f} ms, the rest (Python) {share['python_share']:.1%}"]
    lines += [f"  {name:28} {s * 1e3:8.3f} ms" for name, s in sorted(share["by_kernel"].items(), key=lambda kv: -kv[1])]
    if torch is not None:
        tmodel = mlp(torch_layers())
        copy_into_torch(model, tmodel)
        tstep = torch_training_step(lambda a, b: torch.nn.functional.cross_entropy(tmodel(a), b), tmodel, x, labels)
        lstep = layerc_training_step(model, x, labels)
        pairs = [(time_step(lstep, 0.5, 20)["median"], time_step(tstep, 0.5, 20)["median"]) for _ in range(5)]
        ratio = sorted(t / l for l, t in pairs)[len(pairs) // 2]
        lines.append(f"torch eager / layerc (median of 5 interleaved rounds): {ratio:.2f}x "
                     f"(layerc {sorted(p[0] for p in pairs)[2] * 1e3:.3f} ms, torch {sorted(p[1] for p in pairs)[2] * 1e3:.3f} ms)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(overhead_report())
