"""The templates' precompiled Python (compiler/template_env.py): fresh in the
checkout, used while it matches its template, never once it does not, and
rendering the same C as the templates' source."""
import json

import jinja2
import pytest

from layerc.compiler import codegen, cprint, template_env
from layerc.compiler.pipeline import lower_layer
from layerc.nn import Conv2DSpec, MaxPool2DSpec
from layerc.nn.activation import ReLUSpec
from benchmarks.specs import FocalLoss, LinearSpec, MultiHeadAttentionSpec

COMPILED = template_env.compiled_folder()


def test_committed_compiled_templates_are_fresh(tmp_path):
    written = template_env.write_compiled(tmp_path)
    want = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    have = {p.name: p.read_bytes() for p in COMPILED.iterdir() if p.is_file()}
    assert len(written) == len(want) - 1 >= 15
    assert want == have, ("templates/compiled is stale: regenerate it with "
                          "`python -m layerc.compiler.template_env`")


def test_every_c_template_loads_from_its_compiled_python():
    loader = template_env.environment.loader
    assert isinstance(loader, jinja2.ChoiceLoader)
    compiled, source = loader.loaders
    for name in template_env.template_names():
        assert compiled.load(template_env.environment, name).filename.startswith(str(COMPILED)), name
        assert source.load(template_env.environment, name).filename.endswith(name)


def _edited_manifest(tmp_path, edit):
    folder = tmp_path / "compiled"
    template_env.write_compiled(folder)
    manifest = json.loads((folder / template_env.MANIFEST).read_text())
    edit(manifest)
    (folder / template_env.MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_a_template_whose_source_changed_renders_from_source(tmp_path):
    def stale(manifest):
        manifest["templates"]["divisors.c.j2"] = "0" * 64
    folder = _edited_manifest(tmp_path, stale)
    env = template_env.environment.overlay()
    digests = template_env._compiled_digests(env, folder)
    loader = template_env._FreshModuleLoader(folder, digests)
    with pytest.raises(jinja2.TemplateNotFound):
        loader.load(env, "divisors.c.j2")
    assert loader.load(env, "cdef.h.j2").filename.startswith(str(folder))


@pytest.mark.parametrize("edit", [lambda m: m.update(jinja2="0.0"),
                                  lambda m: m["options"].update(trim_blocks=True),
                                  lambda m: m.update(templates=[]),
                                  lambda m: m.clear()],
                         ids=["another jinja2", "other options", "damaged", "empty"])
def test_a_manifest_of_another_jinja2_or_options_uses_none(tmp_path, edit):
    folder = _edited_manifest(tmp_path, edit)
    assert template_env._compiled_digests(template_env.environment, folder) == {}
    (folder / template_env.MANIFEST).write_bytes(b"\xff not json")
    assert template_env._compiled_digests(template_env.environment, folder) == {}


@pytest.mark.parametrize("spec, sizes", [
    (ReLUSpec, {}), (LinearSpec, dict(I=64, O=32)), (FocalLoss, dict(K=1000)),
    (MultiHeadAttentionSpec, dict(E=64, num_heads=4, causal=False)), (MaxPool2DSpec, {}),
    (Conv2DSpec, dict(C=4, O=4, CG=2, KH=3, KW=3, groups=2, padding=(1, 1)))],
    ids=lambda v: getattr(v, "name", ""))
def test_compiled_templates_render_the_same_c_as_the_sources(monkeypatch, spec, sizes):
    compiled = lower_layer(spec, **sizes)
    source_only = template_env.environment.overlay(loader=jinja2.PackageLoader(template_env.TEMPLATES, "."))
    monkeypatch.setattr(codegen, "environment", source_only)
    monkeypatch.setattr(cprint, "environment", source_only)
    from_source = lower_layer(spec, **sizes)
    assert compiled.source == from_source.source and compiled.cdef == from_source.cdef
    assert len(compiled.source) > 1000
