"""The layering contracts of pyproject.toml can fail: each one, checked on an
installed copy of layerc with one violating import planted, is reported broken.

The lint runs are slow (one ``lint-imports`` run per contract); CI runs the
contracts themselves through ``.ci/lint-imports``.
"""
import pathlib
import shutil
import subprocess
import sys

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"

# contract name -> (module file inside the installed package, import that breaks it)
VIOLATIONS = {
    "the runtime core needs numpy and cffi only: nothing else of layerc":
        ("runtime/tensor.py", "from layerc.compiler import ir"),
    "the compiler never reaches into the runtime or the layers above it":
        ("compiler/pipeline.py", "from layerc.runtime import tensor"),
    "the IR imports no other layerc module":
        ("compiler/ir.py", "from layerc.compiler import errors"),
    "autodiff imports neither codegen nor the build":
        ("compiler/autodiff.py", "from layerc.compiler import codegen"),
    "the build imports neither the IR nor codegen":
        ("compiler/build.py", "from layerc.compiler import ir"),
    "declaring and tracing a spec imports neither the pipeline nor the runtime":
        ("compiler/spec.py", "from layerc.compiler import pipeline"),
    "only the public face imports the built-in layer library":
        ("layers.py", "from layerc import nn"),
    "no cycles inside the compiler":
        ("compiler/ir.py", "from layerc.compiler import pipeline"),
}



@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> pathlib.Path:
    pytest.importorskip("importlinter")
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(ROOT)], check=True, capture_output=True)
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    return site


def lint(site: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                           "lint_imports_command()", str(CONFIG), "--no-cache"],
                          cwd=site, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)


def test_every_contract_is_listed_here():
    contracts = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]["contracts"]
    assert sorted(c["name"] for c in contracts) == sorted(VIOLATIONS)


def test_the_ir_contract_names_every_other_compiler_module():
    contracts = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]["contracts"]
    forbidden = next(c for c in contracts if c["name"] == "the IR imports no other layerc module")
    modules = {f"layerc.compiler.{p.stem}" for p in (ROOT / "compiler").glob("*.py")}
    assert modules - {"layerc.compiler.__init__", "layerc.compiler.ir"} <= set(forbidden["forbidden_modules"])


@pytest.mark.slow
def test_the_installed_package_keeps_every_contract(installed):
    result = lint(installed)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_a_violating_import_breaks_the_contract(installed, tmp_path, contract):
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    relative, line = VIOLATIONS[contract]
    module = site / "layerc" / relative
    module.write_text(module.read_text() + f"\n{line}\n")
    result = lint(site)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout
