// The AVX2 vector type of the SIMD attention items (attention_decode_simd.h,
// attention_tile_simd.h), shared by attention_kernels_avx2.cpp (the plain items) and
// attention_kernels_ext_avx2.cpp (their sliding-window / soft-cap instantiations). Include only
// from files compiled for AVX2 + FMA + F16C; the contents sit in an anonymous namespace so each
// file gets its own copy.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "longbow/backend/cpu/simd/simd_math_avx2.h"

namespace longbow::cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

struct Avx2 {
  using reg = __m256;
  static constexpr int W = 8,
                       MAX_NV = 2;  // 16 ymm registers: 4 keys x 2 row vectors of accumulators
  static constexpr int SCORE_KEYS = 4, VALUE_DIMS = 4;
  static constexpr int DECODE_VALUE_VECS = 2;  // decode P·V: up to 4 rows x 2 head-dim vectors
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  // a < b ? x : y per lane.
  static reg select_lt(reg a, reg b, reg x, reg y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }
  static reg load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
  // W int8 values as floats.
  static reg load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // The low (HI false) or high nibbles of W bytes as floats 0..15.
  template <bool HI>
  static reg load_u4(const uint8_t* p) {
    const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_cvtepi32_ps(HI ? _mm256_srli_epi32(b, 4)
                                 : _mm256_and_si256(b, _mm256_set1_epi32(0x0F)));
  }
  // One level L of the decode score tree (8 keys -> one vector of 8 sums, 14 shuffles and 7
  // adds): x and y hold the partial sums of two adjacent key runs of 2^L keys each; levels:
  // unpack ps, unpack pd, 128-bit halves. After level 2 lane j is the sum of key j.
  template <int L>
  static reg fold_keys(reg x, reg y) {
    if constexpr (L == 0) {
      return _mm256_add_ps(_mm256_unpacklo_ps(x, y),
                           _mm256_unpackhi_ps(x, y));  // per 128: x02 y02 x13 y13
    } else if constexpr (L == 1) {
      const __m256d a = _mm256_castps_pd(x), b = _mm256_castps_pd(y);
      return _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                           _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
    } else {
      return _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
    }
  }
  static float hsum(reg v) { return longbow::cpu::hsum(v); }
  static float hmax(reg v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
  }
  static reg exp2(reg x) { return exp2_8(x); }  // simd_math_avx2.h
};

}  // namespace
}  // namespace longbow::cpu
