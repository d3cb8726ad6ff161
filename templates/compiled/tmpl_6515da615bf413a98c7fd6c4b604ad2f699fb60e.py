from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'gemm.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_comment = resolve('comment')
    l_0_start = resolve('start')
    l_0_k_size = resolve('k_size')
    l_0_started = resolve('started')
    l_0_out_size = resolve('out_size')
    l_0_out = resolve('out')
    l_0_m_size = resolve('m_size')
    l_0_n_size = resolve('n_size')
    l_0_calls = resolve('calls')
    l_0_rows = resolve('rows')
    l_0_cols = resolve('cols')
    l_0_work = resolve('work')
    l_0_min_work = resolve('min_work')
    l_0_decode = resolve('decode')
    l_0_accumulate = resolve('accumulate')
    l_0_gemm = resolve('gemm')
    l_0_trans_left = resolve('trans_left')
    l_0_trans_right = resolve('trans_right')
    l_0_depth = resolve('depth')
    l_0_alpha = resolve('alpha')
    l_0_left = resolve('left')
    l_0_right = resolve('right')
    l_0_result = resolve('result')
    l_0_c = l_0_operand = missing
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'gemm.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    def macro(l_1_m):
        t_1 = []
        if l_1_m is missing:
            l_1_m = undefined("parameter 'm' was not provided", name='m')
        pass
        t_1.extend((
            str(environment.getattr(l_1_m, 'tensor')),
            ' + (',
            str(environment.getattr(l_1_m, 'offset')),
            ')',
        ))
        if environment.getattr(l_1_m, 'step'):
            pass
            t_1.extend((
                ' + lc_row0 * ',
                str(environment.getattr(l_1_m, 'step')),
            ))
        if environment.getattr(l_1_m, 'column_step'):
            pass
            t_1.extend((
                ' + lc_col0 * ',
                str(environment.getattr(l_1_m, 'column_step')),
            ))
        t_1.extend((
            ', ',
            str(environment.getattr(l_1_m, 'ld')),
        ))
        return concat(t_1)
    context.exported_vars.add('operand')
    context.vars['operand'] = l_0_operand = Macro(environment, macro, 'operand', ('m',), False, False, False, context.eval_ctx.autoescape)
    yield '    /* '
    yield str((undefined(name='comment') if l_0_comment is missing else l_0_comment))
    yield ' */\n'
    yield str((undefined(name='start') if l_0_start is missing else l_0_start))
    yield '\n    if ('
    yield str((undefined(name='k_size') if l_0_k_size is missing else l_0_k_size))
    yield ' == 0) {'
    if (undefined(name='started') if l_0_started is missing else l_0_started):
        pass
        yield '\n        /* an empty sum leaves the starting value */'
    else:
        pass
        yield '\n        /* an empty sum is zero */\n        for (int64_t k = 0; k < '
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield '; ++k) '
        yield str((undefined(name='out') if l_0_out is missing else l_0_out))
        yield '[k] = 0;'
    yield '\n    } else if ('
    yield str((undefined(name='m_size') if l_0_m_size is missing else l_0_m_size))
    yield ' > 0 && '
    yield str((undefined(name='n_size') if l_0_n_size is missing else l_0_n_size))
    yield " > 0) {\n    /* one call per value of the loops; with fewer calls than threads, each\n       call's rows are split too, or its columns when it has fewer rows than\n       columns (a small batch: each thread then reads its own part of the\n       larger operand, not all of it). The runtime keeps the BLAS on one thread\n       while a layer runs (compiler/blas.py), so this team is the only one\n       working. Each call writes its own block, so taking calls as threads\n       come free (a core busy elsewhere) changes no result. */\n    const int64_t lc_calls = "
    yield str((undefined(name='calls') if l_0_calls is missing else l_0_calls))
    yield ', lc_rows = '
    yield str((undefined(name='rows') if l_0_rows is missing else l_0_rows))
    yield ', lc_cols = '
    yield str((undefined(name='cols') if l_0_cols is missing else l_0_cols))
    yield ';\n    const int lc_nt = '
    yield str((undefined(name='work') if l_0_work is missing else l_0_work))
    yield ' >= '
    yield str((undefined(name='min_work') if l_0_min_work is missing else l_0_min_work))
    yield ' ? lc_num_threads() : 1;\n    const int64_t lc_parts = lc_calls >= lc_nt ? 1 : (lc_nt + lc_calls - 1) / lc_calls;\n    const int lc_by_cols = lc_parts > 1 && lc_cols > lc_rows;\n    const int64_t lc_span = lc_by_cols ? lc_cols : lc_rows;\n    const int64_t lc_block = (lc_span + lc_parts - 1) / lc_parts;\n    int lc_status = 0;\n    #pragma omp parallel for num_threads(lc_nt) schedule(dynamic, 1) if(lc_nt > 1) reduction(|:lc_status)\n    for (int64_t lc_task = 0; lc_task < lc_calls * lc_parts; ++lc_task) {\n        const int64_t lc_first = lc_task % lc_parts * lc_block;\n        const int64_t lc_count = lc_span - lc_first < lc_block ? lc_span - lc_first : lc_block;\n        if (lc_count <= 0) continue;\n        const int64_t lc_row0 = lc_by_cols ? 0 : lc_first, lc_col0 = lc_by_cols ? lc_first : 0;'
    for l_1_s in (undefined(name='decode') if l_0_decode is missing else l_0_decode):
        _loop_vars = {}
        pass
        yield '\n        '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    for l_1_l in (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        _loop_vars = {}
        pass
        yield '\n        for (int64_t '
        yield str(environment.getattr(l_1_l, 'var'))
        yield ' = 0; '
        yield str(environment.getattr(l_1_l, 'var'))
        yield ' < '
        yield str(environment.getattr(l_1_l, 'extent'))
        yield '; ++'
        yield str(environment.getattr(l_1_l, 'var'))
        yield ') {'
    l_1_l = missing
    yield '\n        lc_status |= '
    yield str((undefined(name='gemm') if l_0_gemm is missing else l_0_gemm))
    yield '('
    yield str((undefined(name='trans_left') if l_0_trans_left is missing else l_0_trans_left))
    yield ', '
    yield str((undefined(name='trans_right') if l_0_trans_right is missing else l_0_trans_right))
    yield ', lc_by_cols ? lc_rows : lc_count, lc_by_cols ? lc_count : lc_cols, '
    yield str((undefined(name='depth') if l_0_depth is missing else l_0_depth))
    yield ', '
    yield str((undefined(name='alpha') if l_0_alpha is missing else l_0_alpha))
    yield ', '
    yield str(context.call((undefined(name='operand') if l_0_operand is missing else l_0_operand), (undefined(name='left') if l_0_left is missing else l_0_left)))
    yield ', '
    yield str(context.call((undefined(name='operand') if l_0_operand is missing else l_0_operand), (undefined(name='right') if l_0_right is missing else l_0_right)))
    yield ', '
    if (undefined(name='started') if l_0_started is missing else l_0_started):
        pass
        yield '1'
    elif (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        pass
        yield '('
        l_1_loop = missing
        for l_1_l, l_1_loop in LoopContext((undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate), undefined):
            _loop_vars = {}
            pass
            yield str(environment.getattr(l_1_l, 'var'))
            yield ' == 0'
            yield str((' && ' if (not environment.getattr(l_1_loop, 'last')) else cond_expr_undefined("the inline if-expression on line 40 in 'gemm.c.j2' evaluated to false and no else section was defined.")))
        l_1_loop = l_1_l = missing
        yield ') ? 0 : 1'
    else:
        pass
        yield '0'
    yield ', '
    yield str(context.call((undefined(name='operand') if l_0_operand is missing else l_0_operand), (undefined(name='result') if l_0_result is missing else l_0_result)))
    yield ');'
    for l_1_l in (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        _loop_vars = {}
        pass
        yield '\n        }'
    l_1_l = missing
    yield '\n    }\n    if (lc_status) return lc_status;\n    }\n'

blocks = {}
debug_info = '1=35&2=37&3=43&4=68&5=70&6=72&7=74&11=80&13=85&21=89&22=95&34=99&35=103&37=105&38=109&40=119&41=154'