"""compiler/store.py trusts no one: a cache root or entry another user owns or
others may write is refused with its path named and reported by
``layerc cache verify``; folders are 0700 and files 0600 whatever the umask;
temporary names come from mkstemp, so a planted symlink is never written
through; nothing in an entry is run as Python."""
from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys

import pytest

from layerc.compiler import build, private_files, records, store
from layerc.compiler.private_files import UnsafeCacheError
from tests.test_build import CDEF, add_source, run_python

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(folder))
    return folder


def write_record(key: str, payload: bytes, layer: str = "") -> None:
    records.write_record(store.root() / store.RECORDS_DIR, key, payload, layer)


def read_record(key: str) -> bytes | None:
    return records.read_record(store.root() / store.RECORDS_DIR, key)


def modes(folder: pathlib.Path) -> dict[str, int]:
    return {str(p.relative_to(folder.parent)): stat.S_IMODE(p.lstat().st_mode)
            for p in [folder, *folder.rglob("*")]}


def verify_cli(cache: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "layerc.cli", "cache", "verify"], env=env, capture_output=True,
                          text=True, cwd=REPO)


def test_folders_are_0700_and_files_0600_whatever_the_umask(cache):
    result = run_python("""
        import os
        os.umask(0)
        from layerc.compiler import build, records, store
        from tests.test_build import CDEF, add_source
        build.compile_c(add_source(51.0), CDEF, name="private")
        records.write_record(store.root() / store.RECORDS_DIR, "cd" * 32, b"{}", layer="private")
    """, cache)
    assert result.returncode == 0, result.stderr
    found = modes(cache)
    assert any(name.endswith(".so") for name in found) and any(name.endswith(".rec") for name in found)
    for name, mode in found.items():
        assert mode == (0o700 if (cache.parent / name).is_dir() else 0o600), (name, oct(mode))


def test_a_root_writable_by_others_is_refused_with_its_path(cache):
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(UnsafeCacheError, match=f"{cache}.*writable by group and others"):
        build.compile_c(add_source(52.0), CDEF, name="shared_root")
    result = verify_cli(cache)
    assert result.returncode == 1 and f"{cache} is writable by group and others" in result.stdout


def test_a_root_of_another_user_is_refused(cache, monkeypatch):
    cache.mkdir(mode=0o700)
    monkeypatch.setattr(private_files, "_current_uid", lambda: os.geteuid() + 1)
    with pytest.raises(UnsafeCacheError, match=f"{cache} is owned by uid {os.geteuid()}"):
        build.compile_c(add_source(53.0), CDEF, name="foreign_root")


def test_a_planted_entry_is_refused_and_reported(cache, monkeypatch):
    built = build.compile_c(add_source(54.0), CDEF, name="planted")
    so = pathlib.Path(built.so_path)
    so.chmod(0o666)                          # anyone could have replaced the library
    monkeypatch.setattr(store, "_loaded", {})   # as a new process would: from the disk
    with pytest.raises(UnsafeCacheError, match=f"{so} is writable by group and others"):
        build.compile_c(add_source(54.0), CDEF, name="planted")
    assert any(str(so) in p and "writable" in p for p in store.verify_cache())
    assert verify_cli(cache).returncode == 1

    so.chmod(0o600)
    assert store.verify_cache() == []
    monkeypatch.setattr(private_files, "_current_uid", lambda: os.geteuid() + 1)   # a foreign owner
    with pytest.raises(UnsafeCacheError, match="not by this user"):
        build.compile_c(add_source(54.0), CDEF, name="planted")


def test_a_symlinked_temporary_or_record_name_is_not_written_through(cache, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    key = "ef" * 32
    write_record("ab" * 32, b"first", layer="x")    # creates lowered/
    records = cache / "lowered"
    # the names older versions wrote through (predictable, opened with truncation)
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (records / f".{key}.{pid}.tmp").symlink_to(victim)
    (records / f"{key}.rec").symlink_to(victim)
    write_record(key, b"payload", layer="x")
    assert victim.read_text() == "precious"
    assert read_record(key) == b"payload"          # the symlink was replaced, not followed

    (records / f"{key}.rec").unlink()
    (records / f"{key}.rec").symlink_to(victim)
    with pytest.raises(UnsafeCacheError, match="symbolic link"):
        read_record(key)
    assert any("symbolic link" in p for p in store.verify_cache())
    with pytest.raises(FileExistsError):
        store.create_private(records / f"{key}.rec", "through the link")
    assert victim.read_text() == "precious"


def test_a_record_writable_by_others_is_refused(cache):
    key = "12" * 32
    write_record(key, b"payload")
    path = cache / "lowered" / f"{key}.rec"
    path.chmod(0o622)
    with pytest.raises(UnsafeCacheError, match=f"{path} is writable by group and others"):
        read_record(key)


def test_no_python_in_an_entry_is_run(cache, tmp_path):
    built = build.compile_c(add_source(55.0), CDEF, name="inert")
    marker = tmp_path / "ran"
    planted = pathlib.Path(built.so_path).parent / "ffi.py"
    planted.write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    planted.chmod(0o600)
    result = run_python("""
        import numpy as np
        from layerc.compiler import build, cc
        from tests.test_build import CDEF, add_source, call_add1
        built = build.compile_c(add_source(55.0), CDEF, name="inert")
        print(call_add1(built, np.zeros(2)).tolist(), cc.compiler_invocations())
    """, cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[55.0,", "55.0]", "0"] and not marker.exists()
