"""Gradient checking: the derived (or hand-written) backward against central
finite differences in float64.

Example::

    report = check_grad(PReLU, C=3, N=4)
    print(report)            # worst relative error per input and parameter
    assert report.ok
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compiler.pipeline import compile_layer
from .compiler.spec import LayerSpec
from .runtime.module import LayerModule
from .runtime.record import evaluate, size_names

TOLERANCE = 1e-6


@dataclass
class GradReport:
    """Worst relative error per tensor (``max |analytic - numeric| / max(1, max |numeric|)``)."""

    layer: str
    errors: dict = field(default_factory=dict)
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return all(e <= self.tolerance for e in self.errors.values())

    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self):
        lines = [f"gradient check of {self.layer} (float64, central differences, tolerance {self.tolerance:g}):"]
        for name, err in self.errors.items():
            lines.append(f"  {name:<24} relative error {err:.2e}  {'ok' if err <= self.tolerance else 'FAILED'}")
        lines.append("passed" if self.ok else "FAILED")
        return "\n".join(lines)

    def assert_ok(self):
        if not self.ok:
            raise AssertionError(str(self))
        return self


def relative_error(analytic, reference) -> float:
    """``max |analytic - reference| / max(1, max |reference|)`` (inf when the shapes differ)."""
    analytic, reference = np.asarray(analytic), np.asarray(reference)
    if analytic.shape != reference.shape:
        return float("inf")
    if analytic.size == 0:
        return 0.0
    return float(np.max(np.abs(analytic - reference)) / max(1.0, float(np.max(np.abs(reference)))))


def numeric_gradient(f, array: np.ndarray, eps: float = 1e-6, positions=None) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``array``
    (perturbed in place): the whole gradient, or its elements at the flat
    ``positions``."""
    flat = array.reshape(-1)
    picks = range(flat.size) if positions is None else positions
    values = np.empty(len(picks))
    for k, i in enumerate(picks):
        original = flat[i]
        flat[i] = original + eps
        up = f()
        flat[i] = original - eps
        down = f()
        flat[i] = original
        values[k] = (up - down) / (2 * eps)
    return values.reshape(array.shape) if positions is None else values


def sample_inputs(module, given: dict | None, size, rng, caller: str) -> dict:
    """float64 inputs for ``module``: those ``given``, the rest drawn from N(0, 1)
    at the sizes ``size(dim)`` gives; integer inputs must be given."""
    given = dict(given or {})
    arrays = {}
    for t in module._inputs:
        if t.name in given:
            arrays[t.name] = np.array(given[t.name], dtype=np.int64 if t.role == "index" else np.float64)
        elif t.role == "index":
            raise ValueError(f"{caller}: give the integer input {t.name} in inputs=")
        else:
            arrays[t.name] = rng.standard_normal(tuple(size(d) for d in t.shape))
    return arrays


def check_grad(spec: LayerSpec, inputs: dict | None = None, seed: int = 0, eps: float = 1e-6,
               tolerance: float = TOLERANCE, module=None, **bindings) -> GradReport:
    """Compare the module's backward with finite differences for every
    differentiable input and parameter.

    ``bindings`` bind every size (``N=3`` too) and attributes; ``inputs`` may give
    arrays (integer inputs such as class targets must be given). Random inputs
    are drawn from N(0, 1) with a fixed seed."""
    rng = np.random.default_rng(seed)
    module = module or LayerModule(compile_layer(spec, **bindings), dtype=np.float64)
    arrays = sample_inputs(module, inputs, lambda d: _size(d, module, bindings), rng, f"check_grad({spec.name})")
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.data.shape) * 0.5 + p.data * 0.5
    buffers = {name: b.copy() for name, b in module.named_buffers()}

    def outputs():
        for name, b in module.named_buffers():
            b[...] = buffers[name]
        out = module.forward(**arrays)
        return out if isinstance(out, tuple) else (out,)

    weights = [rng.standard_normal(o.shape) for o in outputs()]

    def loss():
        return float(sum(np.sum(o.numpy() * w) for o, w in zip(outputs(), weights)))

    module.zero_grad()
    outputs()
    analytic = module.backward(*weights)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    report = GradReport(spec.name, tolerance=tolerance)
    diff_inputs = [t.name for t in module._differentiable_inputs()]
    for name, g in zip(diff_inputs, analytic):
        report.errors[name] = relative_error(g.numpy(), numeric_gradient(loss, arrays[name], eps))
    for name, p in module.named_parameters():
        analytic_p = p.grad.copy()
        report.errors[name] = relative_error(analytic_p, numeric_gradient(loss, p.data, eps))
    return report


def _size(d, module, bindings):
    missing = sorted(s for s in size_names(d) if s not in bindings)
    if missing:
        raise ValueError(f"check_grad({module.name}): bind the size(s) {', '.join(missing)}, e.g. "
                         f"{missing[0]}=3")
    return evaluate(d, bindings)
