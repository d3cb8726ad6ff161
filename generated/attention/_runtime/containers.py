"""Composition: ``Sequential`` (a chain of modules), ``Residual`` (``x +
block(x)``), ``ModuleList`` (modules held for a forward of the user's) and
``Identity``.

Both work two ways: through the autograd tape (``loss.backward()``), and with
an explicit ``backward(grad_output)`` that runs the parts' own backward in
reverse order, as the guide's modules do.

Example::

    model = Sequential([Linear(784, 256), PReLU(256), Linear(256, 10)])
    y = model(x)                        # Tensor on the tape
    gx = model.backward(np.ones_like(y.numpy()))   # or: loss.backward()
"""
from __future__ import annotations

from .base import Module
from .tensor import Tensor


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class ModuleList(Module):
    """Modules held in order, registered as submodules ``"0"``, ``"1"``, … (their
    parameters in ``parameters()`` and ``state_dict()``, as ``torch.nn.ModuleList``);
    no forward of its own: the holder's forward calls them.

    >>> blocks = ModuleList([Identity(), Identity()])
    >>> len(blocks), [name for name, _ in blocks.named_modules()][1:]
    (2, ['0', '1'])
    """

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__} takes modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return type(self)(modules[index]) if isinstance(index, slice) else modules[index]


class Sequential(ModuleList):
    """Modules applied in order: ``Sequential([a, b, c])`` or ``Sequential(a, b, c)``.

    Submodules are named ``"0"``, ``"1"``, … so parameters read ``0.weight``
    in ``named_parameters()`` and ``state_dict()``, as in ``torch.nn.Sequential``."""

    def __init__(self, *modules):
        super().__init__(modules[0] if len(modules) == 1 and isinstance(modules[0], (list, tuple)) else modules)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_output):
        """Gradient of the input of the latest forward; parameter gradients accumulate."""
        g = grad_output
        for m in reversed(list(self._modules.values())):
            g = m.backward(g)
        return g


class Residual(Module):
    """``after(x + block(x))`` (``after`` optional): a residual connection.

    The guide's ``ResidualBlock`` is
    ``Residual(Sequential(conv1, bn1, ReLU(), conv2, bn2), after=ReLU())``."""

    def __init__(self, block: Module, after: Module | None = None):
        super().__init__()
        self.block = block
        if after is not None:
            self.after = after

    def forward(self, x):
        x = _tensor(x)
        y = x + self.block(x)
        return self.after(y) if "after" in self._modules else y

    def backward(self, grad_output):
        """The identity's gradient plus the block's, through ``after`` first."""
        g = grad_output
        if "after" in self._modules:
            g = self.after.backward(g)
        g = _tensor(g)
        return Tensor(g.data + _tensor(self.block.backward(g)).data)


class Identity(Module):
    """``torch.nn.Identity``: the input, as it is (arguments ignored, as torch's);
    its gradient passes through."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return _tensor(x)

    def backward(self, grad_output):
        return _tensor(grad_output)
