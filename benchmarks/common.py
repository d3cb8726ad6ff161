"""What every benchmark workload is made of: a ``Workload`` (a name, the
frameworks that run it, and ``make(quick) -> Steps``) and its ``Steps`` (one
zero-argument step per framework, plus the flops or bytes of one step); and the
helpers that let a layerc model and its PyTorch twin start from the same values.

The steps of the layer and training workloads take ``collect=False``; with
``collect=True`` a step returns what it computed (output, loss, gradients by
torch-style name, parameters after the update), so that tests can check that
the frameworks compute the same thing. The timing calls them without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

try:
    import torch
except ImportError:                      # PyTorch is optional
    torch = None

F32 = np.float32
EAGER_PEERS = ("layerc", "numpy", "torch")
COMPILED = "torch.compile"


@dataclass
class Steps:
    layerc: Callable | None
    numpy: Callable | None
    torch: Callable | None
    bytes: float = 0.0          # minimum memory traffic of one step (memory-bound workloads)
    flops: float = 0.0          # arithmetic of one step (contractions)
    build: str | None = None    # source of ``Spec.build(...)`` for the build-time measurement
    note: str = ""
    # () -> a step running the torch model through ``torch.compile`` (compiled at its first call)
    torch_compile: Callable | None = None


@dataclass
class Workload:
    name: str
    make: Callable               # (quick: bool) -> Steps
    frameworks: tuple = EAGER_PEERS
    compile: bool = False        # whether the default run times torch.compile too (it costs seconds)
    tags: tuple = field(default_factory=tuple)   # what ``--only`` matches besides the name

    def matches(self, patterns) -> bool:
        """Whether any of ``patterns`` (lower case) is in the name or a tag."""
        words = [self.name.lower(), *self.tags]
        return not patterns or any(p in w for p in patterns for w in words)


def rng():
    return np.random.default_rng(0)


def as_torch(a, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_(grad) if grad else t


def copy_into_torch(layerc_model, torch_model, rename=None) -> None:
    """Give ``torch_model`` the parameters and buffers of ``layerc_model``,
    matched by name (``rename`` maps a layerc name to torch's where they
    differ). Both must have exactly the same names and shapes: the twin is
    built to be the same model, and this checks it."""
    rename = rename or {}
    ours = {rename.get(n, n): np.asarray(p.data) for n, p in layerc_model.named_parameters()}
    ours.update({rename.get(n, n): np.asarray(b) for n, b in layerc_model.named_buffers()})
    theirs = dict(torch_model.named_parameters())
    theirs.update((n, b) for n, b in torch_model.named_buffers() if n in ours or b.is_floating_point())
    if sorted(ours) != sorted(theirs):
        raise ValueError(f"layerc model {sorted(ours)} and torch model {sorted(theirs)} differ")
    with torch.no_grad():
        for name, t in theirs.items():
            if tuple(t.shape) != ours[name].shape:
                raise ValueError(f"{name}: layerc {ours[name].shape}, torch {tuple(t.shape)}")
            t.copy_(torch.from_numpy(ours[name]))


def layerc_grads(model) -> dict:
    return {f"grad:{n}": np.array(p.grad) for n, p in model.named_parameters()}


def torch_grads(model) -> dict:
    return {f"grad:{n}": p.grad.numpy().copy() for n, p in model.named_parameters()}
