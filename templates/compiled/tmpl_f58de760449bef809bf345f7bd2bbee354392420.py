from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'loops.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_loops = resolve('loops')
    l_0_lets = resolve('lets')
    l_0_body = resolve('body')
    l_0_c = missing
    try:
        t_1 = environment.filters['reverse']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'reverse' found.")
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'loops.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    for l_1_l in (undefined(name='loops') if l_0_loops is missing else l_0_loops):
        _loop_vars = {}
        pass
        if (environment.getattr(l_1_l, 'parallel') or environment.getattr(l_1_l, 'simd')):
            pass
            yield '\n    '
            yield str(context.call(environment.getattr((undefined(name='c') if l_0_c is missing else l_0_c), 'pragma'), l_1_l, _loop_vars=_loop_vars))
        if environment.getattr(l_1_l, 'unroll'):
            pass
            yield '\n    #pragma GCC unroll '
            yield str(environment.getattr(l_1_l, 'unroll'))
        yield '\n    '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_l, 'form')), l_1_l, _loop_vars=_loop_vars))
        for l_2_s in environment.getattr(l_1_l, 'enter'):
            _loop_vars = {}
            pass
            yield '\n        '
            yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_s, 'form')), l_2_s, _loop_vars=_loop_vars))
        l_2_s = missing
    l_1_l = missing
    for l_1_s in (undefined(name='lets') if l_0_lets is missing else l_0_lets):
        _loop_vars = {}
        pass
        yield '\n        const '
        yield str(environment.getattr(l_1_s, 'ctype'))
        yield ' '
        yield str(environment.getattr(l_1_s, 'name'))
        yield ' = '
        yield str(environment.getattr(l_1_s, 'value'))
        yield ';'
    l_1_s = missing
    for l_1_s in (undefined(name='body') if l_0_body is missing else l_0_body):
        _loop_vars = {}
        pass
        yield '\n        '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    for l_1_l in t_1((undefined(name='loops') if l_0_loops is missing else l_0_loops)):
        _loop_vars = {}
        pass
        for l_2_s in environment.getattr(l_1_l, 'exit'):
            _loop_vars = {}
            pass
            yield '\n        '
            yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_s, 'form')), l_2_s, _loop_vars=_loop_vars))
        l_2_s = missing
        yield '\n    }'
    l_1_l = missing

blocks = {}
debug_info = '1=21&2=23&3=26&4=29&6=30&7=33&9=35&10=36&11=40&15=43&16=47&18=54&19=58&21=60&22=63&23=67'