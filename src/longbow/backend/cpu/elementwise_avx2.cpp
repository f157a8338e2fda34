// AVX2 + FMA + F16C row kernels of the elementwise op families (elementwise_kernels.h): SiLU with
// a vectorized exp, f32 -> f16 with vcvtps2ph (round to nearest even, as f32_to_f16), the RMSNorm
// sum of squares in double lanes and its scale. Compiled with -mavx2 -mfma -mf16c; chosen only
// when the CPU has them (elementwise.cpp).
#include <immintrin.h>

#include "longbow/backend/cpu/elementwise_kernels.h"
#include "longbow/backend/cpu/simd/simd_math_avx2.h"

namespace longbow::cpu {

namespace {

inline __m256 silu8(__m256 g, __m256 u) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

// gelu_tanh(g) * u with tanh(y) = 1 - 2 / (exp(2y) + 1) (exp8 clamps, so large |y| gives +-1).
inline __m256 gelu_tanh8(__m256 g, __m256 u) {
  const __m256 g3 = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
  const __m256 y = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                 _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), g3, g));
  const __m256 e = exp8(_mm256_add_ps(y, y));
  const __m256 t =
      _mm256_sub_ps(_mm256_set1_ps(1.0f),
                    _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  return _mm256_mul_ps(
      _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), g), _mm256_add_ps(_mm256_set1_ps(1.0f), t)),
      u);
}

// Loads the first n < 8 floats of p, zero-filled.
inline __m256 load_tail(const float* p, int64_t n) {
  alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) t[i] = p[i];
  return _mm256_load_ps(t);
}
inline void store_tail(float* p, __m256 v, int64_t n) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t i = 0; i < n; ++i) p[i] = t[i];
}

void avx2_silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, silu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n)
    store_tail(out + i, silu8(load_tail(gate + i, n - i), load_tail(up + i, n - i)), n - i);
}

void avx2_gelu_tanh_mul(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, gelu_tanh8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < n)
    store_tail(out + i, gelu_tanh8(load_tail(gate + i, n - i), load_tail(up + i, n - i)), n - i);
}

void avx2_to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  if (i < n) {
    alignas(16) uint16_t t[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(t),
                    _mm256_cvtps_ph(load_tail(x + i, n - i), _MM_FROUND_TO_NEAREST_INT));
    for (int64_t l = 0; i + l < n; ++l) y[i + l] = t[l];
  }
}

double avx2_sum_squares(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                  hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, _mm256_add_pd(a0, a1));
  double s = (t[0] + t[1]) + (t[2] + t[3]);
  for (; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

void avx2_scale_mul(const float* x, float inv, const float* w, float* out, int64_t n) {
  const __m256 iv = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(
        out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), iv), _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
}

const EltKernels AVX2 = {"avx2",      avx2_silu_mul,    avx2_gelu_tanh_mul,
                         avx2_to_f16, avx2_sum_squares, avx2_scale_mul};

}  // namespace

// The CPU check is made by the caller (elt_kernels() asks cpu_isa()).
const EltKernels* elt_avx2_kernels() { return &AVX2; }

}  // namespace longbow::cpu
