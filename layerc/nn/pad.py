"""Padding layers with torch.nn's names: ``ZeroPad1d``/``2d``,
``ConstantPad1d``/``2d``, ``ReflectionPad1d``/``2d``, ``ReplicationPad1d``/``2d``
and ``CircularPad1d``/``2d``, on batched (``[N, C, ...]``) or unbatched
(``[C, ...]``) inputs. ``padding`` is an int (every side) or torch's tuple,
last axis first: ``(left, right)``, or ``(left, right, top, bottom)``. One spec
per input rank, padding, mode and value: ``ops.pad`` for a constant (a read
outside the input is zero, the value selected there), ``padding.pad`` for the
copies that mirror, clamp or wrap (a gather: ``ops.pad``'s reads of the mirror
ran the backward 5x slower, nine masked reads an element). The gradient is the output's gradient over the input's place
(the border's summed into the elements it copies, for the mirroring modes).
A layer builds per size of its padded axes (the batch and channels stay
free): at a known size each stretch of a row, between the border's ends and
where a mirrored, clamped or wrapped read turns, runs as a loop of its own
(``compiler/pieces.py``), forward and gradient (CircularPad2d(3) at
[8,64,56,56]: forward + backward 8.5 -> 2.3 ms). After its first 8 sizes
(``SpecLayer._per_size``) one build with the sizes free serves the rest.

Example::

    y = ReflectionPad2d((1, 1, 2, 0))(np.ones((2, 3, 4, 5), np.float32))   # [2, 3, 6, 7]
"""
from __future__ import annotations

import functools

import numpy as np

from ..compiler import ops
from ..compiler.spec import Input
from .assemble import assemble
from .base import _DIMS, _is_int, _rank, _Stateless
from .padding import check_padded_size, pad


@functools.lru_cache(maxsize=None)
def pad_spec(rank: int, pads: tuple, mode: str, value: float = 0.0):
    """The spec of a rank-``rank`` input padded by ``pads`` over its trailing axes in ``mode``."""
    declared = {"x": Input(*_DIMS[:rank])}

    def body(t):
        if mode != "constant":
            return pad(t["x"], pads, mode)
        return ops.pad(t["x"], ((0, 0),) * (rank - len(pads)) + tuple(pads), mode, value)
    tag = "_".join(f"{b}_{a}" for b, a in pads)
    return assemble(f"Pad{mode.capitalize()}{rank}D_{tag}", declared, body)


class _Pad(_Stateless):
    """A padding layer: ``MODE`` over the trailing ``AXES`` axes of a batched or unbatched input."""

    MODE, AXES = "constant", 1

    def __init__(self, padding, value=0.0, dtype=None):
        super().__init__(dtype)
        name, sides = type(self).__name__, 2 * self.AXES
        values = (padding,) * sides if _is_int(padding) else \
            tuple(padding) if isinstance(padding, (tuple, list)) else (None,)
        if len(values) != sides or not all(_is_int(p) and p >= 0 for p in values):
            raise ValueError(f"{name}: padding must be an integer >= 0 or {sides} of them, got {padding!r}")
        self.padding = tuple(int(p) for p in values)
        self.value = float(value)

    def _pads(self) -> tuple:
        """``(before, after)`` per padded axis, first axis first (torch lists the last first)."""
        return tuple((self.padding[2 * k], self.padding[2 * k + 1]) for k in reversed(range(self.AXES)))

    def _select(self, inputs):
        rank, name = _rank(inputs), type(self).__name__
        if rank not in (self.AXES + 1, self.AXES + 2):
            raise ValueError(f"{name}: input must be [N, C, {self.AXES} axes] or [C, {self.AXES} axes], "
                             f"got rank {rank}")
        pads, sizes = self._pads(), np.shape(_data(inputs[0]))[-self.AXES:]
        check_padded_size(name, self.MODE, pads, sizes)
        # built per size of the padded axes: where the border ends and where a
        # mirrored, clamped or wrapped read turns are constants, and each stretch
        # between them is a loop of its own (its value, a copy, a reversed read)
        padded = dict(zip(_DIMS[rank - self.AXES:rank], sizes))
        return pad_spec(rank, pads, self.MODE, self.value), self._per_size(padded)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.MODE == "constant" and self.value else "")


def _data(x):
    return getattr(x, "data", x)


def _pad_layer(name: str, mode: str, axes: int, doc: str, with_value: bool = False):
    """A ``_Pad`` class named ``name``; ``with_value``: its constructor takes torch's ``value``."""
    if with_value:
        def init(self, padding, value, dtype=None):
            _Pad.__init__(self, padding, value, dtype)
    else:
        def init(self, padding, dtype=None):
            _Pad.__init__(self, padding, 0.0, dtype)
    return type(name, (_Pad,), {"__doc__": doc, "__module__": __name__, "MODE": mode, "AXES": axes,
                                "__init__": init})


# torch's padding layers, a row each: (mode, whether it takes ``value``, what the border holds)
_KINDS = {"Zero": ("constant", False, "zeros"),
          "Constant": ("constant", True, "``value``"),
          "Reflection": ("reflect", False, "the mirror, edge not repeated"),
          "Replication": ("replicate", False, "the edge element repeated"),
          "Circular": ("circular", False, "the other end of the axis")}
_LAYERS = {f"{kind}Pad{axes}d": _pad_layer(
    f"{kind}Pad{axes}d", mode, axes,
    f"``torch.nn.{kind}Pad{axes}d(padding{', value' if with_value else ''})``: {what}, on the last "
    f"{'axis' if axes == 1 else 'two axes'}.", with_value)
    for kind, (mode, with_value, what) in _KINDS.items() for axes in (1, 2)}
globals().update(_LAYERS)
PADS = tuple(_LAYERS)
