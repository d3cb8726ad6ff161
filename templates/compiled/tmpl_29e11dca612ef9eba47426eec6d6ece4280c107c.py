from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'nest.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_comment = resolve('comment')
    l_0_prologue = resolve('prologue')
    l_0_epilogue = resolve('epilogue')
    l_0_c = missing
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'nest.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    yield '    /* '
    yield str((undefined(name='comment') if l_0_comment is missing else l_0_comment))
    yield ' */\n    {'
    for l_1_s in (undefined(name='prologue') if l_0_prologue is missing else l_0_prologue):
        _loop_vars = {}
        pass
        yield '\n    '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    template = environment.get_template('loops.c.j2', 'nest.c.j2')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {'c': l_0_c}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    for l_1_s in (undefined(name='epilogue') if l_0_epilogue is missing else l_0_epilogue):
        _loop_vars = {}
        pass
        yield '\n    '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n    }'

blocks = {}
debug_info = '1=15&3=20&4=24&6=26&7=32&8=36'