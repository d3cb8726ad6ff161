from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'patch_gemm.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_comment = resolve('comment')
    l_0_start = resolve('start')
    l_0_terms = resolve('terms')
    l_0_started = resolve('started')
    l_0_out_size = resolve('out_size')
    l_0_out = resolve('out')
    l_0_block = resolve('block')
    l_0_budget = resolve('budget')
    l_0_ctype = resolve('ctype')
    l_0_tasks = resolve('tasks')
    l_0_work = resolve('work')
    l_0_min_work = resolve('min_work')
    l_0_room = resolve('room')
    l_0_scratch = resolve('scratch')
    l_0_once = resolve('once')
    l_0_tables = resolve('tables')
    l_0_private = resolve('private')
    l_0_accumulate = resolve('accumulate')
    l_0_per_task = resolve('per_task')
    l_0_scatter = resolve('scatter')
    l_0_decode = resolve('decode')
    l_0_gemm = resolve('gemm')
    l_0_call = resolve('call')
    l_0_c = l_0_pack_rows = l_0_scatter_rows = missing
    try:
        t_1 = environment.filters['join']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'join' found.")
    try:
        t_2 = environment.tests['none']
    except KeyError:
        @internalcode
        def t_2(*unused):
            raise TemplateRuntimeError("No test named 'none' found.")
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'patch_gemm.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    def macro(l_1_p):
        t_3 = []
        l_1_at = missing
        if l_1_p is missing:
            l_1_p = undefined("parameter 'p' was not provided", name='p')
        pass
        l_1_at = (str_join(('lc_dst[', environment.getattr(environment.getattr(l_1_p, 'inner'), 'var'), ' - lc_first]', )) if t_2(environment.getattr(l_1_p, 'stride')) else str_join(('lc_dst[(', environment.getattr(environment.getattr(l_1_p, 'inner'), 'var'), ' - lc_first) * (', environment.getattr(l_1_p, 'stride'), ')]', )))
        t_3.append(
            '\n        {',
        )
        for l_2_line in environment.getattr(l_1_p, 'enter'):
            _loop_vars = {}
            pass
            t_3.extend((
                '\n        ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        for l_2_l in environment.getattr(l_1_p, 'loops')[:-1]:
            _loop_vars = {}
            pass
            t_3.extend((
                '\n        for (int64_t ',
                str(environment.getattr(l_2_l, 'var')),
                ' = ',
                str(environment.getattr(l_2_l, 'start')),
                '; ',
                str(environment.getattr(l_2_l, 'var')),
                ' < ',
                str(environment.getattr(l_2_l, 'stop')),
                '; ++',
                str(environment.getattr(l_2_l, 'var')),
                ') {',
            ))
            for l_3_line in environment.getattr(l_2_l, 'enter'):
                _loop_vars = {}
                pass
                t_3.extend((
                    '\n        ',
                    str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_3_line, 'form')), l_3_line, _loop_vars=_loop_vars)),
                ))
            l_3_line = missing
        l_2_l = missing
        t_3.extend((
            '\n        {\n            ',
            str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype)),
            ' *restrict lc_dst = ',
            str(environment.getattr(l_1_p, 'name')),
            ' + (',
            str(environment.getattr(l_1_p, 'row')),
            ');\n            const int64_t lc_first = ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'start')),
            ', lc_end = ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'stop')),
            ';',
        ))
        for l_2_line in environment.getattr(l_1_p, 'tests'):
            _loop_vars = {}
            pass
            t_3.extend((
                '\n            ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        t_3.append(
            '\n            int64_t lc_lo = lc_min_i64(lc_lo_bound, lc_end);\n            int64_t lc_hi = lc_max_i64(lc_hi_bound, lc_lo);\n            if (!(',
        )
        for l_2_t in environment.getattr(l_1_p, 'passed'):
            _loop_vars = {}
            pass
            t_3.extend((
                str(l_2_t),
                ' != 0 && ',
            ))
        l_2_t = missing
        t_3.extend((
            '1)) lc_lo = lc_hi = lc_end;\n            for (int64_t ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ' = lc_first; ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ' < lc_lo; ++',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ') ',
            str((undefined(name='at') if l_1_at is missing else l_1_at)),
            ' = 0;\n            if (lc_lo < lc_hi) {',
        ))
        for l_2_line in environment.getattr(l_1_p, 'hoisted'):
            _loop_vars = {}
            pass
            t_3.extend((
                '\n                ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        if environment.getattr(l_1_p, 'simd'):
            pass
            t_3.append(
                '\n                #pragma omp simd',
            )
        t_3.extend((
            '\n                for (int64_t ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ' = lc_lo; ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ' < lc_hi; ++',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ') {',
        ))
        for l_2_line in environment.getattr(l_1_p, 'lines'):
            _loop_vars = {}
            pass
            t_3.extend((
                '\n                    ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        t_3.extend((
            '\n                    ',
            str((undefined(name='at') if l_1_at is missing else l_1_at)),
            ' = ',
            str(environment.getattr(l_1_p, 'value')),
            ';\n                }\n            }\n            for (int64_t ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ' = lc_hi; ',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ' < lc_end; ++',
            str(environment.getattr(environment.getattr(l_1_p, 'inner'), 'var')),
            ') ',
            str((undefined(name='at') if l_1_at is missing else l_1_at)),
            ' = 0;\n        }',
        ))
        for l_2_l in environment.getattr(l_1_p, 'loops')[:-1]:
            _loop_vars = {}
            pass
            t_3.append(
                '\n        }',
            )
        l_2_l = missing
        t_3.append(
            '\n        }',
        )
        return concat(t_3)
    context.exported_vars.add('pack_rows')
    context.vars['pack_rows'] = l_0_pack_rows = Macro(environment, macro, 'pack_rows', ('p',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_sc):
        t_4 = []
        if l_1_sc is missing:
            l_1_sc = undefined("parameter 'sc' was not provided", name='sc')
        pass
        for l_2_l in environment.getattr(l_1_sc, 'loops')[:-1]:
            _loop_vars = {}
            pass
            t_4.extend((
                '\n        for (int64_t ',
                str(environment.getattr(l_2_l, 'var')),
                ' = ',
                str(environment.getattr(l_2_l, 'start')),
                '; ',
                str(environment.getattr(l_2_l, 'var')),
                ' < ',
                str(environment.getattr(l_2_l, 'stop')),
                '; ++',
                str(environment.getattr(l_2_l, 'var')),
                ') {',
            ))
        l_2_l = missing
        t_4.extend((
            '\n        {\n            const ',
            str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype)),
            ' *restrict lc_src = lc_cols + (',
            str(environment.getattr(l_1_sc, 'row')),
            ');\n            const int64_t lc_first = ',
            str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'start')),
            ', lc_end = ',
            str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'stop')),
            ';',
        ))
        for l_2_line in environment.getattr(l_1_sc, 'tests'):
            _loop_vars = {}
            pass
            t_4.extend((
                '\n            ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        t_4.extend((
            '\n            const int64_t lc_lo = ',
            str(environment.getattr(l_1_sc, 'lo')),
            ', lc_hi = lc_min_i64(',
            str(environment.getattr(l_1_sc, 'hi')),
            ', lc_end);\n            if (',
        ))
        for l_2_t in environment.getattr(l_1_sc, 'passed'):
            _loop_vars = {}
            pass
            t_4.extend((
                str(l_2_t),
                ' != 0 && ',
            ))
        l_2_t = missing
        t_4.append(
            '1) {',
        )
        for l_2_line in environment.getattr(l_1_sc, 'hoisted'):
            _loop_vars = {}
            pass
            t_4.extend((
                '\n                ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        t_4.extend((
            '\n                #pragma omp simd\n                for (int64_t ',
            str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'var')),
            ' = lc_lo; ',
            str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'var')),
            ' < lc_hi; ++',
            str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'var')),
            ') {',
        ))
        for l_2_line in environment.getattr(l_1_sc, 'lines'):
            _loop_vars = {}
            pass
            t_4.extend((
                '\n                    ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        if environment.getattr(l_1_sc, 'start'):
            pass
            t_4.extend((
                '\n                    /* the value the sum starts from, added here rather than written first */\n                    ',
                str(environment.getattr(l_1_sc, 'target')),
                ' = ',
                str(environment.getattr(l_1_sc, 'start')),
                ' + lc_src[',
                str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'var')),
                ' - lc_first];',
            ))
        else:
            pass
            t_4.extend((
                '\n                    ',
                str(environment.getattr(l_1_sc, 'target')),
                ' ',
                str(('=' if (environment.getattr(l_1_sc, 'assign') and (not (undefined(name='started') if l_0_started is missing else l_0_started))) else '+=')),
                ' lc_src[',
                str(environment.getattr(environment.getattr(l_1_sc, 'inner'), 'var')),
                ' - lc_first];',
            ))
        t_4.append(
            '\n                }\n            }\n        }',
        )
        for l_2_l in environment.getattr(l_1_sc, 'loops')[:-1]:
            _loop_vars = {}
            pass
            t_4.append(
                '\n        }',
            )
        l_2_l = missing
        return concat(t_4)
    context.exported_vars.add('scatter_rows')
    context.vars['scatter_rows'] = l_0_scatter_rows = Macro(environment, macro, 'scatter_rows', ('sc',), False, False, False, context.eval_ctx.autoescape)
    yield '\n    /* '
    yield str((undefined(name='comment') if l_0_comment is missing else l_0_comment))
    yield ' */\n    {\n'
    yield str((undefined(name='start') if l_0_start is missing else l_0_start))
    yield '\n    if ('
    yield str((undefined(name='terms') if l_0_terms is missing else l_0_terms))
    yield ' == 0) {'
    if (not (undefined(name='started') if l_0_started is missing else l_0_started)):
        pass
        yield '\n        /* an empty sum is zero */\n        for (int64_t k = 0; k < '
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield '; ++k) '
        yield str((undefined(name='out') if l_0_out is missing else l_0_out))
        yield '[k] = 0;'
    yield '\n    } else if ('
    yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
    yield " > 0) {\n    /* tasks: every value of the calls' loops times blocks of "
    yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'axis'))
    yield ", each\n       block's packed workspace about "
    yield str((undefined(name='budget') if l_0_budget is missing else l_0_budget))
    yield ' bytes */\n    const int64_t lc_extent = '
    yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'extent'))
    yield ';\n    int64_t lc_step = (int64_t)('
    yield str((undefined(name='budget') if l_0_budget is missing else l_0_budget))
    yield ' / sizeof('
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ')) / ('
    yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'unit'))
    yield ');\n    if (lc_step < 1) lc_step = 1;\n    if (lc_step > lc_extent) lc_step = lc_extent;\n    int64_t lc_blocks = (lc_extent + lc_step - 1) / lc_step;\n    const int64_t lc_calls = '
    yield str((undefined(name='tasks') if l_0_tasks is missing else l_0_tasks))
    yield ';\n    int lc_nt = '
    yield str((undefined(name='work') if l_0_work is missing else l_0_work))
    yield ' >= '
    yield str((undefined(name='min_work') if l_0_min_work is missing else l_0_min_work))
    yield ' ? lc_num_threads() : 1;\n    /* a task for each thread at least (a batch smaller than the threads: its\n       images split into more blocks), and blocks of one length (a last short\n       block left a thread idle while another ran a long one) */\n    if (lc_calls > 0 && lc_calls * lc_blocks < lc_nt) lc_blocks = lc_min_i64(lc_extent, (lc_nt + lc_calls - 1) / lc_calls);\n    lc_step = (lc_extent + lc_blocks - 1) / lc_blocks;'
    if (environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'grain') > 1):
        pass
        yield '\n    /* blocks of whole tiles: '
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'grain'))
        yield " positions each (a block's columns round up to them) */\n    lc_step = lc_min_i64((lc_step + "
        yield str((environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'grain') - 1))
        yield ') / '
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'grain'))
        yield ' * '
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'grain'))
        yield ', lc_extent);'
    yield '\n    lc_blocks = (lc_extent + lc_step - 1) / lc_step;'
    if environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'step'):
        pass
        yield '\n    const int64_t '
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'step'))
        yield ' = lc_step;'
    yield "\n    const int64_t lc_tasks = lc_calls * lc_blocks;\n    if (lc_nt > lc_tasks) lc_nt = (int)lc_tasks;\n    /* each thread's workspaces, and those packed once */\n    const int64_t lc_room = "
    yield str((undefined(name='room') if l_0_room is missing else l_0_room))
    yield ' + '
    yield str((undefined(name='scratch') if l_0_scratch is missing else l_0_scratch))
    yield ';\n    '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *lc_ws = lc_room > 0 ? malloc(sizeof('
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ') * (size_t)lc_nt * (size_t)lc_room) : 0;'
    for l_1_p in (undefined(name='once') if l_0_once is missing else l_0_once):
        _loop_vars = {}
        pass
        yield '\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *'
        yield str(environment.getattr(l_1_p, 'name'))
        yield ' = malloc(sizeof('
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ') * (size_t)('
        yield str(environment.getattr(l_1_p, 'capacity'))
        yield '));'
    l_1_p = missing
    for l_1_t in (undefined(name='tables') if l_0_tables is missing else l_0_tables):
        _loop_vars = {}
        pass
        yield "\n    /* where each row of a side starts in the task's workspace */\n    int64_t *"
        yield str(environment.getattr(l_1_t, 'name'))
        yield ' = malloc(sizeof(int64_t) * (size_t)('
        yield str(environment.getattr(l_1_t, 'count'))
        yield '));'
    l_1_t = missing
    yield '\n    if ((lc_room > 0 && !lc_ws)'
    for l_1_p in (undefined(name='once') if l_0_once is missing else l_0_once):
        _loop_vars = {}
        pass
        yield ' || !'
        yield str(environment.getattr(l_1_p, 'name'))
    l_1_p = missing
    for l_1_t in (undefined(name='tables') if l_0_tables is missing else l_0_tables):
        _loop_vars = {}
        pass
        yield ' || !'
        yield str(environment.getattr(l_1_t, 'name'))
    l_1_t = missing
    yield ') {'
    for l_1_t in (undefined(name='tables') if l_0_tables is missing else l_0_tables):
        _loop_vars = {}
        pass
        yield '\n        free('
        yield str(environment.getattr(l_1_t, 'name'))
        yield ');'
    l_1_t = missing
    yield '\n        free(lc_ws);'
    for l_1_p in (undefined(name='once') if l_0_once is missing else l_0_once):
        _loop_vars = {}
        pass
        yield '\n        free('
        yield str(environment.getattr(l_1_p, 'name'))
        yield ');'
    l_1_p = missing
    yield '\n        return LC_OUT_OF_MEMORY;\n    }'
    if (undefined(name='private') if l_0_private is missing else l_0_private):
        pass
        yield "\n    /* tasks add onto the same elements: each thread into its own copy, laid out\n       as the calls' C ("
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'rows'))
        yield ' x '
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'cols'))
        yield '), summed in thread order into the\n       output they write transposed; without the copies, one thread into the output */\n    const int64_t lc_mine_size = ('
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'rows'))
        yield ') * ('
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'cols'))
        yield ');\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *lc_part = malloc(sizeof('
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ') * (size_t)lc_nt * (size_t)lc_mine_size);'
    elif (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        pass
        yield '\n    /* tasks add onto the same elements: each thread into its own copy, summed in thread order */\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *lc_part = lc_nt > 1 ? malloc(sizeof('
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ') * (size_t)(lc_nt - 1) * (size_t)('
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield ')) : 0;'
    if (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        pass
        yield '\n    if (!lc_part) lc_nt = 1;'
        if (not (undefined(name='started') if l_0_started is missing else l_0_started)):
            pass
            yield '\n    for (int64_t k = 0; k < '
            yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
            yield '; ++k) '
            yield str((undefined(name='out') if l_0_out is missing else l_0_out))
            yield '[k] = 0;'
        yield '\n    int lc_used = 1;'
    for l_1_p in (undefined(name='once') if l_0_once is missing else l_0_once):
        _loop_vars = {}
        pass
        yield '\n'
        yield str(context.call((undefined(name='pack_rows') if l_0_pack_rows is missing else l_0_pack_rows), l_1_p, _loop_vars=_loop_vars))
    l_1_p = missing
    for l_1_t in (undefined(name='tables') if l_0_tables is missing else l_0_tables):
        _loop_vars = {}
        pass
        yield '\n    {\n        int64_t lc_row = 0;'
        for l_2_l in environment.getattr(l_1_t, 'loops'):
            _loop_vars = {}
            pass
            yield '\n        for (int64_t '
            yield str(environment.getattr(l_2_l, 'var'))
            yield ' = '
            yield str(environment.getattr(l_2_l, 'start'))
            yield '; '
            yield str(environment.getattr(l_2_l, 'var'))
            yield ' < '
            yield str(environment.getattr(l_2_l, 'stop'))
            yield '; ++'
            yield str(environment.getattr(l_2_l, 'var'))
            yield ')'
        l_2_l = missing
        yield '\n        '
        yield str(environment.getattr(l_1_t, 'name'))
        yield '[lc_row++] = '
        yield str(environment.getattr(l_1_t, 'offset'))
        yield ';\n    }'
    l_1_t = missing
    yield '\n    #pragma omp parallel num_threads(lc_nt)\n    {\n    const int lc_tid = omp_get_thread_num();'
    for l_1_p in (undefined(name='per_task') if l_0_per_task is missing else l_0_per_task):
        _loop_vars = {}
        pass
        yield '\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *restrict '
        yield str(environment.getattr(l_1_p, 'name'))
        yield ' = lc_ws + (int64_t)lc_tid * lc_room + ('
        yield str(environment.getattr(l_1_p, 'at'))
        yield ');'
    l_1_p = missing
    yield '\n    '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *lc_scratch = lc_ws + (int64_t)lc_tid * lc_room + ('
    yield str((undefined(name='room') if l_0_room is missing else l_0_room))
    yield ');'
    if (undefined(name='scatter') if l_0_scatter is missing else l_0_scatter):
        pass
        yield '\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *restrict lc_cols = lc_ws + (int64_t)lc_tid * lc_room + ('
        yield str(environment.getattr((undefined(name='scatter') if l_0_scatter is missing else l_0_scatter), 'at'))
        yield ');'
        if ((not (undefined(name='started') if l_0_started is missing else l_0_started)) and (not environment.getattr((undefined(name='scatter') if l_0_scatter is missing else l_0_scatter), 'assign'))):
            pass
            yield '\n    /* tasks add into the parts of the output they own */\n    #pragma omp for simd schedule(static)\n    for (int64_t k = 0; k < '
            yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
            yield '; ++k) '
            yield str((undefined(name='out') if l_0_out is missing else l_0_out))
            yield '[k] = 0;'
    if (undefined(name='private') if l_0_private is missing else l_0_private):
        pass
        yield '\n    if (lc_tid == 0) lc_used = omp_get_num_threads();\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *lc_out = '
        yield str((undefined(name='out') if l_0_out is missing else l_0_out))
        yield ';\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *lc_mine = lc_part ? lc_part + (int64_t)lc_tid * lc_mine_size : 0;\n    if (lc_mine) for (int64_t k = 0; k < lc_mine_size; ++k) lc_mine[k] = 0;\n    #pragma omp for schedule(static)'
    elif (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        pass
        yield '\n    if (lc_tid == 0) lc_used = omp_get_num_threads();\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *lc_out = lc_tid == 0 ? '
        yield str((undefined(name='out') if l_0_out is missing else l_0_out))
        yield ' : lc_part + (int64_t)(lc_tid - 1) * ('
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield ');\n    if (lc_tid > 0) for (int64_t k = 0; k < '
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield '; ++k) lc_out[k] = 0;\n    #pragma omp for schedule(static)'
    elif (undefined(name='scatter') if l_0_scatter is missing else l_0_scatter):
        pass
        yield '\n    #pragma omp for schedule(dynamic, 1)'
    else:
        pass
        yield '\n    '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *lc_out = '
        yield str((undefined(name='out') if l_0_out is missing else l_0_out))
        yield ';\n    #pragma omp for schedule(dynamic, 1)'
    yield '\n    for (int64_t lc_task = 0; lc_task < lc_tasks; ++lc_task) {'
    if environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'start'):
        pass
        yield '\n        const int64_t '
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'start'))
        yield ' = lc_task % lc_blocks * lc_step;\n        const int64_t '
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'stop'))
        yield ' = lc_min_i64('
        yield str(environment.getattr((undefined(name='block') if l_0_block is missing else l_0_block), 'start'))
        yield ' + lc_step, lc_extent);'
    for l_1_line in (undefined(name='decode') if l_0_decode is missing else l_0_decode):
        _loop_vars = {}
        pass
        yield '\n        '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_line, 'form')), l_1_line, _loop_vars=_loop_vars))
    l_1_line = missing
    for l_1_p in (undefined(name='per_task') if l_0_per_task is missing else l_0_per_task):
        _loop_vars = {}
        pass
        yield '\n'
        yield str(context.call((undefined(name='pack_rows') if l_0_pack_rows is missing else l_0_pack_rows), l_1_p, _loop_vars=_loop_vars))
    l_1_p = missing
    yield '\n        '
    yield str((undefined(name='gemm') if l_0_gemm is missing else l_0_gemm))
    yield '('
    yield str(t_1(context.eval_ctx, (undefined(name='call') if l_0_call is missing else l_0_call), ', '))
    yield ');'
    if (undefined(name='scatter') if l_0_scatter is missing else l_0_scatter):
        pass
        yield '\n'
        yield str(context.call((undefined(name='scatter_rows') if l_0_scatter_rows is missing else l_0_scatter_rows), (undefined(name='scatter') if l_0_scatter is missing else l_0_scatter)))
    yield '\n    }\n    }'
    if (undefined(name='private') if l_0_private is missing else l_0_private):
        pass
        yield '\n    for (int lc_t = 0; lc_part && lc_t < lc_used; ++lc_t) {\n        const '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *restrict lc_p = lc_part + (int64_t)lc_t * lc_mine_size;\n        '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *restrict lc_to = '
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'target'))
        yield ";\n        /* the copy's row i, column j is the output's element i + j * ld: blocks\n           of 16 rows, so that both sides are read and written by cache lines */\n        for (int64_t lc_i0 = 0; lc_i0 < "
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'rows'))
        yield '; lc_i0 += 16) {\n            const int64_t lc_i1 = lc_min_i64(lc_i0 + 16, '
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'rows'))
        yield ');\n            for (int64_t lc_j = 0; lc_j < '
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'cols'))
        yield '; ++lc_j)\n                for (int64_t lc_i = lc_i0; lc_i < lc_i1; ++lc_i)\n                    lc_to[lc_i + lc_j * ('
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'ld'))
        yield ')] += lc_p[lc_i * ('
        yield str(environment.getattr((undefined(name='private') if l_0_private is missing else l_0_private), 'cols'))
        yield ') + lc_j];\n        }\n    }\n    free(lc_part);'
    elif (undefined(name='accumulate') if l_0_accumulate is missing else l_0_accumulate):
        pass
        yield '\n    for (int lc_t = 1; lc_t < lc_used; ++lc_t) {\n        const '
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *restrict lc_p = lc_part + (int64_t)(lc_t - 1) * ('
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield ');\n        #pragma omp simd\n        for (int64_t k = 0; k < '
        yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
        yield '; ++k) '
        yield str((undefined(name='out') if l_0_out is missing else l_0_out))
        yield '[k] += lc_p[k];\n    }\n    free(lc_part);'
    yield '\n    free(lc_ws);'
    for l_1_p in (undefined(name='once') if l_0_once is missing else l_0_once):
        _loop_vars = {}
        pass
        yield '\n    free('
        yield str(environment.getattr(l_1_p, 'name'))
        yield ');'
    l_1_p = missing
    for l_1_t in (undefined(name='tables') if l_0_tables is missing else l_0_tables):
        _loop_vars = {}
        pass
        yield '\n    free('
        yield str(environment.getattr(l_1_t, 'name'))
        yield ');'
    l_1_t = missing
    yield '\n    }\n    }\n'

blocks = {}
debug_info = '1=47&5=49&6=55&8=59&9=64&11=67&12=72&13=83&14=88&18=94&19=100&20=105&21=110&25=116&26=126&28=135&29=140&31=143&34=150&35=157&36=162&38=167&41=171&43=180&49=193&50=198&51=203&54=217&55=221&56=226&57=231&59=236&60=241&61=252&62=257&65=262&66=269&67=274&69=277&71=281&73=292&78=302&82=313&84=315&85=317&86=319&88=322&90=327&91=329&92=331&93=333&94=335&98=341&99=343&105=347&106=350&107=352&110=359&111=362&116=365&117=369&118=373&119=377&121=386&123=390&125=396&126=409&127=413&130=417&131=421&135=425&137=428&139=432&140=436&141=440&143=443&145=449&147=452&148=455&152=460&153=464&155=466&158=470&159=474&161=486&167=492&168=496&170=504&171=508&172=511&173=515&176=518&179=522&181=525&182=529&185=531&187=534&188=540&190=542&193=548&197=553&198=556&199=558&201=562&202=566&204=568&205=572&207=575&208=579&209=582&213=584&215=587&216=589&219=593&220=595&221=597&223=599&227=603&229=606&231=610&236=615&237=619&239=622&240=626'