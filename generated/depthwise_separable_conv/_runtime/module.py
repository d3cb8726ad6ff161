"""``LayerModule``: a module whose math runs in the C that layerc generated
for a spec, described to the runtime by a ``LayerRecord`` (runtime/record.py).
``Module``, the base of every module, is in runtime/base.py.

Example::

    m = PReLU.build(C=4)                 # a LayerModule
    y = m.forward(np.ones((2, 4), np.float32))
    gx = m.backward(np.ones((2, 4), np.float32))
    m.alpha.grad                         # accumulated until m.zero_grad()
"""
from __future__ import annotations

import numpy as np

from . import blas, isa, threads
from .base import Module
from .call_plans import C_ALIGNED, SLOW, CallPlans
from .init import initialize
from .record import LayerRecord, describe, evaluate
from .spans import SpanCalls
from .tensor import Node, Tensor, grad_enabled
from .validate import check_array, check_indices, check_output, check_total_size

DTYPE_NAMES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class LayerModule(SpanCalls, CallPlans, Module):
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
    libgomp is not fork-safe: in a child made by ``fork`` every layer runs on one
    thread, loaded before the fork or after (runtime/threads.py); use the 'spawn'
    multiprocessing start method for parallel kernels in children.
    """

    def __init__(self, layer, dtype=None, cast: bool = False):
        """``layer``: a ``LayerRecord``, or a compiled layer (anything whose
        ``record_fields()`` gives ``LayerRecord.of``'s arguments: what
        ``compile_layer`` returns), kept as ``self.compiled``."""
        super().__init__()
        record = layer if isinstance(layer, LayerRecord) else LayerRecord.of(origin=layer, **layer.record_fields())
        dtype = np.dtype(dtype or np.float32)
        if dtype not in DTYPE_NAMES:
            raise TypeError(f"{record.name}: dtype must be float32 or float64, got {dtype}")
        library = record.load_library(DTYPE_NAMES[dtype], isa.chosen())
        threads.adopt(library, record.prefix)
        setup = object.__setattr__
        setup(self, "record", record)
        setup(self, "compiled", record.origin)
        setup(self, "_library", library)
        setup(self, "_calls_blas", record.calls_blas)
        setup(self, "_functions", {role: getattr(library.lib, f"{f.function}_{DTYPE_NAMES[dtype]}")
                                   for role, f in record.functions})
        setup(self, "dtype", dtype)
        setup(self, "cast", cast)
        setup(self, "_last", None)
        setup(self, "_inputs", record.of_role("input", "data", "index"))
        setup(self, "_index_ranges", record.index_ranges)
        # integer inputs read as indices are range-checked before each call;
        # False skips it, for data known to be in range
        setup(self, "check_indices", True)
        setup(self, "_fixed_shapes", {t.name: record.fixed_shape(t) for t in record.of_role("param", "buffer")})
        for t in record.of_role("param", "buffer"):
            shape = self._fixed_shapes[t.name]
            if t.role == "param":
                values = initialize(t.init, shape, dtype, t.fan_in, t.fan_out)
                setattr(self, t.name, Tensor(values, requires_grad=True))
            else:
                self._buffers[t.name] = initialize(t.init, shape, dtype)
        self._prepare_fast_path()

    def __repr__(self):
        bindings = ", ".join(f"{k}={v}" for k, v in self.record.bindings)
        return f"{self.record.name}({bindings})"

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def source(self) -> str:
        """The generated C."""
        return self.record.source

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
        threads.set_threads(self._library, n)

    def set_stream_bytes(self, n: int) -> None:
        """Outputs of at least ``n`` bytes a kernel writes along its innermost
        loop go straight to memory, past the caches (0: the default, 16 MiB,
        half the last-level cache of the machine it was measured on). Per
        compiled library, as ``set_threads``. Example:
        ``module.set_stream_bytes(1 << 30)`` keeps outputs under 1 GiB in the
        caches."""
        getattr(self._library.lib, f"{self.record.prefix}_set_stream_bytes")(int(n))

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
        sig = self.record.function(role)
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
            shape = tuple(evaluate(d, sizes) for d in a.shape)
            check_total_size(self.name, a.name, shape)
            if out and a.name in out:
                array = check_output(self.name, a.name, out[a.name], shape, self.dtype, inputs)
                pointer = cast(self._pointer_type, array.ctypes.data)
            else:
                array, pointer = self._take(self._pool_of(role, a.name), shape)
            results[a.name] = array
            call_args.append(pointer)
        self._run(self._functions[role], call_args)
        return results

    def _run(self, function, args) -> None:
        """Call a kernel; numpy's BLAS stays on one thread meanwhile when the
        kernel's matrix products call it (runtime/blas.py). A kernel returns
        0, or what stopped it (the record's ``statuses``): raised here."""
        status = blas.call_single_threaded(function, args) if self._calls_blas else function(*args)
        if status:
            raise self.record.status_error(status)

    def forward(self, *args, out=None, **kwargs):
        """Run the compiled forward. Returns a Tensor (a tuple for several outputs).

        ``out``: an array to write the (single) output into."""
        if self._spans:                         # declared with ...: runtime/spans.py
            return self._span_forward(args, kwargs, out)
        return self._forward_plain(args, kwargs, out)

    def _forward_plain(self, args: tuple, kwargs: dict, out):
        """``forward`` on inputs of the shapes the record declares."""
        if out is None and not kwargs:
            result = self._forward_fast(args)
            if result is not SLOW:
                return result
        given = self._bind_inputs(args, kwargs)
        sizes: dict = {}
        arrays = {}
        for t in self._inputs:
            arrays[t.name] = check_array(self.name, t.name, given[t.name], t.shape, self.dtype, sizes,
                                         integer=t.role == "index", cast=self.cast)
        shapes = tuple(arrays[t.name].shape for t in self._inputs)
        if self._index_ranges and self.check_indices:
            check_indices(self.name, self._index_ranges, arrays, sizes)
        # parameters and buffers too: a user may have replaced one (p.data = ...)
        for name, array in self._arrays().items():
            arrays[name] = check_array(self.name, name, array, self.record.tensor(name).shape,
                                       self.dtype, sizes)
        out_map = {self._outputs[0]: out} if out is not None else None
        results = self._call("forward", arrays, sizes, out_map)
        plan = self._plan(shapes, sizes)      # the next call with these shapes takes the fast path
        if self.training:
            for buffer, stage in self._updates:
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

    def _run_backward(self, context: dict, grads: tuple, role: str = "backward") -> dict:
        """The gradients of a forward's inputs and parameters, by the backward
        function ``role`` (``BACKWARDS``), given its outputs' gradients ``grads``."""
        if context["used"]:
            raise RuntimeError(f"{self.name}: backward already ran for this forward; call forward again")
        outputs = self._outputs
        if len(grads) != len(outputs):
            raise ValueError(f"{self.name}: backward takes {len(outputs)} output gradient(s), got {len(grads)}")
        plan, pointers = context.get("plan"), context.get("pointers")
        if pointers is not None and role in plan.backwards:
            # the fast path: output gradients already fit for C, of the planned shapes
            dtype = self.dtype
            pointers = dict(pointers)        # the context's own stays as forward left it
            from_buffer, array_type = self._ffi.from_buffer, self._float_array_type
            for (name, shape), g in zip(plan.grads, grads):
                if (type(g) is not np.ndarray or g.dtype is not dtype or g.flags.num & C_ALIGNED != C_ALIGNED
                        or g.shape != shape):
                    break
                pointers[name] = from_buffer(array_type, g)
            else:
                context["used"] = True
                return self._run_plan(plan.backwards[role], pointers, context["arrays"])[0]
        arrays = dict(context["arrays"])
        sizes = dict(context["sizes"])
        for name, g in zip(outputs, grads):
            arrays[f"grad_{name}"] = check_array(self.name, f"grad_output ({name})", g, self.record.tensor(name).shape,
                                                 self.dtype, sizes, cast=self.cast)
        context["used"] = True
        return self._call(role, arrays, sizes)

    def backward(self, *grad_outputs):
        """Gradient of the inputs given the gradient of the output(s) of the latest
        forward; accumulates parameter gradients into ``param.grad``."""
        if self._spans:                         # declared with ...: runtime/spans.py
            return self._span_backward(grad_outputs)
        return self._backward_plain(*grad_outputs)

    def _backward_plain(self, *grad_outputs):
        if self._last is None:
            raise RuntimeError(f"{self.name}: backward called before forward (or forward ran under no_grad)")
        grads = self._run_backward(self._last, tuple(g.data if isinstance(g, Tensor) else g for g in grad_outputs))
        self._accumulate(grads, every=True)
        names = self._diff_grad_names
        if len(names) == 1:
            return Tensor._wrap(grads[names[0]])
        return tuple(Tensor._wrap(grads[name]) for name in names)

    def zero_grad(self) -> None:
        for p in self._parameters.values():
            p.grad = None
        for m in self._modules.values():
            m.zero_grad()

    def _accumulate(self, grads: dict, every: bool = False) -> None:
        """Add a backward's parameter gradients into ``param.grad``: the array
        itself where there was none (the module's pooled output, handed over:
        no copy), else in place. ``every``: also parameters that need no
        gradient (the explicit ``backward()`` has always filled them)."""
        for name, p in self._parameters.items():
            if not (every or p.requires_grad):
                continue
            g = grads["grad_" + name]
            if p.grad is None:
                p.grad = g
            else:
                p.grad += g

    def _record(self, outputs: tuple, diff_inputs: list, context: dict):
        """Put this call on the autograd tape (when a parameter or input needs it).
        The node's inputs are the differentiable inputs; the parameters' gradients
        go straight into ``param.grad`` when the tape reaches the node (the tape
        would copy each into a new array). When no input needs a gradient, the
        backward without input gradients runs, where the layer has one."""
        if len(outputs) != 1:
            return
        role = "backward"
        for t in diff_inputs:
            if isinstance(t, Tensor) and (t.requires_grad or t.node is not None):
                break
        else:
            for p in self._parameters.values():
                if p.requires_grad:
                    break
            else:
                return                               # nothing to differentiate
            if "backward_params" in self._functions:
                role = "backward_params"
        names = self._diff_grad_names

        def backward(g):
            grads = self._run_backward(context, (g,), role)
            self._accumulate(grads)
            return tuple(grads.get(n) for n in names)

        outputs[0].node = Node(diff_inputs, backward, self.name)

    def describe_inputs(self) -> str:
        return ", ".join(f"{t.name}{describe(t.shape, {}, t.ellipsis)}" for t in self._inputs)
