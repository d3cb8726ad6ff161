"""Checkpoints: a state is checked against the module whole (keys, shapes,
dtypes) before anything is written, and an .npz archive is checked from the
headers of its members before any array is read.

An .npz is a zip archive of .npy files; each member starts with a short header
(dtype, shape, order). ``read_npz`` reads only those headers first, so an
archive with an unexpected, mislabeled or huge member is refused having
decompressed a few kilobytes, and reads (and decompresses) only the arrays the
module takes. Arrays of Python objects (pickles) are refused, never loaded.

Example::

    targets = {"weight": np.zeros((2, 3), np.float32)}
    state = read_npz("checkpoint.npz", targets, strict=True, where="Linear")
    check_state("Linear", targets, describe_state(state), strict=True)
"""
from __future__ import annotations

import zipfile

import numpy as np

_NPY_MAGIC = b"\x93NUMPY"
# .npy header readers by format version (3.0 differs from 2.0 only in its text encoding)
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
                   (3, 0): np.lib.format.read_array_header_2_0}


def describe_state(state: dict) -> dict:
    """``{key: (shape, dtype)}`` of a state dict's values (arrays, Tensors' data, lists)."""
    return {key: (np.shape(value), np.asarray(value).dtype) for key, value in state.items()}


def check_state(where: str, targets: dict, found: dict, strict: bool) -> None:
    """Raise unless the entries ``found`` (``{key: (shape, dtype)}``) fit ``targets``
    (``{key: array}``): ``KeyError`` naming every missing and unexpected key
    (when ``strict``), ``ValueError`` naming every shape that differs,
    ``TypeError`` naming every dtype that cannot become the target's
    (``same_kind`` casting: float64 into float32 is fine, complex or text is not)."""
    missing = sorted(set(targets) - set(found))
    extra = sorted(set(found) - set(targets))
    if strict and (missing or extra):
        raise KeyError(f"{where}.load_state_dict: missing keys {missing or 'none'}; "
                       f"unexpected keys {extra or 'none'}")
    common = sorted(set(targets) & set(found))
    shapes = [f"{k}: checkpoint {tuple(found[k][0])}, module {targets[k].shape}"
              for k in common if tuple(found[k][0]) != targets[k].shape]
    if shapes:
        raise ValueError(f"{where}.load_state_dict: shape mismatch for " + "; ".join(shapes))
    dtypes = [f"{k}: checkpoint {found[k][1]}, module {targets[k].dtype}" for k in common
              if found[k][1].hasobject or not np.can_cast(found[k][1], targets[k].dtype, casting="same_kind")]
    if dtypes:
        raise TypeError(f"{where}.load_state_dict: dtype cannot be loaded for " + "; ".join(dtypes))


def read_npz(path, targets: dict, strict: bool, where: str) -> dict:
    """The arrays of the .npz at ``path`` that ``targets`` takes, after
    ``check_state`` passed on the archive's headers (nothing else is read)."""
    with open(path, "rb") as f:
        start = f.read(len(_NPY_MAGIC))
    if start == _NPY_MAGIC:
        raise ValueError(f"{where}.load: {path} is a .npy file (a single array); load expects an .npz "
                         "archive of named arrays, as save() writes (numpy.savez)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{where}.load: {path} is not an .npz archive (numpy.savez writes one)")
    with zipfile.ZipFile(path) as archive:
        members = {}
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in members:
                raise ValueError(f"{where}.load: {path} holds {key!r} twice")
            members[key] = info
        found = {key: _header(archive, info, path, where) for key, info in members.items()}
        check_state(where, targets, found, strict)
        state = {}
        for key in sorted(set(targets) & set(members)):
            with archive.open(members[key]) as member:
                state[key] = np.lib.format.read_array(member, allow_pickle=False)
        return state


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path, where: str) -> tuple:
    """``(shape, dtype)`` from the header of one member, reading nothing past it."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            shape, _, dtype = _HEADER_READERS[version](member)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{where}.load: member {info.filename!r} of {path} is not a .npy array "
                             f"({exc})") from None
    return tuple(shape), np.dtype(dtype)
