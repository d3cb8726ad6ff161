from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'function.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_title = resolve('title')
    l_0_exported = resolve('exported')
    l_0_name = resolve('name')
    l_0_params = resolve('params')
    l_0_unit = resolve('unit')
    l_0_short = resolve('short')
    l_0_nests = resolve('nests')
    l_0_c = missing
    try:
        t_1 = environment.filters['join']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'join' found.")
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'function.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    yield '/* '
    yield str((undefined(name='title') if l_0_title is missing else l_0_title))
    yield ' */\n'
    yield str(('static ' if (not (undefined(name='exported') if l_0_exported is missing else l_0_exported)) else cond_expr_undefined("the inline if-expression on line 3 in 'function.c.j2' evaluated to false and no else section was defined.")))
    yield 'int '
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield '('
    yield str(context.call(environment.getattr((undefined(name='c') if l_0_c is missing else l_0_c), 'parameters'), (undefined(name='params') if l_0_params is missing else l_0_params), True))
    yield ')\n{'
    if (undefined(name='unit') if l_0_unit is missing else l_0_unit):
        pass
        yield '\n    /* the size is 1: the variant scheduled for it, whose loops skip that axis */\n    if ('
        yield str(environment.getattr((undefined(name='unit') if l_0_unit is missing else l_0_unit), 'size'))
        yield ' == 1)\n        return '
        yield str(environment.getattr((undefined(name='unit') if l_0_unit is missing else l_0_unit), 'name'))
        yield '('
        yield str(t_1(context.eval_ctx, environment.getattr((undefined(name='unit') if l_0_unit is missing else l_0_unit), 'args'), ', '))
        yield ');'
    if (undefined(name='short') if l_0_short is missing else l_0_short):
        pass
        yield '\n    if ('
        yield str(environment.getattr((undefined(name='short') if l_0_short is missing else l_0_short), 'test'))
        yield ') {    /* short rows */'
        for l_1_nest in environment.getattr((undefined(name='short') if l_0_short is missing else l_0_short), 'nests'):
            _loop_vars = {}
            pass
            yield '\n'
            yield str(l_1_nest)
        l_1_nest = missing
        yield '\n        return 0;\n    }'
    for l_1_nest in (undefined(name='nests') if l_0_nests is missing else l_0_nests):
        _loop_vars = {}
        pass
        yield '\n'
        yield str(l_1_nest)
    l_1_nest = missing
    yield '\n    return 0;\n}\n'

blocks = {}
debug_info = '1=25&2=28&3=30&5=36&7=39&8=41&10=45&11=48&12=50&13=54&18=57&19=61'