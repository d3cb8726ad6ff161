"""layerc.compiler.build when things go wrong: a build killed mid-compile, a damaged
cache entry, inputs that must change the key, a changed source under the same
name in one process, an unusable cache folder or compiler, and C that does not
compile."""
from __future__ import annotations

import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import filelock
import numpy as np
import pytest

from layerc.compiler import build, cc, store
from layerc.compiler.cc import BuildError, BuildOptions
from test_build import CDEF, REPO, add_source, call_add1, entries_and_leftovers, run_python

REAL_CC = shutil.which("cc")
OFFSET_SOURCE = (
    "#include <stdint.h>\n"
    "void add1(int64_t n, const double* x, double* y)"
    "{ for (int64_t i = 0; i < n; i++) y[i] = x[i] + LAYERC_TEST_OFFSET; }\n"
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(folder))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CFLAGS", raising=False)
    return folder


def compiler_wrapper(path: pathlib.Path, version: str | None = None) -> pathlib.Path:
    """A shell script standing in for the C compiler: it runs cc, can report
    another ``--version``, and when $LAYERC_TEST_STALL names a file it creates
    that file and sleeps before compiling."""
    lines = ["#!/bin/sh"]
    if version:
        lines.append(f'if [ "$1" = --version ]; then echo "{version}"; exit 0; fi')
    lines.append('if [ "$1" != --version ] && [ -n "$LAYERC_TEST_STALL" ]; then touch "$LAYERC_TEST_STALL"; sleep 120; fi')
    lines.append(f'exec {REAL_CC} "$@"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def replace_file(path: pathlib.Path, data: bytes) -> None:
    """Write through a new inode: this process has the module mapped, and
    changing the mapped file in place could crash it."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------- item 9: killed builds


def test_build_killed_mid_compile_is_rebuilt_by_the_next_build(cache, tmp_path, monkeypatch):
    wrapper = compiler_wrapper(tmp_path / "stalling-cc")
    compiling = tmp_path / "compiling"
    code = ("from layerc.compiler import build, cc\nfrom tests.test_build import CDEF, add_source\n"
            "build.compile_c(add_source(21.0), CDEF, name='killed')\n")
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO), "CC": str(wrapper),
           "LAYERC_TEST_STALL": str(compiling)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not compiling.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the build never reached the compiler"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        entries, leftovers = entries_and_leftovers(cache)
        assert entries == [] and len(leftovers) == 1       # its build folder; nothing was published
        assert [p for p in store.verify_cache() if "interrupted build" in p] != []

        # The same build again, in this process, with the same compiler (not stalling now).
        monkeypatch.setenv("CC", str(wrapper))
        outcome = {}

        def rebuild():
            try:
                outcome["built"] = build.compile_c(add_source(21.0), CDEF, name="killed")
            except BaseException as exc:  # reported below
                outcome["error"] = exc

        before = cc.compiler_invocations()
        worker = threading.Thread(target=rebuild, daemon=True)
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), "the build after the killed one hangs"
        assert "error" not in outcome, outcome.get("error")
        assert cc.compiler_invocations() == before + 1
        built = outcome["built"]
        np.testing.assert_array_equal(call_add1(built, np.arange(3.0)), np.arange(3.0) + 21)
        assert entries_and_leftovers(cache) == ([built.module_name], [])
        assert store.verify_cache() == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the killed build's compiler, still sleeping
        except ProcessLookupError:
            pass
        proc.communicate()


def test_leftovers_of_dead_builds_go_with_the_next_build_or_clear(cache):
    cache.mkdir(parents=True)
    dead = cache / ".tmp-_layerc_gone_0123456789abcdef-k1ll3d"
    dead.mkdir()
    (dead / "source.c").write_text("int half_writ")
    running = cache / ".tmp-_layerc_busy_fedcba9876543210-w0rk1n"
    running.mkdir()
    with filelock.FileLock(str(cache / "_layerc_busy_fedcba9876543210.lock")):  # its build holds the lock
        built = build.compile_c(add_source(22.0), CDEF, name="sweeper")
        assert not dead.exists()
        assert running.is_dir()
        assert store.verify_cache() == []   # a folder of a running build is not a problem
    assert [p for p in store.verify_cache() if running.name in p and "interrupted build" in p] != []
    assert store.clear_cache() == 1
    assert entries_and_leftovers(cache) == ([], [])
    assert not pathlib.Path(built.so_path).exists()


# ---------------------------------------------------------------- item 10: damaged entries, the key


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_damaged_module_is_evicted_and_rebuilt_with_a_warning(cache, damage):
    constant = 23.0 if damage == "truncated" else 24.0
    built = build.compile_c(add_source(constant), CDEF, name="damaged")
    so = pathlib.Path(built.so_path)
    good = so.read_bytes()
    meta = (cache / built.module_name / "meta.json").read_text()
    assert store.file_sha256(so) in meta
    if damage == "truncated":
        bad = good[: len(good) // 2]
    else:  # same size, one byte changed
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        bad = bytes(bad)
    replace_file(so, bad)
    problems = store.verify_cache()
    assert len(problems) == 1 and built.module_name in problems[0] and "sha256" in problems[0]

    result = run_python(f"""
        import numpy as np
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source, call_add1
        built = build.compile_c(add_source({constant!r}), CDEF, name="damaged")
        np.testing.assert_array_equal(call_add1(built, np.arange(3.0)), np.arange(3.0) + {constant!r})
        print(cc.compiler_invocations())
    """, cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert "damaged" in result.stderr and "rebuilding" in result.stderr and built.module_name in result.stderr
    assert store.verify_cache() == []
    assert entries_and_leftovers(cache) == ([built.module_name], [])
    assert so.read_bytes() != bad


def test_cflags_and_flags_change_the_key_and_reach_the_compiler(cache, monkeypatch):
    x = np.arange(4.0)
    monkeypatch.setenv("CFLAGS", "-DLAYERC_TEST_OFFSET=5")
    five = build.compile_c(OFFSET_SOURCE, CDEF, name="offset")
    monkeypatch.setenv("CFLAGS", "-DLAYERC_TEST_OFFSET=6")
    six = build.compile_c(OFFSET_SOURCE, CDEF, name="offset")
    monkeypatch.delenv("CFLAGS")
    seven = build.compile_c(OFFSET_SOURCE, CDEF, name="offset",
                            options=BuildOptions(extra_flags=("-DLAYERC_TEST_OFFSET=7",)))
    eight = build.compile_c(OFFSET_SOURCE, CDEF, name="offset",
                            options=BuildOptions(extra_flags=("-DLAYERC_TEST_OFFSET=8",)))
    for built, offset in ((five, 5), (six, 6), (seven, 7), (eight, 8)):
        np.testing.assert_array_equal(call_add1(built, x), x + offset)
    assert len({b.cache_key for b in (five, six, seven, eight)}) == 4
    assert len({b.module_name for b in (five, six, seven, eight)}) == 4
    meta = store.read_meta(cache / five.module_name)
    assert meta["inputs"]["cflags_env"] == ["-DLAYERC_TEST_OFFSET=5"]
    assert "-DLAYERC_TEST_OFFSET=5" in meta["inputs"]["flags"]


def test_compiler_and_its_version_change_the_key(cache, tmp_path, monkeypatch):
    base = build.cache_key(add_source(), CDEF)
    one = compiler_wrapper(tmp_path / "cc-one", version="layerc-test-cc 1.0")
    two = compiler_wrapper(tmp_path / "cc-two", version="layerc-test-cc 2.0")
    monkeypatch.setenv("CC", str(one))
    key_one = build.cache_key(add_source(), CDEF)
    built = build.compile_c(add_source(25.0), CDEF, name="wrapped")    # the wrapper really compiles
    np.testing.assert_array_equal(call_add1(built, np.arange(3.0)), np.arange(3.0) + 25)
    inputs = store.read_meta(cache / built.module_name)["inputs"]
    assert inputs["compiler"] == [str(one)] and inputs["compiler_version"] == "layerc-test-cc 1.0"
    monkeypatch.setenv("CC", str(two))
    key_two = build.cache_key(add_source(), CDEF)
    assert len({base, key_one, key_two}) == 3

    # the same path, now another version (a compiler upgraded in place): asked again
    compiler_wrapper(two, version="layerc-test-cc 2.0.1")
    mtime = two.stat().st_mtime_ns + 2_000_000_000
    os.utime(two, ns=(mtime, mtime))
    key_upgraded = build.cache_key(add_source(), CDEF)
    assert key_upgraded not in {base, key_one, key_two}
    # a fresh process computes the same keys (its version memo on disk is per binary, size and mtime)
    for compiler, key in ((str(one), key_one), (str(two), key_upgraded)):
        result = run_python("""
            from layerc.compiler import build, cc, store
            from tests.test_build import CDEF, add_source
            print(build.cache_key(add_source(), CDEF))
        """, cache, CC=compiler)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == key


# ---------------------------------------------------------------- item 11: same name, new code


def test_changed_source_under_the_same_name_gives_new_code_in_one_process(cache):
    x = np.arange(5.0)
    first = build.compile_c(add_source(31.0), CDEF, name="same")
    second = build.compile_c(add_source(32.0), CDEF, name="same")
    assert first.module_name != second.module_name and first.so_path != second.so_path
    np.testing.assert_array_equal(call_add1(second, x), x + 32)
    np.testing.assert_array_equal(call_add1(first, x), x + 31)   # the first module is untouched
    assert build.compile_c(add_source(31.0), CDEF, name="same") is first

    # Removed from the cache and built again in this process: a new build, loaded anew.
    assert store.clear_cache() == 2
    before = cc.compiler_invocations()
    again = build.compile_c(add_source(32.0), CDEF, name="same")
    assert cc.compiler_invocations() == before + 1 and again is not second
    np.testing.assert_array_equal(call_add1(again, x), x + 32)


# ---------------------------------------------------------------- item 12: unusable cache, compiler, C


def test_unwritable_cache_folder_falls_back_with_a_warning(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file, so no folder can be made under it, even by root")
    configured = blocker / "cache"
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(configured))
    with caplog.at_level(logging.WARNING, logger="layerc"):
        built = build.compile_c(add_source(41.0), CDEF, name="homeless")
        second = build.compile_c(add_source(42.0), CDEF, name="homeless")
    np.testing.assert_array_equal(call_add1(built, np.arange(3.0)), np.arange(3.0) + 41)
    np.testing.assert_array_equal(call_add1(second, np.arange(3.0)), np.arange(3.0) + 42)
    warnings = [r.getMessage() for r in caplog.records if r.name == "layerc" and r.levelno == logging.WARNING]
    assert len(warnings) == 1      # once per process, not once per build
    fallback = pathlib.Path(built.so_path).parent.parent
    assert pathlib.Path(second.so_path).parent.parent == fallback
    assert str(configured) in warnings[0] and "LAYERC_CACHE_DIR" in warnings[0] and str(fallback) in warnings[0]
    assert fallback.is_dir() and blocker.is_file()

    # without any logging set up, the warning still reaches stderr, and the build works
    result = run_python("""
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source
        print(build.compile_c(add_source(43.0), CDEF, name="homeless").lib.add1 is not None)
    """, configured)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert "cannot be written" in result.stderr and "LAYERC_CACHE_DIR" in result.stderr


@pytest.mark.parametrize("compiler", ["{tmp}/no-such-cc", "no-such-compiler-for-layerc -O2"])
def test_missing_compiler_names_cc_and_leaves_no_entry(cache, tmp_path, monkeypatch, compiler):
    compiler = compiler.format(tmp=tmp_path)
    monkeypatch.setenv("CC", compiler)
    with pytest.raises(BuildError) as info:
        build.compile_c(add_source(44.0), CDEF, name="nocc")
    message = str(info.value)
    assert f"CC={compiler!r}" in message and "not found" in message
    assert not cache.exists() or entries_and_leftovers(cache) == ([], [])


def test_invalid_c_names_the_kept_source_and_line(cache):
    broken = (
        "#include <stdint.h>\n"
        "/* what a broken printer could emit */\n"
        "static double twice(double v) { return 2 * v; }\n"
        "void add1(int64_t n, const double* x, double* y) {\n"
        "    for (int64_t i = 0; i < n; i++) y[i] = twice(x[i]) +* ;\n"
        "}\n"
    )
    with pytest.raises(BuildError) as info:
        build.compile_c(broken, CDEF, name="printer_bug")
    message = str(info.value)
    kept = next((cache / "failed").glob("_layerc_printer_bug_*.c"))
    assert kept.read_text() == broken
    assert "printer_bug" in message and "error" in message
    assert f"generated source: {kept}" in message and "first error at line 5" in message
    assert f"{kept}:5:" in message        # the compiler's own message, pointing at the kept file
    assert entries_and_leftovers(cache) == ([], [])
    store.clear_cache()
    assert not (cache / "failed").exists()
