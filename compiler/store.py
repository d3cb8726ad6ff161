"""The content-addressed store of built libraries, and of small records beside them.

In: folders built by ``compiler/build.py`` (a shared library and what it was
built from), memos (small text); records (``compiler/records.py``) under
``lowered/``.
Out: the entry of a key, checked, or nothing; listings and checks for
``layerc cache``.

The cache is data, trusted by no one. Its root, and every folder and file read
from it, must be owned by the current user and writable by no one else: the
root is refused otherwise (``UnsafeCacheError``, naming the path), and so is an
entry, a record or a memo; files are read and written through
``compiler/private_files.py`` (0700 folders, 0600 files, ``mkstemp`` names).
Nothing here holds Python: entries are a shared library and JSON, records are
bytes.

Layout, one folder per entry::

    cache_dir()/
        _layerc_{name}_{key[:16]}/          # an entry: the module name
            _layerc_{name}_{key[:16]}.so        # the shared library (or .o: an object file,
                                                #   meta.json's "kind", that libraries link)
            source.c  cdef.h  meta.json         # meta.json: key, inputs, sha256 of the .so, cffi's tables
        _layerc_{name}_{key[:16]}.lock      # cross-process lock (filelock)
        .tmp-_layerc_..-{random}/           # an entry being built (or left by a killed build)
        compilers/                          # memos: compiler versions
        failed/_layerc_{name}_{key[:16]}.c  # source of the last failed compile
        lowered/{key}.rec                   # records: header line (JSON) + payload

An entry is built in a temporary folder inside the root, loaded from there,
then moved into place with one ``os.replace`` (``publish``) and never changed
after. The check-build-publish sequence runs under a file lock per entry
(``flock``: a killed process releases it), and a thread lock per entry within
a process. Temporary folders of killed builds are removed by the next build
that finds their lock free, and by ``clear_cache``. Module names carry the
key, so a changed source gets a new module even in the same process.

The root is ``$LAYERC_CACHE_DIR``, else ``$XDG_CACHE_HOME/layerc``, else
``~/.cache/layerc``. When it cannot be written (under a file, a read-only file
system, ...), this process builds in a temporary folder removed at exit, with a
warning naming the folder.

Example::

    entry = root() / "_layerc_prelu_0123456789abcdef"
    problems = entry_problems(entry, expected_key=key)   # [] for a sound entry
"""
from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
import threading

import filelock

from . import records
from .private_files import (FILE_MODE, FOLDER_MODE, UnsafeCacheError, create_private, private_dir, read_private,
                            unsafe_problems, write_atomic)

__all__ = [
    "BUILT_KINDS", "ENTRY_PREFIX", "built_file", "cache_dir", "clear_cache", "content_key", "create_private", "discard", "entry_lock", "entry_problems",
    "entry_unsafe_problems", "file_sha256", "keep_failed_source", "list_cache", "new_build_folder", "publish",
    "read_memo", "read_meta", "recall", "remember", "remove_dead_leftovers", "root", "thread_lock",
    "verify_cache", "write_memo",
]

log = logging.getLogger("layerc")

# Part of every key: bump it when the way an entry is built changes, so entries
# built the old way are not reused.
_RECIPE = 4     # 2: sha256 of the .so in meta.json; $CFLAGS; 3: ABI mode; 4: cffi's tables in meta.json
ENTRY_PREFIX = "_layerc_"
_TMP_PREFIX = ".tmp-"
_META_FILE = "meta.json"
_STORED_FILES = ("source.c", "cdef.h")
# what an entry is built into, by meta.json's "kind": its file's suffix and name
BUILT_KINDS = {"library": (".so", "shared library"), "object": (".o", "object file")}
_FAILED_DIR = "failed"
RECORDS_DIR = "lowered"


def cache_dir() -> pathlib.Path:
    """Where built modules are kept (absolute; not created here):
    ``$LAYERC_CACHE_DIR``, else ``$XDG_CACHE_HOME/layerc``, else ``~/.cache/layerc``.

    >>> cache_dir()   # doctest: +SKIP
    PosixPath('/home/me/.cache/layerc')
    """
    explicit = os.environ.get("LAYERC_CACHE_DIR")
    if explicit:
        folder = explicit
    else:
        folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "layerc")
    return pathlib.Path(os.path.abspath(os.path.expanduser(folder)))


