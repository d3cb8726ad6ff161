"""layerc.compiler.build: cffi build, content-addressed cache, locking, errors."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from layerc.compiler import build, cc, store
from layerc.compiler.cc import BuildError, BuildOptions

REPO = pathlib.Path(__file__).resolve().parents[1]
CDEF = "void add1(int64_t n, const double* x, double* y);"


def add_source(constant: float = 1.0) -> str:
    """add1 adding ``constant``: a distinct constant gives a distinct source, so
    no test sees a module another test loaded into this process."""
    return (
        "#include <stdint.h>\n"
        "void add1(int64_t n, const double* x, double* y)"
        f"{{ for (int64_t i = 0; i < n; i++) y[i] = x[i] + {constant!r}; }}\n"
    )


def call_add1(built, x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    built.lib.add1(x.size, built.ffi.cast("const double *", built.ffi.from_buffer(x)), built.ffi.from_buffer("double[]", y))
    return y


def run_python(code: str, cache: pathlib.Path, **extra_env) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO), **extra_env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, cwd=REPO)


def entries_and_leftovers(cache: pathlib.Path) -> tuple[list[str], list[str]]:
    names = sorted(p.name for p in cache.iterdir())
    return [n for n in names if n.startswith("_layerc_") and not n.endswith(".lock")], [n for n in names if n.startswith(".tmp")]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(folder))
    return folder


def test_compile_call_and_in_process_cache_hit(cache):
    x = np.linspace(-1, 1, 1001)
    before = cc.compiler_invocations()
    built = build.compile_c(add_source(1.0), CDEF, name="add1")
    assert cc.compiler_invocations() == before + 1
    np.testing.assert_array_equal(call_add1(built, x), x + 1)
    assert pathlib.Path(built.so_path).is_file()
    assert built.module_name == f"_layerc_add1_{built.cache_key[:16]}"
    entry = cache / built.module_name
    # no Python in an entry: cffi's tables are data in meta.json
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        ["cdef.h", "meta.json", "source.c", pathlib.Path(built.so_path).name]
    )
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key"] == built.cache_key and "-O3" in meta["inputs"]["flags"] and meta["created"]
    assert set(meta["ffi"]) >= {"_types", "_globals"}

    again = build.compile_c(add_source(1.0), CDEF, name="add1")
    assert cc.compiler_invocations() == before + 1
    assert again is built


def test_openmp_and_libm_are_linked(cache):
    source = (
        "#include <math.h>\n#include <omp.h>\n"
        "int threads(void) { int n = 0;\n#pragma omp parallel\n{\n#pragma omp single\nn = omp_get_num_threads();\n}\nreturn n; }\n"
        "double pi_exp(double v) { return acos(-1.0) * exp(v); }\n"
    )
    built = build.compile_c(source, "int threads(void); double pi_exp(double v);", name="omp",
                            options=BuildOptions(warnings_as_errors=True))
    assert built.lib.threads() >= 1
    assert built.lib.pi_exp(1.0) == pytest.approx(np.pi * np.e)


def test_new_process_loads_from_disk_without_compiling(cache):
    built = build.compile_c(add_source(2.0), CDEF, name="add2")
    result = run_python(f"""
        import numpy as np
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source, call_add1
        built = build.compile_c(add_source(2.0), CDEF, name="add2")
        assert built.cache_key == {built.cache_key!r}
        np.testing.assert_array_equal(call_add1(built, np.arange(5.0)), np.arange(5.0) + 2)
        print(cc.compiler_invocations())
    """, cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert build.cache_key(add_source(2.5), CDEF, BuildOptions()) != built.cache_key


def test_a_sound_entry_loads_without_its_file_lock(cache):
    """Published entries never change: a new process loads a sound one without
    the file lock (a damaged one still takes it, see test_build_robustness)."""
    build.compile_c(add_source(3.0), CDEF, name="add3")
    result = run_python("""
        import numpy as np
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source, call_add1

        class NoLock:
            def __init__(self, *args, **kwargs):
                raise AssertionError("the file lock was taken")

        store.filelock.FileLock = NoLock
        built = build.compile_c(add_source(3.0), CDEF, name="add3")
        np.testing.assert_array_equal(call_add1(built, np.arange(3.0)), np.arange(3.0) + 3)
        print(cc.compiler_invocations())
    """, cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_key_covers_cdef_and_flags():
    key = build.cache_key(add_source(), CDEF, BuildOptions())
    assert build.cache_key(add_source(), CDEF + "\n", BuildOptions()) != key
    assert build.cache_key(add_source(), CDEF, BuildOptions(extra_flags=("-DX",))) != key
    assert build.cache_key(add_source(), CDEF, BuildOptions(isa="avx2")) != key
    assert build.cache_key(add_source(), CDEF, BuildOptions(flags=list(cc.DEFAULT_FLAGS))) == key
    assert not any(f.endswith("=native") for f in BuildOptions().final_flags())


def test_two_processes_building_at_once_compile_once(cache):
    start_at = time.time() + 1.5  # both interpreters are up by then; the builds overlap
    code = f"""
        import time
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source
        time.sleep(max(0.0, {start_at} - time.time()))
        built = build.compile_c(add_source(3.0), CDEF, name="race")
        print(cc.compiler_invocations(), built.so_path)
    """
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    counts, paths = zip(*(out.split() for out, _ in outputs))
    assert sorted(counts) == ["0", "1"]
    assert paths[0] == paths[1]
    entries, leftovers = entries_and_leftovers(cache)
    assert len(entries) == 1 and leftovers == []


def test_threads_building_at_once_compile_once(cache):
    barrier = threading.Barrier(8)
    results = [None] * 8

    def work(i):
        barrier.wait()
        results[i] = build.compile_c(add_source(4.0), CDEF, name="threads")

    before = cc.compiler_invocations()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cc.compiler_invocations() == before + 1
    assert all(r is results[0] for r in results)
    np.testing.assert_array_equal(call_add1(results[0], np.ones(3)), np.full(3, 5.0))


def test_syntax_error_raises_and_leaves_nothing(cache):
    bad = "#include <stdint.h>\nvoid add1(int64_t n, const double* x, double* y) { y[0] = x[0] + }\n"
    with pytest.raises(BuildError) as info:
        build.compile_c(bad, CDEF, name="broken_layer")
    message = str(info.value)
    assert "broken_layer" in message
    kept = next((cache / "failed").glob("_layerc_broken_layer_*.c"))
    assert f"{kept}:2:" in message and "error" in message and "first error at line 2" in message
    assert kept.read_text() == bad
    entries, leftovers = entries_and_leftovers(cache)
    assert entries == [] and leftovers == []


def test_cdef_without_definition_raises_and_leaves_nothing(cache):
    with pytest.raises(BuildError, match="'mismatch'.*undefined symbol: add2"):
        build.compile_c(add_source(14.0), "void add2(int64_t n, const double* x, double* y);", name="mismatch")
    entries, leftovers = entries_and_leftovers(cache)
    assert entries == [] and leftovers == []


def test_warnings_as_errors(cache):
    noisy = add_source(5.0).replace("{ for", "{ int unused; for")
    build.compile_c(noisy, CDEF, name="noisy")
    with pytest.raises(BuildError, match="unused"):
        build.compile_c(noisy, CDEF, name="noisy", options=BuildOptions(warnings_as_errors=True))
    assert len(store.list_cache()) == 1


def test_list_clear_verify(cache):
    assert store.list_cache() == [] and store.verify_cache() == []
    a = build.compile_c(add_source(6.0), CDEF, name="Layer A!")
    b = build.compile_c(add_source(7.0), CDEF, name="b")
    listed = store.list_cache()
    assert [e["module_name"] for e in listed] == sorted([a.module_name, b.module_name])
    assert {e["key"] for e in listed} == {a.cache_key, b.cache_key}
    assert all(e["size"] > 0 and e["mtime"] > 0 for e in listed)
    assert store.verify_cache() == []

    os.remove(a.so_path)
    problems = store.verify_cache()
    assert len(problems) == 1 and a.module_name in problems[0] and "missing" in problems[0]

    (cache / b.module_name / "source.c").write_text(add_source(8.0))
    assert any(b.module_name in p and "key mismatch" in p for p in store.verify_cache())

    assert store.clear_cache() == 2
    assert store.list_cache() == [] and store.verify_cache() == []


def test_broken_entry_is_rebuilt(cache):
    built = build.compile_c(add_source(9.0), CDEF, name="fragile")
    os.remove(built.so_path)
    result = run_python("""
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source
        build.compile_c(add_source(9.0), CDEF, name="fragile")
        print(cc.compiler_invocations())
    """, cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert store.verify_cache() == []
    assert entries_and_leftovers(cache)[1] == []


def test_name_is_sanitized(cache):
    built = build.compile_c(add_source(10.0), CDEF, name="My Layer/../" + "x" * 80)
    safe = built.module_name[len("_layerc_"):-17]
    assert safe.startswith("my_layer_x") and len(safe) <= 40
    assert set(safe) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_cache_dir_location(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(tmp_path / "explicit"))
    assert store.cache_dir() == tmp_path / "explicit"
    built = build.compile_c(add_source(11.0), CDEF, name="located")
    assert pathlib.Path(built.so_path).parent.parent == tmp_path / "explicit"

    monkeypatch.delenv("LAYERC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.cache_dir() == tmp_path / "xdg" / "layerc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store.cache_dir() == tmp_path / "home" / ".cache" / "layerc"


def test_sanitize_needs_preloaded_runtime(cache):
    with pytest.raises(BuildError, match="LD_PRELOAD"):
        build.compile_c(add_source(12.0), CDEF, name="asan", options=BuildOptions(sanitize=True))


@pytest.mark.sanitizer
def test_sanitize_catches_out_of_bounds(cache):
    libasan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("the compiler has no AddressSanitizer runtime")
    result = run_python("""
        import numpy as np
        from layerc.compiler import build, cc, store
        from tests.test_build import CDEF, add_source
        built = build.compile_c(add_source(13.0), CDEF, name="asan", options=cc.BuildOptions(sanitize=True))
        x = np.zeros(1000); y = np.zeros(1000)
        built.lib.add1(1001, built.ffi.from_buffer("double[]", x), built.ffi.from_buffer("double[]", y))
    """, cache, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0")
    assert result.returncode != 0
    assert "heap-buffer-overflow" in result.stderr


DENORMALS_SURVIVE = """
import numpy as np
print(bool(np.float64(1e-310) * 1.0 != 0), bool(np.float32(1e-40) * np.float32(1.0) != 0))
"""


@pytest.mark.parametrize("options, cflags", [
    ("BuildOptions(extra_flags=('-ffast-math',))", ""),
    ("BuildOptions(portable=True, extra_flags=('-funsafe-math-optimizations',))", ""),
    ("BuildOptions()", "-Ofast"),
])
def test_fast_math_does_not_flush_denormals_for_the_whole_process(cache, options, cflags):
    """-ffast-math, -Ofast and -funsafe-math-optimizations at link time would add
    crtfastmath.o, which turns on flush-to-zero for the process when the library loads."""
    result = run_python(f"""
        import numpy as np
        from layerc.compiler import build
        from layerc.compiler.cc import BuildOptions
        from tests.test_build import CDEF, add_source, call_add1
        built = build.compile_c(add_source(0.5), CDEF, name="fast", options={options})
        assert call_add1(built, np.zeros(2)).tolist() == [0.5, 0.5]
        {DENORMALS_SURVIVE.strip().splitlines()[-1]}
    """, cache, CFLAGS=cflags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_the_fast_math_hazard_is_real_on_this_compiler(tmp_path):
    """The control for the test above: a library linked with -ffast-math the
    plain way flushes denormals in the process that loads it."""
    source = tmp_path / "f.c"
    source.write_text("int f(void) { return 1; }\n")
    library = tmp_path / "f.so"
    linked = subprocess.run(["cc", "-shared", "-fPIC", "-ffast-math", str(source), "-o", str(library)],
                            capture_output=True, text=True)
    if linked.returncode != 0:
        pytest.skip(f"cc cannot link a shared library here: {linked.stderr}")
    code = f"import ctypes; ctypes.CDLL({str(library)!r})\n" + DENORMALS_SURVIVE
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if result.stdout.split() == ["True", "True"]:
        pytest.skip("this compiler does not link crtfastmath.o into shared libraries")
    assert result.stdout.split() == ["False", "False"]


# state in part 0, read and written by functions in parts 1-3: whichever units
# hold them, they share one counter
UNITS_SOURCE = """
#if !defined(LC_PARTS)
#define STATE static
#elif LC_PARTS & 1
#define STATE __attribute__((visibility("hidden")))
#else
#define STATE extern __attribute__((visibility("hidden")))
#endif
STATE int counter;
#if !defined(LC_PARTS) || (LC_PARTS >> 1 & 1)
void bump(int by) { counter += by; }
#endif
#if !defined(LC_PARTS) || (LC_PARTS >> 2 & 1)
int twice(void) { return 2 * counter; }
#endif
#if !defined(LC_PARTS) || (LC_PARTS >> 3 & 1)
int thrice(void) { return 3 * counter; }
#endif
"""


@pytest.mark.parametrize("units", [(), ((1, 2, 3),), ((1,), (2, 3)), ((2,), (1,), (3,))])
def test_units_share_the_state_of_part_0(cache, units):
    built = build.compile_c(UNITS_SOURCE + f"/* {units} */", "void bump(int by); int twice(void); int thrice(void);",
                            name="units", units=units)
    built.lib.bump(5)
    assert (built.lib.twice(), built.lib.thrice()) == (10, 15)
