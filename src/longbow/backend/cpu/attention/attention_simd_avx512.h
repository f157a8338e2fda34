// The AVX-512 vector type of the SIMD attention items (attention_decode_simd.h,
// attention_tile_simd.h), shared by attention_kernels_avx512.cpp (the plain items) and
// attention_kernels_ext_avx512.cpp (their sliding-window / soft-cap instantiations). Include only
// inside those files' AVX-512 target region; the contents sit in an anonymous namespace.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "longbow/backend/cpu/simd/simd_math_avx512.h"

namespace longbow::cpu {
namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int W = 16, MAX_NV = 4;
  // Register blocks (4 keys or 4 head dims) x up to 4 row vectors: 16 accumulators. Larger blocks
  // (6 or 8) measured no faster on Zen 4.
  static constexpr int SCORE_KEYS = 4, VALUE_DIMS = 4;
  static constexpr int DECODE_VALUE_VECS = 4;  // decode P·V: up to 4 rows x 4 head-dim vectors
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  // a < b ? x : y per lane.
  static reg select_lt(reg a, reg b, reg x, reg y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }
  static reg load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
  // W int8 values as floats.
  static reg load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // The low (HI false) or high nibbles of W bytes as floats 0..15.
  template <bool HI>
  static reg load_u4(const uint8_t* p) {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm512_cvtepi32_ps(HI ? _mm512_srli_epi32(b, 4)
                                 : _mm512_and_si512(b, _mm512_set1_epi32(0x0F)));
  }
  // One level L of the decode score tree (16 keys -> one vector of 16 sums, 30 shuffles and 15
  // adds): x and y hold the partial sums of two adjacent key runs of 2^L keys each; the result
  // holds those of the 2^(L+1) keys with half as many partials per key. Levels: unpack ps,
  // unpack pd, then two 128-bit lane shuffles; after level 3 lane j is the sum of key j.
  template <int L>
  static reg fold_keys(reg x, reg y) {
    if constexpr (L == 0) {
      return _mm512_add_ps(_mm512_unpacklo_ps(x, y),
                           _mm512_unpackhi_ps(x, y));  // per 128: x02 y02 x13 y13
    } else if constexpr (L == 1) {
      const __m512d a = _mm512_castps_pd(x), b = _mm512_castps_pd(y);
      return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                           _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    } else {
      return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
    }
  }
  static float hmax(reg v) { return _mm512_reduce_max_ps(v); }
  static float hsum(reg v) { return _mm512_reduce_add_ps(v); }
  static reg exp2(reg x) { return exp2_16(x); }  // simd_math_avx512.h
};

}  // namespace
}  // namespace longbow::cpu
