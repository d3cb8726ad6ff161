"""What a generated function returns: 0, or the kind of error that stopped it.

The generated module declares these codes (``templates/module.c.j2``); the
layer's record carries ``STATUSES`` to the runtime, which raises the
exception named there for a nonzero one. A function stops before a nest that
cannot run (its outputs are then not written).

Example::

    >>> STATUSES[0]
    (1, 'MemoryError', 'a kernel could not allocate its workspace')
"""
from __future__ import annotations

OUT_OF_MEMORY = 1       # a kernel's workspace (a packing buffer) could not be allocated
ZERO_DIVISOR = 2        # a size that divides an index expression is 0 where the nest runs

# the names the generated C gives them
CODES = {"LC_OUT_OF_MEMORY": OUT_OF_MEMORY, "LC_ZERO_DIVISOR": ZERO_DIVISOR}

# (code, exception the runtime raises, what happened)
STATUSES = (
    (OUT_OF_MEMORY, "MemoryError", "a kernel could not allocate its workspace"),
    (ZERO_DIVISOR, "ValueError", "an index expression divides by a size that is 0 at the sizes of this call"),
)
