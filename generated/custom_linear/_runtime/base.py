"""``Module``: the runtime interface of a layer (``forward``, ``backward``,
``parameters``), its parameters, buffers and submodules by attribute, and
checkpoints (``state_dict``, ``save``, ``load``).

Example::

    class Twice(Module):
        def forward(self, x):
            return x * 2

    model.save("checkpoint.npz"); model.load("checkpoint.npz")
"""
from __future__ import annotations

import numpy as np

from .checkpoint import check_state, describe_state, read_npz
from .tensor import Tensor


class Module:
    """Base of every runtime module: parameters, buffers and submodules are
    found by attribute, with dotted names for submodules (``q_proj.weight``)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_modules" not in self.__dict__:
            Module.__init__(self)
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Module):
            self._modules[name] = value
        elif isinstance(value, Tensor) and value.requires_grad:
            self._parameters[name] = value
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def backward(self, *grad_outputs):
        raise NotImplementedError(
            f"{type(self).__name__} has no explicit backward; call .backward() on a Tensor the "
            "forward produced (the tape differentiates Python compositions)")

    # ------------------------------------------------------------ state
    def named_parameters(self, prefix: str = ""):
        """``(dotted name, Tensor)`` for this module's parameters and its submodules'."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_buffers(f"{prefix}{name}.")

    def buffers(self) -> list:
        return [b for _, b in self.named_buffers()]

    def named_modules(self, prefix: str = ""):
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}{name}.")

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self) -> dict:
        """``{dotted name: array copy}`` of every parameter and buffer (running statistics)."""
        state = {name: np.array(p.data) for name, p in self.named_parameters()}
        state.update((name, np.array(b)) for name, b in self.named_buffers())
        return state

    def _state_targets(self) -> dict:
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(self.named_buffers())
        return targets

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy ``state`` into the parameters and buffers in place (``.numpy()`` views stay valid).

        Everything is checked before anything is written: ``KeyError`` names every
        missing or unexpected key (unless ``strict=False``), ``ValueError`` every
        key whose shape differs, ``TypeError`` every value whose dtype cannot
        become the module's (``same_kind`` casting)."""
        targets = self._state_targets()
        check_state(type(self).__name__, targets, describe_state(state), strict)
        for name, target in targets.items():
            if name in state:
                np.copyto(target, np.asarray(state[name]), casting="same_kind")

    def save(self, path) -> None:
        """Write ``state_dict()`` with ``numpy.savez`` (keys are the dotted names)."""
        np.savez(path, **self.state_dict())

    def load(self, path, strict: bool = True) -> None:
        """Read an .npz written by ``save`` and ``load_state_dict`` it. The
        archive's keys, shapes and dtypes are checked from its headers before
        any array is read; arrays of Python objects are refused."""
        state = read_npz(path, self._state_targets(), strict, type(self).__name__)
        self.load_state_dict(state, strict=strict)

    def __repr__(self):
        inner = "".join(f"\n  ({n}): {m!r}".replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({inner}\n)" if inner else f"{type(self).__name__}()"
