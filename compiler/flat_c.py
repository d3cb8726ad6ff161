"""The C around a nest whose planes may run as one row (``windows.FlatPlanes``):
the flat form where the plane is narrow and small enough (chosen at build time
when its sizes are known, else at run time), the nest by rows elsewhere, laid
out by ``templates/flat_planes.c.j2``."""
from __future__ import annotations

from . import ir
from .cprint import render, size_c
from .ir import IConst
from .windows import FLAT_LIMIT, FLAT_ROW


def render_either(flat, ctx, by_rows, as_flat) -> str:
    """The C of a nest with its planes maybe as one row (``flat``, a
    ``FlatPlanes`` or None): ``by_rows()`` and ``as_flat()`` render the two
    forms; only those the plane's sizes may need are rendered."""
    fits = _fits(flat) if flat is not None else False
    rows = None if fits is True else by_rows()
    if fits is False:
        return rows
    return _render_flat_planes(flat, ctx.printer([flat.stage]), rows, as_flat())


def _fits(flat) -> bool | None:
    """Whether the planes run as one row: known at build time (True, False), or not (None)."""
    width, size = flat.width, ir.imul(flat.rows, flat.width)
    if isinstance(width, IConst) and isinstance(size, IConst):
        return width.value < FLAT_ROW and size.value <= FLAT_LIMIT
    return False if isinstance(size, IConst) and size.value > FLAT_LIMIT else None


def _render_flat_planes(flat, printer, by_rows: str | None, flat_c: str) -> str:
    """``flat_c`` (the nest over flat rows) where its planes fit, ``by_rows``
    elsewhere (None: they always fit), with the table of each position's
    column and the plane's sizes as 32-bit numbers around ``flat_c``."""
    width, size = printer.index(flat.width), printer.index(ir.imul(flat.rows, flat.width))
    sizes = sorted(size_c(name) for name in ir.isyms(flat.rows) | ir.isyms(flat.width))
    return render("flat_planes.c.j2", by_rows=by_rows, flat=flat_c, width=width, height=printer.index(flat.rows),
                  limit=FLAT_LIMIT, sizes=sizes, condition=f"{width} < {FLAT_ROW} && {size} <= {FLAT_LIMIT}")


__all__ = ["render_either"]
