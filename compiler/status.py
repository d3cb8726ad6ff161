"""What a generated function returns: 0, or the kind of error that stopped it.

The generated module declares these codes (``templates/module.c.j2``); the
runtime turns a nonzero one into the exception ``error`` gives. A function
stops before a nest that cannot run (its outputs are then not written).

Example::

    >>> error("Conv", OUT_OF_MEMORY)
    MemoryError('Conv: a kernel could not allocate its workspace (status 1)')
"""
from __future__ import annotations

OUT_OF_MEMORY = 1       # a kernel's workspace (a packing buffer) could not be allocated
ZERO_DIVISOR = 2        # a size that divides an index expression is 0 where the nest runs

# the names the generated C gives them
CODES = {"LC_OUT_OF_MEMORY": OUT_OF_MEMORY, "LC_ZERO_DIVISOR": ZERO_DIVISOR}

_ERRORS = {
    OUT_OF_MEMORY: (MemoryError, "a kernel could not allocate its workspace"),
    ZERO_DIVISOR: (ValueError, "an index expression divides by a size that is 0 at the sizes of this call"),
}


def error(layer: str, status: int) -> Exception:
    """The exception for a nonzero ``status`` of one of ``layer``'s functions."""
    kind, what = _ERRORS.get(status, (RuntimeError, "a kernel failed"))
    return kind(f"{layer}: {what} (status {status})")
