void lc_prelu2d_set_threads(int n);
void lc_prelu2d_set_stream_bytes(int64_t n);
void lc_prelu2d_set_blas(uintptr_t sgemm, uintptr_t dgemm, int ilp64);
int lc_prelu2d_forward_f32(int64_t S_C, int64_t S_N, const float *T_x, const float *T_alpha, float *T_select_2);
int lc_prelu2d_backward_f32(int64_t S_C, int64_t S_N, const float *T_x, const float *T_alpha, const float *T_grad_select_2, float *T_grad_x, float *T_grad_alpha);
int lc_prelu2d_forward_f64(int64_t S_C, int64_t S_N, const double *T_x, const double *T_alpha, double *T_select_2);
int lc_prelu2d_backward_f64(int64_t S_C, int64_t S_N, const double *T_x, const double *T_alpha, const double *T_grad_select_2, double *T_grad_x, double *T_grad_alpha);
