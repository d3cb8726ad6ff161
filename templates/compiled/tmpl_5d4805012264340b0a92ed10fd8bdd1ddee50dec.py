from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'streamed.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_ctype = resolve('ctype')
    l_0_sizes = resolve('sizes')
    l_0_streamed = resolve('streamed')
    l_0_plain = resolve('plain')
    try:
        t_1 = environment.filters['join']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'join' found.")
    pass
    yield '    /* outputs larger than the caches are streamed to memory: their tiles are written\n       around the caches, and the stores do not read the lines they fill first */\n    if ((int64_t)sizeof('
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ') * ('
    yield str(t_1(context.eval_ctx, (undefined(name='sizes') if l_0_sizes is missing else l_0_sizes), ' + '))
    yield ') >= lc_stream_min()) {\n'
    yield str((undefined(name='streamed') if l_0_streamed is missing else l_0_streamed))
    yield '\n    } else {\n'
    yield str((undefined(name='plain') if l_0_plain is missing else l_0_plain))
    yield '\n    }'

blocks = {}
debug_info = '3=22&4=26&6=28'