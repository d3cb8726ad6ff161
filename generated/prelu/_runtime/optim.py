"""Optimizers (``SGD``, ``Adam``, ``AdamW``) and learning-rate schedules.

Each update is a rule over the parameter flattened to one dimension: inputs
are the parameter, its gradient, the optimizer's state and the
hyperparameters (one-element arrays, so changing the learning rate never
recompiles); outputs are the new values. ``UPDATE_RULES`` holds them in
numpy; ``import layerc`` installs compiled kernels, and ``MULTI_RULES`` that
run one over every parameter in one call. The new values are written over the
parameter arrays and the state in place, so ``param.numpy()`` views stay valid
and a steady-state step allocates no arrays.

Both calling conventions work::

    opt = SGD(lr=0.01)                         # the guide's form
    loss.backward(); opt.step(model.parameters())

    opt = Adam(model.parameters(), lr=1e-3)    # the usual form
    opt.zero_grad(); loss.backward(); opt.step()

As in PyTorch, ``step`` does not clear gradients: call ``zero_grad()``
(or ``model.zero_grad()``) before each backward, or gradients accumulate.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .tensor import Tensor, no_grad


def sgd_rule(param, grad, lr, weight_decay):
    """``param - lr * (grad + weight_decay * param)``."""
    return param - lr * (grad + weight_decay * param)


def sgd_momentum_rule(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """Heavy-ball momentum as ``torch.optim.SGD`` (dampening 0); ``nesterov`` looks ahead."""
    g = grad + weight_decay * param
    v = momentum * velocity + g
    step = g + momentum * v if nesterov else v
    return param - lr * step, v


def adam_rule(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt, decoupled):
    """Adam as ``torch.optim.Adam``/``AdamW``. ``step_size = lr / (1 - beta1**t)``,
    ``bc2_sqrt = sqrt(1 - beta2**t)``; ``decoupled`` applies the weight decay
    to the parameter (AdamW) instead of adding it to the gradient (Adam's L2)."""
    if decoupled:
        param = param * (1.0 - lr * weight_decay)
    else:
        grad = grad + weight_decay * param
    m2 = beta1 * m + (1.0 - beta1) * grad
    v2 = beta2 * v + (1.0 - beta2) * grad * grad
    return param - step_size * m2 / (np.sqrt(v2) / bc2_sqrt + eps), m2, v2


# The update rules, run on numpy arrays (what a package ships with runs these).
# The same functions traced on a spec's tensors are the compiled kernels
# ``import layerc`` installs here (``layerc.optim_kernels``): np.sqrt on a
# traced tensor is its sqrt op. The core itself never needs the compiler.
UPDATE_RULES = {"sgd": sgd_rule, "sgd_momentum": sgd_momentum_rule, "adam": adam_rule}
# the positions of the rule's inputs its outputs replace, in order: the
# parameter, then the state buffers (``adam``'s m and v)
WRITES_BACK = {"sgd": (0,), "sgd_momentum": (0, 2), "adam": (0, 2, 3)}
# ``name -> (dtype, **attrs) -> apply``: one compiled call of a rule over many
# tensors (``layerc.optim_kernels`` installs them); ``apply(tensors, scalars)``
# takes each tensor's flat arrays in the rule's order and updates them in place
MULTI_RULES: dict = {}


def apply_each(rule: str, tensors: list, scalars: dict, **attrs) -> None:
    """Update ``rule`` over each tuple of flat arrays in ``tensors``, in place:
    the numpy rules one tensor at a time (the fallback of ``MULTI_RULES``)."""
    update, back = UPDATE_RULES[rule], WRITES_BACK[rule]
    for arrays in tensors:
        result = update(*arrays, **scalars, **attrs)
        for position, new in zip(back, result if isinstance(result, tuple) else (result,)):
            np.copyto(arrays[position], new)


def _apply(rule: str, dtype, tensors: list, scalars: dict, **attrs) -> None:
    multi = MULTI_RULES.get(rule)
    apply = multi(dtype, **attrs) if multi is not None else None
    if apply is None:
        apply_each(rule, tensors, scalars, **attrs)
    else:
        apply(tensors, scalars)


class Optimizer:
    """Common part: which parameters, per-parameter state, ``step`` and ``zero_grad``.

    ``step`` gathers every parameter that has a gradient, with its state, and
    updates them all in one call of the rule (``MULTI_RULES``; one per distinct
    dtype and, for Adam, step count), writing the parameters and the state in
    place: a steady-state step allocates no arrays."""

    def __init__(self, params=None, lr=None):
        if isinstance(params, numbers.Real):      # SGD(0.01): the learning rate, positionally
            params, lr = None, params
        if lr is None or lr < 0:
            raise ValueError(f"{type(self).__name__}: a learning rate lr >= 0 is required, got {lr!r}")
        self.params = None if params is None else self._check(params)
        self.lr = float(lr)
        self.state: dict = {}          # id(param) -> (param, {buffer name: flat array})
        self._hyper: dict = {}         # (dtype, slot) -> {name: one-element array}, reused

    @staticmethod
    def _check(params) -> list:
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizers update Tensors (module.parameters()), got {type(p).__name__}")
        return params

    def _resolve(self, params) -> list:
        if params is not None:
            return self._check(params)
        if self.params is None:
            raise ValueError(f"{type(self).__name__}.step(): pass the parameters, "
                             "here or when creating the optimizer")
        return self.params

    def _buffers(self, p: Tensor, names) -> dict:
        entry = self.state.get(id(p))
        if entry is None or entry[0] is not p:
            entry = (p, {n: np.zeros(p.data.size, p.data.dtype) for n in names})
            self.state[id(p)] = entry
        return entry[1]

    def _scalars(self, dtype, slot, **values) -> dict:
        """One-element arrays of the hyperparameters, kept per dtype and group
        (``slot``: its place in this step) and overwritten at each step."""
        kept = self._hyper.get((dtype, slot))
        if kept is None or kept.keys() != values.keys():
            kept = self._hyper[(dtype, slot)] = {k: np.empty(1, dtype) for k in values}
        for k, v in values.items():
            kept[k][0] = v
        return kept

    def step(self, params=None) -> None:
        """Update every parameter that has a gradient, in place."""
        groups, copies, seen = {}, [], set()
        for p in self._resolve(params):
            if p.grad is None or id(p) in seen:      # a parameter listed twice is updated once
                continue
            seen.add(id(p))
            if p.grad.shape != p.shape:
                raise ValueError(f"gradient of shape {p.grad.shape} for a parameter of shape {p.shape}")
            data = p.data
            if not data.flags.c_contiguous:           # updated in a copy, written back below
                data = np.ascontiguousarray(data)
                copies.append((p.data, data))
            flat = data.reshape(-1)
            grad = np.ascontiguousarray(p.grad, dtype=flat.dtype).reshape(-1)
            key, arrays = self._gather(p, flat, grad)
            groups.setdefault((flat.dtype, key), []).append(arrays)
        with no_grad():
            for slot, ((dtype, key), tensors) in enumerate(groups.items()):
                self._update(dtype, key, slot, tensors)
        for target, data in copies:
            np.copyto(target, data)

    def zero_grad(self, params=None) -> None:
        for p in self._resolve(params):
            p.grad = None

    def _gather(self, p, flat, grad) -> tuple:
        """``(group key, the rule's flat arrays for p)``: parameters of one group share the hyperparameters."""
        raise NotImplementedError

    def _update(self, dtype, key, slot: int, tensors: list) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay
    (``torch.optim.SGD`` semantics, dampening 0)."""

    def __init__(self, params=None, lr=None, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)

    def _gather(self, p, flat, grad):
        if self.momentum == 0:
            return None, (flat, grad)
        return None, (flat, grad, self._buffers(p, ["velocity"])["velocity"])

    def _update(self, dtype, key, slot, tensors):
        if self.momentum == 0:
            _apply("sgd", dtype, tensors, self._scalars(dtype, slot, lr=self.lr, weight_decay=self.weight_decay))
            return
        _apply("sgd_momentum", dtype, tensors, self._scalars(
            dtype, slot, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay), nesterov=self.nesterov)


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``: weight decay as L2 added to the gradient)."""

    decoupled = False

    def __init__(self, params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)

    def _gather(self, p, flat, grad):
        state = self._buffers(p, ["m", "v"])
        t = state["t"] = state.get("t", 0) + 1         # per parameter, as torch counts
        return t, (flat, grad, state["m"], state["v"])

    def _update(self, dtype, t, slot, tensors):
        b1, b2 = self.betas
        _apply("adam", dtype, tensors, self._scalars(
            dtype, slot, lr=self.lr, beta1=b1, beta2=b2, eps=self.eps, weight_decay=self.weight_decay,
            step_size=self.lr / (1 - b1 ** t), bc2_sqrt=math.sqrt(1 - b2 ** t)), decoupled=self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``; default weight_decay 0.01)."""

    decoupled = True

    def __init__(self, params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


# ---------------------------------------------------------------- learning-rate schedules


class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` calls of ``step()``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
        self.base_lr, self.epoch = optimizer.lr, 0

    def step(self) -> float:
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)
        return self.optimizer.lr


class CosineAnnealingLR:
    """Cosine decay from the initial learning rate to ``eta_min`` over ``T_max`` steps."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.optimizer, self.T_max, self.eta_min = optimizer, int(T_max), float(eta_min)
        self.base_lr, self.epoch = optimizer.lr, 0

    def step(self) -> float:
        self.epoch = min(self.epoch + 1, self.T_max)
        cos = (1 + math.cos(math.pi * self.epoch / self.T_max)) / 2
        self.optimizer.lr = self.eta_min + (self.base_lr - self.eta_min) * cos
        return self.optimizer.lr
