"""Data-parallel training of a layerc model under PyTorch's DistributedDataParallel.

A layerc ``Sequential`` (convolution, linear layers and a custom spec) is wrapped by ``to_torch`` and trained by ``torch.optim`` under
``DistributedDataParallel`` (gloo, CPU), each process on its shard of the data
(``DistributedSampler``). Rank 0 saves a checkpoint, which is then loaded into
a plain layerc model, no torch involved, and evaluated.

Run (2 processes on one machine):

    torchrun --nproc_per_node 2 examples/distributed_train.py

``--verify`` also checks, at the first step, that the gradients DDP averaged
over the ranks equal those of one model on the whole batch, and at the end
that every rank holds the same parameters; ``--report FILE`` writes what was
checked as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import layerc
from layerc import Input, Param, layer, ops
from layerc.nn import Conv2D, Flatten, Linear, ReLU
from layerc.torch_interop import to_torch

CLASSES = 3


@layer
class PReLU:
    """max(0, x) + alpha * min(0, x), one learnable slope per feature."""
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


def build_model(seed: int) -> layerc.Sequential:
    layerc.manual_seed(seed)
    # no batch norm: each rank would normalize by its own shard's statistics,
    # so the gradients could not equal one process's on the whole batch
    return layerc.Sequential(Conv2D(1, 4, 3, padding=1), ReLU(), Flatten(),
                             Linear(4 * 8 * 8, 16), PReLU.build(C=16), Linear(16, CLASSES))


def dataset(samples: int = 512) -> TensorDataset:
    """8x8 images whose class is which third of the image is brightest."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, CLASSES, samples)
    for k, c in enumerate(labels):
        x[k, 0, :, 3 * c:3 * c + 2] += 0.5
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(labels))


def full_batch_gradients(seed: int, x: torch.Tensor, y: torch.Tensor) -> dict:
    """One process, one model, the whole batch: the gradients DDP must reproduce."""
    wrapped = to_torch(build_model(seed))
    torch.nn.functional.cross_entropy(wrapped(x), y).backward()
    return {n: p.grad.numpy().copy() for n, p in wrapped.named_parameters()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="per process")
    parser.add_argument("--checkpoint", default=os.path.join(tempfile.gettempdir(), "layerc_ddp.npz"))
    parser.add_argument("--verify", action="store_true", help="check gradients and ranks (see above)")
    parser.add_argument("--report", help="write what was checked to this JSON file (rank 0)")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    seed = 7
    model = build_model(seed)                         # the same start on every rank
    ddp = torch.nn.parallel.DistributedDataParallel(to_torch(model))
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    data = dataset()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(data, batch_size=args.batch, sampler=sampler)
    report = {"world": world}
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for step, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            loss.backward()
            if args.verify and epoch == 0 and step == 0:
                report["max_gradient_difference"] = gradient_difference(ddp, seed, x, y, world)
            optimizer.step()
        if rank == 0:
            print(f"epoch {epoch}: loss {loss.item():.4f} (rank 0's last batch)")
    if args.verify:
        report["ranks_agree"] = ranks_agree(model)
    if rank == 0:
        model.save(args.checkpoint)
        report["accuracy"] = evaluate_checkpoint(args.checkpoint, seed, data)
        print(f"checkpoint {args.checkpoint}: accuracy {report['accuracy']:.3f} in a plain layerc model")
        if args.report:
            pathlib.Path(args.report).write_text(json.dumps(report))
    dist.barrier()              # every rank leaves together: none tears the group down under another
    dist.destroy_process_group()


def gradient_difference(ddp, seed: int, x, y, world: int) -> float:
    """Largest |DDP gradient - one process's gradient on every rank's batch together|."""
    xs, ys = [torch.empty_like(x) for _ in range(world)], [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(xs, x)
    dist.all_gather(ys, y)
    reference = full_batch_gradients(seed, torch.cat(xs), torch.cat(ys))
    return max(float(np.abs(p.grad.numpy() - reference[n]).max()) for n, p in ddp.module.named_parameters())


def ranks_agree(model: layerc.Sequential) -> bool:
    flat = torch.from_numpy(np.concatenate([p.numpy().ravel() for p in model.parameters()]))
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered)


def evaluate_checkpoint(path: str, seed: int, data: TensorDataset) -> float:
    plain = build_model(seed + 1)                     # other initial values, then the checkpoint
    plain.load(path)
    plain.eval()
    x, y = data.tensors
    with layerc.no_grad():
        predicted = plain(x.numpy()).numpy().argmax(axis=1)
    return float((predicted == y.numpy()).mean())


if __name__ == "__main__":
    main()
