from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'multi_apply.h.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_name = resolve('name')
    pass
    yield 'int '
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield '(int64_t, const int64_t *, const int64_t *, void *const *, void *const *, uintptr_t, int);\n'

blocks = {}
debug_info = '1=13'