"""Records: small payloads kept under a sha256 key in a folder of the cache
(``store.root() / store.RECORDS_DIR``), for ``compiler/layer_cache.py``.

In: a folder, a key (64 hex digits), bytes. Out: the bytes, checked. A record
is one file, ``{key}.rec``: a JSON header line (format, key, layer, sha256 of
the payload), then the payload. It is published with one ``os.replace`` and
read through ``compiler/private_files.py`` (refused when someone else could
have written it); a payload that does not match its sha256 is removed with a
warning. Records are data: what the payload means is the writer's business
(layer_cache writes JSON).

Example::

    folder = store.root() / store.RECORDS_DIR
    write_record(folder, "ab" * 32, b"payload", layer="demo")
    read_record(folder, "ab" * 32)        # b'payload'
"""
from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import re

from .private_files import read_private, write_atomic

__all__ = ["list_records", "problems", "read_record", "write_record"]

log = logging.getLogger("layerc")

_SUFFIX = ".rec"
_MAGIC = "layerc-record"


def read_record(folder: pathlib.Path, key: str) -> bytes | None:
    """The payload of the record ``key`` in ``folder``, or None when there is
    none or it is damaged (then removed, with a warning)."""
    path = _path(folder, key)
    data = read_private(path)
    if data is None:
        return None
    header, payload = _parse(data)
    if header is None or header.get("key") != key:
        log.warning("cached record %s is damaged (%s); removing it", path,
                    "another key" if header is not None else "its payload does not match its sha256")
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return payload


def write_record(folder: pathlib.Path, key: str, payload: bytes, layer: str = "") -> None:
    """Publish ``payload`` as the record ``key`` (a reader sees the old record
    or the new one, never a part). ``layer`` goes into the header for
    ``list_records``. A folder that cannot be written keeps no record (logged
    at debug level)."""
    path = _path(folder, key)
    header = json.dumps({"format": _MAGIC, "key": key, "layer": layer,
                         "sha256": hashlib.sha256(payload).hexdigest()}, sort_keys=True)
    try:
        write_atomic(path, header.encode() + b"\n" + payload)
    except OSError as exc:
        log.debug("could not write the record %s: %s", path, exc)


def list_records(folder: pathlib.Path) -> list[dict]:
    """One dict per record in ``folder``: ``key``, ``layer``, ``size``,
    ``mtime``, ``path`` (``layer`` None when the header is unreadable)."""
    found = []
    for path in sorted(folder.glob(f"*{_SUFFIX}")) if folder.is_dir() else []:
        try:
            st = path.stat()
            with open(path, "rb") as f:
                header = _parse_header(f.readline())
        except OSError:
            continue
        found.append({"key": path.name[:-len(_SUFFIX)], "layer": (header or {}).get("layer"),
                      "size": st.st_size, "mtime": st.st_mtime, "path": str(path)})
    return found


def problems(folder: pathlib.Path) -> list[str]:
    """One message per record in ``folder`` whose payload does not match its
    sha256 or whose header names another key."""
    found = []
    for record in list_records(folder):
        path = pathlib.Path(record["path"])
        try:
            header, _ = _parse(path.read_bytes())
        except OSError:
            continue   # removed meanwhile
        if header is None or header.get("key") != record["key"]:
            found.append(f"{path.name}: record does not match its sha256 or its name")
    return found


def _path(folder: pathlib.Path, key: str) -> pathlib.Path:
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError(f"a record key is 64 hex digits, got {key!r}")
    return folder / f"{key}{_SUFFIX}"


def _parse_header(line: bytes) -> dict | None:
    try:
        header = json.loads(line.decode("utf-8"))
    except ValueError:         # UnicodeDecodeError too
        return None
    return header if isinstance(header, dict) and header.get("format") == _MAGIC else None


def _parse(data: bytes) -> tuple[dict | None, bytes]:
    """(header, payload), header None when the payload does not match its sha256."""
    line, _, payload = data.partition(b"\n")
    header = _parse_header(line)
    if header is None or header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None, payload
    return header, payload
