"""The lowered-layer cache: from a traced forward straight to its lowering
(derived backward, fused programs, signatures, C source), without the passes,
the code generator or Jinja2.

In: the program a spec traced to, before any pass (``spec.trace``), and the
sizes and attributes bound. Out: the fields of a ``Lowered`` from a record of
an earlier process, or None.

The key is a sha256 over what the lowering is a function of, and nothing
guessed about the spec's Python code: the traced program itself (every node,
so whatever the forward read, a file included, is in it as the value it
read), the spec's name (C names and comments), the bound sizes and
attributes, and the lowering's own code: a digest of layerc's compiler sources
and templates, and the numpy and Jinja2 versions. A spec with a user-written
``backward`` is lowered in every process: its backward is traced only during
lowering, so it cannot be in the key.

A record (``compiler/records.py``) is JSON: a table of IR nodes, each
``[type, field, ...]`` with a field that is a node written ``{"n": index}``
of an earlier row and a tuple as a list, so subexpressions shared in memory
are shared in the record. Only the node types listed in ``_NODE_TYPES`` are
made from it. Measured by ``benchmarks/cold_start.py`` (first call of a layer
in a new process, warm C cache): see docs/how-it-works.md.

Example::

    key = layer_key(spec, sizes, attrs, spec.trace(**bindings))
    fields = load(key) if key else None      # None: lower, then store(key, lowered)
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import os

from . import ir, records, store
from .signature import Arg, LibraryPlan, Signature

__all__ = ["layer_key", "load", "store_lowered"]

log = logging.getLogger("layerc")

# the layout of a record's JSON; part of the key
RECORD_FORMAT = 4
# what a record holds of a lowered layer (the rest comes from the spec and bindings)
RECORDED = ("traced", "derived", "forward", "backward", "signatures", "source", "cdef", "libraries", "prefix",
            "calls_blas")
_NODE_TYPES = {cls.__name__: cls for cls in (
    ir.IConst, ir.IVar, ir.ISym, ir.IBin, ir.ILoad, ir.Const, ir.Load, ir.IndexValue, ir.Call, ir.Axis,
    ir.Stage, ir.TensorDecl, ir.Program, Arg, Signature, LibraryPlan)}
_SCALARS = (type(None), bool, int, float, str)


def layer_key(spec, sizes: dict, attrs: dict, traced: ir.Program) -> str | None:
    """The record key of ``spec`` traced to ``traced`` at ``sizes`` and
    ``attrs``, or None when it has none (a user-written backward, a value
    JSON cannot hold exactly)."""
    if spec.backward is not None:
        return None
    try:
        nodes, root = _Table().add(traced)
        blob = json.dumps({"format": RECORD_FORMAT, "layerc": _sources_digest(), "numpy": _numpy_version(),
                           "jinja2": _jinja2_identity(), "name": spec.name, "sizes": _exact(sizes),
                           "attrs": _exact(attrs), "traced": nodes, "root": root}, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        log.debug("layer %s is lowered in every process: %r", spec.name, exc)
        return None
    return hashlib.sha256(blob.encode()).hexdigest()


def load(key: str) -> dict | None:
    """The fields ``RECORDED`` of the lowering stored under ``key``, or None."""
    payload = records.read_record(store.root() / store.RECORDS_DIR, key)
    if payload is None:
        return None
    try:
        record = json.loads(payload)
        if record.get("format") != RECORD_FORMAT:
            return None
        nodes = _decode_nodes(record["nodes"])
        return {name: _decode(record["fields"][name], nodes) for name in RECORDED}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        log.warning("lowered-layer record %s is unusable (%s); lowering", key, exc)
        return None


def store_lowered(key: str, lowered) -> None:
    """Write the record ``key`` of a freshly ``Lowered`` layer."""
    table = _Table()
    try:
        fields = {name: table.field(getattr(lowered, name)) for name in RECORDED}
        payload = json.dumps({"format": RECORD_FORMAT, "nodes": table.rows, "fields": fields}, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        log.debug("no record for %s: %r", lowered.name, exc)
        return
    records.write_record(store.root() / store.RECORDS_DIR, key, payload.encode(), layer=lowered.name)


class _Table:
    """IR nodes as rows ``[type, field, ...]``, children before parents; equal
    rows (compared as JSON text, so ``1``, ``1.0`` and ``true`` stay apart)
    are written once."""

    def __init__(self):
        self.rows: list = []
        self.by_text: dict[str, int] = {}
        self.by_id: dict[int, tuple] = {}     # id -> (node, its reference): a node walked once

    def add(self, value) -> tuple[list, object]:
        return self.rows, self.field(value)

    def field(self, value):
        if type(value) in _SCALARS:
            return value
        if isinstance(value, tuple):
            return [self.field(v) for v in value]
        if isinstance(value, dict):
            return {"d": [[k, self.field(v)] for k, v in sorted(value.items())]}
        known = self.by_id.get(id(value))
        if known is not None:
            return known[1]
        name = type(value).__name__
        if _NODE_TYPES.get(name) is not type(value):
            raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} value")
        row = [name, *(self.field(getattr(value, f.name)) for f in dataclasses.fields(value))]
        text = json.dumps(row, allow_nan=True)
        if text not in self.by_text:
            self.by_text[text] = len(self.rows)
            self.rows.append(row)
        reference = {"n": self.by_text[text]}
        self.by_id[id(value)] = (value, reference)
        return reference


def _decode_nodes(rows: list) -> list:
    nodes: list = []
    for name, *fields in rows:
        nodes.append(_NODE_TYPES[name](*(_decode(f, nodes) for f in fields)))
    return nodes


def _decode(value, nodes: list):
    if isinstance(value, list):
        return tuple(_decode(v, nodes) for v in value)
    if isinstance(value, dict):
        if "n" in value:
            return nodes[value["n"]]
        return {k: _decode(v, nodes) for k, v in value["d"]}
    return value


def _exact(bindings: dict) -> list:
    """Bound values as JSON (a tuple as a list: no list is accepted), or TypeError."""
    def check(name, value):
        if isinstance(value, tuple):
            for item in value:
                check(name, item)
        elif type(value) not in _SCALARS:
            raise TypeError(f"{name} is a {type(value).__name__}")
    for name, value in bindings.items():
        check(name, value)
    return sorted(bindings.items())


@functools.lru_cache(maxsize=None)
def _sources_digest() -> str:
    """sha256 over the lowering's own code: every ``.py`` of ``layerc.compiler``
    and every template, by name and content (~1 ms, once per process)."""
    h = hashlib.sha256()
    for package, suffix in (("layerc.compiler", ".py"), ("layerc.templates", "")):
        folder = importlib.util.find_spec(package).submodule_search_locations[0]
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.endswith(suffix) and os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                h.update(f"{package}/{name} {len(data)}\n".encode())
                h.update(data)
    return h.hexdigest()


def _numpy_version() -> str:
    import numpy
    return numpy.__version__


@functools.lru_cache(maxsize=None)
def _jinja2_identity() -> list:
    """Jinja2 renders the C: where it is and its file's size and mtime, without
    importing it (~20 ms)."""
    spec = importlib.util.find_spec("jinja2")
    origin = spec.origin if spec is not None else None
    try:
        st = os.stat(origin) if origin else None
    except OSError:
        st = None
    return [origin, st.st_size if st else None, st.st_mtime_ns if st else None]
