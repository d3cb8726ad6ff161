"""Verification of a user-written backward against the derived one and finite
differences (the user's backward is traced in ``layerc.compiler.custom_backward``).

``verify_backward(spec, **sizes)`` runs the user's backward and the derived
backward on the same random inputs, parameters and output gradients (float64)
and reports the relative error of every gradient, plus a finite-difference
check on a sample of elements of each tensor. ``report.ok``;
``report.assert_ok()`` raises ``BackwardMismatch`` naming each wrong tensor.
It runs when a spec with a backward is first built (``check_on_build``): a
wrong backward raises at build time. A verdict that passed is kept in the
cache, so a warm start pays nothing; ``spec.build(..., checked=False)`` or
``LAYERC_CHECK_BACKWARD=0`` opts out.
"""
from __future__ import annotations

import copy
import hashlib
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .compiler import ir, store
from .compiler.pipeline import compile_layer
from .gradcheck import numeric_gradient, relative_error, sample_inputs
from .runtime.module import LayerModule
from .runtime.record import evaluate, size_names

CHECK_ENV = "LAYERC_CHECK_BACKWARD"
TOLERANCE = 1e-6


class BackwardMismatch(AssertionError):
    """A user-written backward disagrees with the derived backward or with finite differences."""


@dataclass
class BackwardReport:
    """Per tensor: relative error of the user's backward against the derived one
    (``max |user - derived| / max(1, max |derived|)``, all elements) and against
    central finite differences (on ``fd_samples`` sampled elements)."""

    layer: str
    derived: dict = field(default_factory=dict)
    finite_differences: dict = field(default_factory=dict)
    tolerance: float = TOLERANCE
    sizes: dict = field(default_factory=dict)

    def wrong(self) -> list:
        names = list(self.derived) + [n for n in self.finite_differences if n not in self.derived]
        return [n for n in names if self.derived.get(n, 0.0) > self.tolerance
                or self.finite_differences.get(n, 0.0) > self.tolerance]

    @property
    def ok(self) -> bool:
        return not self.wrong()

    def __str__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        lines = [f"user-written backward of {self.layer} ({sizes}; float64, tolerance {self.tolerance:g}):"]
        for name in self.derived:
            d, f = self.derived[name], self.finite_differences.get(name)
            fd = f"{f:.2e}" if f is not None else "   -    "
            verdict = "ok" if name not in self.wrong() else "WRONG"
            lines.append(f"  grad {name:<20} vs derived {d:.2e}   vs finite differences {fd}   {verdict}")
        wrong = self.wrong()
        lines.append("passed" if not wrong else f"FAILED: the user-written gradient of {', '.join(wrong)} is wrong")
        return "\n".join(lines)

    def assert_ok(self):
        if not self.ok:
            raise BackwardMismatch(str(self))
        return self


_twins: dict = {}
_twins_lock = threading.Lock()


def derived_twin(spec):
    """The same spec without its ``backward`` (so it runs the derived backward)."""
    with _twins_lock:
        entry = _twins.get(id(spec))
        if entry is None or entry[0] is not spec:
            twin = copy.copy(spec)
            twin.backward = None
            entry = _twins[id(spec)] = (spec, twin)
        return entry[1]


def _free_sizes(module, bindings: dict, default: int) -> dict:
    sizes = dict(bindings)
    for t in module._inputs:
        for d in t.shape:
            for s in size_names(d):
                sizes.setdefault(s, default)
    return sizes


