void lc_focallossspec_set_threads(int n);
void lc_focallossspec_set_stream_bytes(int64_t n);
void lc_focallossspec_set_blas(uintptr_t sgemm, uintptr_t dgemm, int ilp64);
int lc_focallossspec_forward_f32(int64_t S_C, int64_t S_N, const float *T_logits, const int64_t *T_targets, float *T_div_15, float *T_sum_4_terms, float *T_sum_4, float *T_add_6, float *T_max_0, float *T_sum_14);
int lc_focallossspec_backward_f32(int64_t S_C, int64_t S_N, const float *T_logits, const int64_t *T_targets, const float *T_grad_div_15, const float *T_sum_4_terms, const float *T_sum_4, const float *T_add_6, float *T_grad_logits, float *T_grad_sum_14_1, float *T_grad_logp_t_8, float *T_grad_sum_4_14);
int lc_focallossspec_forward_f64(int64_t S_C, int64_t S_N, const double *T_logits, const int64_t *T_targets, double *T_div_15, double *T_sum_4_terms, double *T_sum_4, double *T_add_6, double *T_max_0, double *T_sum_14);
int lc_focallossspec_backward_f64(int64_t S_C, int64_t S_N, const double *T_logits, const int64_t *T_targets, const double *T_grad_div_15, const double *T_sum_4_terms, const double *T_sum_4, const double *T_add_6, double *T_grad_logits, double *T_grad_sum_14_1, double *T_grad_logp_t_8, double *T_grad_sum_4_14);
