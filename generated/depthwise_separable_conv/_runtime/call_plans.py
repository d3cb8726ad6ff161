"""How ``LayerModule`` calls its compiled functions fast: output buffers kept
in pools and reused once nothing refers to them, and call plans (the C
argument list, output shapes and buffer pools at one set of input shapes),
made by the checked path's first call and reused by ``_forward_fast`` while
the arrays stay fit for C.

Example::

    m.forward(x)        # checked; leaves the plan for x.shape
    m.forward(x)        # the plan: no Python-side checks, buffers reused
"""
from __future__ import annotations

import sys

import numpy as np

from .record import evaluate
from .tensor import Tensor, grad_enabled
from .validate import check_indices, check_total_size

# output buffers kept per output of a module (see ``LayerModule._pooled``)
POOL_DEPTH = 3
# call plans kept per module (one per distinct set of input shapes; see ``LayerModule._plan``)
PLAN_LIMIT = 16
# numpy's flag bits for C-contiguous and aligned (``ndarray.flags.num``)
C_ALIGNED = 0x1 | 0x100
SLOW = object()        # a fast path's answer: take the checked path instead
# a layer's backward functions: all gradients, and (where the layer has
# parameters and inputs) the parameters' only, for calls whose inputs need none
BACKWARDS = ("backward", "backward_params")


class _RolePlan:
    """How to call one compiled function (forward or backward) at one binding
    of the sizes: the argument list with the sizes filled in, where each input
    pointer goes, and each output's position, buffer pool and shape."""

    __slots__ = ("function", "template", "ins", "outs")

    def __init__(self, function, template, ins, outs):
        self.function, self.template, self.ins, self.outs = function, template, ins, outs


class _Plan:
    """Everything about a call that depends only on the input shapes, worked
    out once by the checked path and reused while the shapes stay the same.
    ``backwards``: ``{role: _RolePlan}`` of the backward functions (the full
    one, and the one without input gradients where the layer has it)."""

    __slots__ = ("sizes", "forward", "backwards", "grads")

    def __init__(self, sizes, forward, backwards, grads):
        self.sizes, self.forward, self.backwards, self.grads = sizes, forward, backwards, grads


