"""The Jinja2 environment of ``templates/``, and the templates' precompiled Python.

Jinja2 turns each template into Python before its first render: about 150 ms
of a process's first build (parsing, code generation, ``compile``). That Python
ships in ``templates/compiled/`` (one ``tmpl_<sha1 of name>.py`` per template,
as ``Environment.compile_templates`` writes them, and ``manifest.json``), so a
process imports it, from bytecode where the installer wrote some. A compiled
template is used only while its manifest entry matches the template's source
(sha256), the Jinja2 version and the environment's parsing options; any other
template renders from its source, as before. Regenerate after editing a
template (a test says when)::

    python -m layerc.compiler.template_env

No bytecode cache of Jinja2's own: it would load code objects from a folder
other processes can write, where these modules are the package's own files.

Example::

    >>> from layerc.compiler.template_env import environment
    >>> environment.get_template("divisors.c.j2").name
    'divisors.c.j2'
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import pathlib
import shutil
import sys

import jinja2

TEMPLATES = "layerc.templates"
COMPILED = "compiled"
MANIFEST = "manifest.json"


def _options(env: jinja2.Environment) -> dict:
    """The settings the compiled Python depends on (those of parsing and code generation)."""
    names = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
             "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
             "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized")
    return {n: getattr(env, n) for n in names} | {"autoescape": repr(env.autoescape),
                                                   "undefined": env.undefined.__name__}


def compiled_folder() -> pathlib.Path:
    """Where the templates' compiled Python ships: ``templates/compiled/``."""
    return pathlib.Path(str(importlib.resources.files(TEMPLATES) / COMPILED))


def _source_digest(name: str) -> str:
    return hashlib.sha256((importlib.resources.files(TEMPLATES) / name).read_bytes()).hexdigest()


class _FreshModuleLoader(jinja2.ModuleLoader):
    """``ModuleLoader`` for the templates whose compiled Python matches their
    source: any other is not found here, and the next loader renders it from source."""

    def __init__(self, folder: pathlib.Path, digests: dict):
        super().__init__(folder)
        self.digests = digests

    def load(self, environment, name, globals=None):
        if self.digests.get(name) != _source_digest(name):
            raise jinja2.TemplateNotFound(name)
        return super().load(environment, name, globals)


def _compiled_digests(env: jinja2.Environment, folder: pathlib.Path) -> dict:
    """The manifest's ``{template: sha256 of its source}``; empty where the
    manifest is missing or was made by another Jinja2 or other options."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("jinja2") != jinja2.__version__ \
            or manifest.get("options") != _options(env):
        return {}
    digests = manifest.get("templates")
    return digests if isinstance(digests, dict) else {}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        # templates are package data: no stat of their files at every use (a nest
        # renders several), a process sees the templates it started with
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    source = jinja2.PackageLoader(TEMPLATES, ".")
    folder = compiled_folder()
    digests = _compiled_digests(env, folder)
    env.loader = jinja2.ChoiceLoader([_FreshModuleLoader(folder, digests), source]) if digests else source
    return env


environment = _environment()


def template_names() -> list:
    """The C templates (the package templates are layerc.aot's, in its own environment)."""
    return sorted(p.name for p in importlib.resources.files(TEMPLATES).iterdir()
                  if p.name.endswith((".c.j2", ".h.j2")))


def write_compiled(folder: pathlib.Path) -> list:
    """Write every template's Python and the manifest into ``folder`` (emptied
    first); returns the templates' names."""
    names = template_names()
    source_env = environment.overlay(loader=jinja2.PackageLoader(TEMPLATES, "."))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source_env.compile_templates(folder, zip=None, filter_func=lambda n: n in names, ignore_errors=False)
    manifest = {"jinja2": jinja2.__version__, "options": _options(environment),
                "templates": {n: _source_digest(n) for n in names}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return names


if __name__ == "__main__":
    target = compiled_folder()
    written = write_compiled(target)
    print(f"{len(written)} templates compiled into {target}", file=sys.stderr)
