"""The optimizers' update rules as compiled kernels.

``layerc.runtime.optim`` holds the rules in numpy (what a package runs);
importing ``layerc`` installs these compiled twins in their place
(``install``). Each is a spec over the parameter flattened to one dimension
of size ``P`` (free at run time); the hyperparameters are one-element inputs,
so changing the learning rate never recompiles. Each spec's ``forward`` is
the runtime's own numpy rule, traced: the math is written once.

``MultiApply`` runs one rule over all of an optimizer's parameters in one C
call (templates/multi_apply.c.j2): a small driver, compiled per rule and
dtype, walks chunks of every parameter and calls the rule's kernel on each.

Example::

    apply = multi_rule("adam")(np.float32, decoupled=False)
    apply([(param, grad, m, v), ...], scalars)     # every array updated in place
"""
from __future__ import annotations

import threading

import numpy as np

from .compiler.build import compile_c
from .compiler.spec import Attr, Input
from .layers import layer
from .runtime import optim, threads
from .runtime.module import DTYPE_NAMES

# elements of a parameter one thread updates at a time: the rule's outputs for
# a chunk (scratch, 3 x 16 KiB for Adam in float32) stay in the thread's cache
CHUNK = 4096
# chunks from which the driver splits the work over threads (the kernels' own
# threshold: 128 Ki elements)
PARALLEL_ITEMS = 32
LAYOUTS = 8               # sets of parameter sizes a driver keeps its tables for


def _scalar():
    return Input(1, differentiable=False)


def _flat():
    return Input("P", differentiable=False)


@layer
class SGDUpdate:
    param, grad = _flat(), _flat()
    lr, weight_decay = _scalar(), _scalar()
    forward = optim.sgd_rule


@layer
class SGDMomentumUpdate:
    param, grad, velocity = _flat(), _flat(), _flat()
    lr, momentum, weight_decay = _scalar(), _scalar(), _scalar()
    nesterov = Attr(False)
    forward = optim.sgd_momentum_rule


@layer
class AdamUpdate:
    param, grad, m, v = _flat(), _flat(), _flat(), _flat()
    lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt = (_scalar() for _ in range(7))
    decoupled = Attr(False)
    forward = optim.adam_rule


_kernels: dict = {}
_kernels_lock = threading.Lock()


def kernel(spec, dtype, **attrs):
    """The compiled update (a ``LayerModule``), built once per spec, dtype and attributes."""
    key = (spec.name, np.dtype(dtype).str, tuple(sorted(attrs.items())))
    with _kernels_lock:
        if key not in _kernels:
            _kernels[key] = spec.build(dtype=dtype, **attrs)
        return _kernels[key]


def _compiled(spec, *attr_names):
    def update(*arrays, **named):
        attrs = {k: named.pop(k) for k in attr_names}
        outputs = kernel(spec, arrays[0].dtype, **attrs).forward(*arrays, **named)
        return tuple(o.data for o in outputs) if isinstance(outputs, tuple) else outputs.data
    update.__doc__ = spec.doc
    return update


