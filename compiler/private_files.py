"""Files of the cache, which no one else may have written.

In: paths inside the cache folder. Out: their bytes, or ``UnsafeCacheError``
naming the path when another user owns it, others may write it, or it is a
symbolic link; new folders (0700) and files (0600), whatever the umask, written
under fresh ``mkstemp`` names (``O_EXCL``, ``O_NOFOLLOW``) and moved into place
with one ``os.replace``, so readers see all of a file or none and no planted
symlink is followed.

Example::

    write_atomic(folder / "memo", b"gcc 12.2")   # folder: made 0700 if missing, else checked
    read_private(folder / "memo")                # b'gcc 12.2'
"""
from __future__ import annotations

import os
import pathlib
import stat
import tempfile

__all__ = ["UnsafeCacheError", "create_private", "private_dir", "read_private", "unsafe_problems", "write_atomic"]

FOLDER_MODE = 0o700
FILE_MODE = 0o600


class UnsafeCacheError(PermissionError):
    """A folder or file of the cache is owned by another user, writable by
    others, or a symbolic link: the cache refuses to use it."""


def unsafe_problems(path: pathlib.Path) -> list[str]:
    """Why ``path`` may not be trusted (another owner, writable by group or
    others, a symbolic link); ``[]`` when it may, or when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        return [f"{path} is a symbolic link"]
    problems = []
    if st.st_uid != _current_uid():
        problems.append(f"{path} is owned by uid {st.st_uid}, not by this user (uid {_current_uid()})")
    if st.st_mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if st.st_mode & bit)
        problems.append(f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})")
    return problems


def create_private(path: pathlib.Path, data: bytes | str) -> None:
    """Create ``path`` (it must not exist; a symlink there is not followed) mode 0600 holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), FILE_MODE)
        f.write(data.encode() if isinstance(data, str) else data)


def private_dir(path: pathlib.Path, parents: bool = False) -> pathlib.Path:
    """``path`` as a folder of the cache: created 0700, or checked when it exists."""
    try:
        os.mkdir(path, FOLDER_MODE)
        os.chmod(path, FOLDER_MODE)
    except FileExistsError:
        problems = unsafe_problems(path)
        if problems:
            raise UnsafeCacheError(f"the layerc cache refuses {path}: {'; '.join(problems)}; remove it "
                                   "or fix its owner and mode (chmod go-w), or set LAYERC_CACHE_DIR") from None
    except FileNotFoundError:
        if not parents:
            raise
        path.parent.mkdir(parents=True, exist_ok=True)
        return private_dir(path)
    return path


def read_private(path: pathlib.Path) -> bytes | None:
    """The bytes of a file of the cache, or None when it is missing; its folder
    and itself must pass ``unsafe_problems`` (``UnsafeCacheError``)."""
    problems = unsafe_problems(path.parent) + unsafe_problems(path)
    if problems:
        raise UnsafeCacheError(f"the layerc cache refuses {path}: {'; '.join(problems)}; "
                               "run `layerc cache verify`, and `layerc cache clear` to start afresh")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) through a fresh ``mkstemp`` name beside it,
    then ``os.replace``: readers see all of it or none."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(pathlib.Path(tmp))
        raise


def _unlink_quietly(path: pathlib.Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass



# a function, so that tests can stand in for another user
_current_uid = os.geteuid