class CallPlans:
    """The fast call path of ``LayerModule`` (a mixin: it uses the module's record,
    library, dtype, parameters and buffers)."""

    def _prepare_fast_path(self):
        """Per-call constants of the fast path (``_forward_fast``), computed once."""
        ffi, dtype, record = self._library.ffi, self.dtype, self.record
        ctype = "float" if dtype == np.float32 else "double"
        int64 = np.dtype(np.int64)
        setup = object.__setattr__
        setup(self, "_ffi", ffi)
        setup(self, "_pointer_type", ffi.typeof(f"{ctype} *"))
        setup(self, "_float_array_type", ffi.typeof(f"{ctype}[]"))
        setup(self, "_fast_inputs", tuple(
            (t.name, int64 if t.role == "index" else dtype, ffi.typeof("int64_t[]" if t.role == "index" else f"{ctype}[]"))
            for t in self._inputs))
        setup(self, "_diff_positions", tuple(k for k, t in enumerate(self._inputs) if t.role == "input"))
        setup(self, "_diff_grad_names", tuple(f"grad_{t.name}" for t in self._inputs if t.role == "input"))
        setup(self, "_outputs", tuple(t.name for t in record.outputs))
        setup(self, "_saved", record.saved)
        setup(self, "_updates", record.updates)
        setup(self, "_plans", {})
        setup(self, "_pool", {})
        # what the fast path would otherwise make on every call: each parameter's
        # C pointer (kept while the parameter holds the same array)
        setup(self, "_param_pointers", {})
        self._prepare_spans()

    def _pool_of(self, role: str, name: str) -> list:
        return self._pool.setdefault((role, name), [])

    def _pooled(self, role: str, name: str, shape: tuple) -> np.ndarray:
        """An array for one output or workspace of a call. Ownership rule: an
        array this module returned (output, input gradient, ``param.grad``) is
        the caller's for as long as anything outside the module refers to it (a
        Tensor, a view, ``param.grad``, a saved forward context); the module
        reuses it for a later call only once no such reference is left (CPython
        reference count). A loop that drops last step's results therefore
        reuses the same memory and allocates nothing; a kept result is never
        overwritten. A raw pointer (``array.ctypes.data``, or the C pointer the
        pool keeps next to each array) is not a reference."""
        return self._take(self._pool_of(role, name), shape)[0]

    def _take(self, pool: list, shape: tuple) -> tuple:
        """``(array, C pointer)`` from ``pool`` under ``_pooled``'s rule. The pool
        holds ``(array, pointer)`` pairs: the pointer is made once per array."""
        stale = None
        for k in range(len(pool)):
            entry = pool[k]
            array = entry[0]
            # three references: the pool's pair, ``array`` and getrefcount's argument
            if sys.getrefcount(array) <= 3:
                if array.shape == shape:
                    # a new tuple: the array stays referenced on its way to the caller,
                    # so a concurrent call (another thread) cannot take it meanwhile
                    return array, entry[1]
                stale = k
        array = np.empty(shape, self.dtype)
        entry = (array, self._ffi.cast(self._pointer_type, array.ctypes.data))
        if stale is not None:
            pool[stale] = entry
        elif len(pool) < POOL_DEPTH:
            pool.append(entry)
        else:
            pool.append(entry)
            pool.pop(0)
        return array, entry[1]

    # ------------------------------------------------------------ call plans
    def _plan(self, shapes: tuple, sizes: dict) -> _Plan | None:
        """The call plan for inputs of these ``shapes`` (made on first use from
        the sizes the checked path bound). The fast path runs only where a plan
        exists, i.e. for shapes that have passed every check of ``check_array``."""
        plan = self._plans.get(shapes)
        if plan is None:
            try:
                forward = self._role_plan("forward", sizes)
            except (KeyError, ValueError):
                return None
            try:
                backwards = {role: self._role_plan(role, sizes) for role in BACKWARDS if role in self._functions}
                grads = tuple((f"grad_{t.name}", tuple(evaluate(d, sizes) for d in t.shape))
                              for t in self.record.outputs)
            except (KeyError, ValueError):      # left to the checked path (and its errors)
                backwards, grads = {}, None
            plan = _Plan(dict(sizes), forward, backwards, grads)
            if len(self._plans) >= PLAN_LIMIT:
                self._plans.clear()
            self._plans[shapes] = plan
        return plan

    def _role_plan(self, role: str, sizes: dict) -> _RolePlan:
        sig = self.record.function(role)
        template, ins, outs = [], [], []
        for position, a in enumerate(sig.args):
            if a.kind == "size":
                template.append(int(sizes[a.name]))
                continue
            template.append(None)
            if a.kind == "in":
                ins.append((position, a.name))
                continue
            shape = tuple(evaluate(d, sizes) for d in a.shape)
            check_total_size(self.name, a.name, shape)
            outs.append((position, a.name, self._pool_of(role, a.name), shape, a.over))
        return _RolePlan(self._functions[role], tuple(template),
                         tuple(ins), tuple(outs))

    def _run_plan(self, rp: _RolePlan, pointers: dict, saved: dict | None = None) -> tuple:
        """Call ``rp``'s function with the inputs in ``pointers`` (by name); returns
        ``({name: output array}, {name: its C pointer})``. An output that may be
        written over a saved input (``Arg.over``) gets that input's array when
        ``saved`` (the forward's saved arrays, which this backward is the last
        to read) holds it."""
        args = list(rp.template)
        for position, name in rp.ins:
            args[position] = pointers[name]
        results, out_pointers = {}, {}
        refcount = sys.getrefcount
        for position, name, pool, shape, over in rp.outs:
            if over and saved is not None and over in saved:
                results[name] = saved[over].reshape(shape)
                out_pointers[name] = args[position] = pointers[over]
                continue
            # ``_take``'s common case inline: the first free array of this shape
            for entry in pool:
                array = entry[0]
                if refcount(array) <= 3 and array.shape == shape:
                    pointer = entry[1]
                    break
            else:
                array = None        # ``_take`` counts references: hold none to the pool's arrays
                array, pointer = self._take(pool, shape)
            results[name] = array
            out_pointers[name] = args[position] = pointer
        self._run(rp.function, args)
        return results, out_pointers

    def _forward_fast(self, args: tuple):
        """The forward of the common call: positional inputs that are already fit
        for C (the module's dtype, C-contiguous, aligned; index inputs int64) at
        shapes a plan exists for, parameters and buffers the same. Anything else
        returns ``SLOW`` before any work, and the checked path takes the call
        (with its conversions and error messages)."""
        specs = self._fast_inputs
        if len(args) != len(specs):
            return SLOW
        arrays, shapes = {}, []
        for (name, want, _), value in zip(specs, args):
            a = value.data if type(value) is Tensor else value
            if type(a) is not np.ndarray or a.dtype is not want or a.flags.num & C_ALIGNED != C_ALIGNED:
                return SLOW
            arrays[name] = a
            shapes.append(a.shape)
        plan = self._plans.get(tuple(shapes))
        if plan is None:
            return SLOW
        if self._index_ranges and self.check_indices:
            check_indices(self.name, self._index_ranges, arrays, plan.sizes)
        fixed, dtype = self._fixed_shapes, self.dtype
        params = self._parameters
        for name, p in params.items():
            a = p.data
            if (type(a) is not np.ndarray or a.dtype is not dtype or a.flags.num & C_ALIGNED != C_ALIGNED
                    or a.shape != fixed.get(name)):
                return SLOW
            arrays[name] = a
        for name, a in self._buffers.items():
            if (type(a) is not np.ndarray or a.dtype is not dtype or a.flags.num & C_ALIGNED != C_ALIGNED
                    or a.shape != fixed.get(name)):
                return SLOW
            arrays[name] = a
        # checked: from here on the call is the checked path's, minus the checks
        from_buffer, array_type = self._ffi.from_buffer, self._float_array_type
        pointers = {name: from_buffer(kind, arrays[name]) for name, _, kind in specs}
        cached = self._param_pointers
        for name in params:
            a = arrays[name]
            entry = cached.get(name)
            if entry is None or entry[0] is not a:
                entry = cached[name] = (a, from_buffer(array_type, a))
            pointers[name] = entry[1]
        for name in self._buffers:
            pointers[name] = from_buffer(array_type, arrays[name])
        results, out_pointers = self._run_plan(plan.forward, pointers)
        if self.training:
            for buffer, stage in self._updates:
                np.copyto(self._buffers[buffer], results[stage])
        names = self._outputs
        outputs = (Tensor._wrap(results[names[0]]),) if len(names) == 1 else \
            tuple(Tensor._wrap(results[name]) for name in names)
        if grad_enabled():
            for name in self._saved:
                arrays[name] = results[name]
                pointers[name] = out_pointers[name]
            context = {"arrays": arrays, "sizes": plan.sizes, "used": False, "plan": plan, "pointers": pointers}
            object.__setattr__(self, "_last", context)
            self._record(outputs, [args[k] for k in self._diff_positions], context)
        else:
            object.__setattr__(self, "_last", None)
        return outputs[0] if len(outputs) == 1 else outputs
