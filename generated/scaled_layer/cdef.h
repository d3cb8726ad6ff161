void lc_scaledlayerspec_set_threads(int n);
void lc_scaledlayerspec_set_stream_bytes(int64_t n);
void lc_scaledlayerspec_set_blas(uintptr_t sgemm, uintptr_t dgemm, int ilp64);
int lc_scaledlayerspec_forward_f32(int64_t S_D, int64_t S_N, const float *T_x, const float *T_scale, float *T_mul_0);
int lc_scaledlayerspec_backward_f32(int64_t S_D, int64_t S_N, const float *T_x, const float *T_scale, const float *T_grad_mul_0, float *T_grad_x, float *T_grad_scale);
int lc_scaledlayerspec_forward_f64(int64_t S_D, int64_t S_N, const double *T_x, const double *T_scale, double *T_mul_0);
int lc_scaledlayerspec_backward_f64(int64_t S_D, int64_t S_N, const double *T_x, const double *T_scale, const double *T_grad_mul_0, double *T_grad_x, double *T_grad_scale);
