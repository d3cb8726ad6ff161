"""``Module``: the runtime interface of a layer (``forward``, ``backward``,
``parameters``), and ``LayerModule``, a module whose math runs in the C that
layerc generated for a spec.

Example::

    m = PReLU.build(C=4)                 # a LayerModule
    y = m.forward(np.ones((2, 4), np.float32))
    gx = m.backward(np.ones((2, 4), np.float32))
    m.alpha.grad                         # accumulated until m.zero_grad()
"""
from __future__ import annotations

import sys

import os

import numpy as np

from layerc.compiler import blas, ir

from .init import initialize
from .tensor import Node, Tensor, grad_enabled
from .validate import check_array, check_output, check_total_size, describe

DTYPE_NAMES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

# the thread setting of every layer library this process loaded, by library
_thread_setters: dict = {}


def _one_thread_after_fork():
    # GNU libgomp's thread pool does not survive fork: a parallel region in the
    # child would wait forever for threads that are not there. Serial kernels work.
    for set_threads in _thread_setters.values():
        set_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)
# output buffers kept per output of a module (see ``LayerModule._pooled``)
POOL_DEPTH = 3
# call plans kept per module (one per distinct set of input shapes; see ``LayerModule._plan``)
PLAN_LIMIT = 16
# numpy's flag bits for C-contiguous and aligned (``ndarray.flags.num``)
_C_ALIGNED = 0x1 | 0x100
_SLOW = object()        # a fast path's answer: take the checked path instead


class _RolePlan:
    """How to call one compiled function (forward or backward) at one binding
    of the sizes: the argument list with the sizes filled in, where each input
    pointer goes, and each output's position, buffer pool and shape."""

    __slots__ = ("function", "template", "ins", "outs")

    def __init__(self, function, template, ins, outs):
        self.function, self.template, self.ins, self.outs = function, template, ins, outs


class _Plan:
    """Everything about a call that depends only on the input shapes, worked
    out once by the checked path and reused while the shapes stay the same."""

    __slots__ = ("sizes", "forward", "backward", "grads")

    def __init__(self, sizes, forward, backward, grads):
        self.sizes, self.forward, self.backward, self.grads = sizes, forward, backward, grads


