"""The module class of a package ``layerc build`` wrote, made from its files.

A package holds this runtime core (as ``<package>._runtime``), ``layer.json``
(its ``LayerRecord`` as data, the class name, the compiled extensions' names (one per
instruction-set level, see ``isa.py``) and
a key of its sources), ``params.npz`` (initial parameter and buffer values),
``source.c`` and the extension. Its ``__init__.py`` is one call::

    Module = load_package(__name__, __path__[0], __doc__)

Nothing in the package's files is run as code but the extension itself: the
description is JSON, the values an .npz read without pickles.
"""
from __future__ import annotations

import functools
import importlib
import json
import pathlib
from dataclasses import dataclass

import numpy as np

from .module import LayerModule
from .isa import LEVELS
from .record import LayerRecord


@dataclass(frozen=True)
class PackageLibrary:
    """The package's compiled extension, as ``LayerModule`` uses a library (both dtypes in one)."""

    ffi: object
    lib: object
    so_path: str
    cache_key: str
    module_name: str


def load_package(package: str, folder, doc: str | None = None) -> type:
    """A ``LayerModule`` class for the package ``package`` in ``folder``:
    ``Module(dtype=np.float64, cast=False)``. The extension is imported when
    the first module is made (an ``ImportError`` says how to build it)."""
    folder = pathlib.Path(folder)
    layer = json.loads((folder / "layer.json").read_text(encoding="utf-8"))
    values = functools.cache(lambda: _stored_values(folder / "params.npz"))
    data = layer["record"]
    for t in data["tensors"]:
        if t["role"] in ("param", "buffer"):
            t["init"] = functools.partial(_stored, values, t["name"])
    record = LayerRecord.of(data, source=(folder / "source.c").read_text(encoding="utf-8"),
                            load_library=lambda dtype, isa: _extension(package, layer["extensions"], isa,
                                                                       layer["key"], data["name"]))

    def __init__(self, dtype=None, cast: bool = False):
        LayerModule.__init__(self, record, dtype=dtype, cast=cast)

    return type(str(layer["class"]), (LayerModule,), {
        "__init__": __init__, "__doc__": doc, "__module__": package, "RECORD": record})


def _stored_values(path: pathlib.Path) -> dict:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def _stored(values, name: str, shape: tuple, rng) -> np.ndarray:
    """An initializer (``init(shape, rng)``) giving a copy of the package's stored value of ``name``."""
    return values()[name].copy()


def _extension(package: str, extensions: dict, isa: str, key: str, layer: str) -> PackageLibrary:
    """The extension of level ``isa``, or of the widest narrower level the package has."""
    levels = [level for level in LEVELS[LEVELS.index(isa):] if level in extensions]
    for level in levels:
        try:
            module = importlib.import_module(f"{package}.{extensions[level]}")
        except ImportError as exc:
            missing = exc
            continue
        return PackageLibrary(module.ffi, module.lib, module.__file__, key, module.__name__)
    raise ImportError(
        f"{layer}: no compiled extension of {package} for {isa} or a narrower level is available "
        f"({missing if levels else 'the package has none'}). Build them from the package's sources: "
        f"python -m {package}.build (needs cffi, setuptools and a C compiler), or install a wheel "
        "built with pip wheel --no-build-isolation <package folder>")
