"""Optimizers (``SGD``, ``Adam``, ``AdamW``) and learning-rate schedules.

Each update is a rule over the parameter flattened to one dimension: inputs
are the parameter, its gradient, the optimizer's state and the
hyperparameters (one-element arrays, so changing the learning rate never
recompiles); outputs are the new values. ``UPDATE_RULES`` holds them in
numpy; ``import layerc`` replaces them with compiled kernels. The results are written back into the parameter arrays in place, so
``param.numpy()`` views stay valid.

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


def _apply(rule: str, arrays: tuple, scalars: dict, **attrs) -> tuple:
    """Run update ``rule`` on flat arrays with scalar hyperparameters; a tuple of new arrays."""
    result = UPDATE_RULES[rule](*arrays, **scalars, **attrs)
    return result if isinstance(result, tuple) else (result,)


class Optimizer:
    """Common part: which parameters, per-parameter state, ``step`` and ``zero_grad``."""

    def __init__(self, params=None, lr=None):
        if isinstance(params, numbers.Real):      # SGD(0.01): the learning rate, positionally
            params, lr = None, params
        if lr is None or lr < 0:
            raise ValueError(f"{type(self).__name__}: a learning rate lr >= 0 is required, got {lr!r}")
        self.params = None if params is None else self._check(params)
        self.lr = float(lr)
        self.state: dict = {}          # id(param) -> (param, {buffer name: flat array})

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

    def _scalars(self, dtype, **values) -> dict:
        return {k: np.array([v], dtype) for k, v in values.items()}

    def step(self, params=None) -> None:
        """Update every parameter that has a gradient, in place."""
        with no_grad():
            for p in self._resolve(params):
                if p.grad is None:
                    continue
                if p.grad.shape != p.shape:
                    raise ValueError(f"gradient of shape {p.grad.shape} for a parameter of shape {p.shape}")
                flat = p.data.reshape(-1)
                grad = np.ascontiguousarray(p.grad, dtype=p.data.dtype).reshape(-1)
                new = self._update(p, flat, grad)
                np.copyto(p.data, new.reshape(p.shape))

    def zero_grad(self, params=None) -> None:
        for p in self._resolve(params):
            p.grad = None

    def _update(self, p, flat, grad) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay
    (``torch.optim.SGD`` semantics, dampening 0)."""

    def __init__(self, params=None, lr=None, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)

    def _update(self, p, flat, grad):
        dtype = flat.dtype
        if self.momentum == 0:
            return _apply("sgd", (flat, grad), self._scalars(dtype, lr=self.lr,
                                                             weight_decay=self.weight_decay))[0]
        state = self._buffers(p, ["velocity"])
        new, state["velocity"] = _apply("sgd_momentum", (flat, grad, state["velocity"]), self._scalars(
            dtype, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay), nesterov=self.nesterov)
        return new


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``: weight decay as L2 added to the gradient)."""

    decoupled = False

    def __init__(self, params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)

    def _update(self, p, flat, grad):
        dtype = flat.dtype
        state = self._buffers(p, ["m", "v"])
        t = state["t"] = state.get("t", 0) + 1
        b1, b2 = self.betas
        new, state["m"], state["v"] = _apply("adam", (flat, grad, state["m"], state["v"]), self._scalars(
            dtype, lr=self.lr, beta1=b1, beta2=b2, eps=self.eps, weight_decay=self.weight_decay,
            step_size=self.lr / (1 - b1 ** t), bc2_sqrt=math.sqrt(1 - b2 ** t)), decoupled=self.decoupled)
        return new


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
