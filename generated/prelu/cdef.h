void lc_prelund_set_threads(int n);
void lc_prelund_set_stream_bytes(int64_t n);
void lc_prelund_set_blas(uintptr_t sgemm, uintptr_t dgemm, int ilp64);
int lc_prelund_forward_f32(int64_t S_C, int64_t S_E, int64_t S_N, const float *T_x, const float *T_alpha, float *T_select_3);
int lc_prelund_backward_f32(int64_t S_C, int64_t S_E, int64_t S_N, const float *T_x, const float *T_alpha, const float *T_grad_select_3, float *T_grad_x, float *T_grad_alpha, float *T_grad_reshape_0_3);
int lc_prelund_forward_f64(int64_t S_C, int64_t S_E, int64_t S_N, const double *T_x, const double *T_alpha, double *T_select_3);
int lc_prelund_backward_f64(int64_t S_C, int64_t S_E, int64_t S_N, const double *T_x, const double *T_alpha, const double *T_grad_select_3, double *T_grad_x, double *T_grad_alpha, double *T_grad_reshape_0_3);
