void lc_customlinearspec_set_threads(int n);
void lc_customlinearspec_set_stream_bytes(int64_t n);
void lc_customlinearspec_set_blas(uintptr_t sgemm, uintptr_t dgemm, int ilp64);
int lc_customlinearspec_forward_f32(int64_t S_N, const float *T_x, const float *T_weight, const float *T_bias, float *T_add_2);
int lc_customlinearspec_backward_f32(int64_t S_N, const float *T_x, const float *T_weight, const float *T_grad_add_2, float *T_grad_x, float *T_grad_weight, float *T_grad_bias);
int lc_customlinearspec_backward_params_f32(int64_t S_N, const float *T_x, const float *T_grad_add_2, float *T_grad_weight, float *T_grad_bias);
int lc_customlinearspec_forward_f64(int64_t S_N, const double *T_x, const double *T_weight, const double *T_bias, double *T_add_2);
int lc_customlinearspec_backward_f64(int64_t S_N, const double *T_x, const double *T_weight, const double *T_grad_add_2, double *T_grad_x, double *T_grad_weight, double *T_grad_bias);
int lc_customlinearspec_backward_params_f64(int64_t S_N, const double *T_x, const double *T_grad_add_2, double *T_grad_weight, double *T_grad_bias);
