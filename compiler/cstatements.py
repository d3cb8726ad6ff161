"""The C statements, loops and parameters of generated code as records: each
names (``form``) the macro of ``templates/statements.c.j2`` that lays it out.
The renderers (``compiler/nests_c.py``, ``compiler/contract_c.py``) decide
which records a nest runs, with expressions printed by ``compiler/cprint.py``;
the templates hold their C.

Example::

    Let("float", "t0", "T_x[v_i]")      # const float t0 = T_x[v_i];
    Update("max", "acc", "t0")          # acc = (t0 != t0) ? t0 : ((t0 > acc) ? t0 : acc);
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Let:
    """A temporary: ``const ctype name = value``."""
    ctype: str
    name: str
    value: str
    form: ClassVar[str] = "let"


@dataclass(frozen=True)
class Declare:
    """A variable: ``ctype name = value``."""
    ctype: str
    name: str
    value: str
    form: ClassVar[str] = "declare"


@dataclass(frozen=True)
class Partials:
    """An array of ``count`` partial sums, zeroed: ``ctype name[count]``."""
    ctype: str
    name: str
    count: int
    form: ClassVar[str] = "partials"


@dataclass(frozen=True)
class RowBuffer:
    """A row of ``count`` elements, not initialized: ``ctype name[count]``; with
    ``fits``, a pointer ``name`` to that array where ``fits`` holds, else to
    ``own_row``."""
    ctype: str
    name: str
    count: int
    fits: str = ""
    own_row: str = ""
    form: ClassVar[str] = "row_buffer"


@dataclass(frozen=True)
class FoldLanes:
    """``target[t]`` set to the sum of row ``t`` of ``lanes`` (``count`` rows of
    ``width``: a number, or a C constant's name)."""
    ctype: str
    lanes: str
    target: str
    count: int
    width: int | str
    form: ClassVar[str] = "fold_lanes"


@dataclass(frozen=True)
class StoreEach:
    """``target = value`` in ``loops`` (``Loop`` records, each from 0)."""
    loops: tuple
    target: str
    value: str
    form: ClassVar[str] = "store_each"


@dataclass(frozen=True)
class Store:
    """``target = value``."""
    target: str
    value: str
    form: ClassVar[str] = "store"


@dataclass(frozen=True)
class Update:
    """``target`` reduced with ``value`` by ``reduce`` ("sum", "max", or
    "greatest": a maximum of values that are never NaN)."""
    reduce: str
    target: str
    value: str

    @property
    def form(self) -> str:
        return f"update_{self.reduce}"


@dataclass(frozen=True)
class AddWhere:
    """``target += value`` where ``condition`` is nonzero."""
    condition: str
    target: str
    value: str
    form: ClassVar[str] = "add_where"


@dataclass(frozen=True)
class Fill:
    """``target[offset + k] = value`` for k below ``count``; in threads from
    ``threads_from`` elements on, when given (a whole output filled before a
    parallel loop updates it)."""
    target: str
    count: str
    value: str
    offset: str = ""
    threads_from: str = ""
    form: ClassVar[str] = "fill"


@dataclass(frozen=True)
class TileStart:
    """At a tile's start: its length ``lc_tile_n`` (``stop`` cuts the last)."""
    stop: str
    form: ClassVar[str] = "tile_start"


@dataclass(frozen=True)
class TileBuffer:
    """A tile's values, before they are streamed out."""
    ctype: str
    name: str
    form: ClassVar[str] = "tile_buffer"


@dataclass(frozen=True)
class TileStore:
    """``value`` into the tile ``buffer`` at loop variable ``var``."""
    buffer: str
    var: str
    value: str
    form: ClassVar[str] = "tile_store"


@dataclass(frozen=True)
class Stream:
    """The tile ``buffer`` streamed to ``tensor + offset`` by ``function``."""
    function: str
    tensor: str
    offset: str
    buffer: str


@dataclass(frozen=True)
class TileFlush:
    """At a tile's end: its ``streams``, offsets taken at the tile's start ``var``."""
    var: str
    streams: tuple
    form: ClassVar[str] = "tile_flush"


@dataclass(frozen=True)
class Fence:
    """Streamed stores made visible before the loop around them moves on."""
    form: ClassVar[str] = "fence"


@dataclass(frozen=True)
class Verbatim:
    """C rendered by a template of its own."""
    text: str
    form: ClassVar[str] = "verbatim"


@dataclass
class Loop:
    """One loop of a nest (``templates/loops.c.j2``): ``var`` from ``start``
    to ``stop``; ``form`` "loop", "tiles" (over tiles of ``LC_TILE`` of the
    loop within) or "tile" (over the current tile). A parallel loop runs on one
    thread below ``min_work`` iterations of its nest (``work``); ``reductions``,
    ``(op, accumulator)`` pairs (op "+" or "max"), make those private; ``enter`` and ``exit``
    are statements run at the start and the end of each iteration."""

    var: str
    stop: str
    start: str = "0"
    form: str = "loop"
    parallel: bool = False
    simd: bool = False
    work: str = ""
    min_work: int = 0
    reductions: tuple = ()
    unroll: int = 0             # unrolled fully by gcc (``#pragma GCC unroll``): a short loop inside a vector one
    collapse: int = 1           # a parallel loop's threads share it and the loops inside it, this many in all
    itype: str = "int64_t"      # the index's C type (32-bit: a flat plane's, ``compiler/flat_c.py``)
    enter: list = field(default_factory=list)
    exit: list = field(default_factory=list)


@dataclass(frozen=True)
class Parameter:
    """One parameter of a generated function: a size, or a pointer to an array
    (``restrict`` in the definition, not in the cdef)."""
    ctype: str
    name: str
    pointer: bool = False
    const: bool = False
    restrict: bool = False
