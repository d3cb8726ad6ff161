from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'contract.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_comment = resolve('comment')
    l_0_m_size = resolve('m_size')
    l_0_n_size = resolve('n_size')
    l_0_k_size = resolve('k_size')
    l_0_nr = resolve('nr')
    l_0_min_work = resolve('min_work')
    l_0_ctype = resolve('ctype')
    l_0_out_size = resolve('out_size')
    l_0_out = resolve('out')
    l_0_batch = resolve('batch')
    l_0_n_decode = resolve('n_decode')
    l_0_k_decode = resolve('k_decode')
    l_0_b_lets = resolve('b_lets')
    l_0_b_value = resolve('b_value')
    l_0_m_decode = resolve('m_decode')
    l_0_a_lets = resolve('a_lets')
    l_0_a_value = resolve('a_value')
    l_0_kernel = resolve('kernel')
    l_0_store = resolve('store')
    l_0_c = missing
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'contract.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    yield '    /* '
    yield str((undefined(name='comment') if l_0_comment is missing else l_0_comment))
    yield ' */\n    {\n    const int64_t lc_M = '
    yield str((undefined(name='m_size') if l_0_m_size is missing else l_0_m_size))
    yield ', lc_N = '
    yield str((undefined(name='n_size') if l_0_n_size is missing else l_0_n_size))
    yield ', lc_K = '
    yield str((undefined(name='k_size') if l_0_k_size is missing else l_0_k_size))
    yield ';\n    const int64_t lc_panels = (lc_N + '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ' - 1) / '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ';\n    const int lc_nt = lc_M * lc_N * lc_K >= '
    yield str((undefined(name='min_work') if l_0_min_work is missing else l_0_min_work))
    yield ' ? lc_num_threads() : 1;\n    int64_t lc_mc = ((lc_M + lc_nt - 1) / lc_nt + LC_MR - 1) / LC_MR * LC_MR;\n    if (lc_mc > LC_MC) lc_mc = LC_MC;\n    if (lc_mc < LC_MR) lc_mc = LC_MR;\n    /* packed panels of B, and a block of A per thread, as deep as a block of K */\n    const int64_t lc_kb = lc_K < LC_KC ? (lc_K > 0 ? lc_K : 1) : LC_KC;\n    '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *restrict lc_bp = malloc(sizeof('
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ') * (size_t)lc_kb * (size_t)(lc_panels > 0 ? lc_panels : 1) * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ');\n    '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *restrict lc_apacked = malloc(sizeof('
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ') * (size_t)lc_nt * (size_t)lc_mc * (size_t)lc_kb);\n    if (!lc_bp || !lc_apacked) {\n        free(lc_bp);\n        free(lc_apacked);\n        return LC_OUT_OF_MEMORY;\n    }\n    /* an empty sum is zero */\n    if (lc_K == 0) for (int64_t k = 0; k < '
    yield str((undefined(name='out_size') if l_0_out_size is missing else l_0_out_size))
    yield '; ++k) '
    yield str((undefined(name='out') if l_0_out is missing else l_0_out))
    yield '[k] = 0;'
    for l_1_b in (undefined(name='batch') if l_0_batch is missing else l_0_batch):
        _loop_vars = {}
        pass
        yield '\n    for (int64_t '
        yield str(environment.getattr(l_1_b, 'var'))
        yield ' = 0; '
        yield str(environment.getattr(l_1_b, 'var'))
        yield ' < '
        yield str(environment.getattr(l_1_b, 'extent'))
        yield '; ++'
        yield str(environment.getattr(l_1_b, 'var'))
        yield ') {'
    l_1_b = missing
    yield '\n    for (int64_t lc_pc = 0; lc_pc < lc_K; lc_pc += LC_KC) {\n        const int64_t lc_kc = lc_K - lc_pc < LC_KC ? lc_K - lc_pc : LC_KC;\n        #pragma omp parallel num_threads(lc_nt)\n        {\n        /* B, packed once per block of K: panels of '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield " columns */\n        #pragma omp for schedule(static)\n        for (int64_t lc_jp = 0; lc_jp < lc_panels; ++lc_jp) {\n            /* a column's indices are decoded once, its K values read down the column */\n            for (int64_t lc_j = 0; lc_j < "
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield '; ++lc_j) {\n                const int64_t lc_n = lc_jp * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ' + lc_j;\n                '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *restrict lc_dst = lc_bp + lc_jp * lc_kc * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ' + lc_j;\n                if (lc_n >= lc_N) {\n                    for (int64_t lc_k = 0; lc_k < lc_kc; ++lc_k) lc_dst[lc_k * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield '] = 0;\n                    continue;\n                }'
    for l_1_s in (undefined(name='n_decode') if l_0_n_decode is missing else l_0_n_decode):
        _loop_vars = {}
        pass
        yield '\n                '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n                for (int64_t lc_k = 0; lc_k < lc_kc; ++lc_k) {\n                    const int64_t lc_kk = lc_pc + lc_k;'
    for l_1_s in ((undefined(name='k_decode') if l_0_k_decode is missing else l_0_k_decode) + (undefined(name='b_lets') if l_0_b_lets is missing else l_0_b_lets)):
        _loop_vars = {}
        pass
        yield '\n                    '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n                    lc_dst[lc_k * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield '] = '
    yield str((undefined(name='b_value') if l_0_b_value is missing else l_0_b_value))
    yield ';\n                }\n            }\n        }\n        '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *restrict lc_ap = lc_apacked + (int64_t)omp_get_thread_num() * lc_mc * lc_kb;\n        /* A, packed per block of rows in panels of LC_MR; then the register-tiled kernel */\n        #pragma omp for schedule(dynamic, 1)\n        for (int64_t lc_ic = 0; lc_ic < lc_M; lc_ic += lc_mc) {\n            const int64_t lc_mb = lc_M - lc_ic < lc_mc ? lc_M - lc_ic : lc_mc;\n            for (int64_t lc_ip = 0; lc_ip < (lc_mb + LC_MR - 1) / LC_MR; ++lc_ip) {\n                for (int64_t lc_i = 0; lc_i < LC_MR; ++lc_i) {\n                    const int64_t lc_m = lc_ic + lc_ip * LC_MR + lc_i;\n                    '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' *restrict lc_dst = lc_ap + lc_ip * lc_kc * LC_MR + lc_i;\n                    if (lc_m >= lc_ic + lc_mb) {\n                        for (int64_t lc_k = 0; lc_k < lc_kc; ++lc_k) lc_dst[lc_k * LC_MR] = 0;\n                        continue;\n                    }'
    for l_1_s in (undefined(name='m_decode') if l_0_m_decode is missing else l_0_m_decode):
        _loop_vars = {}
        pass
        yield '\n                    '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n                    for (int64_t lc_k = 0; lc_k < lc_kc; ++lc_k) {\n                        const int64_t lc_kk = lc_pc + lc_k;'
    for l_1_s in ((undefined(name='k_decode') if l_0_k_decode is missing else l_0_k_decode) + (undefined(name='a_lets') if l_0_a_lets is missing else l_0_a_lets)):
        _loop_vars = {}
        pass
        yield '\n                        '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n                        lc_dst[lc_k * LC_MR] = '
    yield str((undefined(name='a_value') if l_0_a_value is missing else l_0_a_value))
    yield ';\n                    }\n                }\n            }\n            for (int64_t lc_jp = 0; lc_jp < lc_panels; ++lc_jp) {\n                for (int64_t lc_ip = 0; lc_ip < (lc_mb + LC_MR - 1) / LC_MR; ++lc_ip) {\n                    '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' lc_c[LC_MR * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield '];\n                    '
    yield str((undefined(name='kernel') if l_0_kernel is missing else l_0_kernel))
    yield '(lc_kc, lc_ap + lc_ip * lc_kc * LC_MR, lc_bp + lc_jp * lc_kc * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ', lc_c);\n                    for (int64_t lc_i = 0; lc_i < LC_MR; ++lc_i) {\n                        const int64_t lc_m = lc_ic + lc_ip * LC_MR + lc_i;\n                        if (lc_m >= lc_ic + lc_mb) break;'
    for l_1_s in (undefined(name='m_decode') if l_0_m_decode is missing else l_0_m_decode):
        _loop_vars = {}
        pass
        yield '\n                        '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n                        for (int64_t lc_j = 0; lc_j < '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield '; ++lc_j) {\n                            const int64_t lc_n = lc_jp * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ' + lc_j;\n                            if (lc_n >= lc_N) break;'
    for l_1_s in (undefined(name='n_decode') if l_0_n_decode is missing else l_0_n_decode):
        _loop_vars = {}
        pass
        yield '\n                            '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_s, 'form')), l_1_s, _loop_vars=_loop_vars))
    l_1_s = missing
    yield '\n                            if (lc_pc == 0) '
    yield str((undefined(name='store') if l_0_store is missing else l_0_store))
    yield ' = lc_c[lc_i * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ' + lc_j];\n                            else '
    yield str((undefined(name='store') if l_0_store is missing else l_0_store))
    yield ' += lc_c[lc_i * '
    yield str((undefined(name='nr') if l_0_nr is missing else l_0_nr))
    yield ' + lc_j];\n                        }\n                    }\n                }\n            }\n        }\n        }\n    }'
    for l_1_b in (undefined(name='batch') if l_0_batch is missing else l_0_batch):
        _loop_vars = {}
        pass
        yield '\n    }'
    l_1_b = missing
    yield '\n    free(lc_bp);\n    free(lc_apacked);\n    }\n'

blocks = {}
debug_info = '1=31&3=36&4=42&5=46&11=48&12=54&19=58&20=62&21=66&27=76&31=78&32=80&33=82&35=86&38=88&39=92&43=95&44=99&46=102&50=106&58=108&63=110&64=114&68=117&69=121&71=124&77=126&78=130&82=134&83=138&85=141&86=143&88=145&89=149&91=152&92=156&100=160'