// AVX2 + FMA + F16C row kernels (dequantize a row, dot, axpy). Compiled with -mavx2 -mfma -mf16c
// and only called after cpu_isa() confirms the CPU has them (matmul.cpp).
#include <immintrin.h>

#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// 8 unsigned bytes -> 8 floats.
inline __m256 u8x8_to_ps(const uint8_t* p) {
  __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
}

// 32 nibbles of a Q4 block -> two 16-byte vectors (elements 0..15 and 16..31) of values 0..15.
inline void unpack_nibbles(const uint8_t* qs, uint8_t lo[16], uint8_t hi[16]) {
  __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  __m128i mask = _mm_set1_epi8(0x0F);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), _mm_and_si128(q, mask));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(hi), _mm_and_si128(_mm_srli_epi16(q, 4), mask));
}

void avx2_dequant_row(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
      }
      for (; i < n; ++i) dst[i] = half_to_float(s[i]);
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
      }
      for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / QK; ++i, dst += QK) {
        const __m256 d = _mm256_set1_ps(half_to_float(b[i].d));
        for (int j = 0; j < QK; j += 8) {
          __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[i].qs + j));
          __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
          _mm256_storeu_ps(dst + j, _mm256_mul_ps(d, f));
        }
      }
      return;
    }
    case DType::Q4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      const __m256 eight = _mm256_set1_ps(8.0f);
      alignas(16) uint8_t lo[16], hi[16];
      for (int64_t i = 0; i < n / QK; ++i, dst += QK) {
        const __m256 d = _mm256_set1_ps(half_to_float(b[i].d));
        unpack_nibbles(b[i].qs, lo, hi);
        _mm256_storeu_ps(dst + 0, _mm256_mul_ps(d, _mm256_sub_ps(u8x8_to_ps(lo), eight)));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_sub_ps(u8x8_to_ps(lo + 8), eight)));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_sub_ps(u8x8_to_ps(hi), eight)));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, _mm256_sub_ps(u8x8_to_ps(hi + 8), eight)));
      }
      return;
    }
    case DType::Q4_1: {
      const auto* b = static_cast<const BlockQ4_1*>(src);
      alignas(16) uint8_t lo[16], hi[16];
      for (int64_t i = 0; i < n / QK; ++i, dst += QK) {
        const __m256 d = _mm256_set1_ps(half_to_float(b[i].d));
        const __m256 m = _mm256_set1_ps(half_to_float(b[i].m));
        unpack_nibbles(b[i].qs, lo, hi);
        _mm256_storeu_ps(dst + 0, _mm256_fmadd_ps(d, u8x8_to_ps(lo), m));
        _mm256_storeu_ps(dst + 8, _mm256_fmadd_ps(d, u8x8_to_ps(lo + 8), m));
        _mm256_storeu_ps(dst + 16, _mm256_fmadd_ps(d, u8x8_to_ps(hi), m));
        _mm256_storeu_ps(dst + 24, _mm256_fmadd_ps(d, u8x8_to_ps(hi + 8), m));
      }
      return;
    }
    default:
      throw std::invalid_argument(std::string("[cpu.dequant] expected a weight dtype, found ") +
                                  dtype_name(t));
  }
}

float avx2_dot(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
         s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void avx2_axpy(float alpha, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * x[i];
}

const RowKernels AVX2 = {"avx2", avx2_dequant_row, avx2_dot, avx2_axpy};

}  // namespace

const RowKernels* avx2_kernels() { return &AVX2; }

}  // namespace longbow::cpu
