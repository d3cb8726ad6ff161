"""The `layerc` command line, run as `python -m layerc.cli` in a subprocess:
output, exit codes (0 ok, 1 failure, 2 usage) and errors on stderr."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

SPECS = '''
from layerc import layer, Input, Param, Attr, ops

@layer
class PReLU:
    """PReLU(x) = max(0, x) + alpha * min(0, x)."""
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


@layer
class Tripled:
    """A user-written backward that is right."""
    x = Input("N", "C")

    def forward(x):
        return x * 3.0

    def backward(grad_output):
        return grad_output * 3.0


@layer
class WrongBackward:
    """A user-written backward that is wrong (the factor should be 3)."""
    x = Input("N", "C")

    def forward(x):
        return x * 3.0

    def backward(grad_output):
        return grad_output * 2.0


@layer
class BadShapes:
    x = Input("N", "C")
    w = Param("D")

    def forward(x, w):
        return x @ w.T


def make_scaled(init=1.0):
    """A factory: returns a spec."""
    @layer
    class Scaled:
        x = Input("N", "C")
        scale = Param(init=init)

        def forward(x, scale):
            return x * scale
    return Scaled
'''


@pytest.fixture
def specs(tmp_path) -> pathlib.Path:
    path = tmp_path / "layers.py"
    path.write_text(SPECS)
    (tmp_path / "one.py").write_text(textwrap.dedent('''
        from layerc import layer, Input, ops

        @layer
        class Only:
            x = Input("N")

            def forward(x):
                return ops.tanh(x)
    '''))
    return path


def layerc(*args, cwd, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("LAYERC_VERBOSE", None) if env is None or "LAYERC_VERBOSE" not in env else None
    return subprocess.run([sys.executable, "-m", "layerc.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)


def test_help_lists_every_command(tmp_path):
    run = layerc("--help", cwd=tmp_path)
    assert run.returncode == 0
    for command in ("show", "check", "build", "bench", "cache"):
        assert command in run.stdout


def test_no_command_is_a_usage_error(tmp_path):
    run = layerc(cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == "" and "usage: layerc" in run.stderr


def test_show_prints_forward_backward_saved_and_c(specs):
    run = layerc("show", f"{specs}:PReLU", "--sizes", "C=4", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "forward:" in out and "maximum(x[i0, i1], 0)" in out
    assert "backward (derived):" in out and "grad_alpha[i1] = sum_{i0}" in out
    assert "saved for backward:" in out
    assert "int lc_prelu_forward_f32(" in out and "int lc_prelu_backward_f64(" in out


def test_show_selects_parts(specs):
    run = layerc("show", "layers.py:PReLU", "--backward", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert "backward (derived):" in run.stdout
    assert "forward:" not in run.stdout and "#include" not in run.stdout
    run = layerc("show", "layers.py:PReLU", "--c", "--sizes", "C=8", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("generated C:") and "< 8;" in run.stdout


def test_show_user_backward_and_factory_args(specs):
    run = layerc("show", "layers.py:Tripled", "--backward", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert "user-written" in run.stdout
    run = layerc("show", "layers.py:make_scaled", "--arg", "init=2.5", "--forward", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert "# Scaled" in run.stdout


def test_show_picks_the_only_spec_of_a_file(specs):
    run = layerc("show", "one.py", "--forward", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert "tanh(x[i0])" in run.stdout


@pytest.mark.parametrize("args,message", [
    (["show", "missing.py:PReLU"], "no such file: missing.py"),
    (["show", "layers.py:Nope"], "has no 'Nope' (layer specs there: PReLU"),
    (["show", "layers.py"], "declares 4 layer specs"),
    (["show", "layers.py:PReLU", "--sizes", "C"], "--sizes takes NAME=VALUE"),
    (["check", "layers.py:PReLU", "--sizes", "Q=3"], "--sizes: PReLU has no size or attribute Q"),
    (["check", "layers.py:PReLU", "--input", "x=missing.npy"], "--input x: cannot read missing.npy"),
    (["build"], "build needs FILE:NAME"),
    (["show", "layers.py:PReLU", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors_exit_2_on_stderr(specs, args, message):
    run = layerc(*args, cwd=specs.parent)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert run.stdout == ""
    assert "Traceback" not in run.stderr


def test_spec_error_exits_1_without_traceback(specs):
    run = layerc("show", "layers.py:BadShapes", "--sizes", "C=3", "D=4", cwd=specs.parent)
    assert run.returncode == 1
    assert "BadShapes" in run.stderr and "Traceback" not in run.stderr


def test_unknown_size_is_a_usage_error_naming_the_flag(specs):
    run = layerc("show", "layers.py:PReLU", "--sizes", "Q=3", cwd=specs.parent)
    assert run.returncode == 2
    assert "--sizes: PReLU has no size or attribute Q (sizes: C, N" in run.stderr


def test_check_binds_free_sizes_and_draws_integer_inputs_in_range(tmp_path):
    examples = pathlib.Path(__file__).resolve().parents[1] / "examples" / "custom_layers"
    for target in ("prelu_activation.py:PReLU", "focal_loss.py:FocalLossSpec"):
        run = layerc("check", str(examples / target), cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "passed" in run.stdout and "checking " in run.stderr


def test_a_closed_pipe_ends_quietly(specs):
    reader = subprocess.Popen([sys.executable, "-m", "layerc.cli", "show", "layers.py:PReLU", "--sizes", "C=4"],
                              cwd=specs.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()                       # the reader is gone before anything is printed
    stderr = reader.stderr.read().decode()
    assert reader.wait(timeout=300) == 141
    assert "Traceback" not in stderr and "Error" not in stderr


def test_check_passes(specs):
    run = layerc("check", "layers.py:PReLU", "--sizes", "N=3", "C=5", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert "alpha" in run.stdout and "passed" in run.stdout


def test_check_verifies_a_user_backward(specs):
    run = layerc("check", "layers.py:Tripled", "--sizes", "N=2", "C=3", cwd=specs.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    run = layerc("check", "layers.py:WrongBackward", "--sizes", "N=2", "C=3", cwd=specs.parent)
    assert run.returncode == 1
    assert "FAILED" in run.stdout or "WRONG" in run.stdout
    assert "gradient check of WrongBackward failed" in run.stderr


def test_build_writes_an_importable_package(specs, tmp_path):
    out = tmp_path / "pkgs"
    run = layerc("build", "layers.py:PReLU", "--sizes", "C=5", "-o", str(out), cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert "compiling prelu (forward+backward)…" in run.stderr     # progress, with the time taken
    code = ("import numpy as np, prelu; m = prelu.PReLU(); "
            "print(m.forward(np.array([[-2, -1, 0, 1, 2]], np.float32)).numpy().tolist())")
    check = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[[-0.5, -0.25, 0.0, 1.0, 2.0]]"


def test_build_sources_only_with_a_name_and_quiet(specs, tmp_path):
    run = layerc("build", "layers.py:make_scaled", "--arg", "init=2.0", "--name", "scaled2", "--sources-only",
                 "-o", str(tmp_path / "o"), "-q", cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert (tmp_path / "o" / "scaled2" / "source.c").is_file()
    assert not list((tmp_path / "o" / "scaled2").glob("*.so"))
    assert "--arg init=2.0" in (tmp_path / "o" / "scaled2" / "__init__.py").read_text()


def test_build_all_from_a_manifest(specs, tmp_path):
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "manifest.txt").write_text(
        "# comment\n\nlayers.py:PReLU --sizes C=4   # the activation\nlayers.py:make_scaled --arg init=3.0\n")
    # paths in a manifest are relative to the folder above it
    (tmp_path / "layers.py").write_text(SPECS)
    run = layerc("build", "--all", "--manifest", str(folder / "manifest.txt"), "--sources-only", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["prelu", "scaled"]
    (folder / "manifest.txt").write_text("layers.py:PReLU --bogus\n")
    run = layerc("build", "--all", "--manifest", str(folder / "manifest.txt"), cwd=tmp_path)
    assert run.returncode == 2 and "manifest.txt:1" in run.stderr


def test_build_refuses_to_overwrite_a_foreign_folder(specs, tmp_path):
    (tmp_path / "o" / "prelu").mkdir(parents=True)
    (tmp_path / "o" / "prelu" / "keep.txt").write_text("mine")
    run = layerc("build", "layers.py:PReLU", "-o", str(tmp_path / "o"), "--sizes", "C=2", "--sources-only",
                 cwd=specs.parent)
    assert run.returncode == 1
    assert "not a package written by layerc" in run.stderr
    assert (tmp_path / "o" / "prelu" / "keep.txt").read_text() == "mine"


def test_cache_commands(specs, tmp_path):
    env = {"LAYERC_CACHE_DIR": str(tmp_path / "cache")}
    run = layerc("cache", "dir", cwd=tmp_path, env=env)
    assert run.returncode == 0 and run.stdout.strip() == str(tmp_path / "cache")
    # -v shows the compiler command of the JIT build
    run = layerc("-v", "check", "layers.py:PReLU", "--sizes", "N=2", "C=3", cwd=specs.parent, env=env)
    assert run.returncode == 0, run.stderr
    assert "running:" in run.stderr and "-fopenmp" in run.stderr
    run = layerc("cache", "ls", cwd=tmp_path, env=env)
    assert run.returncode == 0 and "PReLU" in run.stdout and "1 entry" in run.stderr
    run = layerc("cache", "verify", cwd=tmp_path, env=env)
    assert run.returncode == 0 and "ok" in run.stdout
    entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name.startswith("_layerc_"))
    with open(entry / "source.c", "a") as f:
        f.write("/* edited */\n")
    run = layerc("cache", "verify", cwd=tmp_path, env=env)
    assert run.returncode == 1
    assert "key mismatch" in run.stdout and "problem" in run.stderr
    run = layerc("cache", "clear", cwd=tmp_path, env=env)
    assert run.returncode == 0 and "removed 1 entry" in run.stdout
    run = layerc("cache", "ls", cwd=tmp_path, env=env)
    assert run.stdout == "" and "0 entries" in run.stderr
    run = layerc("cache", "nope", cwd=tmp_path, env=env)
    assert run.returncode == 2 and "invalid choice" in run.stderr


def test_bench_delegates_to_benchmarks_run(tmp_path):
    fake = tmp_path / "fake"
    (fake / "benchmarks").mkdir(parents=True)
    (fake / "benchmarks" / "__init__.py").write_text("")
    (fake / "benchmarks" / "run.py").write_text(
        "def main(argv):\n    print('bench argv', argv)\n    return 3\n")
    run = layerc("bench", "--quick", "prelu", cwd=fake)
    assert run.returncode == 3, run.stderr
    assert "bench argv ['--quick', 'prelu']" in run.stdout


def test_bench_without_benchmarks_run_is_a_clear_error(tmp_path):
    fake = tmp_path / "fake"
    (fake / "benchmarks").mkdir(parents=True)
    (fake / "benchmarks" / "__init__.py").write_text("")   # a benchmarks package without run.py
    run = layerc("bench", cwd=fake)
    assert run.returncode == 1
    assert "benchmarks/run.py" in run.stderr and "Traceback" not in run.stderr


def test_show_perf_reports_each_kernel_against_its_roof(specs):
    run = layerc("show", "layers.py:PReLU", "--perf", "--sizes", "N=256,C=64", "--seconds", "0.02",
                 cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "PReLU at N=256 C=64"
    assert lines[1].startswith("roofs: triad ") and "GFLOP/s" in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert set(rows) == {"PReLU.forward", "PReLU.backward"}
    # forward: x and alpha read, y written (float32); maximum, minimum, *, + per element
    assert float(rows["PReLU.forward"][2]) == pytest.approx((2 * 256 * 64 + 64) * 4 / 1e6, abs=1e-3)
    assert float(rows["PReLU.forward"][3]) == pytest.approx(4 * 256 * 64 / 1e6, abs=1e-3)
    run = layerc("show", "layers.py:PReLU", "--perf", "--sizes", "N=256,C=64", "--seconds", "0.02", "--json",
                 cwd=specs.parent)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert [k["kernel"] for k in report["kernels"]] == ["PReLU.forward", "PReLU.backward"]
    assert all(k["flag"] == (k["of_roof"] < 0.5) for k in report["kernels"])