def root() -> pathlib.Path:
    """The folder this process stores in: ``cache_dir()``, created 0700 and
    checked (``UnsafeCacheError`` when another user owns it or others may write
    it), or, when it cannot be written, a temporary folder of this process
    (removed at exit) with a warning. Resolved once per configured folder."""
    configured = cache_dir()
    with _registry_lock:
        known = _roots.get(configured)
    if known is not None:
        return known
    try:
        private_dir(configured, parents=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=configured)
        os.close(fd)
        os.unlink(probe)
        chosen = configured
    except UnsafeCacheError:
        raise
    except OSError as exc:
        chosen = pathlib.Path(tempfile.mkdtemp(prefix="layerc-cache-"))
        atexit.register(shutil.rmtree, chosen, True)
        origin = ("set by LAYERC_CACHE_DIR" if os.environ.get("LAYERC_CACHE_DIR")
                  else "set LAYERC_CACHE_DIR to choose another")
        log.warning("the layerc cache folder %s (%s) cannot be written (%s); this process builds in %s, "
                    "which is removed at exit", configured, origin, exc, chosen)
    with _registry_lock:
        return _roots.setdefault(configured, chosen)


def content_key(source: str, cdef: str, inputs: dict) -> str:
    """The address of an entry: sha256 (hex) over its source, its cdef and its
    build inputs (JSON-able: the compiler, flags, ...), and the recipe of the store."""
    blob = json.dumps({"source": source, "cdef": cdef, "recipe": _RECIPE, **inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def thread_lock(entry: pathlib.Path) -> threading.Lock:
    """The lock of ``entry`` among this process's threads."""
    with _registry_lock:
        return _entry_locks.setdefault(entry, threading.Lock())


def entry_lock(entry: pathlib.Path, timeout: float = -1) -> filelock.FileLock:
    """The lock of ``entry`` among processes (``flock`` on ``<entry>.lock``)."""
    return filelock.FileLock(str(entry.parent / f"{entry.name}.lock"), timeout=timeout, mode=FILE_MODE)


def recall(entry: pathlib.Path):
    """What this process loaded from ``entry`` (``remember``), until ``clear_cache``."""
    return _loaded.get(entry)


def remember(entry: pathlib.Path, loaded) -> None:
    _loaded[entry] = loaded


def new_build_folder(entry: pathlib.Path) -> pathlib.Path:
    """A fresh private folder beside ``entry`` to build it in (then ``publish``)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{entry.name}-", dir=entry.parent))
    os.chmod(folder, FOLDER_MODE)
    return folder


def publish(folder: pathlib.Path, entry: pathlib.Path) -> None:
    """Move a built ``folder`` into place as ``entry`` (one ``os.replace``),
    its files made 0600. Called with the entry's file lock held."""
    for file in folder.iterdir():
        os.chmod(file, FILE_MODE, follow_symlinks=False)
    if os.path.lexists(entry):
        # a broken entry: moved aside first, since os.replace cannot overwrite a non-empty folder
        aside = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{entry.name}-", dir=entry.parent)
        os.replace(entry, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(folder, entry)


def discard(folder: pathlib.Path) -> None:
    """Remove a build folder (gone already once published)."""
    shutil.rmtree(folder, ignore_errors=True)


def keep_failed_source(folder: pathlib.Path, source: str) -> pathlib.Path | None:
    """Keep the source of a failed compile as ``failed/<module name>.c`` beside
    the entries, where the error message can point to it; None when it cannot be."""
    kept = folder.parent / _FAILED_DIR / f"{_leftover_module_name(folder)}.c"
    try:
        write_atomic(kept, source.encode())
    except OSError as exc:
        log.debug("could not keep the failed source %s: %s", kept, exc)
        return None
    return kept


def read_meta(entry: pathlib.Path) -> dict | None:
    try:
        meta = json.loads((entry / _META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def built_file(entry: pathlib.Path, kind: str = "library") -> pathlib.Path:
    """The file an entry was built into: its shared library, or (``kind``
    "object") the object file other entries' libraries link."""
    return entry / f"{entry.name}{BUILT_KINDS[kind][0]}"


def entry_problems(entry: pathlib.Path, expected_key: str | None = None, check_hash: bool = True) -> list[str]:
    """What is wrong with the contents of a published entry (see
    ``unsafe_problems`` for who may have written it). With ``expected_key`` (the
    build path) a cheap check against it; without (verify) the key is
    recomputed from the stored files. ``check_hash``: the built file (shared
    library or object) against the sha256 in meta.json."""
    if not entry.is_dir():
        return ["missing"]
    meta = read_meta(entry)
    kind = meta.get("kind", "library") if meta is not None else "library"
    if kind not in BUILT_KINDS:
        return [f"{_META_FILE} names no known kind of entry ({kind!r})"]
    what = BUILT_KINDS[kind][1]
    built = built_file(entry, kind)
    built_present = built.is_file() and built.stat().st_size > 0
    problems = [] if built_present else [f"{what} {built.name} is missing"]
    problems += [f"{stored} is missing" for stored in _STORED_FILES if not (entry / stored).is_file()]
    if meta is None:
        return problems + [f"{_META_FILE} is missing or unreadable"]
    if check_hash and built_present:
        stored_hash = meta.get("so_sha256")
        if not isinstance(stored_hash, str):
            problems.append(f"{_META_FILE} has no sha256 of the {what}")
        elif file_sha256(built) != stored_hash:
            problems.append(f"{what} {built.name} does not match its sha256 (truncated or altered)")
    if expected_key is not None:
        return problems + (["meta.json holds another key"] if meta.get("key") != expected_key else [])
    if not entry.name.endswith("_" + str(meta.get("key"))[:16]):
        problems.append("folder name does not match the key in meta.json")
    if not problems:
        try:
            source, cdef = (_read_text(entry / stored) for stored in _STORED_FILES)
            recomputed = content_key(source, cdef, meta["inputs"])
        except (KeyError, TypeError):
            problems.append(f"{_META_FILE} has no build inputs")
        else:
            if recomputed != meta["key"]:
                problems.append("key mismatch: source.c, cdef.h or meta.json changed after the build")
    return problems


def entry_unsafe_problems(entry: pathlib.Path) -> list[str]:
    """``unsafe_problems`` of an entry's folder and of every file in it."""
    problems = unsafe_problems(entry)
    if problems or not entry.is_dir():
        return problems
    return [p for file in sorted(entry.iterdir()) for p in unsafe_problems(file)]


def remove_dead_leftovers(entry: pathlib.Path) -> None:
    """Remove temporary folders of killed builds. Called with ``entry``'s file
    lock held, so its folders are all dead; another entry's are removed when
    its lock is free (its build is not running)."""
    for leftover in _leftovers(entry.parent):
        owner = entry.parent / _leftover_module_name(leftover)
        if not owner.name.startswith(ENTRY_PREFIX):
            continue
        if owner == entry:
            shutil.rmtree(leftover, ignore_errors=True)
            continue
        try:
            with entry_lock(owner, timeout=0):
                if leftover.exists():
                    log.debug("removing %s, left by a killed build", leftover)
                    shutil.rmtree(leftover, ignore_errors=True)
        except (filelock.Timeout, OSError):
            pass  # a build is in progress, or the lock cannot be taken


# ---------------------------------------------------------------- memos

def read_memo(kind: str, name: str) -> str | None:
    """The memo ``kind/name`` (e.g. a compiler's version), or None."""
    data = read_private(root() / kind / name)
    return data.decode("utf-8", "replace") if data is not None else None


def write_memo(kind: str, name: str, text: str) -> None:
    """Publish a memo atomically; a cache that cannot be written is no error:
    the memo is remade next time."""
    try:
        write_atomic(root() / kind / name, text.encode())
    except OSError:
        pass


# ---------------------------------------------------------------- the whole cache

def list_cache() -> list[dict]:
    """One dict per cache entry: ``module_name``, ``layer``, ``key``, ``size``
    (bytes), ``mtime`` (seconds since the epoch), ``path``. ``layer`` and
    ``key`` are None when the entry's meta.json is unreadable.

    >>> [e["module_name"] for e in list_cache()]   # doctest: +SKIP
    ['_layerc_add1_3f0c9a6b1d2e4f57']
    """
    entries = []
    for entry in _entries(cache_dir()):
        meta = read_meta(entry) or {}
        entries.append({
            "module_name": entry.name,
            "layer": meta.get("layer"),
            "key": meta.get("key"),
            "size": sum(f.stat().st_size for f in entry.iterdir() if f.is_file()),
            "mtime": entry.stat().st_mtime,
            "path": str(entry),
        })
    return entries


def clear_cache() -> int:
    """Remove every entry (and temporary folders left by killed builds, the
    sources kept from failed compiles, the records and the memos) and return
    how many entries were removed. Each entry is removed under its lock, so a
    build in progress elsewhere finishes first. Libraries already loaded stay
    usable; this process builds them again when next asked. Lock files are
    left to filelock.

    >>> clear_cache()   # doctest: +SKIP
    2
    """
    folder = cache_dir()
    removed = 0
    for module_name in _module_names(folder):
        entry = folder / module_name
        with thread_lock(entry), entry_lock(entry):
            for leftover in folder.glob(f"{_TMP_PREFIX}{module_name}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            if os.path.lexists(entry):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed += 1
            _loaded.pop(entry, None)
    for kind in (_FAILED_DIR, RECORDS_DIR, "compilers"):
        shutil.rmtree(folder / kind, ignore_errors=True)
    return removed


def verify_cache() -> list[str]:
    """Check the whole cache: who may have written each folder and file
    (``unsafe_problems``), every entry (files present, meta readable, the
    shared library matches its sha256, stored source and cdef hash to the stored
    key, folder named after it), every record (payload against its sha256) and
    leftover temporary folders. One message per problem; ``[]`` when healthy.

    >>> verify_cache()   # doctest: +SKIP
    ['_layerc_add1_3f0c9a6b1d2e4f57: shared library _layerc_add1_3f0c9a6b1d2e4f57.so is missing']
    """
    folder = cache_dir()
    if not folder.is_dir():
        return unsafe_problems(folder)
    problems = unsafe_problems(folder) + [p for path in sorted(folder.rglob("*")) for p in unsafe_problems(path)]
    problems += [f"{entry.name}: {p}" for entry in _entries(folder) for p in entry_problems(entry)]
    problems += [f"{RECORDS_DIR}/{p}" for p in records.problems(folder / RECORDS_DIR)]
    for leftover in _leftovers(folder):
        try:
            with entry_lock(folder / _leftover_module_name(leftover), timeout=0):
                problems.append(f"{leftover.name}: temporary folder left by an interrupted build")
        except filelock.Timeout:
            pass  # a build is in progress
    return problems


# ---------------------------------------------------------------- internals

_registry_lock = threading.Lock()
_entry_locks: dict[pathlib.Path, threading.Lock] = {}
_loaded: dict[pathlib.Path, object] = {}
# configured cache folder -> where this process stores (itself, or a fallback)
_roots: dict[pathlib.Path, pathlib.Path] = {}


def file_sha256(path: pathlib.Path) -> str | None:
    """sha256 (hex) of a file's bytes, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _read_text(path: pathlib.Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _entries(folder: pathlib.Path) -> list[pathlib.Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(ENTRY_PREFIX) and
                  (p.is_dir() or p.is_symlink()))


def _leftovers(folder: pathlib.Path) -> list[pathlib.Path]:
    """Temporary folders: of builds in progress, or left by killed ones."""
    return sorted(folder.glob(f"{_TMP_PREFIX}*")) if folder.is_dir() else []


def _leftover_module_name(folder: pathlib.Path) -> str:
    # mkdtemp's random suffix has no "-", and neither has a module name.
    return folder.name[len(_TMP_PREFIX):].rpartition("-")[0]


def _module_names(folder: pathlib.Path) -> list[str]:
    names = {p.name for p in _entries(folder)} | {_leftover_module_name(p) for p in _leftovers(folder)}
    return sorted(names)