class Module:
    """Base of every runtime module: parameters, buffers and submodules are
    found by attribute, with dotted names for submodules (``q_proj.weight``)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_modules" not in self.__dict__:
            Module.__init__(self)
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Module):
            self._modules[name] = value
        elif isinstance(value, Tensor) and value.requires_grad:
            self._parameters[name] = value
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def backward(self, *grad_outputs):
        raise NotImplementedError(
            f"{type(self).__name__} has no explicit backward; call .backward() on a Tensor the "
            "forward produced (the tape differentiates Python compositions)")

    # ------------------------------------------------------------ state
    def named_parameters(self, prefix: str = ""):
        """``(dotted name, Tensor)`` for this module's parameters and its submodules'."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_buffers(f"{prefix}{name}.")

    def buffers(self) -> list:
        return [b for _, b in self.named_buffers()]

    def named_modules(self, prefix: str = ""):
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}{name}.")

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self) -> dict:
        """``{dotted name: array copy}`` of every parameter and buffer (running statistics)."""
        state = {name: np.array(p.data) for name, p in self.named_parameters()}
        state.update((name, np.array(b)) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy ``state`` into the parameters and buffers in place (``.numpy()`` views stay valid).

        Raises ``KeyError`` naming every missing or unexpected key (unless ``strict=False``)
        and ``ValueError`` naming every key whose shape differs; nothing is written then."""
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(self.named_buffers())
        missing = sorted(set(targets) - set(state))
        extra = sorted(set(state) - set(targets))
        where = type(self).__name__
        if strict and (missing or extra):
            raise KeyError(f"{where}.load_state_dict: missing keys {missing or 'none'}; "
                           f"unexpected keys {extra or 'none'}")
        shapes = [f"{k}: checkpoint {np.shape(state[k])}, module {targets[k].shape}"
                  for k in sorted(set(targets) & set(state)) if np.shape(state[k]) != targets[k].shape]
        if shapes:
            raise ValueError(f"{where}.load_state_dict: shape mismatch for " + "; ".join(shapes))
        for name, target in targets.items():
            if name in state:
                np.copyto(target, np.asarray(state[name]), casting="same_kind")

    def save(self, path) -> None:
        """Write ``state_dict()`` with ``numpy.savez`` (keys are the dotted names)."""
        np.savez(path, **self.state_dict())

    def load(self, path, strict: bool = True) -> None:
        """Read a file written by ``save`` and ``load_state_dict`` it."""
        with np.load(path, allow_pickle=False) as data:
            self.load_state_dict({k: data[k] for k in data.files}, strict=strict)

    def __repr__(self):
        inner = "".join(f"\n  ({n}): {m!r}".replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({inner}\n)" if inner else f"{type(self).__name__}()"


class LayerModule(Module):
    """A compiled layer's module. Parameters are ``Tensor`` attributes named as
    in the spec; buffers are arrays in ``named_buffers()``.

    Inputs may be numpy arrays or Tensors of the module's dtype (float32 by
    default; ``build(dtype="float64")``). Non-contiguous or unaligned inputs are
    copied; a wrong dtype raises ``TypeError`` unless the module was made with
    ``cast=True``. The first call at given input shapes is fully checked and
    leaves a call plan (sizes, output shapes, buffers, C argument list); later
    calls at those shapes whose arrays are already fit for C (positional, the
    module's dtype, C-contiguous, aligned) reuse it and skip the Python-side
    checking, any other call is checked as the first. Not thread-safe: ``backward()`` uses state the latest
    ``forward()`` left on the module (the autograd tape keeps its own copy per call),
    and parameter gradients accumulate without a lock: train a module from one
    thread. Safe: several threads calling ``forward`` at once under
    ``layerc.runtime.tensor.no_grad()``. ``set_threads`` is per compiled library. GNU
    libgomp is not fork-safe: a child made by ``fork`` runs every layer on one
    thread; use the 'spawn' multiprocessing start method for parallel kernels in
    children (see tests/test_threads.py).
    """

    def __init__(self, compiled, dtype=None, cast: bool = False):
        super().__init__()
        dtype = np.dtype(dtype or np.float32)
        if dtype not in DTYPE_NAMES:
            raise TypeError(f"{compiled.name}: dtype must be float32 or float64, got {dtype}")
        object.__setattr__(self, "compiled", compiled)
        library = compiled.library(DTYPE_NAMES[dtype])
        object.__setattr__(self, "_library", library)
        _thread_setters.setdefault(library.module_name, getattr(library.lib, f"{compiled.prefix}_set_threads"))
        object.__setattr__(self, "_calls_blas", compiled.calls_blas)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "cast", cast)
        object.__setattr__(self, "_last", None)
        spec_decls = dict(compiled.spec.tensors)
        program = compiled.traced
        self._inputs = [t for t in program.tensors if t.role in ("input", "data", "index")]
        fixed_shapes = {}
        for t in program.tensors:
            if t.role not in ("param", "buffer"):
                continue
            decl = spec_decls[t.name]
            shape = tuple(ir.ievaluate(d, {}) for d in t.shape)
            fixed_shapes[t.name] = shape
            if t.role == "param":
                values = initialize(decl.init, shape, dtype, decl.fan_in, decl.fan_out)
                setattr(self, t.name, Tensor(values, requires_grad=True))
            else:
                self._buffers[t.name] = initialize(decl.init, shape, dtype)
        # per-call constants of the fast path (``_forward_fast``), computed once
        ffi = library.ffi
        ctype = "float" if dtype == np.float32 else "double"
        int64 = np.dtype(np.int64)
        setup = object.__setattr__
        setup(self, "_ffi", ffi)
        setup(self, "_pointer_type", ffi.typeof(f"{ctype} *"))
        setup(self, "_float_array_type", ffi.typeof(f"{ctype}[]"))
        setup(self, "_fast_inputs", tuple(
            (t.name, int64 if t.role == "index" else dtype, ffi.typeof("int64_t[]" if t.role == "index" else f"{ctype}[]"))
            for t in self._inputs))
        setup(self, "_fixed_shapes", fixed_shapes)
        setup(self, "_diff_positions", tuple(k for k, t in enumerate(self._inputs) if t.role == "input"))
        setup(self, "_diff_grad_names", tuple(f"grad_{t.name}" for t in self._inputs if t.role == "input"))
        setup(self, "_outputs", tuple(program.outputs))
        setup(self, "_saved", tuple(compiled.saved))
        setup(self, "_updates", tuple(compiled.forward.updates))
        setup(self, "_plans", {})
        setup(self, "_pool", {})
        # what the fast path would otherwise make on every call: each parameter's
        # C pointer (kept while the parameter holds the same array) and the
        # names of the gradients the autograd tape takes, in its inputs' order
        setup(self, "_param_pointers", {})
        setup(self, "_tape_names", {})

    def __repr__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in {**self.compiled.sizes, **self.compiled.attrs}.items())
        return f"{self.compiled.name}({sizes})"

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def source(self) -> str:
        """The generated C."""
        return self.compiled.source

    @property
    def so_path(self) -> str:
        """The shared library of this module's dtype."""
        return self._library.so_path

    @property
    def cache_key(self) -> str:
        return self._library.cache_key

    def set_threads(self, n: int) -> None:
        """Threads this layer's kernels use (0: OpenMP's default, ``OMP_NUM_THREADS``).

        The setting is per compiled library, so it applies to every module built
        from the same spec and sizes at the same dtype."""
        _thread_setters[self._library.module_name](int(n))

    def set_stream_bytes(self, n: int) -> None:
        """Outputs of at least ``n`` bytes a kernel writes along its innermost
        loop go straight to memory, past the caches (0: the default, 16 MiB,
        half the last-level cache of the machine it was measured on). Per
        compiled library, as ``set_threads``. Example:
        ``module.set_stream_bytes(1 << 30)`` keeps outputs under 1 GiB in the
        caches."""
        getattr(self._library.lib, f"{self.compiled.prefix}_set_stream_bytes")(int(n))

    # ------------------------------------------------------------ forward
    def _arrays(self) -> dict:
        arrays = {}
        for name, p in self._parameters.items():
            arrays[name] = p.data
        arrays.update(self._buffers)
        return arrays

    def _bind_inputs(self, args, kwargs) -> tuple:
        names = [t.name for t in self._inputs]
        if len(args) > len(names):
            raise TypeError(f"{self.name}: forward takes {len(names)} inputs ({', '.join(names)}), got {len(args)}")
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names or k in given:
                raise TypeError(f"{self.name}: unexpected or repeated input {k!r} (inputs: {', '.join(names)})")
            given[k] = v
        missing = [n for n in names if n not in given]
        if missing:
            raise TypeError(f"{self.name}: missing input(s) {', '.join(missing)}")
        return given

    def _call(self, role: str, arrays: dict, sizes: dict, out: dict | None = None) -> dict:
        """Allocate outputs and workspace, check everything, and call the kernel
        (the checked path; ``_run_plan`` is the same call prepared in advance)."""
        sig = self.compiled.signatures[role]
        cast = self._ffi.cast
        call_args, results = [], {}
        inputs = [(a.name, arrays[a.name]) for a in sig.args if a.kind == "in"]
        for a in sig.args:
            if a.kind == "size":
                call_args.append(int(sizes[a.name]))
                continue
            if a.kind == "in":
                # every array here passed check_array in forward (backward reads forward's)
                call_args.append(cast("int64_t *" if a.integer else self._pointer_type, arrays[a.name].ctypes.data))
                continue
            shape = tuple(ir.ievaluate(d, sizes) for d in a.shape)
            check_total_size(self.name, a.name, shape)
            if out and a.name in out:
                array = check_output(self.name, a.name, out[a.name], shape, self.dtype, inputs)
                pointer = cast(self._pointer_type, array.ctypes.data)
            else:
                array, pointer = self._take(self._pool_of(role, a.name), shape)
            results[a.name] = array
            call_args.append(pointer)
        self._run(self.compiled.function(role, DTYPE_NAMES[self.dtype]), call_args)
        return results

    def _run(self, function, args) -> None:
        """Call a kernel; numpy's BLAS stays on one thread meanwhile when the
        kernel's matrix products call it (compiler/blas.py). A kernel that
        could not allocate a workspace stops there and returns nonzero."""
        status = blas.call_single_threaded(function, args) if self._calls_blas else function(*args)
        if status:
            raise MemoryError(f"{self.name}: out of memory for a kernel's workspace")

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
                backward = self._role_plan("backward", sizes)
                traced = self.compiled.traced
                grads = tuple((f"grad_{n}", tuple(ir.ievaluate(d, sizes) for d in traced.shape_of(n)))
                              for n in self._outputs)
            except (KeyError, ValueError):      # left to the checked path (and its errors)
                backward = grads = None
            plan = _Plan(dict(sizes), forward, backward, grads)
            if len(self._plans) >= PLAN_LIMIT:
                self._plans.clear()
            self._plans[shapes] = plan
        return plan

    def _role_plan(self, role: str, sizes: dict) -> _RolePlan:
        sig = self.compiled.signatures[role]
        template, ins, outs = [], [], []
        for position, a in enumerate(sig.args):
            if a.kind == "size":
                template.append(int(sizes[a.name]))
                continue
            template.append(None)
            if a.kind == "in":
                ins.append((position, a.name))
                continue
            shape = tuple(ir.ievaluate(d, sizes) for d in a.shape)
            check_total_size(self.name, a.name, shape)
            outs.append((position, a.name, self._pool_of(role, a.name), shape, a.over))
        return _RolePlan(self.compiled.function(role, DTYPE_NAMES[self.dtype]), tuple(template),
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
        returns ``_SLOW`` before any work, and the checked path takes the call
        (with its conversions and error messages)."""
        specs = self._fast_inputs
        if len(args) != len(specs):
            return _SLOW
        arrays, shapes = {}, []
        for (name, want, _), value in zip(specs, args):
            a = value.data if type(value) is Tensor else value
            if type(a) is not np.ndarray or a.dtype is not want or a.flags.num & _C_ALIGNED != _C_ALIGNED:
                return _SLOW
            arrays[name] = a
            shapes.append(a.shape)
        plan = self._plans.get(tuple(shapes))
        if plan is None:
            return _SLOW
        fixed, dtype = self._fixed_shapes, self.dtype
        params = self._parameters
        for name, p in params.items():
            a = p.data
            if (type(a) is not np.ndarray or a.dtype is not dtype or a.flags.num & _C_ALIGNED != _C_ALIGNED
                    or a.shape != fixed.get(name)):
                return _SLOW
            arrays[name] = a
        for name, a in self._buffers.items():
            if (type(a) is not np.ndarray or a.dtype is not dtype or a.flags.num & _C_ALIGNED != _C_ALIGNED
                    or a.shape != fixed.get(name)):
                return _SLOW
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

    def forward(self, *args, out=None, **kwargs):
        """Run the compiled forward. Returns a Tensor (a tuple for several outputs).

        ``out``: an array to write the (single) output into."""
        if out is None and not kwargs:
            result = self._forward_fast(args)
            if result is not _SLOW:
                return result
        given = self._bind_inputs(args, kwargs)
        sizes: dict = {}
        arrays = {}
        for t in self._inputs:
            arrays[t.name] = check_array(self.name, t.name, given[t.name], t.shape, self.dtype, sizes,
                                         integer=t.role == "index", cast=self.cast)
        shapes = tuple(arrays[t.name].shape for t in self._inputs)
        # parameters and buffers too: a user may have replaced one (p.data = ...)
        for name, array in self._arrays().items():
            arrays[name] = check_array(self.name, name, array, self.compiled.traced.decl(name).shape,
                                       self.dtype, sizes)
        program = self.compiled.forward
        out_map = {program.outputs[0]: out} if out is not None else None
        results = self._call("forward", arrays, sizes, out_map)
        plan = self._plan(shapes, sizes)      # the next call with these shapes takes the fast path
        if self.training:
            for buffer, stage in program.updates:
                np.copyto(self._buffers[buffer], results[stage])
        outputs = tuple(Tensor._wrap(results[name]) for name in self._outputs)
        if grad_enabled():
            context = {"arrays": {**arrays, **{n: results[n] for n in self._saved}},
                       "sizes": sizes, "used": False, "plan": plan}
            object.__setattr__(self, "_last", context)
            self._record(outputs, [given[t.name] for t in self._differentiable_inputs()], context)
        else:
            object.__setattr__(self, "_last", None)
        return outputs[0] if len(outputs) == 1 else outputs

    # ------------------------------------------------------------ backward
    def _differentiable_inputs(self):
        return [t for t in self._inputs if t.role == "input"]

    def _run_backward(self, context: dict, grads: tuple) -> dict:
        if context["used"]:
            raise RuntimeError(f"{self.name}: backward already ran for this forward; call forward again")
        outputs = self._outputs
        if len(grads) != len(outputs):
            raise ValueError(f"{self.name}: backward takes {len(outputs)} output gradient(s), got {len(grads)}")
        plan, pointers = context.get("plan"), context.get("pointers")
        if pointers is not None and plan.backward is not None:
            # the fast path: output gradients already fit for C, of the planned shapes
            dtype = self.dtype
            pointers = dict(pointers)        # the context's own stays as forward left it
            from_buffer, array_type = self._ffi.from_buffer, self._float_array_type
            for (name, shape), g in zip(plan.grads, grads):
                if (type(g) is not np.ndarray or g.dtype is not dtype or g.flags.num & _C_ALIGNED != _C_ALIGNED
                        or g.shape != shape):
                    break
                pointers[name] = from_buffer(array_type, g)
            else:
                context["used"] = True
                return self._run_plan(plan.backward, pointers, context["arrays"])[0]
        traced = self.compiled.traced
        arrays = dict(context["arrays"])
        sizes = dict(context["sizes"])
        for name, g in zip(outputs, grads):
            arrays[f"grad_{name}"] = check_array(self.name, f"grad_output ({name})", g, traced.shape_of(name),
                                                 self.dtype, sizes, cast=self.cast)
        context["used"] = True
        return self._call("backward", arrays, sizes)

    def backward(self, *grad_outputs):
        """Gradient of the inputs given the gradient of the output(s) of the latest
        forward; accumulates parameter gradients into ``param.grad``."""
        if self._last is None:
            raise RuntimeError(f"{self.name}: backward called before forward (or forward ran under no_grad)")
        grads = self._run_backward(self._last, tuple(g.data if isinstance(g, Tensor) else g for g in grad_outputs))
        for name, p in self._parameters.items():
            g = grads["grad_" + name]
            if p.grad is None:
                p.grad = g
            else:
                p.grad += g
        names = self._diff_grad_names
        if len(names) == 1:
            return Tensor._wrap(grads[names[0]])
        return tuple(Tensor._wrap(grads[name]) for name in names)

    def zero_grad(self) -> None:
        for p in self._parameters.values():
            p.grad = None
        for m in self._modules.values():
            m.zero_grad()

    def _record(self, outputs: tuple, diff_inputs: list, context: dict):
        """Put this call on the autograd tape (when a parameter or input needs it)."""
        if len(outputs) != 1:
            return
        params = self._parameters
        inputs = diff_inputs + list(params.values())
        for t in inputs:
            if isinstance(t, Tensor) and (t.requires_grad or t.node is not None):
                break
        else:
            return                                   # nothing to differentiate
        keys = tuple(params)
        names = self._tape_names.get(keys)
        if names is None:                            # (once, and again if a parameter is added)
            names = self._tape_names[keys] = self._diff_grad_names + tuple(f"grad_{n}" for n in keys)

        def backward(g):
            grads = self._run_backward(context, (g,))
            return tuple(grads[n] for n in names)

        outputs[0].node = Node(inputs, backward, self.name)

    def describe_inputs(self) -> str:
        return ", ".join(f"{t.name}{describe(t.shape, {})}" for t in self._inputs)
