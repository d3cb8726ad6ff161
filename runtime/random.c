/* Parameter initializers' draws, in C: numpy's generators take 10-16 ns a
   normal value on this machine, which a 1024 x 1024 weight pays at every
   start. Value i of a draw is a function of the seed and i only (SplitMix64 at
   step i), and is computed in float32 for both output types. */
#include <stdint.h>
#include <math.h>

#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float cosf(float);

/* below this many values one thread draws them all */
#define LC_PARALLEL_DRAW (1 << 16)

static inline uint64_t lc_splitmix(uint64_t seed, int64_t i) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Box-Muller from the two 24-bit halves of one draw: the radius's uniform in
   (0, 1], so its log is finite (the tails end at 5.8 standard deviations) */
static inline float lc_normal(uint64_t bits) {
    const float radius = (float)((int32_t)(bits >> 40) + 1) * 0x1p-24f;
    const float angle = (float)(int32_t)(bits & 0xffffff) * 0x1p-24f;
    return sqrtf(-2.0f * logf(radius)) * cosf(6.28318530717958648f * angle);
}

/* uniform in [0, 1) */
static inline float lc_uniform(uint64_t bits) { return (float)(int32_t)(bits >> 40) * 0x1p-24f; }

/* Values are computed in whole blocks, in a loop of a fixed length the
   compiler vectorizes without a scalar remainder (whose libm calls would round
   differently from libmvec's): where a thread's share starts cannot change them. */
#define LC_BLOCK 64
#define LC_DRAW(name, ctype, value)                                                                   \
    void name(uint64_t seed, int64_t n, float scale, float shift, int threads, ctype *out) {          \
        const int64_t blocks = (n + LC_BLOCK - 1) / LC_BLOCK;                                           \
        _Pragma("omp parallel for num_threads(threads) if(n >= LC_PARALLEL_DRAW)")                     \
        for (int64_t b = 0; b < blocks; ++b) {                                                          \
            float block[LC_BLOCK] __attribute__((aligned(64)));                                         \
            _Pragma("omp simd")                                                                         \
            for (int64_t k = 0; k < LC_BLOCK; ++k)                                                      \
                block[k] = scale * value(lc_splitmix(seed, b * LC_BLOCK + k)) + shift;                  \
            const int64_t filled = n - b * LC_BLOCK < LC_BLOCK ? n - b * LC_BLOCK : LC_BLOCK;           \
            for (int64_t k = 0; k < filled; ++k) out[b * LC_BLOCK + k] = (ctype)block[k];               \
        }                                                                                               \
    }

LC_DRAW(lc_random_normal_f32, float, lc_normal)
LC_DRAW(lc_random_normal_f64, double, lc_normal)
LC_DRAW(lc_random_uniform_f32, float, lc_uniform)
LC_DRAW(lc_random_uniform_f64, double, lc_uniform)
