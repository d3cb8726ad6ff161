"""PyTorch ``state_dict`` into a layerc model and back. The built-in layers
keep torch's parameter and buffer names and layouts (and a ``Sequential``
numbers its children as torch's), so the keys match; what differs is handled
here: values are torch tensors, and torch's batch and instance norms count
their training batches in a ``num_batches_tracked`` buffer that layerc does not
keep (it is read only when ``momentum=None``, which layerc refuses).
(``Module.load_state_dict`` itself takes a torch ``state_dict`` of CPU tensors
whose model has no such counter.)

Example::

    model = Sequential(Linear(4, 3), ReLU())
    from_torch_state_dict(model, torch_model.state_dict())
    torch_model.load_state_dict(to_torch_state_dict(model))
"""
from __future__ import annotations

import numpy as np

COUNTER = "num_batches_tracked"


def _numpy(value) -> np.ndarray:
    """A torch tensor (on any device, with or without grad) or an array as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _counter_keys(module) -> list:
    """``prefix.num_batches_tracked`` for each (sub)module with running statistics, as torch has."""
    return [name[:-len("running_mean")] + COUNTER for name, _ in module.named_buffers()
            if name == "running_mean" or name.endswith(".running_mean")]


def from_torch_state_dict(module, state_dict, strict: bool = True):
    """Load a PyTorch ``state_dict`` (tensors or arrays) into ``module`` in
    place; ``num_batches_tracked`` entries are kept aside (``to_torch_state_dict``
    gives them back). Keys, shapes and dtypes are checked as in
    ``Module.load_state_dict``. Returns ``module``.

    Example::

        from_torch_state_dict(layer, torch.nn.Linear(3, 2).state_dict())
    """
    counters = set(_counter_keys(module))
    state, kept = {}, {}
    for key, value in state_dict.items():
        (kept if key in counters else state)[key] = _numpy(value)
    module.load_state_dict(state, strict=strict)
    object.__setattr__(module, "_torch_counters", {k: int(v) for k, v in kept.items()})
    return module


def to_torch_state_dict(module) -> dict:
    """``module``'s parameters and buffers as torch tensors (copies), with the
    ``num_batches_tracked`` counters torch's norms expect (as loaded, else 0).

    Example::

        torch_layer.load_state_dict(to_torch_state_dict(layer))
    """
    import torch
    state = {key: torch.from_numpy(np.array(value)) for key, value in module.state_dict().items()}
    counters = module.__dict__.get("_torch_counters", {})
    for key in _counter_keys(module):
        state[key] = torch.tensor(counters.get(key, 0), dtype=torch.long)
    return state