class MultiApply:
    """One compiled rule over many tensors in one call: ``apply(tensors, scalars)``
    with, per tensor, the rule's flat arrays in its argument order (all C-contiguous,
    of the kernel's dtype); the inputs the rule replaces (``optim.WRITES_BACK``)
    are overwritten with its outputs. ``scalars``: the one-element inputs by name."""

    def __init__(self, rule: str, spec, dtype, **attrs):
        module = kernel(spec, dtype, **attrs)
        sig = module.record.function("forward")
        sizes = [a for a in sig.args if a.kind == "size"]
        if len(sizes) != 1 or any(a.kind == "work" for a in sig.args):
            raise ValueError(f"{spec.name}: a multi-tensor rule takes one size and no workspace")
        names = [t.name for t in module.record.of_role("input", "data")]
        flat = [n for n in names if tuple(module.record.tensor(n).shape) != (1,)]
        self.scalar_names = [n for n in names if n not in flat]
        self.positions = {n: names.index(n) for n in flat}
        args = [self._arg(a, flat, module.record.outputs) for a in sig.args if a.kind != "size"]
        writes = [{"array": flat.index(names[k]), "output": o} for o, k in enumerate(optim.WRITES_BACK[rule])]
        ctype = "float" if np.dtype(dtype) == np.float32 else "double"
        name = f"lc_multi_{rule}_{module.record.prefix}_{ctype}"
        # rendering loads jinja2 and the printer: only when an optimizer first steps,
        # not in every process that merely imports layerc
        from .compiler.cprint import render
        source = render("multi_apply.c.j2", name=name, rule=spec.name, ctype=ctype, args=args, writes=writes,
                        chunk=CHUNK, parallel_items=PARALLEL_ITEMS, n_arrays=len(flat),
                        n_outputs=len(module.record.outputs))
        cdef = render("multi_apply.h.j2", name=name)
        built = compile_c(source, cdef, name=name)
        kffi, klib = module._ffi, module._library.lib
        function = f"{sig.function}_{DTYPE_NAMES[np.dtype(dtype)]}"
        self._rule = int(kffi.cast("uintptr_t", kffi.addressof(klib, function)))
        self._driver, self._module, self._flat = getattr(built.lib, name), module, flat
        self._ffi = built.ffi
        self._order = [self.positions[n] for n in flat]
        self._scalars = self._ffi.new("void *[]", max(len(self.scalar_names), 1))    # their addresses
        # sizes -> (arrays table, driver arguments): one per set of parameters
        # (optimizers of different models share this), a few kept
        self._layouts: dict = {}
        self._lock = threading.Lock()     # the tables are shared: one call at a time

    def _arg(self, a, flat, outputs) -> dict:
        if a.kind == "in":
            scalar = a.name not in flat
            return {"kind": "in", "scalar": scalar,
                    "index": self.scalar_names.index(a.name) if scalar else flat.index(a.name)}
        return {"kind": "out", "index": [t.name for t in outputs].index(a.name)}

    def _plan(self, sizes: tuple) -> tuple:
        layout = self._layouts.get(sizes)
        if layout is None:
            items = np.array([(k, start) for k, n in enumerate(sizes) for start in range(0, n, CHUNK)],
                             np.int64).reshape(-1, 2)
            ffi = self._ffi
            table = ffi.new("void *[]", len(sizes) * len(self._flat))
            arguments = (len(items), ffi.from_buffer("int64_t[]", items),
                         ffi.from_buffer("int64_t[]", np.array(sizes, np.int64)), table)
            if len(self._layouts) >= LAYOUTS:
                self._layouts.clear()
            layout = self._layouts[sizes] = (table, arguments, items)
        return layout

    def __call__(self, tensors: list, scalars: dict) -> None:
        with self._lock:
            table, arguments, _ = self._plan(tuple(arrays[0].size for arrays in tensors))
            # each array's address (``from_buffer``: a quarter of ``.ctypes.data``'s cost);
            # the arrays themselves stay alive in ``tensors`` through the call
            from_buffer, k = self._ffi.from_buffer, 0
            for arrays in tensors:
                for j in self._order:
                    table[k] = from_buffer(arrays[j])
                    k += 1
            values = self._scalars
            for k, name in enumerate(self.scalar_names):
                values[k] = from_buffer(scalars[name])
            # a child forked after OpenMP started runs one thread (runtime/threads.py)
            status = self._driver(*arguments, values, self._rule, 1 if threads.forked_after_openmp() else 0)
        if status:
            raise self._module.record.status_error(status)


_multi: dict = {}
_multi_lock = threading.Lock()      # apart from _kernels_lock, which building a MultiApply takes


def multi_rule(rule: str):
    """``(dtype, **attrs) -> MultiApply``, each built once (``optim.MULTI_RULES[rule]``)."""
    spec = RULE_SPECS[rule]

    def make(dtype, **attrs):
        key = (rule, np.dtype(dtype).str, tuple(sorted(attrs.items())))
        found = _multi.get(key)
        if found is None:
            with _multi_lock:
                found = _multi.get(key)
                if found is None:
                    found = _multi[key] = MultiApply(rule, spec, dtype, **attrs)
        return found
    return make


RULE_SPECS = {"sgd": SGDUpdate, "sgd_momentum": SGDMomentumUpdate, "adam": AdamUpdate}
COMPILED_RULES = {"sgd": _compiled(SGDUpdate), "sgd_momentum": _compiled(SGDMomentumUpdate, "nesterov"),
                  "adam": _compiled(AdamUpdate, "decoupled")}


def install() -> None:
    """Make the optimizers run the compiled rules (``import layerc`` does this)."""
    optim.UPDATE_RULES.update(COMPILED_RULES)
    optim.MULTI_RULES.update({rule: multi_rule(rule) for rule in RULE_SPECS})


__all__ = ["SGDUpdate", "SGDMomentumUpdate", "AdamUpdate", "MultiApply", "kernel", "multi_rule", "install"]