def verify_backward(spec, inputs: dict | None = None, seed: int = 0, eps: float = 1e-6,
                    tolerance: float = TOLERANCE, fd_samples: int = 8, free_size: int = 3,
                    **bindings) -> BackwardReport:
    """Compare ``spec``'s user-written backward with the derived backward (every
    element) and with central finite differences (``fd_samples`` random elements
    of each tensor), in float64.

    ``bindings`` bind sizes and attributes as in ``build``; sizes left free
    (the batch) take ``free_size``. Float inputs are drawn from N(0, 1);
    integer inputs (class targets) must be given in ``inputs``.
    """
    if spec.backward is None:
        raise ValueError(f"verify_backward({spec.name}): the spec has no user-written backward")

    user = LayerModule(compile_layer(spec, **bindings), dtype=np.float64)
    derived = LayerModule(compile_layer(derived_twin(spec), **bindings), dtype=np.float64)
    sizes = _free_sizes(user, {k: v for k, v in bindings.items() if k in spec.sizes}, free_size)
    rng = np.random.default_rng(seed)
    arrays = sample_inputs(user, inputs, lambda d: evaluate(d, sizes), rng, f"verify_backward({spec.name})")
    for name, p in user.named_parameters():
        p.data[...] = rng.standard_normal(p.data.shape) * 0.5 + p.data * 0.5
        dict(derived.named_parameters())[name].data[...] = p.data
    buffers = {name: b.copy() for name, b in user.named_buffers()}

    def run(module):
        for name, b in module.named_buffers():
            b[...] = buffers[name]
        out = module.forward(**arrays)
        return out if isinstance(out, tuple) else (out,)

    weights = [rng.standard_normal(o.shape) for o in run(user)]

    def gradients(module):
        module.zero_grad()
        run(module)
        g = module.backward(*weights)
        g = g if isinstance(g, tuple) else (g,)
        result = {t.name: x.numpy() for t, x in zip(module._differentiable_inputs(), g)}
        result.update({n: p.grad.copy() for n, p in module.named_parameters()})
        return result

    got, want = gradients(user), gradients(derived)

    def loss():
        return float(sum(np.sum(o.numpy() * w) for o, w in zip(run(user), weights)))

    report = BackwardReport(spec.name, tolerance=tolerance,
                            sizes={**sizes, **{k: v for k, v in bindings.items() if k not in sizes}})
    params = dict(user.named_parameters())
    for name in got:
        report.derived[name] = relative_error(got[name], want[name])
        target = arrays[name] if name in arrays else params[name].data
        if fd_samples and target.size:
            picks = rng.choice(target.size, size=min(fd_samples, target.size), replace=False)
            numeric = numeric_gradient(loss, target, eps, positions=picks)
            report.finite_differences[name] = relative_error(got[name].reshape(-1)[picks], numeric)
    return report


def checking_requested(checked: bool | None = None) -> bool:
    """Whether a build verifies a user-written backward: ``checked`` when given,
    else yes unless the environment variable ``LAYERC_CHECK_BACKWARD`` says
    ``0`` (or false, no, off)."""
    if checked is not None:
        return bool(checked)
    return os.environ.get(CHECK_ENV, "").strip().lower() not in ("0", "false", "no", "off")


_verified: dict = {}
_verifications = 0
VERDICTS = "verdicts"       # the store's memos of backwards that passed


def verifications() -> int:
    """How many user-written backwards this process has verified (0 when every
    verdict came from the cache)."""
    return _verifications


def _verdict_key(spec, bindings: dict) -> str:
    """What the verdict depends on: the traced forward and the user's traced
    backward (never a guess at what the Python reads), and the bindings."""
    compiled = compile_layer(spec, **bindings)
    text = "\n".join([ir.format_program(compiled.traced), ir.format_program(compiled.user_backward),
                      repr(sorted(bindings.items()))])
    return hashlib.sha256(text.encode()).hexdigest()


def check_on_build(spec, checked: bool | None = None, **bindings):
    """Verify a user-written backward (unless opted out, see ``checking_requested``):
    once per spec and bindings in a process, and once ever for the same traced
    programs (a passed verdict is kept in the cache). Raises ``BackwardMismatch``
    with the report when a gradient is wrong."""
    global _verifications
    if spec.backward is None or not checking_requested(checked):
        return None
    key = (id(spec), repr(sorted(bindings.items())))
    entry = _verified.get(key)
    if entry is None or entry[0] is not spec:
        verdict = _verdict_key(spec, bindings)
        if store.read_memo(VERDICTS, verdict) == "passed":
            return None
        _verifications += 1
        entry = _verified[key] = (spec, verify_backward(spec, **bindings))
        if entry[1].ok:
            store.write_memo(VERDICTS, verdict, "passed")
    return entry[1].assert_ok()


__all__ = ["verify_backward", "BackwardReport", "BackwardMismatch", "check_on_build",
           "checking_requested", "derived_twin", "verifications"]
