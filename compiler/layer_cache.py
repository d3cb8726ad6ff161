"""The spec-level cache: from a spec and its bindings straight to what the
runtime needs of its lowering and to its C source, without lowering it.

``compile_layer`` first computes ``layer_key``: a sha256 over the spec's
fingerprint (``compiler/fingerprint.py``: its declarations, its ``forward`` and
``backward`` and everything they reach), the sizes and attributes bound, a
digest of layerc's own sources and templates and of what differs from them at
run time (``fingerprint.owned_state``), the numpy and Jinja2 versions, and
every input of the C cache key but the source (compiler and version, final
flags and ``$CFLAGS``, Python ABI, cffi version, CPU features). A *record*
under that key (``cache_dir()/lowered/<key>.rec``, see
``layerc.compiler.build.read_record``) holds the lowered programs (traced, derived,
fused forward and backward, the user's backward), the signatures of the C
functions, the C source with its cdefs (all functions, and each dtype's
library) and the C prefix. A hit rebuilds the ``CompiledLayer`` from the
record: no tracing, differentiation, rendering or Jinja2. Its libraries come
from the C cache when first used, as for a freshly lowered layer (built again
from the record's source if an entry is gone).

A spec that cannot be fingerprinted (see ``layerc.compiler.fingerprint``), or a
missing or damaged record: the layer is lowered as before and the record
written anew.

Records are pickles of IR nodes (``layerc.compiler.ir``) and of the signatures'
fields (``layerc.compiler.signature``, which a hit imports instead of the code
generator and Jinja2); the nodes' memoized hashes are left out (string hashes
differ between processes).
"""
from __future__ import annotations

import copyreg
import dataclasses
import gc
import hashlib
import importlib.util
import io
import json
import logging
import os
import pickle

from . import build, ir
from .signature import Arg, Signature
from .fingerprint import Unfingerprintable, owned_state, sources_digest, spec_fingerprint, value_fingerprint

__all__ = ["layer_key", "load", "store"]

log = logging.getLogger("layerc")

# bump when the content of a record changes
RECORD_FORMAT = 3

_NODE_TYPES = frozenset({ir.IConst, ir.IVar, ir.ISym, ir.IBin, ir.ILoad, ir.Const, ir.Load, ir.IndexValue,
                         ir.Call, ir.Axis, ir.Stage, ir.TensorDecl, ir.Program})


def layer_key(spec, sizes: dict, attrs: dict, options: build.BuildOptions) -> str | None:
    """The record key of ``spec`` at ``sizes`` and ``attrs`` built with
    ``options``, or None when the spec (or an attribute) cannot be fingerprinted."""
    try:
        h = hashlib.sha256()
        h.update(json.dumps({
            "record_format": RECORD_FORMAT,
            "layerc": sources_digest(),
            "layerc_changed": owned_state(),
            "numpy": _numpy_version(),
            "jinja2": _jinja2_identity(),
            "build": build.build_inputs(options),
            "sizes": sorted(sizes.items()),
            "attrs": sorted((k, value_fingerprint(v)) for k, v in attrs.items()),
        }, sort_keys=True).encode())
        h.update(spec_fingerprint(spec).encode())
        return h.hexdigest()
    except Unfingerprintable as exc:
        log.debug("layer %s is lowered in every new process: %s", spec.name, exc)
        return None
    except Exception as exc:       # a bug of the walk must not stop a build (RecursionError too)
        log.debug("layer %s is lowered in every new process: fingerprinting failed (%r)", spec.name, exc)
        return None


def load(key: str, spec, sizes: dict, attrs: dict, options: build.BuildOptions):
    """The ``CompiledLayer`` of the record ``key`` (its libraries not loaded
    yet), or None when there is no usable record."""
    from .pipeline import CompiledLayer
    payload = build.read_record(key)
    if payload is None:
        return None
    try:
        enabled = gc.isenabled()
        gc.disable()            # unpickling makes thousands of nodes: no collections meanwhile
        try:
            record = pickle.loads(payload)
        finally:
            if enabled:
                gc.enable()
        if record.get("format") != RECORD_FORMAT:
            return None
        signatures = {role: Signature(sig["function"], sig["program"], tuple(Arg(**a) for a in sig["args"]))
                      for role, sig in record["signatures"].items()}
        return CompiledLayer(spec=spec, sizes=sizes, attrs=attrs, signatures=signatures, options=options,
                             **{name: record[name] for name in _RECORDED})
    except Exception as exc:   # a record of another layerc that unpickles into something else
        log.debug("record %s of %s is unusable (%s); lowering", key, spec.name, exc)
        return None


# what a record keeps of a lowered layer besides its signatures
_RECORDED = ("traced", "derived", "forward", "backward", "source", "cdef", "libraries", "prefix", "user_backward",
             "calls_blas")


def store(key: str, compiled) -> None:
    """Write the record ``key`` of a freshly lowered ``CompiledLayer``."""
    record = {
        "format": RECORD_FORMAT,
        **{name: getattr(compiled, name) for name in _RECORDED},
        "signatures": {role: {"function": sig.function, "program": sig.program,
                              "args": [{f.name: getattr(a, f.name) for f in dataclasses.fields(a)} for a in sig.args]}
                       for role, sig in compiled.signatures.items()},
    }
    try:
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(record)
    except Exception as exc:       # PicklingError; RecursionError for very deep expressions
        log.debug("no record for %s: %r", compiled.name, exc)
        return
    build.write_record(key, buffer.getvalue(), layer=compiled.name)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if type(obj) in _NODE_TYPES:
            # without the memoized hash: hashes of strings differ between processes
            state = {k: v for k, v in obj.__dict__.items() if k != "_hash"}
            return copyreg.__newobj__, (type(obj),), state
        return NotImplemented


def _numpy_version() -> str:
    import numpy
    return numpy.__version__


_jinja2 = None


def _jinja2_identity():
    """Jinja2 renders the C: its version, without importing it (~20 ms)."""
    global _jinja2
    if _jinja2 is None:
        spec = importlib.util.find_spec("jinja2")
        origin = spec.origin if spec is not None else None
        try:
            st = os.stat(origin) if origin else None
        except OSError:
            st = None
        _jinja2 = [origin, st.st_size if st else None, st.st_mtime_ns if st else None]
    return _jinja2
